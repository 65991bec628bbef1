"""Reading and writing audio files for the runtime (numpy + soundfile; no torch).

Every waveform inside ttsopt is mono float32 in [-1, 1] at the model's own sample rate.  A file at
another rate is resampled (polyphase, scipy) and the caller is told so, because a silently resampled
reference changes what the quality numbers mean.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

from ttsopt.errors import TtsoptError

log = logging.getLogger("ttsopt")


def read_wav(path: str | Path, sample_rate: int) -> np.ndarray:
    """Read ``path`` as mono float32 at ``sample_rate``, resampling (with a notice) when it differs."""
    import soundfile

    path = Path(path)
    if not path.is_file():
        raise TtsoptError(f"audio file not found: {path}: check the path")
    try:
        audio, file_rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises LibsndfileError, RuntimeError, TypeError...
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise TtsoptError(f"cannot read audio {path} ({reason}): give a WAV/FLAC/OGG file") from None
    if audio.shape[0] == 0:
        raise TtsoptError(f"audio file {path} has no samples: give a recording with speech in it")
    audio = audio.mean(axis=1)
    if not np.isfinite(audio).all():
        raise TtsoptError(f"audio file {path} contains NaN or Inf samples: re-export the recording")
    if file_rate != sample_rate:
        log.warning("%s is %d Hz; resampled to the model's %d Hz", path.name, file_rate, sample_rate)
        audio = resample(audio, file_rate, sample_rate)
    return np.ascontiguousarray(audio, dtype=np.float32)


def resample(audio: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Band-limited polyphase resampling (scipy's ``resample_poly``)."""
    from scipy.signal import resample_poly

    g = math.gcd(int(from_rate), int(to_rate))
    return resample_poly(audio, int(to_rate) // g, int(from_rate) // g).astype(np.float32)


def write_wav(path: str | Path, audio: np.ndarray, sample_rate: int) -> None:
    """Write mono float audio as 16-bit PCM WAV, creating parent directories."""
    import soundfile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), np.clip(np.asarray(audio, dtype=np.float32).reshape(-1), -1.0, 1.0),
                    int(sample_rate), subtype="PCM_16")
