"""Model families: each is a model file plus an export spec module (``spec.py``).

Adding a family means adding its folder and one line here.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from ttsopt.errors import TtsoptError

#: family name -> module with ``plan(...)`` and ``load_eager(...)``.
SPECS = {"hifigan": "ttsopt.families.hifigan.spec", "gpt_sovits": "ttsopt.families.gpt_sovits.spec"}


def spec_module(family: str) -> ModuleType:
    if family not in SPECS:
        raise TtsoptError(f"model family {family!r} is not known to this ttsopt: upgrade ttsopt")
    return importlib.import_module(SPECS[family])
