"""The text/latent part of SoVITS v4 (official ``SynthesizerTrnV3.decode_encp``), inference only.

::

    reference spectrogram ──► ref_enc ──► ge [B, gin, 1]            (no speaker-verification path in v4)
    codes ──codebook──► ×2 nearest ──► enc_p (MRTE with ge) ──► hidden [B, 192, 2T] (speed: linear resample)
          ──► bridge (1×1 conv + LeakyReLU 0.01) ──► ×2 nearest ──► wns1 (masked gated WaveNet on ge) ──► fea

``fea`` (100 frames/s, ``text_dim`` channels) conditions the CFM/DiT mel generator (:mod:`.dit`).

``enc_p``, ``ref_enc`` and the codebook are v2's own modules (:mod:`..sovits_model`), built from a v2
:class:`SoVITSConfig` made of the file's ``hps`` (v4 uses the v2 symbol table and the same sizes). What v4 adds
(``bridge``, ``wns1``, the DiT) is hard-coded in the official constructor, so its sizes are read from the tensors
(:func:`ttsopt.families.gpt_sovits.v4.checkpoint.sizes_from_weights`), never from the version name.

The official ``wns1`` masks its WaveNet with the valid length ``int(4T / speed) + 1`` (``4T`` at speed 1), which
can be one frame shorter than the ``2·(int(2T / speed) + 1)`` frames it runs on; the mask is therefore an input
here, and the weight-norm of ``wns1`` is folded into plain convolutions when the file is read.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ttsopt.families.gpt_sovits.sovits_model import MelStyleEncoder, SemanticCodebook, SoVITSConfig, TextEncoder, stretch
from ttsopt.families.gpt_sovits.v4.dit import DiT, DiTSizes
from ttsopt.runtime.sovits_v4 import latent_frames_v4  # one rule, kept with the torch-free runtime that applies it

#: ``bridge``'s LeakyReLU is torch's default slope.
BRIDGE_SLOPE = 0.01


@dataclass(frozen=True)
class V4Sizes:
    """Every size of a v4 SoVITS model: ``text`` from the ``hps`` (v2 layout), the rest from tensor shapes."""

    text: SoVITSConfig
    fea_channels: int          # bridge output = wns1 width = DiT text_dim (512 released)
    wns1_layers: int           # 8 released
    wns1_kernel: int           # 5
    dit: DiTSizes

    def as_dict(self) -> dict:
        return {"fea_channels": self.fea_channels, "wns1_layers": self.wns1_layers, "wns1_kernel": self.wns1_kernel,
                "dit": self.dit.as_dict()}


class MaskedWaveNet(nn.Module):
    """Gated non-causal WaveNet conditioned on ``g`` whose residual stream and output are multiplied by ``mask``
    after every layer (official ``modules.WN``); plain convolutions (weight norm folded by the loader)."""

    def __init__(self, hidden: int, kernel_size: int, n_layers: int, gin_channels: int):
        super().__init__()
        self.hidden = hidden
        self.cond_layer = nn.Conv1d(gin_channels, 2 * hidden * n_layers, 1)
        self.in_layers = nn.ModuleList(nn.Conv1d(hidden, 2 * hidden, kernel_size, padding=(kernel_size - 1) // 2)
                                       for _ in range(n_layers))
        self.res_skip_layers = nn.ModuleList(nn.Conv1d(hidden, 2 * hidden if i < n_layers - 1 else hidden, 1)
                                             for i in range(n_layers))

    def forward(self, x: torch.Tensor, mask: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        cond = self.cond_layer(g)
        output = torch.zeros_like(x)
        last = len(self.in_layers) - 1
        for i, (in_layer, res_skip_layer) in enumerate(zip(self.in_layers, self.res_skip_layers, strict=True)):
            a = in_layer(x) + cond[:, 2 * self.hidden * i: 2 * self.hidden * (i + 1)]
            res_skip = res_skip_layer(torch.tanh(a[:, :self.hidden]) * torch.sigmoid(a[:, self.hidden:]))
            if i < last:
                x = (x + res_skip[:, :self.hidden]) * mask
                output = output + res_skip[:, self.hidden:]
            else:
                output = output + res_skip
        return output * mask


class WNEncoder(nn.Module):
    """``wns1``: 1×1 conv → masked WaveNet (on ``ge``) → 1×1 conv, masked (official ``models.Encoder``, no stats split)."""

    def __init__(self, channels: int, kernel_size: int, n_layers: int, gin_channels: int):
        super().__init__()
        self.pre = nn.Conv1d(channels, channels, 1)
        self.enc = MaskedWaveNet(channels, kernel_size, n_layers, gin_channels)
        self.proj = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        x = self.pre(x) * mask
        return self.proj(self.enc(x, mask, g)) * mask


class SoVITSV4(nn.Module):
    """SoVITS v4 minus training parts: reference → ``ge``; codes + phonemes + ``ge`` → ``fea``; the CFM's DiT.

    Module names follow the official state dict (``enc_p``, ``ref_enc``, ``bridge.0``, ``wns1.enc.in_layers.3``,
    ``cfm.estimator.transformer_blocks.7.attn.to_q`` …); ``linear_mel`` (unused at inference) is not built.
    """

    def __init__(self, sizes: V4Sizes):
        super().__init__()
        text = sizes.text
        self.sizes = sizes
        self.ssl_proj = nn.Conv1d(text.ssl_dim, text.ssl_dim, 2, stride=2)
        self.quantizer = SemanticCodebook(text.codebook_size, text.ssl_dim)
        self.enc_p = TextEncoder(text)
        self.ref_enc = MelStyleEncoder(text.reference_bins, text.style_hidden, text.gin_channels,
                                       text.style_kernel_size, text.style_heads)
        # The official bridge reads the enc_p hidden (hidden_channels) although it is declared with inter_channels.
        self.bridge = nn.Sequential(nn.Conv1d(text.hidden_channels, sizes.fea_channels, 1), nn.LeakyReLU(BRIDGE_SLOPE))
        self.wns1 = WNEncoder(sizes.fea_channels, sizes.wns1_kernel, sizes.wns1_layers, text.gin_channels)
        self.cfm = nn.Module()
        self.cfm.estimator = DiT(sizes.dit)

    @property
    def estimator(self) -> DiT:
        return self.cfm.estimator

    def reference_embedding(self, spec: torch.Tensor) -> torch.Tensor:
        """``ge [B, gin, 1]`` of a linear spectrogram ``[B, ≥ 704 bins, T]`` (the lowest 704 bins are read)."""
        return self.ref_enc(spec[:, :self.sizes.text.reference_bins])

    def extract_latent(self, ssl: torch.Tensor) -> torch.Tensor:
        """HuBERT features ``[B, 768, T_h]`` → prompt codes ``[B, 1, T_h // 2]`` (as v2)."""
        return self.quantizer.encode(self.ssl_proj(ssl)).unsqueeze(1)

    def features(self, tokens: torch.Tensor, phonemes: torch.Tensor, ge: torch.Tensor,
                 mask: torch.Tensor) -> torch.Tensor:
        """``fea [B, fea_channels, F]`` of ``tokens [B, T]``, ``phonemes [B, N]``, ``ge`` and ``mask [B, 1, F]``.

        ``F`` is even: the enc_p output is resampled to ``F / 2`` frames (identity at speed 1), bridged and
        repeated ×2 (nearest); ``mask`` is 1 on the official valid length (:func:`latent_frames_v4`).
        """
        content = F.embedding(tokens, self.quantizer.embed).transpose(1, 2)
        content = content.repeat_interleave(2, dim=-1)
        hidden = self.enc_p.encode(content, phonemes, ge)
        frames = mask.shape[-1]
        hidden = stretch(hidden, (frames + 1) // 2)
        fea = self.bridge(hidden)
        # Nearest ×2 written as a gather, so the output length is exactly the mask's (no 2·(F/2) = F proof needed).
        index = torch.arange(frames, device=fea.device) // 2
        fea = fea.index_select(-1, index)
        return self.wns1(fea, mask, ge)

    def decode_encp(self, codes: torch.Tensor, text: torch.Tensor, ge: torch.Tensor, speed: float = 1.0) -> torch.Tensor:
        """Official ``decode_encp`` with a given ``ge``: codes ``[1, B, T]`` → ``fea [B, fea_channels, F]``."""
        frames, valid = latent_frames_v4(codes.shape[-1], speed)
        mask = (torch.arange(frames) < valid).to(ge.dtype).expand(codes.shape[1], 1, frames)
        return self.features(codes[0], text, ge, mask)
