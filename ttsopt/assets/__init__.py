"""Recordings that ship inside ttsopt (espeak-ng speech; see the README for how they were made).

``speech/`` is the verification set every export scores its package on; ``calibration/`` holds other
sentences and voices, what ``quantize`` calibrates on when no ``--calib`` is given. Keeping the two apart
is what makes a verification score an honest one.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

VERIFICATION = "speech"
CALIBRATION = "calibration"


def bundled_recordings(kind: str) -> list[Path]:
    """The ``.wav`` files of ``kind`` (:data:`VERIFICATION` or :data:`CALIBRATION`), sorted by name."""
    return sorted(Path(str(p)) for p in files(__name__).joinpath(kind).iterdir() if p.name.endswith(".wav"))
