"""HiFi-GAN generator (Kong et al., 2020) in the layout of the jik876 reference checkpoints.

Only the generator is modelled: ttsopt never trains, so the discriminators are not built.  Module and
parameter names follow the jik876 state dict (``conv_pre``, ``ups.{i}``, ``resblocks.{j}.convs1.{k}``,
``conv_post``) so that a checkpoint loads without renaming.  Every convolution is weight-normed with
``torch.nn.utils.parametrizations.weight_norm``; the legacy ``weight_g``/``weight_v`` keys of the
published checkpoints are mapped onto it by :mod:`ttsopt.families.hifigan.checkpoint`, and
:func:`ttsopt.compiler.folding.remove_weight_norm` folds it away before export.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import weight_norm

LRELU_SLOPE = 0.1


@dataclass(frozen=True)
class HiFiGANConfig:
    """The generator's hyper-parameters plus the mel front end it was trained on (jik876 ``config.json``)."""

    resblock: str
    upsample_rates: tuple[int, ...]
    upsample_kernel_sizes: tuple[int, ...]
    upsample_initial_channel: int
    resblock_kernel_sizes: tuple[int, ...]
    resblock_dilation_sizes: tuple[tuple[int, ...], ...]
    num_mels: int = 80
    n_fft: int = 1024
    hop_size: int = 256
    win_size: int = 1024
    sampling_rate: int = 22050
    fmin: float = 0.0
    fmax: float | None = 8000.0
    extra: dict = field(default_factory=dict, compare=False)

    @property
    def upsample_factor(self) -> int:
        factor = 1
        for rate in self.upsample_rates:
            factor *= rate
        return factor

    def mel_settings(self) -> dict:
        """The mel front end, in the form the runtime's :class:`ttsopt.audio.mel.MelSettings` takes."""
        return {
            "sample_rate": self.sampling_rate,
            "n_fft": self.n_fft,
            "hop_length": self.hop_size,
            "win_length": self.win_size,
            "n_mels": self.num_mels,
            "fmin": float(self.fmin),
            "fmax": None if self.fmax is None else float(self.fmax),
        }


def _padding(kernel_size: int, dilation: int = 1) -> int:
    return (kernel_size * dilation - dilation) // 2


def _wn_conv(in_ch: int, out_ch: int, kernel_size: int, dilation: int = 1) -> nn.Conv1d:
    return weight_norm(nn.Conv1d(in_ch, out_ch, kernel_size, 1, dilation=dilation,
                                 padding=_padding(kernel_size, dilation)))


#: Module name → (in_channels, out_channels) of a conv whose width differs from what the config implies
#: (a channel-pruned generator, :mod:`ttsopt.compiler.prune`); read from the checkpoint's tensors.
Widths = Mapping[str, tuple[int, int]]


class ResBlock1(nn.Module):
    """Three residual units, each a dilated conv followed by an undilated one (V1/V2)."""

    def __init__(self, channels: int, kernel_size: int, dilations: Sequence[int], widths: Widths | None = None,
                 prefix: str = ""):
        super().__init__()
        widths = widths or {}
        self.convs1 = nn.ModuleList(_wn_conv(*widths.get(f"{prefix}convs1.{k}", (channels, channels)), kernel_size, d)
                                    for k, d in enumerate(dilations))
        self.convs2 = nn.ModuleList(_wn_conv(*widths.get(f"{prefix}convs2.{k}", (channels, channels)), kernel_size)
                                    for k in range(len(dilations)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for dilated, plain in zip(self.convs1, self.convs2, strict=False):
            y = dilated(F.leaky_relu(x, LRELU_SLOPE))
            x = x + plain(F.leaky_relu(y, LRELU_SLOPE))
        return x


class ResBlock2(nn.Module):
    """Residual units of one dilated conv each (V3)."""

    def __init__(self, channels: int, kernel_size: int, dilations: Sequence[int], widths: Widths | None = None,
                 prefix: str = ""):
        super().__init__()
        widths = widths or {}
        self.convs = nn.ModuleList(_wn_conv(*widths.get(f"{prefix}convs.{k}", (channels, channels)), kernel_size, d)
                                   for k, d in enumerate(dilations))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            x = x + conv(F.leaky_relu(x, LRELU_SLOPE))
        return x


def upsample_and_fuse(x: torch.Tensor, ups: nn.ModuleList, resblocks: nn.ModuleList, num_kernels: int) -> torch.Tensor:
    """HiFi-GAN's body: each upsampling stage, then the mean of its ``num_kernels`` residual blocks (multi-receptive
    field fusion). The SoVITS generator and the v4 vocoder are built the same way and call this too."""
    for i, up in enumerate(ups):
        x = up(F.leaky_relu(x, LRELU_SLOPE))
        blocks = resblocks[i * num_kernels:(i + 1) * num_kernels]
        acc = blocks[0](x)
        for block in blocks[1:]:
            acc = acc + block(x)
        x = acc / num_kernels
    return x


class HiFiGANGenerator(nn.Module):
    """Mel spectrogram ``[batch, num_mels, frames]`` → waveform ``[batch, 1, frames * hop]`` in [-1, 1].

    ``widths`` overrides the channel counts the config implies, conv by conv (a pruned generator); kernel
    sizes, dilations, strides and the layer count always come from the config.
    """

    def __init__(self, config: HiFiGANConfig, widths: Widths | None = None):
        super().__init__()
        self.config = config
        self.widths = dict(widths or {})
        w = self.widths
        resblock = {"1": ResBlock1, "2": ResBlock2}[config.resblock]
        channels = config.upsample_initial_channel
        self.num_kernels = len(config.resblock_kernel_sizes)
        self.conv_pre = weight_norm(nn.Conv1d(*w.get("conv_pre", (config.num_mels, channels)), 7, 1, padding=3))
        self.ups = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        for i, (rate, kernel) in enumerate(zip(config.upsample_rates, config.upsample_kernel_sizes, strict=False)):
            in_ch, out_ch = w.get(f"ups.{i}", (channels // 2**i, channels // 2 ** (i + 1)))
            self.ups.append(weight_norm(nn.ConvTranspose1d(in_ch, out_ch, kernel, rate,
                                                           padding=(kernel - rate) // 2)))
            for k, dilations in zip(config.resblock_kernel_sizes, config.resblock_dilation_sizes, strict=False):
                self.resblocks.append(resblock(out_ch, k, tuple(dilations), w, f"resblocks.{len(self.resblocks)}."))
        self.conv_post = weight_norm(nn.Conv1d(*w.get("conv_post", (channels // 2 ** len(self.ups), 1)), 7, 1, padding=3))

    def conv_widths(self) -> dict[str, tuple[int, int]]:
        """(in_channels, out_channels) of every conv, by module name: what a pruned checkpoint's loader rebuilds."""
        return {name: (m.in_channels, m.out_channels) for name, m in self.named_modules()
                if isinstance(m, (nn.Conv1d, nn.ConvTranspose1d))}

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.conv_pre(mel)
        x = upsample_and_fuse(x, self.ups, self.resblocks, self.num_kernels)
        # The reference implementation uses torch's default slope (0.01) here, not LRELU_SLOPE.
        x = self.conv_post(F.leaky_relu(x))
        return torch.tanh(x)
