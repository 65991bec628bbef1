"""The speaker-verification front end of GPT-SoVITS v2Pro/v2ProPlus in numpy: 32 → 16 kHz, then Kaldi fbank.

The official chain (fact sheet ``gpt-sovits-pro-v4.md`` §3.4, §4.1) resamples the 32 kHz reference with
torchaudio's windowed-sinc resampler and computes torchaudio's Kaldi-compatible log mel filterbank (80 bins,
25 ms / 10 ms frames, povey window, no dither, no mean normalisation) on the [-1, 1] waveform. Both are
written here from that description, in float64, so the runtime needs neither torch nor torchaudio, and the
same code makes the features at export (one implementation, checked against the oracle's ``wav16k`` and
``fbank``).

Why numpy rather than ONNX ops: the whole front end costs a few milliseconds for 10 s of audio next to
seconds for the ERes2NetV2 network, and float64 numpy is closer to the official float32 output than a
float32 graph would be (the log of small mel energies amplifies rounding).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

#: torchaudio ``Resample`` defaults (sinc_interp_hann) used by the official code.
LOWPASS_FILTER_WIDTH = 6
ROLLOFF = 0.99

SAMPLE_RATE = 16000
FRAME_LENGTH = 400     # 25 ms at 16 kHz
FRAME_SHIFT = 160      # 10 ms
PADDED_WINDOW = 512    # next power of two
PREEMPHASIS = 0.97
NUM_MEL_BINS = 80
LOW_FREQ = 20.0
FLOAT32_EPS = float(np.finfo(np.float32).eps)


@lru_cache(maxsize=8)
def _sinc_kernel(orig: int, new: int) -> tuple[np.ndarray, int]:
    """``[new, taps]`` polyphase kernels and the half-width, for rates already divided by their gcd."""
    base = min(orig, new) * ROLLOFF
    width = math.ceil(LOWPASS_FILTER_WIDTH * orig / base)
    idx = np.arange(-width, width + orig, dtype=np.float64)[None] / orig
    t = (-np.arange(new, dtype=np.float64)[:, None] / new + idx) * base
    t = np.clip(t, -LOWPASS_FILTER_WIDTH, LOWPASS_FILTER_WIDTH)
    window = np.cos(t * math.pi / LOWPASS_FILTER_WIDTH / 2) ** 2
    t = t * math.pi
    safe = np.where(t == 0, 1.0, t)
    kernel = np.where(t == 0, 1.0, np.sin(safe) / safe) * window * (base / orig)
    return kernel, width


def resample(wav: np.ndarray, orig_rate: int, new_rate: int) -> np.ndarray:
    """torchaudio's ``sinc_interp_hann`` resampling (width 6, rolloff 0.99) of a 1-D waveform, in float64.

    Output length ``ceil(len · new / orig)``, as torchaudio.
    """
    wav = np.asarray(wav, dtype=np.float64).reshape(-1)
    if orig_rate == new_rate:
        return wav
    gcd = math.gcd(orig_rate, new_rate)
    orig, new = orig_rate // gcd, new_rate // gcd
    kernel, width = _sinc_kernel(orig, new)
    padded = np.pad(wav, (width, width + orig))
    taps = kernel.shape[1]
    count = (padded.size - taps) // orig + 1
    frames = np.lib.stride_tricks.sliding_window_view(padded, taps)[::orig][:count]
    out = (frames @ kernel.T).reshape(-1)  # [count, new] → interleaved phases
    return out[: math.ceil(new * wav.size / orig)]


def _mel(freq: np.ndarray) -> np.ndarray:
    return 1127.0 * np.log(1.0 + freq / 700.0)


@lru_cache(maxsize=1)
def mel_banks() -> np.ndarray:
    """``[80, 257]`` Kaldi triangular filters on the mel scale (20 Hz to Nyquist; the Nyquist column is zero)."""
    bins = PADDED_WINDOW // 2
    mel_low, mel_high = _mel(np.float64(LOW_FREQ)), _mel(np.float64(SAMPLE_RATE / 2))
    delta = (mel_high - mel_low) / (NUM_MEL_BINS + 1)
    mel = _mel(SAMPLE_RATE / PADDED_WINDOW * np.arange(bins, dtype=np.float64))[None]
    b = np.arange(NUM_MEL_BINS, dtype=np.float64)[:, None]
    left, center, right = mel_low + b * delta, mel_low + (b + 1) * delta, mel_low + (b + 2) * delta
    up, down = (mel - left) / (center - left), (right - mel) / (right - center)
    banks = np.maximum(0.0, np.minimum(up, down))
    return np.pad(banks, ((0, 0), (0, 1)))


@lru_cache(maxsize=1)
def _povey_window() -> np.ndarray:
    n = np.arange(FRAME_LENGTH, dtype=np.float64)
    return (0.5 - 0.5 * np.cos(2 * math.pi * n / (FRAME_LENGTH - 1))) ** 0.85


def fbank(wav16k: np.ndarray) -> np.ndarray:
    """``[T, 80]`` float32 log mel energies of a 16 kHz waveform in [-1, 1], ``T = 1 + (N − 400) // 160``.

    Per frame (snip_edges): DC removal, pre-emphasis 0.97 (the first sample against itself), povey window,
    zero-pad to 512, power spectrum, mel filters, ``log(max(E, float32 eps))``.
    """
    wav = np.asarray(wav16k, dtype=np.float64).reshape(-1)
    if wav.size < FRAME_LENGTH:
        raise ValueError(f"{wav.size} samples at 16 kHz is shorter than one 25 ms frame")
    frames = np.lib.stride_tricks.sliding_window_view(wav, FRAME_LENGTH)[::FRAME_SHIFT]
    frames = frames - frames.mean(axis=1, keepdims=True)
    previous = np.concatenate((frames[:, :1], frames[:, :-1]), axis=1)
    frames = (frames - PREEMPHASIS * previous) * _povey_window()
    power = np.abs(np.fft.rfft(frames, n=PADDED_WINDOW, axis=1)) ** 2
    energies = power @ mel_banks().T
    return np.log(np.maximum(energies, FLOAT32_EPS)).astype(np.float32)


def sv_features(wav32k: np.ndarray, sample_rate: int = 32000) -> np.ndarray:
    """``[1, T, 80]``: the features ERes2NetV2 reads, of the (already normalised) reference waveform."""
    return fbank(resample(wav32k, sample_rate, SAMPLE_RATE))[None]
