"""Safe reading of PyTorch checkpoint files, shared by every model family.

``torch.load(weights_only=True)`` only: a checkpoint is data, and an arbitrary pickle can run code.
The errors say what the file looks like instead (a GPT-SoVITS file, a truncated archive, not a
checkpoint at all), because "Weights only load failed" helps nobody choose the right command.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

from ttsopt.errors import TtsoptError

#: First two bytes GPT-SoVITS writes in place of the zip magic ``PK`` (``process_ckpt.my_save2``).
GPT_SOVITS_HEADER_TAGS = {b"00": "v1", b"01": "v2", b"02": "v3", b"03": "v3 LoRA", b"04": "v4 LoRA",
                          b"05": "v2Pro", b"06": "v2ProPlus"}


def describe_foreign_checkpoint(state: Any) -> str | None:
    """Name the kind of a loaded checkpoint that ttsopt knows but is not what was asked for."""
    if not isinstance(state, dict):
        return None
    weights = state.get("weight")
    if isinstance(weights, dict) and "config" in state:
        keys = list(weights)
        if any(k.startswith("model.") for k in keys):
            return "a GPT-SoVITS GPT (s1, .ckpt) checkpoint"
        if any(k.startswith(("enc_p.", "dec.", "flow.")) for k in keys):
            return "a GPT-SoVITS SoVITS (s2, .pth) checkpoint"
    if "generator" in state or "conv_pre.weight_v" in state:
        return "a HiFi-GAN generator checkpoint"
    return None


def load_checkpoint(path: str | Path, expected: str) -> Any:
    """``torch.load(path, weights_only=True)`` with one-line errors; ``expected`` names the wanted kind."""
    import torch

    path = Path(path)
    if not path.exists():
        raise TtsoptError(f"checkpoint not found: {path}: check the path")
    if not path.is_file():
        raise TtsoptError(f"checkpoint {path} is not a file: give the checkpoint file itself")
    with open(path, "rb") as handle:
        head = handle.read(4)
    if len(head) < 2:
        raise TtsoptError(f"checkpoint {path} is empty: re-download or re-save it")
    if head[:2] in GPT_SOVITS_HEADER_TAGS:
        version = GPT_SOVITS_HEADER_TAGS[head[:2]]
        raise TtsoptError(f"{path} is a GPT-SoVITS {version} SoVITS checkpoint (header tag {head[:2].decode()}), "
                          f"not {expected}: give {expected}")
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
    except (zipfile.BadZipFile, EOFError, RuntimeError, OSError, ValueError) as exc:
        reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise TtsoptError(f"cannot read checkpoint {path}: truncated or corrupt ({reason}): "
                          f"re-download or re-save it") from None
