"""Spectral losses in torch, in the model's own mel space: what Taylor importance and distillation descend.

The log-mel follows :mod:`ttsopt.audio.mel` exactly (its filterbank, reflect padding, no centring, the same
floors), so a loss value here is the ``logmel_l1`` that ``verify`` reports on the same audio.
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch.nn import functional as F

from ttsopt.audio.mel import MelSettings, _hann, mel_filterbank
from ttsopt.audio.metrics import STFT_RESOLUTIONS


@lru_cache(maxsize=16)
def _window(win_length: int, n_fft: int) -> torch.Tensor:
    return torch.from_numpy(_hann(win_length, n_fft))


def _magnitude(audio: torch.Tensor, n_fft: int, hop: int, win: int, pad: int, eps: float = 1e-9) -> torch.Tensor:
    """``|STFT|`` ``[batch, bins, frames]`` of ``audio [batch, samples]`` (reflect padding, no centring)."""
    padded = F.pad(audio[:, None], (pad, pad), mode="reflect")[:, 0]
    spec = torch.stft(padded, n_fft, hop, n_fft, window=_window(win, n_fft).to(audio.device), center=False, return_complex=True)
    return torch.sqrt(spec.real**2 + spec.imag**2 + eps)


def log_mel(audio: torch.Tensor, mel: MelSettings) -> torch.Tensor:
    """Log-mel ``[batch, n_mels, frames]`` of ``audio [batch, samples]`` (jik876 convention, natural log)."""
    magnitude = _magnitude(audio, mel.n_fft, mel.hop_length, mel.win_length, (mel.n_fft - mel.hop_length) // 2)
    basis = torch.from_numpy(mel_filterbank(mel.sample_rate, mel.n_fft, mel.n_mels, mel.fmin, mel.fmax)).to(audio.device)
    return torch.log(torch.clamp(basis @ magnitude, min=1e-5))


def logmel_l1(reference: torch.Tensor, estimate: torch.Tensor, mel: MelSettings) -> torch.Tensor:
    return torch.mean(torch.abs(log_mel(reference, mel) - log_mel(estimate, mel)))


def mrstft(reference: torch.Tensor, estimate: torch.Tensor) -> torch.Tensor:
    """Spectral convergence + log-magnitude L1 over :data:`STFT_RESOLUTIONS` (as ``verify``'s MR-STFT distance)."""
    total = reference.new_zeros(())
    for n_fft, hop, win in STFT_RESOLUTIONS:
        ref, est = _magnitude(reference, n_fft, hop, win, n_fft // 2), _magnitude(estimate, n_fft, hop, win, n_fft // 2)
        total = total + torch.linalg.norm(ref - est) / torch.linalg.norm(ref).clamp(min=1e-12)
        total = total + torch.mean(torch.abs(torch.log(ref) - torch.log(est)))
    return total / len(STFT_RESOLUTIONS)


def distillation_loss(teacher: torch.Tensor, student: torch.Tensor, mel: MelSettings, waveform_weight: float = 1.0) -> torch.Tensor:
    """MR-STFT + log-mel L1 (+ waveform L1) of the student's audio against the teacher's, ``[batch, samples]``."""
    loss = mrstft(teacher, student) + logmel_l1(teacher, student, mel)
    if waveform_weight:
        loss = loss + waveform_weight * torch.mean(torch.abs(teacher - student))
    return loss
