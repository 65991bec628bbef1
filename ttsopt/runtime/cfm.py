"""The GPT-SoVITS v4 mel loop, torch-free: prompt window, official chunking, Euler steps of the DiT, CFG.

The DiT is two graphs (:mod:`ttsopt.families.gpt_sovits.v4.dit`): ``condition`` (cond features → text
embedding, once per chunk) and ``step`` (one velocity, once per Euler step). This module only strings them
together, as the official ``CFM.inference`` and ``TTS.using_vocoder_synthesis`` do (fact sheet §5.3–5.4):

- the prompt: the reference's normalised log-mel ``mel2`` and the prompt's cond features ``fea_ref`` are cut to
  ``T_min = min`` of their lengths (first frames), then to the last ``T_ref = 500`` if longer;
- the target's cond features are cut in chunks of ``T_chunk − T_min`` (``T_chunk = 1000``) frames; each chunk is
  generated after the prompt, the prompt frames dropped, and the next chunk is prompted by the last ``T_min``
  generated frames and the last ``T_min`` cond frames of this chunk (autoregressive chaining);
- Euler: ``x0 ~ N(0, 1)`` with the prompt region zeroed, ``t = 0, 1/n, …``, ``x += d·v``, prompt region re-zeroed
  after every step; ``d = 1/n`` is also an input of the DiT. With ``cfg_rate > 0`` a second velocity without the
  prompt and with zero cond features is extrapolated from: ``v + (v − v_uncond)·cfg_rate`` (the official CFG;
  the official front ends use 0).

The mel is normalised: ``(x + 12) / 14 · 2 − 1``; :func:`denormalize` undoes it before the vocoder.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from ttsopt.audio.mel import mel_filterbank, stft_magnitude
from ttsopt.errors import TtsoptError

#: Euler step counts the webui offers for v4 (default 8).
STEP_CHOICES = (4, 8, 16, 32)
DEFAULT_STEPS = 8
#: Longest prompt (frames of 10 ms) and the frames of one CFM call (prompt + chunk), official v4 values.
T_REF = 500
T_CHUNK = 1000
#: mel_fn_v4: the reference at 32 kHz, n_fft = win = 1280, hop 320, 100 Slaney mels 0–16 kHz.
MEL_RATE, MEL_FFT, MEL_HOP, MEL_BINS = 32000, 1280, 320, 100
_SPEC_MIN, _SPEC_MAX = -12.0, 2.0

#: ``condition(fea [B, L, C]) → text_embed [B, L, C]``.
Condition = Callable[[np.ndarray], np.ndarray]
#: ``step(x [B, mel, L], prompt [B, mel, L], text_embed, t [B], d [B]) → v [B, mel, L]``.
Step = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def reference_mel(wav_32k: np.ndarray) -> np.ndarray:
    """``[1, 100, frames]`` raw log-mel of a 32 kHz reference (official ``mel_fn_v4``: reflect pad 480, periodic
    Hann, ``sqrt(|X|² + 1e-8)``, Slaney mel, ``log(max(·, 1e-5))``)."""
    magnitude = stft_magnitude(np.asarray(wav_32k, dtype=np.float32).reshape(-1), MEL_FFT, MEL_HOP, MEL_FFT,
                               (MEL_FFT - MEL_HOP) // 2, eps=1e-8)
    basis = mel_filterbank(MEL_RATE, MEL_FFT, MEL_BINS, 0.0, None)
    return np.log(np.maximum(basis @ magnitude, 1e-5)).astype(np.float32)[None]


def normalize(mel: np.ndarray) -> np.ndarray:
    return ((mel - _SPEC_MIN) / (_SPEC_MAX - _SPEC_MIN) * 2 - 1).astype(np.float32)


def denormalize(mel: np.ndarray) -> np.ndarray:
    return ((mel + 1) / 2 * (_SPEC_MAX - _SPEC_MIN) + _SPEC_MIN).astype(np.float32)


def check_steps(steps: int) -> None:
    if steps not in STEP_CHOICES:
        raise TtsoptError(f"{steps} sampling steps are not offered: use one of {', '.join(map(str, STEP_CHOICES))} "
                          f"(default {DEFAULT_STEPS}; more steps, finer audio, proportionally slower)")


@dataclass(frozen=True)
class Prompt:
    """The prompt of the first chunk: normalised mel ``[1, mel, T]`` and cond features ``[1, C, T]`` of equal ``T``."""

    mel: np.ndarray
    fea: np.ndarray

    @property
    def frames(self) -> int:
        return self.mel.shape[-1]


def prompt_window(mel_norm: np.ndarray, fea_ref: np.ndarray, t_ref: int = T_REF) -> Prompt:
    """The official cut: the first ``min`` frames of both, then the last ``t_ref`` of them if longer."""
    frames = min(mel_norm.shape[-1], fea_ref.shape[-1])
    mel, fea = mel_norm[..., :frames], fea_ref[..., :frames]
    if frames > t_ref:
        mel, fea = mel[..., -t_ref:], fea[..., -t_ref:]
    return Prompt(np.ascontiguousarray(mel, dtype=np.float32), np.ascontiguousarray(fea, dtype=np.float32))


def euler(condition: Condition, step: Step, fea: np.ndarray, prompt_mel: np.ndarray, steps: int, noise: np.ndarray,
          cfg_rate: float = 0.0, on_step: Callable[[int, np.ndarray], None] | None = None) -> np.ndarray:
    """Official ``CFM.inference``: cond features ``fea [B, L, C]``, prompt mel ``[B, mel, P]``, ``noise [B, mel, L]``
    → normalised mel ``[B, mel, L]`` (prompt region zero). ``on_step(j, v)`` sees every velocity."""
    x = np.array(noise, dtype=np.float32, copy=True)
    batch, _, length = x.shape
    frames = prompt_mel.shape[-1]
    prompt = np.zeros_like(x)
    prompt[..., :frames] = prompt_mel
    x[..., :frames] = 0
    text = condition(fea)
    text_uncond = condition(np.zeros_like(fea)) if cfg_rate > 1e-5 else None
    d = 1 / steps
    d_input = np.full(batch, d, dtype=np.float32)
    t = 0.0
    for j in range(steps):
        t_input = np.full(batch, t, dtype=np.float32)
        v = step(x, prompt, text, t_input, d_input)
        if text_uncond is not None:
            v = v + (v - step(x, np.zeros_like(prompt), text_uncond, t_input, d_input)) * cfg_rate
        if on_step is not None:
            on_step(j, v)
        x = x + d * v
        t = t + d
        x[..., :frames] = 0
    return x


def chunks(fea_todo: np.ndarray, prompt_frames: int, t_chunk: int = T_CHUNK) -> Iterator[np.ndarray]:
    """The official target chunks: consecutive ``t_chunk − prompt_frames`` frames of ``fea_todo [1, C, F]``."""
    size = t_chunk - prompt_frames
    for start in range(0, fea_todo.shape[-1], size):
        yield fea_todo[..., start:start + size]


def generate(condition: Condition, step: Step, prompt: Prompt, fea_todo: np.ndarray, steps: int,
             noise: Callable[[int, int], np.ndarray], cfg_rate: float = 0.0) -> Iterator[np.ndarray]:
    """Normalised mel of each official chunk ``[1, mel, frames]``, prompt dropped, in order (concatenate them).

    ``noise(chunk, length)`` gives the ``[1, mel, length]`` start of chunk ``chunk`` (``length`` = prompt + chunk).
    """
    mel, fea_ref = prompt.mel, prompt.fea
    frames = prompt.frames
    for index, piece in enumerate(chunks(fea_todo, frames)):
        fea = np.concatenate([fea_ref, piece], axis=2).transpose(0, 2, 1)
        out = euler(condition, step, np.ascontiguousarray(fea), mel, steps, noise(index, fea.shape[1]), cfg_rate)
        out = out[..., mel.shape[-1]:]
        mel, fea_ref = out[..., -frames:], piece[..., -frames:]
        yield out
