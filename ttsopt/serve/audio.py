"""Response encodings, each an incremental encoder: bytes go out as each piece of speech comes in.

Every format but FLAC streams:

* ``wav``: the header is written here with unknown sizes (RIFF and data = 0xFFFFFFFF, "unknown/streaming",
  as ffmpeg and browsers read it), since libsndfile writes a header only for a seekable file; then PCM.
* ``pcm``: raw 16-bit little-endian mono.
* ``mp3``: LAME through ``lameenc`` (one MPEG frame out per 1152 samples in). libsndfile's own MP3 writer
  seeks back to frame 0 when it closes, and without that seek its output decodes short (measured: 15120 of
  38400 samples), so it cannot stream.
* ``opus``: Ogg Opus through libsndfile at 48 kHz (the package's rate resampled by a streaming soxr
  resampler, so pieces join without seams). libsndfile holds an Ogg page until it is full (seconds of
  audio) unless told otherwise: ``SFC_SET_OGG_PAGE_LATENCY_MS`` makes it flush a page per 20 ms.
* ``flac``: libsndfile writes STREAMINFO (length, checksum) by seeking back at the end: encoded whole.
"""

from __future__ import annotations

import io
import struct

import numpy as np

#: What a client may ask for, and how each is sent.
MEDIA_TYPES = {"mp3": "audio/mpeg", "opus": "audio/ogg", "wav": "audio/wav", "pcm": "audio/pcm", "flac": "audio/flac"}
STREAMABLE = ("mp3", "opus", "wav", "pcm")
FORMATS = tuple(MEDIA_TYPES)
OPUS_RATE = 48000
MP3_KBPS = 64  # mono speech
_SFC_SET_OGG_PAGE_LATENCY_MS = 0x1302  # sndfile.h; not exported by soundfile
_OGG_PAGE_LATENCY_MS = 20.0


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


class Encoder:
    """One response's encoder: :meth:`encode` each piece as it comes, :meth:`finish` once at the end."""

    def encode(self, audio: np.ndarray) -> bytes:
        raise NotImplementedError

    def finish(self) -> bytes:
        return b""


class _Pcm(Encoder):
    def __init__(self, sample_rate: int, header: bool):
        self._header = streaming_wav_header(sample_rate) if header else b""

    def encode(self, audio: np.ndarray) -> bytes:
        out, self._header = self._header + pcm16(audio), b""
        return out


class _Mp3(Encoder):
    def __init__(self, sample_rate: int):
        import lameenc

        self._lame = lameenc.Encoder()
        self._lame.set_bit_rate(MP3_KBPS)
        self._lame.set_in_sample_rate(sample_rate)
        self._lame.set_channels(1)
        self._lame.set_quality(5)

    def encode(self, audio: np.ndarray) -> bytes:
        return bytes(self._lame.encode(pcm16(audio)))

    def finish(self) -> bytes:
        return bytes(self._lame.flush())


class _Sink(io.RawIOBase):
    """A write-only file for libsndfile that hands out what was written since the last :meth:`take`. It can tell
    where it is but not seek back (what was sent is sent)."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._position = 0

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True  # libsndfile asks where it is; a seek anywhere else fails below

    def write(self, data) -> int:
        chunk = bytes(data)
        self._chunks.append(chunk)
        self._position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if offset == 0 and whence in (io.SEEK_CUR, io.SEEK_END) or whence == io.SEEK_SET and offset == self._position:
            return self._position
        raise OSError("a streamed response cannot seek back")

    def take(self) -> bytes:
        out, self._chunks = b"".join(self._chunks), []
        return out


class _Opus(Encoder):
    def __init__(self, sample_rate: int):
        import soundfile
        import soxr

        self._sink = _Sink()
        self._file = soundfile.SoundFile(self._sink, mode="w", samplerate=OPUS_RATE, channels=1, format="OGG", subtype="OPUS")
        latency = soundfile._ffi.new("double*", _OGG_PAGE_LATENCY_MS)
        soundfile._snd.sf_command(self._file._file, _SFC_SET_OGG_PAGE_LATENCY_MS, latency, soundfile._ffi.sizeof("double"))
        self._resampler = None if sample_rate == OPUS_RATE else soxr.ResampleStream(sample_rate, OPUS_RATE, 1, dtype="float32")

    def _write(self, audio: np.ndarray, last: bool) -> bytes:
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        if self._resampler is not None:
            audio = self._resampler.resample_chunk(audio, last=last)
        if audio.size:
            self._file.write(np.clip(audio, -1.0, 1.0))
        return self._sink.take()

    def encode(self, audio: np.ndarray) -> bytes:
        return self._write(audio, last=False)

    def finish(self) -> bytes:
        tail = self._write(np.zeros(0, np.float32), last=True)
        self._file.close()
        return tail + self._sink.take()


class _Whole(Encoder):
    """Formats that need the whole utterance (FLAC: libsndfile writes its header last)."""

    def __init__(self, sample_rate: int, response_format: str):
        self.sample_rate, self.format, self._pieces = sample_rate, response_format, []

    def encode(self, audio: np.ndarray) -> bytes:
        self._pieces.append(np.asarray(audio, dtype=np.float32).reshape(-1))
        return b""

    def finish(self) -> bytes:
        import soundfile

        buffer = io.BytesIO()
        audio = np.clip(np.concatenate(self._pieces) if self._pieces else np.zeros(0, np.float32), -1.0, 1.0)
        soundfile.write(buffer, audio, self.sample_rate, format="FLAC", subtype="PCM_16")
        return buffer.getvalue()


def encoder(response_format: str, sample_rate: int) -> Encoder:
    """A fresh encoder of ``response_format`` (one of :data:`FORMATS`) for audio at ``sample_rate``."""
    if response_format in ("wav", "pcm"):
        return _Pcm(sample_rate, header=response_format == "wav")
    if response_format == "mp3":
        return _Mp3(sample_rate)
    if response_format == "opus":
        return _Opus(sample_rate)
    if response_format == "flac":
        return _Whole(sample_rate, response_format)
    raise ValueError(f"unknown response format {response_format!r}")


def encode_whole(audio: np.ndarray, sample_rate: int, response_format: str) -> bytes:
    """The whole utterance in ``response_format`` (a WAV then has its real sizes in the header)."""
    if response_format == "wav":
        import soundfile

        buffer = io.BytesIO()
        soundfile.write(buffer, np.clip(np.asarray(audio, dtype=np.float32).reshape(-1), -1.0, 1.0), sample_rate,
                        format="WAV", subtype="PCM_16")
        return buffer.getvalue()
    coder = encoder(response_format, sample_rate)
    return coder.encode(audio) + coder.finish()
