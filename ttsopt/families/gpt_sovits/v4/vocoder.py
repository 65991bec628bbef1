"""The v4 vocoder: denormalised 100-bin log-mel (100 frames/s) → 48 kHz waveform (official ``init_hifigan``).

The same layer algorithm as the v2 SoVITS decoder (HiFi-GAN, leaky ReLU 0.1 inside, 0.01 before
``conv_post``, tanh), without a global condition, with a bias on ``conv_post`` and ×480 upsampling
(10·6·2·2·2). ``vocoder.pth`` is a bare state dict saved *after* ``remove_weight_norm()``, so every conv here is
plain. Channel widths and kernel sizes are read from the tensors (the released file: 512 channels, kernels
[20, 12, 4, 4, 4], resblocks k 3/7/11); the strides and dilations are not in the file and are the official
constants below.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ttsopt.families.hifigan.model import LRELU_SLOPE, upsample_and_fuse

#: Upsampling strides (hard-coded in the official ``init_hifigan``): 480 samples per mel frame.
UPSAMPLE_RATES = (10, 6, 2, 2, 2)
#: Dilations of each resblock's three dilated convs.
DILATIONS = (1, 3, 5)
SAMPLE_RATE = 48000


@dataclass(frozen=True)
class VocoderSizes:
    mel_bins: int
    initial_channels: int
    upsample_kernel_sizes: tuple[int, ...]
    resblock_kernel_sizes: tuple[int, ...]
    upsample_rates: tuple[int, ...] = UPSAMPLE_RATES

    @property
    def hop(self) -> int:
        hop = 1
        for rate in self.upsample_rates:
            hop *= rate
        return hop

    def as_dict(self) -> dict:
        return asdict(self)


class ResBlock(nn.Module):
    """HiFi-GAN resblock "1" with plain convs: three (dilated conv, conv) residual units."""

    def __init__(self, channels: int, kernel_size: int, dilations: Sequence[int]):
        super().__init__()
        self.convs1 = nn.ModuleList(nn.Conv1d(channels, channels, kernel_size, dilation=d,
                                              padding=(kernel_size * d - d) // 2) for d in dilations)
        self.convs2 = nn.ModuleList(nn.Conv1d(channels, channels, kernel_size, padding=(kernel_size - 1) // 2)
                                    for _ in dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for dilated, plain in zip(self.convs1, self.convs2, strict=True):
            x = x + plain(F.leaky_relu(dilated(F.leaky_relu(x, LRELU_SLOPE)), LRELU_SLOPE))
        return x


class Vocoder(nn.Module):
    """``mel [B, mel_bins, F]`` (denormalised log-mel) → ``audio [B, 1, F · 480]`` in (−1, 1)."""

    def __init__(self, sizes: VocoderSizes):
        super().__init__()
        self.sizes = sizes
        channels = sizes.initial_channels
        self.num_kernels = len(sizes.resblock_kernel_sizes)
        self.conv_pre = nn.Conv1d(sizes.mel_bins, channels, 7, padding=3)
        self.ups = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        for i, (rate, kernel) in enumerate(zip(sizes.upsample_rates, sizes.upsample_kernel_sizes, strict=True)):
            out_ch = channels // 2 ** (i + 1)
            self.ups.append(nn.ConvTranspose1d(channels // 2 ** i, out_ch, kernel, rate, padding=(kernel - rate) // 2))
            self.resblocks.extend(ResBlock(out_ch, k, DILATIONS) for k in sizes.resblock_kernel_sizes)
        self.conv_post = nn.Conv1d(channels // 2 ** len(self.ups), 1, 7, padding=3)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.conv_pre(mel)
        x = upsample_and_fuse(x, self.ups, self.resblocks, self.num_kernels)
        return torch.tanh(self.conv_post(F.leaky_relu(x)))


@torch.no_grad()
def receptive_field(vocoder: Vocoder, frames: int = 96) -> int:
    """Mel frames on each side that influence one output sample, measured (perturb the middle frame of a random
    mel, see how far the waveform changes): pieces vocoded with this much context equal whole vocoding."""
    generator = torch.Generator().manual_seed(0)
    mel = torch.randn(1, vocoder.sizes.mel_bins, frames, generator=generator) - 5
    base = vocoder(mel)[0, 0]
    centre = frames // 2
    mel[:, :, centre] += torch.randn(vocoder.sizes.mel_bins, generator=generator)
    changed = torch.nonzero((vocoder(mel)[0, 0] - base).abs() > 0).flatten()
    hop = vocoder.sizes.hop
    reach = max(centre - int(changed.min()) // hop, int(changed.max()) // hop - centre)
    if reach >= centre - 1:
        raise RuntimeError(f"the vocoder's receptive field reaches the edge of a {frames}-frame probe: use a longer one")
    return reach
