"""Reading and writing audio files for the runtime (numpy + soundfile; no torch).

Every waveform inside ttsopt is mono float32 in [-1, 1] at the model's own sample rate.  A file at
another rate is resampled (polyphase, scipy) and the caller is told so, because a silently resampled
reference changes what the quality numbers mean.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import numpy as np

from ttsopt.errors import TtsoptError

log = logging.getLogger("ttsopt")


def read_samples(path: str | Path, *, what: str = "audio file",
                 hint: str = "give a recording with speech in it") -> tuple[np.ndarray, int]:
    """``(samples [frames, channels] float32, rate)`` of an audio file, with a one-line error for a missing,
    unreadable or empty one (``what`` names the file in it, ``hint`` says what to give instead of an empty one)."""
    import soundfile

    path = Path(path)
    if not path.is_file():
        raise TtsoptError(f"{what} not found: {path}: check the path")
    try:
        audio, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises LibsndfileError, RuntimeError, TypeError...
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise TtsoptError(f"cannot read audio {path} ({reason}): give a WAV/FLAC/OGG file") from None
    if audio.shape[0] == 0:
        raise TtsoptError(f"{what} {path} has no samples: {hint}")
    return audio, int(rate)


def read_wav(path: str | Path, sample_rate: int) -> np.ndarray:
    """Read ``path`` as mono float32 at ``sample_rate``, resampling (with a notice) when it differs."""
    path = Path(path)
    audio, file_rate = read_samples(path)
    audio = audio.mean(axis=1)
    if not np.isfinite(audio).all():
        raise TtsoptError(f"audio file {path} contains NaN or Inf samples: re-export the recording")
    if file_rate != sample_rate:
        if not _bundled(path):  # the user never gave the bundled speech: resampling it is no news to them
            log.warning("%s is %d Hz; resampled to the model's %d Hz", path.name, file_rate, sample_rate)
        audio = resample(audio, file_rate, sample_rate)
    return np.ascontiguousarray(audio, dtype=np.float32)


def _bundled(path: Path) -> bool:
    """Whether ``path`` is one of the recordings shipped inside ttsopt (:mod:`ttsopt.assets`)."""
    from ttsopt import assets

    return Path(assets.__file__).parent.resolve() in path.resolve().parents


def resample(audio: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Band-limited polyphase resampling (scipy's ``resample_poly``)."""
    from scipy.signal import resample_poly

    g = math.gcd(int(from_rate), int(to_rate))
    return resample_poly(audio, int(to_rate) // g, int(from_rate) // g).astype(np.float32)


#: File name extensions whose format or encoding is not spelled as soundfile's format name; every other extension
#: that names a format soundfile writes (``soundfile.available_formats()``: .flac, .mp3, .aiff, .caf, ...) is
#: written in that format with its default encoding.
_EXTENSIONS = {"wav": ("WAV", "PCM_16"), "ogg": ("OGG", "VORBIS"), "oga": ("OGG", "VORBIS"), "opus": ("OGG", "OPUS"),
               "aif": ("AIFF", "PCM_16")}


def audio_format(path: str | Path) -> tuple[str, str]:
    """(soundfile format, subtype) that ``path``'s extension asks for, or a :class:`TtsoptError` naming the choices."""
    import soundfile

    extension = Path(path).suffix.lower().lstrip(".")
    if extension in _EXTENSIONS:
        return _EXTENSIONS[extension]
    name = extension.upper()
    subtype = soundfile.default_subtype(name) if name in soundfile.available_formats() else None
    if subtype is None:
        said = f"extension .{extension}" if extension else "no extension"
        raise TtsoptError(f"cannot tell the audio format of -o {Path(path).name} ({said}): end it in .wav, .flac, .ogg, "
                          f".opus" + (", .mp3" if "MP3" in soundfile.available_formats() else "")
                          + " or another format soundfile writes")
    return name, subtype


def check_audio_output(path: str | Path, sample_rate: int) -> None:
    """Everything that could make writing ``path`` fail, checked before any synthesis: the format its name asks for
    at ``sample_rate`` (tried on an empty scratch file: Opus, for one, takes only 8–48 kHz), and the place."""
    import tempfile

    import soundfile

    from ttsopt.package.writer import check_writable_directory

    path = Path(path).absolute()
    fmt, subtype = audio_format(path)
    with tempfile.TemporaryDirectory(prefix="ttsopt-format-") as scratch:
        try:
            with soundfile.SoundFile(str(Path(scratch) / f"probe{path.suffix}"), "w", samplerate=int(sample_rate), channels=1,
                                     format=fmt, subtype=subtype):
                pass
        except (soundfile.LibsndfileError, RuntimeError, ValueError) as exc:
            reason = str(exc).rpartition("Error : ")[2].strip() or str(exc)
            raise TtsoptError(f"cannot write {path.name} ({fmt} {subtype}) at this model's {sample_rate} Hz: {reason}: "
                              "choose another format (.wav, .flac, .ogg)") from None
    if path.is_dir():
        raise TtsoptError(f"-o {path} is a directory: give a file name such as {path / 'out.wav'}")
    if path.exists() and not os.access(path, os.W_OK):
        raise TtsoptError(f"cannot write {path}: the file is read-only: choose another -o or make it writable")
    check_writable_directory(path.parent, path)


def write_audio(path: str | Path, audio: np.ndarray, sample_rate: int) -> None:
    """Write mono float audio in the format ``path``'s extension names (16-bit PCM for .wav), creating parent
    directories."""
    import soundfile

    path = Path(path)
    fmt, subtype = audio_format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), np.clip(np.asarray(audio, dtype=np.float32).reshape(-1), -1.0, 1.0),
                    int(sample_rate), format=fmt, subtype=subtype)
