"""Response encodings: streamed WAV/PCM written here, whole FLAC/MP3/Opus/WAV through soundfile.

A streamed WAV cannot know its length when the header goes out, and soundfile (libsndfile) writes a
header only for a seekable file, so the header is written here: RIFF and data sizes set to
0xFFFFFFFF, "unknown/streaming", as ffmpeg and browsers read it. PCM is raw 16-bit little-endian mono.
"""

from __future__ import annotations

import io
import struct

import numpy as np

STREAMABLE = ("wav", "pcm")
MEDIA_TYPES = {"wav": "audio/wav", "pcm": "audio/pcm", "flac": "audio/flac", "mp3": "audio/mpeg", "opus": "audio/ogg"}
# soundfile (format, subtype) of whole responses; Opus runs at 48 kHz only (the package's rate is resampled).
_SOUNDFILE = {"wav": ("WAV", "PCM_16"), "flac": ("FLAC", "PCM_16"), "mp3": ("MP3", "MPEG_LAYER_III"), "opus": ("OGG", "OPUS")}
OPUS_RATE = 48000


def pcm16(audio: np.ndarray) -> bytes:
    """Float audio in [-1, 1] → 16-bit little-endian PCM bytes."""
    clipped = np.clip(np.asarray(audio, dtype=np.float32).reshape(-1), -1.0, 1.0)
    return (clipped * 32767.0).round().astype("<i2").tobytes()


def streaming_wav_header(sample_rate: int, channels: int = 1, bits: int = 16) -> bytes:
    """A 44-byte PCM WAV header with unknown (0xFFFFFFFF) RIFF and data sizes."""
    block = channels * bits // 8
    return (b"RIFF" + struct.pack("<I", 0xFFFFFFFF) + b"WAVE" + b"fmt " +
            struct.pack("<IHHIIHH", 16, 1, channels, sample_rate, sample_rate * block, block, bits) +
            b"data" + struct.pack("<I", 0xFFFFFFFF))


def encode_whole(audio: np.ndarray, sample_rate: int, response_format: str) -> bytes:
    """The whole utterance in ``response_format`` (pcm: raw bytes; the others through soundfile)."""
    if response_format == "pcm":
        return pcm16(audio)
    import soundfile

    audio = np.clip(np.asarray(audio, dtype=np.float32).reshape(-1), -1.0, 1.0)
    if response_format == "opus" and sample_rate != OPUS_RATE:
        from ttsopt.audio.io import resample

        audio, sample_rate = np.clip(resample(audio, sample_rate, OPUS_RATE), -1.0, 1.0), OPUS_RATE
    buffer = io.BytesIO()
    file_format, subtype = _SOUNDFILE[response_format]
    soundfile.write(buffer, audio, sample_rate, format=file_format, subtype=subtype)
    return buffer.getvalue()
