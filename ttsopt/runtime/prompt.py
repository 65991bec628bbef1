"""A reference recording → the GPT's prompt tokens, as the official inference makes them (numpy + soxr + onnxruntime).

The official path (``TTS._set_prompt_semantic``; the webui's ``get_tts_wav`` is the same):

1. ``librosa.load(path, sr=16000)``: soundfile read as float32, mono = mean of the channels, resampled with
   soxr at quality HQ (librosa 0.10.2's ``res_type="soxr_hq"``) in float32, then fixed to
   ``ceil(n · 16000 / rate)`` samples; a 16 kHz file is not resampled;
2. the 3–10 s bound on that 16 kHz length (48 000–160 000 samples), before padding;
3. ``0.3 × the SoVITS sample rate`` zeros appended (9 600 for the 32 kHz models: 0.6 s at 16 kHz, not 0.3 s;
   the official code multiplies by the model's rate, not HuBERT's);
4. the bare ``HubertModel`` (no input normalisation) → ``last_hidden_state`` → the package's ``ssl`` graph;
5. ``extract_latent`` → the package's ``prompt_codes`` graph → codes ``[0, 0]``.

Reproducing step 1 sample for sample matters: the codes are nearest-codebook choices, and another resampler
gives other samples, other features and, at near-ties, other codes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ttsopt.audio.io import read_samples
from ttsopt.errors import TtsoptError

#: The package graph that runs HuBERT: ``waveform [B, samples]`` at 16 kHz → ``ssl [B, 768, frames]``.
SSL = "ssl"
SSL_RATE = 16_000
#: The official bound on a reference, in 16 kHz samples before padding (``OSError("参考音频在3~10秒范围外…")``).
MIN_SAMPLES, MAX_SAMPLES = 3 * SSL_RATE, 10 * SSL_RATE
#: Seconds × the SoVITS rate of zeros appended before HuBERT (``int(sampling_rate * 0.3)``).
PADDING_FACTOR = 0.3

Recording = str | Path | tuple[np.ndarray, int]


@dataclass(frozen=True)
class PromptAudio:
    """A reference as the prompt path reads it: its 16 kHz waveform (unpadded) and where it came from."""

    wav16k: np.ndarray
    source: str
    source_rate: int

    @property
    def seconds(self) -> float:
        return self.wav16k.size / SSL_RATE


def read_audio(recording: Recording) -> tuple[np.ndarray, int, str]:
    """``(samples [channels, n] float32, rate, description)`` of a file or an ``(array, rate)`` pair."""
    if isinstance(recording, tuple):
        array, rate = recording
        audio = np.asarray(array)
        if audio.dtype.kind not in "fi" or audio.ndim not in (1, 2) or audio.size == 0:
            raise TtsoptError(f"a recording given as an array must be a non-empty [samples] or [channels, samples] "
                              f"array of float or signed PCM samples, got {audio.dtype} {list(audio.shape)}")
        if int(rate) <= 0:
            raise TtsoptError(f"the recording's sample rate must be positive, got {rate}")
        # Signed PCM as soundfile reads it into float32: divided by 2^(bits-1).
        audio = (audio / np.float32(2 ** (8 * audio.dtype.itemsize - 1)) if audio.dtype.kind == "i" else audio).astype(np.float32)
        return (audio[None] if audio.ndim == 1 else audio), int(rate), "the given recording"
    audio, rate = read_samples(recording, what="reference recording", hint="give a 3-10 s recording of speech")
    return audio.T, rate, str(recording)


def to_mono(audio: np.ndarray) -> np.ndarray:
    """librosa's ``to_mono``: the mean over channels, in float32."""
    return np.ascontiguousarray(audio.mean(axis=0) if audio.shape[0] > 1 else audio[0], dtype=np.float32)


def resample_16k(wav: np.ndarray, rate: int) -> np.ndarray:
    """librosa 0.10.2 ``resample(res_type="soxr_hq")`` to 16 kHz: soxr HQ on the float32 samples, then the
    length fixed to ``ceil(n · 16000 / rate)`` (zero-padded or cut), float32 out."""
    if rate == SSL_RATE:
        return wav
    import soxr

    out = soxr.resample(wav, rate, SSL_RATE, quality="soxr_hq")
    size = int(math.ceil(wav.shape[-1] * float(SSL_RATE) / rate))
    out = out[:size] if out.shape[-1] >= size else np.pad(out, (0, size - out.shape[-1]))
    return np.asarray(out, dtype=wav.dtype)


def load_16k(recording: Recording) -> PromptAudio:
    """The recording as ``librosa.load(path, sr=16000)`` gives it, checked against the official 3–10 s bound."""
    audio, rate, source = read_audio(recording)
    wav = to_mono(audio)
    if not np.isfinite(wav).all():
        raise TtsoptError(f"{source} contains NaN or Inf samples: re-export the recording")
    wav16k = resample_16k(wav, rate)
    if not MIN_SAMPLES <= wav16k.size <= MAX_SAMPLES:
        raise TtsoptError(f"{source} is {wav16k.size / SSL_RATE:.2f} s long; a reference must be 3-10 s (as the official "
                          f"code requires): cut or re-record it")
    return PromptAudio(wav16k, source, rate)


def padding_samples(sovits_rate: int) -> int:
    """The official zero padding: ``int(sovits_rate * 0.3)`` samples at 16 kHz (9 600 for 32 kHz models)."""
    return int(sovits_rate * PADDING_FACTOR)


def hubert_input(wav16k: np.ndarray, padding: int) -> np.ndarray:
    """``cat([wav16k, zeros(padding)])`` in float32: what HuBERT reads."""
    return np.concatenate((np.asarray(wav16k, dtype=np.float32), np.zeros(padding, np.float32)))


__all__ = ["MAX_SAMPLES", "MIN_SAMPLES", "PromptAudio", "Recording", "SSL", "SSL_RATE", "hubert_input", "load_16k",
           "padding_samples", "read_audio", "resample_16k", "to_mono"]
