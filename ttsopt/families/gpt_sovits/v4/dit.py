"""The CFM estimator of GPT-SoVITS v3/v4: F5-TTS's DiT as the official ``cfm.estimator`` configures it.

One call predicts the flow velocity ``v`` of the normalised log-mel ``x`` at time ``t``; the Euler loop that
integrates it lives torch-free in :mod:`ttsopt.runtime.cfm`. The call is cut in two so that the loop runs
only what changes per step:

- :meth:`DiT.condition`: the cond features ``fea`` (+ sinusoidal positions, 4 ConvNeXtV2 blocks with GRN) →
  ``text_embed``. The official code computes it at step 0 and caches it; here it is its own graph, run once
  per chunk.
- :meth:`DiT.forward`: ``x``, the prompt mel, ``text_embed``, ``t`` and ``d`` → ``v``.

Details that change results (fact sheet §5.5): rotary position embedding on the first ``dim_head`` channels
of the ``heads·dim_head`` projection only (head 0), adjacent pairs rotated (GPT-J style), with ``inv_freq`` the
buffer stored in the file (fp16-rounded), not recomputed; AdaLN-zero blocks (LayerNorm without affine,
eps 1e-6, shift/scale/gate from ``SiLU(t_emb + d_emb)``), the final AdaLN with *scale before shift*; GRN
normalises over time; the ConvNeXt GELU is exact, the feed-forward GELU is the tanh approximation; the time
embedding is ``[sin, cos]`` of ``1000·t·exp(−i·ln(10⁴)/(half−1))``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

#: The official text embedding precomputes this many positions; later frames reuse the last one.
TEXT_MAX_POSITIONS = 4096
#: LayerNorm epsilon everywhere in the DiT.
EPS = 1e-6


@dataclass(frozen=True)
class DiTSizes:
    """Sizes of the estimator, all read from the file's tensors (the released model: dim 1024, depth 22,
    16 heads of 64, ff 2048, text_dim 512, 4 ConvNeXt blocks of 1024)."""

    dim: int
    depth: int
    heads: int
    dim_head: int
    ff_inner: int
    mel_dim: int
    text_dim: int
    conv_layers: int
    conv_inner: int
    freq_embed_dim: int = 256
    conv_pos_kernel: int = 31
    conv_pos_groups: int = 16

    def as_dict(self) -> dict:
        return asdict(self)


def sinusoidal_embedding(t: torch.Tensor, dim: int, scale: float = 1000.0) -> torch.Tensor:
    """``[B]`` → ``[B, dim]``: ``[sin(s·t·e), cos(s·t·e)]`` with ``e_i = exp(−i·ln(10⁴)/(dim/2 − 1))``."""
    half = dim // 2
    freqs = torch.exp(torch.arange(half, device=t.device, dtype=torch.float32) * -(math.log(10000) / (half - 1)))
    angles = (scale * t).unsqueeze(1) * freqs.unsqueeze(0)
    return torch.cat((angles.sin(), angles.cos()), dim=-1)


class TimestepEmbedding(nn.Module):
    """Sinusoid of a scalar per item → Linear → SiLU → Linear (``time_mlp.0`` / ``time_mlp.2``)."""

    def __init__(self, dim: int, freq_dim: int):
        super().__init__()
        self.freq_dim = freq_dim
        self.time_mlp = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.time_mlp(sinusoidal_embedding(t, self.freq_dim))


class GRN(nn.Module):
    """Global response normalisation over the TIME axis of ``[B, T, C]``: every frame depends on the whole chunk."""

    def __init__(self, dim: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1, 1, dim))
        self.beta = nn.Parameter(torch.zeros(1, 1, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norm = torch.sqrt(torch.sum(x * x, dim=1, keepdim=True))
        return self.gamma * (x * (norm / (norm.mean(dim=-1, keepdim=True) + EPS))) + self.beta + x


class ConvNeXtV2Block(nn.Module):
    """Depthwise conv (k7) → LayerNorm → Linear ×mult → exact GELU → GRN → Linear, plus the input."""

    def __init__(self, dim: int, inner: int):
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=EPS)
        self.pwconv1 = nn.Linear(dim, inner)
        self.grn = GRN(inner)
        self.pwconv2 = nn.Linear(inner, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dwconv(x.transpose(1, 2)).transpose(1, 2)
        return x + self.pwconv2(self.grn(F.gelu(self.pwconv1(self.norm(y)))))


class TextEmbedding(nn.Module):
    """Cond features ``[B, L, text_dim]`` + ``[cos, sin]`` positions → ConvNeXtV2 blocks."""

    def __init__(self, text_dim: int, conv_layers: int, inner: int):
        super().__init__()
        self.text_dim = text_dim
        self.text_blocks = nn.Sequential(*(ConvNeXtV2Block(text_dim, inner) for _ in range(conv_layers)))

    def positions(self, length: int | torch.SymInt, device: torch.device) -> torch.Tensor:
        freqs = 1.0 / (10000.0 ** (torch.arange(0, self.text_dim, 2, device=device, dtype=torch.float32) / self.text_dim))
        pos = torch.arange(length, device=device).clamp(max=TEXT_MAX_POSITIONS - 1).to(torch.float32)
        angles = pos.unsqueeze(1) * freqs.unsqueeze(0)
        return torch.cat((angles.cos(), angles.sin()), dim=-1)

    def forward(self, fea: torch.Tensor) -> torch.Tensor:
        return self.text_blocks(fea + self.positions(fea.shape[1], fea.device))


class ConvPositionEmbedding(nn.Module):
    """Two grouped convs (k31) each followed by Mish (``conv1d.0`` / ``conv1d.2``) on ``[B, L, D]``."""

    def __init__(self, dim: int, kernel: int, groups: int):
        super().__init__()
        self.conv1d = nn.Sequential(nn.Conv1d(dim, dim, kernel, groups=groups, padding=kernel // 2), nn.Mish(),
                                    nn.Conv1d(dim, dim, kernel, groups=groups, padding=kernel // 2), nn.Mish())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv1d(x.transpose(1, 2)).transpose(1, 2)


class InputEmbedding(nn.Module):
    def __init__(self, sizes: DiTSizes):
        super().__init__()
        self.proj = nn.Linear(2 * sizes.mel_dim + sizes.text_dim, sizes.dim)
        self.conv_pos_embed = ConvPositionEmbedding(sizes.dim, sizes.conv_pos_kernel, sizes.conv_pos_groups)

    def forward(self, x: torch.Tensor, cond: torch.Tensor, text_embed: torch.Tensor) -> torch.Tensor:
        h = self.proj(torch.cat((x, cond, text_embed), dim=-1))
        return self.conv_pos_embed(h) + h


class RotaryEmbedding(nn.Module):
    """x-transformers' rotary embedding: only the ``inv_freq`` buffer (persistent, loaded from the file)."""

    def __init__(self, dim_head: int):
        super().__init__()
        self.register_buffer("inv_freq", 1.0 / (10000 ** (torch.arange(0, dim_head, 2).float() / dim_head)))

    def forward(self, length: int | torch.SymInt) -> tuple[torch.Tensor, torch.Tensor]:
        """``(cos, sin)`` ``[L, dim_head]``, each frequency repeated twice in adjacent channels."""
        pos = torch.arange(length, device=self.inv_freq.device).to(torch.float32)
        freqs = pos.unsqueeze(1) * self.inv_freq.unsqueeze(0)
        freqs = torch.stack((freqs, freqs), dim=-1).flatten(-2)
        return freqs.cos(), freqs.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate adjacent channel pairs of the first ``cos.shape[-1]`` channels of ``x [B, L, C]``; the rest pass."""
    width = cos.shape[-1]
    head, rest = x[..., :width], x[..., width:]
    pairs = head.unflatten(-1, (width // 2, 2))
    rotated = torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)
    return torch.cat((head * cos + rotated * sin, rest), dim=-1)


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int, dim_head: int):
        super().__init__()
        self.heads, self.dim_head = heads, dim_head
        inner = heads * dim_head
        self.to_q, self.to_k, self.to_v = nn.Linear(dim, inner), nn.Linear(dim, inner), nn.Linear(dim, inner)
        self.to_out = nn.ModuleList([nn.Linear(inner, dim)])

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        batch = x.shape[0]
        # The rotation is applied before the head split, so it reaches head 0 only (the official quirk).
        q = apply_rotary(self.to_q(x), cos, sin)
        k = apply_rotary(self.to_k(x), cos, sin)
        v = self.to_v(x)
        q, k, v = (y.view(batch, -1, self.heads, self.dim_head).transpose(1, 2) for y in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v)
        return self.to_out[0](out.transpose(1, 2).reshape(batch, -1, self.heads * self.dim_head))


class AdaLayerNormZero(nn.Module):
    def __init__(self, dim: int, chunks: int):
        super().__init__()
        self.chunks = chunks
        self.linear = nn.Linear(dim, dim * chunks)

    def forward(self, c: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(p.unsqueeze(1) for p in torch.chunk(self.linear(F.silu(c)), self.chunks, dim=1))


class FeedForward(nn.Module):
    """``ff.ff.0.0`` → tanh-GELU → ``ff.ff.2`` (index 1 was dropout)."""

    def __init__(self, dim: int, inner: int):
        super().__init__()
        self.ff = nn.Sequential(nn.Sequential(nn.Linear(dim, inner), nn.GELU(approximate="tanh")), nn.Identity(),
                                nn.Linear(inner, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ff(x)


def _norm(x: torch.Tensor) -> torch.Tensor:
    return F.layer_norm(x, (x.shape[-1],), eps=EPS)


class DiTBlock(nn.Module):
    def __init__(self, sizes: DiTSizes):
        super().__init__()
        self.attn_norm = AdaLayerNormZero(sizes.dim, 6)
        self.attn = Attention(sizes.dim, sizes.heads, sizes.dim_head)
        self.ff = FeedForward(sizes.dim, sizes.ff_inner)

    def forward(self, x: torch.Tensor, c: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        shift_a, scale_a, gate_a, shift_f, scale_f, gate_f = self.attn_norm(c)
        x = x + gate_a * self.attn(_norm(x) * (1 + scale_a) + shift_a, cos, sin)
        return x + gate_f * self.ff(_norm(x) * (1 + scale_f) + shift_f)


class FinalNorm(nn.Module):
    """``norm_out``: AdaLN with (scale, shift) — scale first, unlike the blocks."""

    def __init__(self, dim: int):
        super().__init__()
        self.linear = nn.Linear(dim, dim * 2)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        scale, shift = torch.chunk(self.linear(F.silu(c)), 2, dim=1)
        return _norm(x) * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class DiT(nn.Module):
    """The flow-matching velocity estimator (official ``DiT``, no long skip, batch of equal lengths)."""

    def __init__(self, sizes: DiTSizes):
        super().__init__()
        self.sizes = sizes
        self.time_embed = TimestepEmbedding(sizes.dim, sizes.freq_embed_dim)
        self.d_embed = TimestepEmbedding(sizes.dim, sizes.freq_embed_dim)
        self.text_embed = TextEmbedding(sizes.text_dim, sizes.conv_layers, sizes.conv_inner)
        self.input_embed = InputEmbedding(sizes)
        self.rotary_embed = RotaryEmbedding(sizes.dim_head)
        self.transformer_blocks = nn.ModuleList(DiTBlock(sizes) for _ in range(sizes.depth))
        self.norm_out = FinalNorm(sizes.dim)
        self.proj_out = nn.Linear(sizes.dim, sizes.mel_dim)

    def condition(self, fea: torch.Tensor) -> torch.Tensor:
        """Cond features ``[B, L, text_dim]`` → ``text_embed [B, L, text_dim]`` (constant over the Euler steps)."""
        return self.text_embed(fea)

    def forward(self, x: torch.Tensor, prompt: torch.Tensor, text_embed: torch.Tensor, t: torch.Tensor,
                d: torch.Tensor) -> torch.Tensor:
        """Velocity ``[B, mel, L]`` of ``x [B, mel, L]`` given the prompt mel ``[B, mel, L]`` (zeros past the
        prompt), :meth:`condition`'s output, the time ``t [B]`` and the step size ``d [B]``."""
        c = self.time_embed(t) + self.d_embed(d)
        h = self.input_embed(x.transpose(1, 2), prompt.transpose(1, 2), text_embed)
        cos, sin = self.rotary_embed(h.shape[1])
        for block in self.transformer_blocks:
            h = block(h, c, cos, sin)
        return self.proj_out(self.norm_out(h, c)).transpose(1, 2)
