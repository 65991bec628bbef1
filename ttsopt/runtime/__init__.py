"""The runtime: runs ttsopt packages with numpy + onnxruntime.  It never imports torch.

    >>> import ttsopt.runtime
    >>> vocoder = ttsopt.runtime.load("build/hifigan-cpu")
    >>> audio = vocoder.vocode(mel)          # mel [n_mels, frames] -> float32 waveform
"""

from __future__ import annotations

from pathlib import Path

from ttsopt.runtime.package import Package
from ttsopt.runtime.vocoder import Vocoder

_TASKS = {"vocoder": Vocoder}


def load(path: str | Path) -> Vocoder:
    """Open a package (checking every file against the manifest's hashes) as its task's API."""
    package = Package(path)
    return _TASKS[package.manifest.task](package)


__all__ = ["Package", "Vocoder", "load"]
