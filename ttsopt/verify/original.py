"""The original checkpoint for ``verify --original`` and ``bench``: the family's eager model, or a clear line
when torch (a build-side dependency) is not installed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ttsopt.errors import TtsoptError
from ttsopt.families import get_family
from ttsopt.package.manifest import Manifest


def load_original(manifest: Manifest, original: Path | None, original_config: Path | None = None) -> Any:
    try:
        return get_family(manifest.family).load_eager(manifest, original, original_config)
    except ImportError:
        raise TtsoptError("running the original checkpoint needs PyTorch, which is not installed here: "
                          "pip install 'ttsopt[build]', or verify without it") from None
