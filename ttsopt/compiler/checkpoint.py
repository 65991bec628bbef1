"""Safe reading of PyTorch checkpoint files, shared by every model family.

``torch.load(weights_only=True)`` only: a checkpoint is data, and an arbitrary pickle can run code.
The errors say what the file looks like instead (a GPT-SoVITS file, a truncated archive, not a
checkpoint at all), because "Weights only load failed" helps nobody choose the right command.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ttsopt.errors import TtsoptError


def _recognized(method: str, value: Any) -> str | None:
    """What the first registered family that knows ``value`` calls it (``Family.recognize_*``)."""
    from ttsopt.families import FAMILIES, get_family

    return next((name for name in (getattr(get_family(f), method)(value) for f in FAMILIES) if name), None)


def describe_checkpoint(state: Any) -> str:
    """Name what a loaded checkpoint looks like, for "this is X, not Y" errors of every loader."""
    if not isinstance(state, Mapping):
        return f"a pickled {type(state).__name__}"
    known = _recognized("recognize_state", state)
    if known:
        return known
    if "state_dict" in state or "model" in state:
        return "a training checkpoint of some other model"
    if state and all(hasattr(v, "shape") for v in state.values()):
        return "a bare state dict of some other model"
    return f"a dict with keys {sorted(map(str, state))[:5]}"


def checkpoint_head(path: Path, kind: str = "checkpoint") -> bytes:
    """The first bytes of a checkpoint file, after the checks every loader needs (exists, file, not empty)."""
    if not path.exists():
        raise TtsoptError(f"{kind} not found: {path}: check the path")
    if not path.is_file():
        raise TtsoptError(f"{kind} {path} is not a file: give the checkpoint file itself")
    with open(path, "rb") as handle:
        head = handle.read(4)
    if len(head) < 2:
        raise TtsoptError(f"{kind} {path} is empty (truncated or corrupt): re-download or re-save it")
    return head


def load_checkpoint(path: str | Path, expected: str) -> Any:
    """``torch.load(path, weights_only=True)`` with one-line errors; ``expected`` names the wanted kind."""
    import torch

    path = Path(path)
    head = checkpoint_head(path)
    known = _recognized("recognize_header", head)
    if known:
        raise TtsoptError(f"{path} is {known}, not {expected}: give {expected}")
    if head[:2] != b"PK" and head[:1] != b"\x80":
        raise TtsoptError(f"{path} is not a PyTorch checkpoint (neither a zip archive nor a pickle): give {expected}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "HParams" in str(exc):
            raise TtsoptError(f"{path} is a GPT-SoVITS SoVITS (s2, .pth) checkpoint, not {expected}: "
                              f"give {expected}") from None
        refused = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
        detail = f"it pickles {refused.group(1)}" if refused else "it is not plain tensor data"
        raise TtsoptError(f"refusing to load {path}: {detail}; ttsopt only reads weights-only checkpoints: "
                          f"give {expected}") from None
    except (zipfile.BadZipFile, EOFError, RuntimeError, OSError, ValueError, KeyError, IndexError) as exc:
        reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise TtsoptError(f"cannot read checkpoint {path}: truncated or corrupt ({reason}): "
                          f"re-download or re-save it") from None
