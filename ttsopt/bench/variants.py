"""The variants one benchmark run times side by side: the package, the original in PyTorch eager, and for a
quantized package the FP32 package it came from. A variant that cannot be measured is left out with a note."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ttsopt.errors import TtsoptError
from ttsopt.families import get_family
from ttsopt.package.manifest import Manifest

PACKAGE = "package (onnxruntime)"
EAGER = "PyTorch eager FP32"
FP32_PACKAGE = "FP32 package"


def load_eager(manifest: Manifest, original: Path | None, original_config: Path | None, notes: list[str]) -> Any:
    """The original checkpoint in PyTorch eager, or None with a note saying why it is not measured."""
    try:
        return get_family(manifest.family).load_eager(manifest, original, original_config)
    except ImportError:
        notes.append("PyTorch eager not measured: torch is not installed (pip install 'ttsopt[build]')")
    except TtsoptError as exc:
        if original is not None:
            raise
        notes.append(f"PyTorch eager not measured: {exc} (pass --original CHECKPOINT)")
    return None


def fp32_package(manifest: Manifest, notes: list[str]) -> Path | None:
    """The FP32 package a quantized package was made from, if it is still there (else a note)."""
    source = manifest.source.get("quantized_from")
    if source and Path(source).is_dir():
        return Path(source)
    if source:
        notes.append(f"the FP32 package this was quantized from ({source}) is gone: INT8 vs FP32 not measured")
    return None
