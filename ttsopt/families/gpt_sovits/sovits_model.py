"""GPT-SoVITS "s2" SoVITS synthesizer (official ``SynthesizerTrn``, v1, v2, v2Pro, v2ProPlus), inference only.

SoVITS turns GPT semantic tokens (25 Hz) plus the target phonemes and a reference recording into a
32 kHz waveform::

    reference wav ──spectrogram──► ref_enc ──► ge (speaker/style vector, [B, gin, 1])
    codes ──codebook──► ×2 nearest ──► enc_p (+ text, MRTE with ge) ──► m_p, logs_p
    z_p = m_p + noise · exp(logs_p) · noise_scale ──► flow⁻¹ (g=ge) ──► dec (HiFi-GAN, g=ge) ──► audio

``extract_latent`` is the other direction used to make prompt tokens: HuBERT features → codes.

v2Pro/v2ProPlus (fact sheet ``gpt-sovits-pro-v4.md`` §3) add a speaker-verification embedding ``sv`` of the
reference (ERes2NetV2, a separate model: :mod:`.sv_model`): ``ge = PReLU(ref_enc(spec) + sv_emb(sv))`` with
``gin`` channels conditions the flow and the generator, and MRTE gets ``ge_to512(ge)``. ProPlus differs only
in the generator's sizes, which come from the config like every other size.

Written from the fact sheet (shared/facts/gpt-sovits-v2.md, §4–§5), not from the official source.
What is deliberately *not* built: the posterior encoder ``enc_q``, the discriminators, the losses,
the codebook's EMA buffers and the forward (training) direction of the flow.

Design notes
- Module and parameter names follow the official state dict (``enc_p.encoder_ssl.attn_layers.0.conv_q``,
  ``flow.flows.2.enc.in_layers.1``, ``dec.resblocks.4.convs1.0`` …) so checkpoints load with only two
  mechanical renames, done by :mod:`ttsopt.families.gpt_sovits.sovits_checkpoint`: the legacy
  ``weight_g``/``weight_v`` weight-norm pairs and the codebook (``quantizer.vq.layers.0._codebook.embed``
  → ``quantizer.embed``).
- Weight norm: the layers that are weight-normed in the official model (flow WaveNets, decoder
  upsamplers and resblocks) use ``torch.nn.utils.parametrizations.weight_norm``, so the model computes
  ``g · v / ‖v‖`` exactly like official inference does, and the generic pass
  :func:`ttsopt.compiler.folding.remove_weight_norm` (``remove_parametrizations(..., leave_parametrized=True)``)
  folds it into plain weights before export.
- Padding masks are not modelled. Official inference runs batch 1 with all-ones masks, where every
  ``· mask`` is an exact no-op; a batch here is a batch of equal-length items.
- Noise is an explicit input (``noise=``) so that outputs are reproducible and an exported graph can take it
  as an input; ``generator=``/``seed=`` draw it for convenience, and with neither the global torch RNG is
  used like the official ``randn_like``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import weight_norm

from ttsopt.families.hifigan.model import ResBlock1, ResBlock2, upsample_and_fuse
from ttsopt.runtime.sovits import latent_frames  # one rule, kept with the torch-free runtime that applies it

#: leaky-ReLU slope inside the decoder and its resblocks (the one before ``conv_post`` is torch's default 0.01).

#: Phoneme-symbol table size per symbol version (``text_embedding`` rows).
SYMBOLS_PER_VERSION = {"v1": 322, "v2": 732}
#: Model version → its phoneme-symbol table (the Pro models use the v2 table).
SYMBOL_VERSION = {"v1": "v1", "v2": "v2", "v2Pro": "v2", "v2ProPlus": "v2"}
#: Versions conditioned on a speaker-verification embedding as well as the reference spectrogram.
SPEAKER_VERIFICATION_VERSIONS = ("v2Pro", "v2ProPlus")

#: Versions this module can build. v3/v4 (CFM + a separate vocoder) differ in architecture and are refused
#: by the checkpoint loader.
SUPPORTED_VERSIONS = tuple(SYMBOL_VERSION)


# --------------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SoVITSConfig:
    """Sizes of a SoVITS v1/v2/v2Pro/v2ProPlus synthesizer. Defaults are the released v2 ``configs/s2.json``.

    The first groups come from the checkpoint's ``hps.data`` / ``hps.model``; the last group is hard-coded
    in the official code (not in any config file), but is spelled out here so no size is magic.
    """

    version: str = "v2"

    # hps.data: the spectrogram the reference encoder reads.
    sampling_rate: int = 32000
    filter_length: int = 2048
    hop_length: int = 640
    win_length: int = 2048

    # hps.model
    inter_channels: int = 192
    hidden_channels: int = 192
    filter_channels: int = 768
    n_heads: int = 2
    n_layers: int = 6
    kernel_size: int = 3
    resblock: str = "1"
    resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11)
    resblock_dilation_sizes: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5))
    upsample_rates: tuple[int, ...] = (10, 8, 2, 2, 2)
    upsample_initial_channel: int = 512
    upsample_kernel_sizes: tuple[int, ...] = (16, 16, 8, 2, 2)
    gin_channels: int = 512

    # Hard-coded in the official classes.
    ssl_dim: int = 768                 # HuBERT feature width = codebook vector width
    codebook_size: int = 1024          # semantic vocabulary
    relative_window: int = 4           # relative-position attention window in enc_p
    mrte_channels: int = 512           # MRTE width; ge is added at this width, so gin_channels must match
    mrte_heads: int = 4
    style_hidden: int = 128            # MelStyleEncoder width
    style_heads: int = 2
    style_kernel_size: int = 5
    n_flows: int = 4
    flow_kernel_size: int = 5
    flow_wavenet_layers: int = 4
    v2_reference_bins: int = 704       # v2 reads only the lowest 704 of the 1025 bins (v1 reads all)
    sv_dim: int = 20480                # v2Pro/v2ProPlus: width of the speaker-verification embedding (sv_emb input)

    def __post_init__(self) -> None:
        if self.version not in SUPPORTED_VERSIONS:
            raise ValueError(f"SoVITS version {self.version!r} is not one of {SUPPORTED_VERSIONS}")
        if self.gin_channels != self.mrte_channels and not self.speaker_verification:
            raise ValueError(f"gin_channels ({self.gin_channels}) must equal the MRTE width "
                             f"({self.mrte_channels}): ge is added to the MRTE features")
        if self.hidden_channels % self.n_heads:
            raise ValueError(f"hidden_channels {self.hidden_channels} is not divisible by n_heads {self.n_heads}")
        if len(self.upsample_rates) != len(self.upsample_kernel_sizes):
            raise ValueError("upsample_rates and upsample_kernel_sizes differ in length")
        if math.prod(self.upsample_rates) != self.hop_length:
            raise ValueError(f"the upsample rates multiply to {math.prod(self.upsample_rates)}, "
                             f"but one latent frame is hop_length={self.hop_length} samples")
        if self.resblock not in ("1", "2"):
            raise ValueError(f"resblock {self.resblock!r} is neither '1' nor '2'")

    @property
    def symbol_version(self) -> str:
        return SYMBOL_VERSION[self.version]

    @property
    def speaker_verification(self) -> bool:
        """Whether ``ge`` also takes a speaker-verification embedding (v2Pro, v2ProPlus)."""
        return self.version in SPEAKER_VERIFICATION_VERSIONS

    @property
    def n_symbols(self) -> int:
        return SYMBOLS_PER_VERSION[self.symbol_version]

    @property
    def spec_channels(self) -> int:
        return self.filter_length // 2 + 1

    @property
    def reference_bins(self) -> int:
        """Spectrogram bins the reference encoder reads."""
        return self.spec_channels if self.version == "v1" else self.v2_reference_bins

    @property
    def samples_per_token(self) -> int:
        """Audio samples per 25 Hz semantic token (two latent frames of ``hop_length``)."""
        return 2 * self.hop_length

    def latent_frames(self, num_tokens: int, speed: float = 1.0) -> int:
        """Length of ``m_p``/``noise`` for ``num_tokens`` codes at ``speed`` (the official resize rule)."""
        return latent_frames(num_tokens, speed)


# --------------------------------------------------------------------------------------------------
# Semantic codebook
# --------------------------------------------------------------------------------------------------


class SemanticCodebook(nn.Module):
    """The single-level VQ codebook (1024 × 768) between HuBERT features and GPT tokens.

    Only ``embed`` is kept: the EMA statistics of the official quantizer are training state.
    """

    def __init__(self, codebook_size: int, dim: int):
        super().__init__()
        self.register_buffer("embed", torch.randn(codebook_size, dim))

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``[n_q=1, B, T]`` → vectors ``[B, dim, T]``."""
        if codes.dim() != 3 or codes.shape[0] != 1:
            raise ValueError(f"expected codes [1, batch, time] (one quantizer level), got {list(codes.shape)}")
        return F.embedding(codes[0], self.embed).transpose(1, 2)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Vectors ``[B, dim, T]`` → nearest code ``[B, T]`` (squared Euclidean distance).

        Computed as ``argmax −(‖x‖² − 2x·e + ‖e‖²)`` in the same layout as the official code, so that
        near-ties resolve the same way.
        """
        batch, dim, frames = x.shape
        flat = x.transpose(1, 2).reshape(-1, dim)
        embed_t = self.embed.t()
        dist = -(flat.pow(2).sum(1, keepdim=True) - 2 * flat @ embed_t + embed_t.pow(2).sum(0, keepdim=True))
        return dist.max(dim=-1).indices.view(batch, frames)


# --------------------------------------------------------------------------------------------------
# Text encoder (enc_p): VITS transformer with relative positions, plus MRTE
# --------------------------------------------------------------------------------------------------


class LayerNorm(nn.Module):
    """LayerNorm over the channel axis of ``[B, C, T]`` (parameters named ``gamma``/``beta`` as in VITS)."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.layer_norm(x.transpose(1, -1), (x.shape[1],), self.gamma, self.beta, self.eps)
        return x.transpose(1, -1)


def _relative_embeddings(table: torch.Tensor, length: int, window: int) -> torch.Tensor:
    """The ``2·length−1`` rows of a ``[1, 2w+1, d]`` table for relative positions −(L−1)…L−1.

    Positions farther than the window get zero rows. Padding by ``length`` on both sides and slicing
    from ``w+1`` gives this for every length without a data-dependent branch.
    """
    padded = F.pad(table, (0, 0, length, length))
    return padded[:, window + 1: window + 2 * length]


def _relative_to_absolute(x: torch.Tensor) -> torch.Tensor:
    """``[B, H, L, 2L−1]`` indexed by relative position → ``[B, H, L, L]``: ``out[i, j] = x[i, j − i + L − 1]``."""
    batch, heads, length, _ = x.shape
    pos = torch.arange(length, device=x.device)
    index = pos.unsqueeze(0) - pos.unsqueeze(1) + (length - 1)
    return torch.gather(x, -1, index.expand(batch, heads, length, length))


def _absolute_to_relative(x: torch.Tensor) -> torch.Tensor:
    """``[B, H, L, L]`` → ``[B, H, L, 2L−1]``: ``out[i, r] = x[i, i + r − (L − 1)]``, zero where that is off the row."""
    batch, heads, length, _ = x.shape
    rows = torch.arange(length, device=x.device).unsqueeze(1)
    rel = torch.arange(2 * length - 1, device=x.device).unsqueeze(0)
    column = rows + rel - (length - 1)
    valid = (column >= 0) & (column < length)
    gathered = torch.gather(x, -1, column.clamp(0, length - 1).expand(batch, heads, length, 2 * length - 1))
    return torch.where(valid, gathered, torch.zeros((), dtype=x.dtype, device=x.device))


class MultiHeadAttention(nn.Module):
    """VITS multi-head attention with 1×1-conv projections and optional relative positions.

    With ``window_size`` (self-attention in enc_p), a learned key and value embedding per relative
    offset in ±window (shared by all heads) is added: key embeddings to the logits, value embeddings to
    the output, both scaled like the query (``1/sqrt(k_channels)``). Without it (MRTE cross-attention)
    this is plain scaled dot-product attention.
    """

    def __init__(self, channels: int, out_channels: int, n_heads: int, window_size: int | None = None):
        super().__init__()
        if channels % n_heads:
            raise ValueError(f"channels {channels} not divisible by n_heads {n_heads}")
        self.n_heads = n_heads
        self.k_channels = channels // n_heads
        self.window_size = window_size
        self.conv_q = nn.Conv1d(channels, channels, 1)
        self.conv_k = nn.Conv1d(channels, channels, 1)
        self.conv_v = nn.Conv1d(channels, channels, 1)
        self.conv_o = nn.Conv1d(channels, out_channels, 1)
        if window_size is not None:
            std = self.k_channels ** -0.5
            self.emb_rel_k = nn.Parameter(torch.randn(1, 2 * window_size + 1, self.k_channels) * std)
            self.emb_rel_v = nn.Parameter(torch.randn(1, 2 * window_size + 1, self.k_channels) * std)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, _, length = x.shape
        return x.view(batch, self.n_heads, self.k_channels, length).transpose(2, 3)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Queries from ``x`` ``[B, C, Tq]``, keys/values from ``context`` ``[B, C, Tk]``."""
        batch, channels, length = x.shape
        query = self._heads(self.conv_q(x)) / math.sqrt(self.k_channels)
        key = self._heads(self.conv_k(context))
        value = self._heads(self.conv_v(context))

        scores = torch.matmul(query, key.transpose(-2, -1))
        if self.window_size is not None:
            if context.shape[-1] != length:
                raise ValueError("relative-position attention needs equal query and key lengths")
            rel_k = _relative_embeddings(self.emb_rel_k, length, self.window_size)
            rel_logits = torch.matmul(query, rel_k.unsqueeze(0).transpose(-2, -1))
            scores = scores + _relative_to_absolute(rel_logits)
        weights = F.softmax(scores, dim=-1)
        out = torch.matmul(weights, value)
        if self.window_size is not None:
            rel_v = _relative_embeddings(self.emb_rel_v, length, self.window_size)
            out = out + torch.matmul(_absolute_to_relative(weights), rel_v.unsqueeze(0))
        out = out.transpose(2, 3).contiguous().view(batch, channels, length)
        return self.conv_o(out)


class FeedForward(nn.Module):
    """Conv → ReLU → conv with "same" padding (left (k−1)//2, right k//2), as in VITS."""

    def __init__(self, channels: int, filter_channels: int, kernel_size: int):
        super().__init__()
        self.padding = ((kernel_size - 1) // 2, kernel_size // 2)
        self.conv_1 = nn.Conv1d(channels, filter_channels, kernel_size)
        self.conv_2 = nn.Conv1d(filter_channels, channels, kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv_1(F.pad(x, self.padding)))
        return self.conv_2(F.pad(x, self.padding))


class Encoder(nn.Module):
    """Post-norm transformer stack: ``x = LN(x + MHA(x)); x = LN(x + FFN(x))`` per layer."""

    def __init__(self, channels: int, filter_channels: int, n_heads: int, n_layers: int, kernel_size: int,
                 window_size: int):
        super().__init__()
        self.attn_layers = nn.ModuleList(
            MultiHeadAttention(channels, channels, n_heads, window_size) for _ in range(n_layers))
        self.norm_layers_1 = nn.ModuleList(LayerNorm(channels) for _ in range(n_layers))
        self.ffn_layers = nn.ModuleList(
            FeedForward(channels, filter_channels, kernel_size) for _ in range(n_layers))
        self.norm_layers_2 = nn.ModuleList(LayerNorm(channels) for _ in range(n_layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for attn, norm_1, ffn, norm_2 in zip(self.attn_layers, self.norm_layers_1, self.ffn_layers,
                                             self.norm_layers_2, strict=False):
            x = norm_1(x + attn(x, x))
            x = norm_2(x + ffn(x))
        return x


class MRTE(nn.Module):
    """Multi-reference timbre encoder: content frames attend to the phonemes, then ``ge`` is added.

    Works at ``mrte_channels`` (512): content and text are lifted from ``hidden_channels``, the attention
    output is added to the lifted content and to ``ge`` (broadcast over time), then projected back.
    """

    def __init__(self, channels: int, hidden: int, n_heads: int):
        super().__init__()
        self.cross_attention = MultiHeadAttention(hidden, hidden, n_heads)
        self.c_pre = nn.Conv1d(channels, hidden, 1)
        self.text_pre = nn.Conv1d(channels, hidden, 1)
        self.c_post = nn.Conv1d(hidden, channels, 1)

    def forward(self, content: torch.Tensor, text: torch.Tensor, ge: torch.Tensor) -> torch.Tensor:
        content = self.c_pre(content)
        text = self.text_pre(text)
        x = self.cross_attention(content, text) + content + ge
        return self.c_post(x)


class TextEncoder(nn.Module):
    """``enc_p``: (content at 50 Hz, phonemes, ge) → prior mean and log-scale at 50 Hz.

    Content (codebook vectors) and phonemes are encoded separately, fused by MRTE, encoded once more,
    optionally time-stretched (``speed``), then projected to ``m_p`` and ``logs_p``.
    """

    def __init__(self, config: SoVITSConfig):
        super().__init__()
        hidden = config.hidden_channels
        self.out_channels = config.inter_channels

        def encoder(n_layers: int) -> Encoder:
            return Encoder(hidden, config.filter_channels, config.n_heads, n_layers, config.kernel_size,
                           config.relative_window)

        self.ssl_proj = nn.Conv1d(config.ssl_dim, hidden, 1)
        self.encoder_ssl = encoder(config.n_layers // 2)
        self.text_embedding = nn.Embedding(config.n_symbols, hidden)
        nn.init.normal_(self.text_embedding.weight, 0.0, hidden ** -0.5)
        self.encoder_text = encoder(config.n_layers)
        self.mrte = MRTE(hidden, config.mrte_channels, config.mrte_heads)
        self.encoder2 = encoder(config.n_layers // 2)
        self.proj = nn.Conv1d(hidden, 2 * config.inter_channels, 1)

    def encode(self, content: torch.Tensor, text: torch.Tensor, ge: torch.Tensor) -> torch.Tensor:
        """Hidden features ``[B, hidden, F]`` of ``content`` ``[B, ssl_dim, F]``, ``text`` ``[B, N]`` and ``ge``."""
        y = self.encoder_ssl(self.ssl_proj(content))
        t = self.encoder_text(self.text_embedding(text).transpose(1, 2))
        return self.encoder2(self.mrte(y, t, ge))

    def project(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(m_p, logs_p)``, each ``[B, inter, F]``."""
        m_p, logs_p = torch.split(self.proj(hidden), self.out_channels, dim=1)
        return m_p, logs_p

    def forward(self, content: torch.Tensor, text: torch.Tensor, ge: torch.Tensor, speed: float = 1.0
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``content`` ``[B, ssl_dim, F]``, ``text`` ``[B, N]`` int64, ``ge`` ``[B, gin, 1]``.

        Returns ``(hidden [B, hidden, F'], m_p [B, inter, F'], logs_p [B, inter, F'])`` with
        ``F' = F`` at speed 1, else ``int(F / speed) + 1`` (linear resampling of the hidden features).
        """
        y = self.encode(content, text, ge)
        if speed != 1:
            y = stretch(y, int(y.shape[-1] / speed) + 1)
        return (y, *self.project(y))


def stretch(hidden: torch.Tensor, frames: int | torch.SymInt) -> torch.Tensor:
    """The official ``speed`` resampling: linear interpolation (half-pixel, no corner alignment) to ``frames``.

    Resampling to the same length is the identity, so graphs can apply it unconditionally and take the
    length from the noise input.
    """
    return F.interpolate(hidden, size=frames, mode="linear")


# --------------------------------------------------------------------------------------------------
# Reference encoder (ref_enc): MelStyleEncoder on the linear spectrogram
# --------------------------------------------------------------------------------------------------


class LinearNorm(nn.Module):
    """A Linear layer under the attribute name ``fc`` (that is how the official keys are nested)."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.fc = nn.Linear(in_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


class Mish(nn.Module):
    """``x · tanh(softplus(x))`` written out (not ``F.mish``) to follow the reference arithmetic."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.tanh(F.softplus(x))


class ConvNorm(nn.Module):
    """A Conv1d under the attribute name ``conv`` with "same" padding (official key nesting)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int):
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, padding=(kernel_size - 1) // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Conv1dGLU(nn.Module):
    """Residual gated conv: ``x + a · sigmoid(b)`` where ``[a; b] = conv(x)``."""

    def __init__(self, channels: int, kernel_size: int):
        super().__init__()
        self.channels = channels
        self.conv1 = ConvNorm(channels, 2 * channels, kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = torch.split(self.conv1(x), self.channels, dim=1)
        return x + a * torch.sigmoid(b)


class StyleAttention(nn.Module):
    """Self-attention of the style encoder, with a residual.

    Note the temperature is ``sqrt(d_model)`` (the full width, 128), not ``sqrt(d_head)``: that is what
    the model was trained with.
    """

    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
        self.n_heads = n_heads
        self.d_head = d_model // n_heads
        self.temperature = d_model ** 0.5
        self.w_qs = nn.Linear(d_model, d_model)
        self.w_ks = nn.Linear(d_model, d_model)
        self.w_vs = nn.Linear(d_model, d_model)
        self.fc = nn.Linear(d_model, d_model)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        return x.view(batch, length, self.n_heads, self.d_head).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``[B, T, d_model]`` (time-major)."""
        batch, length, d_model = x.shape
        q, k, v = self._heads(self.w_qs(x)), self._heads(self.w_ks(x)), self._heads(self.w_vs(x))
        weights = F.softmax(torch.matmul(q, k.transpose(-2, -1)) / self.temperature, dim=-1)
        out = torch.matmul(weights, v).transpose(1, 2).reshape(batch, length, d_model)
        return self.fc(out) + x


class MelStyleEncoder(nn.Module):
    """Spectrogram ``[B, bins, T]`` → global style vector ``ge`` ``[B, out, 1]`` (mean over time)."""

    def __init__(self, in_bins: int, hidden: int, out_channels: int, kernel_size: int, n_heads: int):
        super().__init__()
        # Indices 2 and 5 were dropout in training; identity keeps the official key numbering (0 and 3).
        self.spectral = nn.Sequential(LinearNorm(in_bins, hidden), Mish(), nn.Identity(),
                                      LinearNorm(hidden, hidden), Mish(), nn.Identity())
        self.temporal = nn.Sequential(Conv1dGLU(hidden, kernel_size), Conv1dGLU(hidden, kernel_size))
        self.slf_attn = StyleAttention(hidden, n_heads)
        self.fc = LinearNorm(hidden, out_channels)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        x = self.spectral(spec.transpose(1, 2))
        x = self.temporal(x.transpose(1, 2)).transpose(1, 2)
        x = self.fc(self.slf_attn(x))
        # Official pooling divides the sum by the (unpadded) length.
        return (x.sum(dim=1) / x.shape[1]).unsqueeze(-1)


# --------------------------------------------------------------------------------------------------
# Flow (run in reverse only)
# --------------------------------------------------------------------------------------------------


class WaveNet(nn.Module):
    """Non-causal gated WaveNet conditioned on ``g``; the body of each coupling layer (``enc``)."""

    def __init__(self, hidden: int, kernel_size: int, n_layers: int, gin_channels: int, dilation_rate: int = 1):
        super().__init__()
        self.hidden = hidden
        self.cond_layer = weight_norm(nn.Conv1d(gin_channels, 2 * hidden * n_layers, 1))
        self.in_layers = nn.ModuleList()
        self.res_skip_layers = nn.ModuleList()
        for i in range(n_layers):
            dilation = dilation_rate ** i
            padding = (kernel_size * dilation - dilation) // 2
            self.in_layers.append(weight_norm(nn.Conv1d(hidden, 2 * hidden, kernel_size, dilation=dilation,
                                                        padding=padding)))
            # The last layer has no residual half: its output is skip only.
            res_skip = 2 * hidden if i < n_layers - 1 else hidden
            self.res_skip_layers.append(weight_norm(nn.Conv1d(hidden, res_skip, 1)))

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        cond = self.cond_layer(g)
        output = torch.zeros_like(x)
        last = len(self.in_layers) - 1
        for i, (in_layer, res_skip_layer) in enumerate(zip(self.in_layers, self.res_skip_layers, strict=False)):
            a = in_layer(x) + cond[:, 2 * self.hidden * i: 2 * self.hidden * (i + 1)]
            acts = torch.tanh(a[:, :self.hidden]) * torch.sigmoid(a[:, self.hidden:])
            res_skip = res_skip_layer(acts)
            if i < last:
                x = x + res_skip[:, :self.hidden]
                output = output + res_skip[:, self.hidden:]
            else:
                output = output + res_skip
        return output


class ResidualCouplingLayer(nn.Module):
    """Mean-only affine coupling: the second half of the channels is shifted by a function of the first."""

    def __init__(self, channels: int, hidden: int, kernel_size: int, n_layers: int, gin_channels: int):
        super().__init__()
        self.half = channels // 2
        self.pre = nn.Conv1d(self.half, hidden, 1)
        self.enc = WaveNet(hidden, kernel_size, n_layers, gin_channels)
        self.post = nn.Conv1d(hidden, self.half, 1)

    def reverse(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        x0, x1 = torch.split(x, self.half, dim=1)
        shift = self.post(self.enc(self.pre(x0), g))
        return torch.cat([x0, x1 - shift], dim=1)


class Flip(nn.Module):
    """Reverse the channel order (parameter-free; occupies the odd indices of ``flow.flows``)."""

    def reverse(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return torch.flip(x, [1])


class ResidualCouplingBlock(nn.Module):
    """The flow ``[C0, Flip, C1, Flip, …]``. Only the inverse (prior → decoder latent) is needed at inference."""

    def __init__(self, channels: int, hidden: int, kernel_size: int, n_layers: int, n_flows: int,
                 gin_channels: int):
        super().__init__()
        self.flows = nn.ModuleList()
        for _ in range(n_flows):
            self.flows.append(ResidualCouplingLayer(channels, hidden, kernel_size, n_layers, gin_channels))
            self.flows.append(Flip())

    def forward(self, z_p: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """Inverse flow: applies the layers last to first, each in reverse."""
        x = z_p
        for flow in reversed(self.flows):
            x = flow.reverse(x, g)
        return x


# --------------------------------------------------------------------------------------------------
# Decoder (dec): HiFi-GAN generator with a global conditioning input
# --------------------------------------------------------------------------------------------------


# The residual blocks are HiFi-GAN's own (same layout and parameter names), shared with that family.


class Generator(nn.Module):
    """Latent ``[B, inter, F]`` + ``ge`` → waveform ``[B, 1, F · hop]`` in (−1, 1)."""

    def __init__(self, config: SoVITSConfig):
        super().__init__()
        channels = config.upsample_initial_channel
        resblock = ResBlock1 if config.resblock == "1" else ResBlock2
        self.num_kernels = len(config.resblock_kernel_sizes)
        self.conv_pre = nn.Conv1d(config.inter_channels, channels, 7, padding=3)
        self.cond = nn.Conv1d(config.gin_channels, channels, 1)
        self.ups = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        for i, (rate, kernel) in enumerate(zip(config.upsample_rates, config.upsample_kernel_sizes, strict=False)):
            in_ch, out_ch = channels // 2 ** i, channels // 2 ** (i + 1)
            self.ups.append(weight_norm(nn.ConvTranspose1d(in_ch, out_ch, kernel, rate, padding=(kernel - rate) // 2)))
            for k, dilations in zip(config.resblock_kernel_sizes, config.resblock_dilation_sizes, strict=False):
                self.resblocks.append(resblock(out_ch, k, dilations))
        self.conv_post = nn.Conv1d(channels // 2 ** len(self.ups), 1, 7, padding=3, bias=False)

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        x = self.conv_pre(x) + self.cond(g)
        x = upsample_and_fuse(x, self.ups, self.resblocks, self.num_kernels)
        # torch's default slope (0.01) here, not LRELU_SLOPE: that is what the model was trained with.
        return torch.tanh(self.conv_post(F.leaky_relu(x)))


# --------------------------------------------------------------------------------------------------
# The synthesizer
# --------------------------------------------------------------------------------------------------


class SoVITSModel(nn.Module):
    """SoVITS v1/v2 synthesizer for inference (the official ``SynthesizerTrn`` minus training parts).

    Typical use::

        spec = linear_spectrogram(ref_wav_32k, ...)          # ttsopt.audio.mel, [1025, T_ref] (numpy)
        audio = model.decode(codes, phonemes, spec, noise_scale=0.5, seed=0)   # [1, 1, T · 1280]

    Pieces (``reference_embedding``, ``dequantize``, ``enc_p``, ``sample_prior``, ``flow``, ``dec``) are
    public so that exporters can cut the graph where they like (e.g. compute ``ge`` once per voice).
    """

    def __init__(self, config: SoVITSConfig):
        super().__init__()
        self.config = config
        # 25 Hz semantic rate: HuBERT's 50 Hz features are halved by a k2/s2 conv before quantization.
        self.ssl_proj = nn.Conv1d(config.ssl_dim, config.ssl_dim, 2, stride=2)
        self.quantizer = SemanticCodebook(config.codebook_size, config.ssl_dim)
        self.enc_p = TextEncoder(config)
        self.ref_enc = MelStyleEncoder(config.reference_bins, config.style_hidden, config.gin_channels,
                                       config.style_kernel_size, config.style_heads)
        self.flow = ResidualCouplingBlock(config.inter_channels, config.hidden_channels, config.flow_kernel_size,
                                          config.flow_wavenet_layers, config.n_flows, config.gin_channels)
        self.dec = Generator(config)
        if config.speaker_verification:
            self.sv_emb = nn.Linear(config.sv_dim, config.gin_channels)
            self.prelu = nn.PReLU(num_parameters=config.gin_channels)
            self.ge_to512 = nn.Linear(config.gin_channels, config.mrte_channels)

    # -- reference -------------------------------------------------------------------------------

    def speaker_embedding(self, spec: torch.Tensor, sv: torch.Tensor | None = None) -> torch.Tensor:
        """``ge`` ``[B, gin, 1]`` of one reference: its spectrogram ``[B, bins ≥ reference_bins, T]`` and, for
        v2Pro/v2ProPlus, its speaker-verification embedding ``sv [B, sv_dim]``."""
        ge = self.ref_enc(spec[:, :self.config.reference_bins])
        if not self.config.speaker_verification:
            if sv is not None:
                raise ValueError(f"a {self.config.version} model takes no speaker-verification embedding")
            return ge
        if sv is None:
            raise ValueError(f"a {self.config.version} model needs the reference's speaker-verification embedding (sv)")
        return self.prelu(ge + self.sv_emb(sv).unsqueeze(-1))

    def reference_embedding(self, refer: torch.Tensor | Sequence[torch.Tensor],
                            sv: torch.Tensor | Sequence[torch.Tensor] | None = None) -> torch.Tensor:
        """``ge`` ``[B, gin, 1]`` from one spectrogram ``[B, spec_channels, T]`` or a list of them (averaged after
        each reference's PReLU, as the official code does); ``sv`` pairs with ``refer`` (v2Pro/v2ProPlus)."""
        if isinstance(refer, torch.Tensor):
            return self.speaker_embedding(refer, sv if sv is None or isinstance(sv, torch.Tensor) else sv[0])
        if len(refer) == 0:
            raise ValueError("need at least one reference spectrogram")
        svs = [None] * len(refer) if sv is None else [sv] if isinstance(sv, torch.Tensor) else list(sv)
        if len(svs) != len(refer):
            raise ValueError(f"{len(refer)} reference spectrograms but {len(svs)} speaker-verification embeddings")
        return torch.stack([self.speaker_embedding(spec, s) for spec, s in zip(refer, svs, strict=True)], 0).mean(0)

    def text_ge(self, ge: torch.Tensor) -> torch.Tensor:
        """The ``ge`` MRTE adds (its width is fixed at 512): ``ge`` itself, or ``ge_to512(ge)`` for v2Pro/v2ProPlus."""
        if not self.config.speaker_verification:
            return ge
        return self.ge_to512(ge.transpose(1, 2)).transpose(1, 2)

    # -- tokens ----------------------------------------------------------------------------------

    def dequantize(self, codes: torch.Tensor) -> torch.Tensor:
        """Semantic codes ``[1, B, T]`` (25 Hz) → content features ``[B, ssl_dim, 2T]`` (50 Hz, each repeated)."""
        quantized = self.quantizer.decode(codes)
        return F.interpolate(quantized, size=2 * quantized.shape[-1], mode="nearest")

    def extract_latent(self, ssl: torch.Tensor) -> torch.Tensor:
        """HuBERT features ``[B, ssl_dim, T_h]`` (50 Hz) → prompt codes ``[B, 1, T_h // 2]``."""
        return self.quantizer.encode(self.ssl_proj(ssl)).unsqueeze(1)

    # -- synthesis -------------------------------------------------------------------------------

    @staticmethod
    def sample_prior(m_p: torch.Tensor, logs_p: torch.Tensor, noise_scale: float | torch.Tensor = 0.5,
                     noise: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """``z_p = m_p + ε · exp(logs_p) · noise_scale``.

        ``ε`` is ``noise`` when given (must have ``m_p``'s shape), else drawn from ``generator``, else
        from torch's global RNG (the official ``randn_like``). ``noise_scale == 0`` returns ``m_p``.
        """
        if noise is not None:
            if noise.shape != m_p.shape:
                raise ValueError(f"noise must have the prior's shape {list(m_p.shape)}, got {list(noise.shape)} "
                                 f"(the frame count is config.latent_frames(num_tokens, speed))")
            eps = noise.to(m_p.dtype)
        elif not isinstance(noise_scale, torch.Tensor) and noise_scale == 0:
            return m_p
        elif generator is not None:
            eps = torch.randn(m_p.shape, generator=generator, dtype=m_p.dtype, device=m_p.device)
        else:
            eps = torch.randn_like(m_p)
        return m_p + eps * torch.exp(logs_p) * noise_scale

    def decode(self, codes: torch.Tensor, text: torch.Tensor,
               refer: torch.Tensor | Sequence[torch.Tensor] | None = None, *, ge: torch.Tensor | None = None,
               sv: torch.Tensor | Sequence[torch.Tensor] | None = None,
               noise_scale: float | torch.Tensor = 0.5, speed: float = 1.0, noise: torch.Tensor | None = None,
               generator: torch.Generator | None = None, seed: int | None = None) -> torch.Tensor:
        """Semantic codes → waveform ``[B, 1, samples]`` at ``sampling_rate``.

        Args:
            codes: ``[1, B, T]`` int64 semantic tokens (the GPT output, 25 Hz).
            text: ``[B, N]`` int64 phoneme ids of the *target* text only (not the prompt text).
            refer: reference spectrogram(s) ``[B, spec_channels, T_ref]``; several are averaged in ``ge``.
            ge: a precomputed :meth:`reference_embedding` instead of ``refer``.
            sv: v2Pro/v2ProPlus: the speaker-verification embedding(s) ``[B, sv_dim]`` of ``refer``.
            noise_scale: prior temperature; 0.5 is what the official front ends use, 0 is deterministic.
            speed: > 1 speaks faster (the content is resampled to ``int(2T / speed) + 1`` frames).
            noise: explicit ``ε`` ``[B, inter_channels, config.latent_frames(T, speed)]``.
            generator / seed: draw ``ε`` from this generator / a fresh one seeded with ``seed``.
        """
        if (refer is None) == (ge is None):
            raise ValueError("give exactly one of refer (reference spectrogram) or ge (its embedding)")
        if seed is not None:
            if generator is not None:
                raise ValueError("give generator or seed, not both")
            generator = torch.Generator(device=codes.device).manual_seed(seed)
        if ge is None:
            ge = self.reference_embedding(refer, sv)
        _, m_p, logs_p = self.enc_p(self.dequantize(codes), text, self.text_ge(ge), speed)
        z_p = self.sample_prior(m_p, logs_p, noise_scale, noise, generator)
        z = self.flow(z_p, ge)
        return self.dec(z, ge)

    def forward(self, codes: torch.Tensor, text: torch.Tensor, refer: torch.Tensor,
                noise: torch.Tensor | None = None, noise_scale: float | torch.Tensor = 0.5,
                speed: float = 1.0, sv: torch.Tensor | None = None) -> torch.Tensor:
        """Tensor-only entry point (export-friendly): :meth:`decode` with one reference and explicit noise."""
        return self.decode(codes, text, refer, noise_scale=noise_scale, speed=speed, noise=noise, sv=sv)
