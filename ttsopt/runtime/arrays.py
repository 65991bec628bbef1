"""Reading user-supplied ``.npy`` arrays (mels, semantic tokens, BERT features) safely: never unpickles."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ttsopt.errors import TtsoptError


def read_npy(path: str | Path, what: str = "array") -> np.ndarray:
    """A numeric array from a ``.npy`` file; object arrays (pickles) are refused."""
    path = Path(path)
    if not path.is_file():
        raise TtsoptError(f"{what} file not found: {path}: check the path")
    with open(path, "rb") as handle:
        if handle.read(6) != b"\x93NUMPY":
            raise TtsoptError(f"{path} is not a .npy file: save the {what} with numpy.save(path, array)")
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as exc:
        reason = "it holds Python objects" if "pickle" in str(exc) else str(exc).splitlines()[0]
        raise TtsoptError(f"cannot read {path} as a numeric array ({reason}): save a numeric array with numpy.save") from None


def read_int_array(path: str | Path, what: str) -> np.ndarray:
    """A non-empty 1-D int64 array (semantic tokens), from any ``[1, …, 1, T]`` layout."""
    array = read_npy(path, what)
    if array.dtype.kind not in "iu":
        raise TtsoptError(f"{what} in {path} must be integers, got {array.dtype}: save them as int64")
    if array.size == 0:
        raise TtsoptError(f"{what} in {path} are empty")
    return array.reshape(-1).astype(np.int64)
