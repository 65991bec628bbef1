"""The one exception type a user ever sees.

Anything the user can fix (a wrong file, a bad option, a damaged package) is raised as a
:class:`TtsoptError` whose message says what is wrong and what to do; the CLI prints it as one line and
exits with status 2, without a traceback.  Anything else is a bug in ttsopt and keeps its traceback.
"""

from __future__ import annotations


class TtsoptError(Exception):
    """A problem with the user's input, stated as ``what is wrong: what to do``."""


class QualityGateError(TtsoptError):
    """An artefact was measured and failed a quality gate (exit status 1, not 2)."""
