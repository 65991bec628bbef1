"""GPT-SoVITS "s1" GPT (Text2SemanticDecoder) for inference, with an explicit fixed-capacity KV cache.

The model turns phonemes (+ per-phoneme BERT features) and the prompt's semantic tokens into logits over
the next semantic token (1024 codes + EOS).  Generation is split into the two pieces an exported runtime
needs, so that each can become one ONNX graph:

* :meth:`Text2SemanticDecoder.prefill` — run the whole prompt once, return the logits of the last
  position and the K/V cache of every layer, padded to a fixed capacity;
* :meth:`Text2SemanticDecoder.decode_step` — embed one new token, write its K/V into the cache at a given
  slot, attend over the visible slots and return the logits and the updated cache.

The cache is a pair of tensors ``[n_layer, batch, heads, capacity, head_dim]`` (one for K, one for V).
Nothing is grown per step: a step writes slot ``cache_index`` with an elementwise select and masks the
slots after it, so shapes never change during decoding (static shapes for TensorRT / CUDA graphs, IO
binding for onnxruntime).  Sampling is not part of the model; see :mod:`.sampling`.

Module and parameter names mirror the official state dict (after stripping its ``model.`` prefix), so an
official checkpoint loads with a plain ``load_state_dict``; see :mod:`.gpt_checkpoint`.

Numerics follow the official inference path (``infer_panel_naive``): post-norm transformer layers,
LayerNorm eps 1e-5, ReLU FFN of width 4·hidden, no final norm, text and audio sinusoidal positions that
BOTH start at 0 and are scaled by their own learned ``alpha`` (the embeddings themselves are not scaled).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ttsopt.families.gpt_sovits.cached_attention import cached_attention

#: Width of the BERT features the official front end produces (chinese-roberta-wwm-ext-large).
BERT_DIM = 1024

#: Phoneme vocabulary sizes of the two symbol tables; v3/v4/v2Pro GPTs use the v2 table.
PHONEME_VOCAB_VERSIONS = {512: "v1", 732: "v2"}


@dataclass(frozen=True)
class GPTConfig:
    """Sizes of the s1 GPT, read from the checkpoint's ``config`` (``s1longer(-v2).yaml``).

    ``ffn_dim`` is not a config field in the official code (``linear_units`` is ignored there; the FFN is
    hard-coded to ``4 * hidden_dim``); it is kept explicit here so the loader can check it against the
    tensors.  ``max_sec`` and ``default_top_k`` do not affect the network; they travel with the model
    because the runtime needs them (early-stop limit, the exporter's default top-k).
    """

    vocab_size: int = 1025
    phoneme_vocab_size: int = 732
    hidden_dim: int = 512
    num_heads: int = 16
    num_layers: int = 24
    ffn_dim: int = 2048
    eos_token: int = 1024
    bert_dim: int = BERT_DIM
    layer_norm_eps: float = 1e-5
    max_sec: int = 54
    default_top_k: int = 15

    def __post_init__(self) -> None:
        if self.hidden_dim % self.num_heads:
            raise ValueError(f"hidden_dim {self.hidden_dim} is not divisible by num_heads {self.num_heads}")
        if self.eos_token != self.vocab_size - 1:
            raise ValueError(f"EOS {self.eos_token} must be the last token (vocab_size - 1 = {self.vocab_size - 1})")

    @property
    def head_dim(self) -> int:
        return self.hidden_dim // self.num_heads

    @property
    def symbol_version(self) -> str:
        """``"v1"`` or ``"v2"``: which phoneme table the text front end must use."""
        return PHONEME_VOCAB_VERSIONS.get(self.phoneme_vocab_size, "unknown")



# ------------------------------------------------------------------------------------------------------
# Embeddings
# ------------------------------------------------------------------------------------------------------


def sinusoid_table(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal encodings of integer ``positions`` (any shape) → ``positions.shape + (dim,)``, float32.

    Even channels hold ``sin(pos · w_i)``, odd channels ``cos(pos · w_i)`` (interleaved, not
    concatenated), with ``w_i = exp(-2i · ln(10000) / dim)``, evaluated in float32 exactly like the
    official table.  It is computed from the positions instead of being looked up in a stored table: the
    result is the same, there is no 4000-position limit, and an exported graph carries no constant.
    Keep this in float32 in reduced-precision engines: positions reach the thousands and fp16 ``sin`` of
    such arguments is meaningless.
    """
    inv_freq = torch.exp(
        torch.arange(0, dim, 2, dtype=torch.float32, device=positions.device) * -(math.log(10000.0) / dim)
    )
    angles = positions.to(torch.float32).unsqueeze(-1) * inv_freq
    return torch.stack((torch.sin(angles), torch.cos(angles)), dim=-1).flatten(-2)


class TokenEmbedding(nn.Module):
    """A lookup table; wrapped only so the parameter is named ``word_embeddings.weight`` as officially."""

    def __init__(self, num_embeddings: int, dim: int):
        super().__init__()
        self.word_embeddings = nn.Embedding(num_embeddings, dim)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.word_embeddings(ids)


class ScaledPositionalEncoding(nn.Module):
    """Adds ``alpha · PE[position]``; ``alpha`` is a learned scalar, one per stream (text, audio).

    The input embedding is NOT multiplied by sqrt(dim) (the official module is built with ``scale=False``).
    """

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim
        self.alpha = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """``x`` [B, T, D]; ``positions`` [T] or [B, T] integer positions."""
        return x + self.alpha * sinusoid_table(positions, self.dim).to(x.dtype)


# ------------------------------------------------------------------------------------------------------
# Transformer
# ------------------------------------------------------------------------------------------------------


class T2SSelfAttention(nn.Module):
    """Multi-head self-attention with a packed Q/K/V projection (rows: Q, then K, then V).

    Split in three so that every way of running the model (prefill, decode step, the exported graph)
    shares them: :meth:`project` (input → per-head q, k, v), :meth:`attend` (softmax attention over cached
    and new keys under a boolean "may attend" mask), :meth:`merge_heads` (heads side by side for ``out_proj``).
    The exported graph attends with :func:`.cached_attention.cached_attention` on the packed projection instead.
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        d = config.hidden_dim
        self.num_heads = config.num_heads
        self.head_dim = config.head_dim
        self.in_proj_weight = nn.Parameter(torch.empty(3 * d, d))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * d))
        self.out_proj = nn.Linear(d, d)
        nn.init.xavier_uniform_(self.in_proj_weight)

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        return x.reshape(batch, length, self.num_heads, self.head_dim).transpose(1, 2)

    def project(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """[B, T, D] → q, k, v, each [B, heads, T, head_dim]."""
        q, k, v = F.linear(hidden, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1)
        return self._split_heads(q), self._split_heads(k), self._split_heads(v)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, k_past: torch.Tensor,
               v_past: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """softmax(q·[k_past, k]ᵀ/√head_dim, blocked where ``allowed`` is False)·[v_past, v] → [B, heads, T_q, head_dim],
        without concatenating (copying) the cache.

        ``k_past``/``v_past`` [B, heads, C, head_dim] are read, never written (C may be 0); ``allowed``
        [B, 1, T_q, C + T_q] says which cache slots and which new positions each query may see. Written out
        (not SDPA) so the exported graph is plain MatMul/Softmax on every runtime; every query row always
        has at least one allowed key, so the softmax never sees a row of −inf only.
        """
        scale = 1.0 / math.sqrt(self.head_dim)
        past = torch.matmul(q, k_past.transpose(-1, -2)) * scale
        new = torch.matmul(q, k.transpose(-1, -2)) * scale
        weights = torch.softmax(torch.cat((past, new), dim=-1).masked_fill(~allowed, float("-inf")), dim=-1)
        slots = k_past.shape[2]
        return torch.matmul(weights[..., :slots], v_past) + torch.matmul(weights[..., slots:], v)

    def merge_heads(self, context: torch.Tensor) -> torch.Tensor:
        """[B, heads, T, head_dim] → [B, T, D] (heads side by side, as the output projection reads them)."""
        batch, _, length, _ = context.shape
        return context.transpose(1, 2).reshape(batch, length, self.num_heads * self.head_dim)


class T2SDecoderLayer(nn.Module):
    """One post-norm layer: ``h = LN1(h + Attn(h)); h = LN2(h + W2·ReLU(W1·h))``."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        d = config.hidden_dim
        self.self_attn = T2SSelfAttention(config)
        self.linear1 = nn.Linear(d, config.ffn_dim)
        self.linear2 = nn.Linear(config.ffn_dim, d)
        self.norm1 = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.norm2 = nn.LayerNorm(d, eps=config.layer_norm_eps)

    def finish(self, hidden: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Everything after the attention product (``context`` [B, T, D], heads merged): output projection,
        residuals, norms and the FFN."""
        hidden = self.norm1(hidden + self.self_attn.out_proj(context))
        return self.norm2(hidden + self.linear2(F.relu(self.linear1(hidden))))


class T2SDecoderStack(nn.Module):
    """The layer list, under the official name ``h.layers``; the loops live in the model."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.layers = nn.ModuleList(T2SDecoderLayer(config) for _ in range(config.num_layers))


# ------------------------------------------------------------------------------------------------------
# The model
# ------------------------------------------------------------------------------------------------------


def prefill_attention_mask(text_len: int | torch.Tensor, total_len: int | torch.Tensor,
                           device: torch.device | None = None) -> torch.Tensor:
    """Boolean ``[total_len, total_len]`` mask, True where a query (row) may attend a key (column).

    Text rows see every text column and no audio column; audio rows see every text column and the audio
    columns up to and including themselves.  With no prompt (reference-free mode, ``text_len ==
    total_len``) this is all True.
    """
    rows = torch.arange(total_len, device=device).unsqueeze(1)
    cols = torch.arange(total_len, device=device).unsqueeze(0)
    return (cols < text_len) | ((rows >= text_len) & (cols <= rows))


class Text2SemanticDecoder(nn.Module):
    """The s1 GPT: embeddings, ``num_layers`` post-norm layers, and the (bias-free) output layer.

    Inputs follow the official layout: ``phoneme_ids`` [B, N] (prompt-text phonemes first, then the
    target text's), ``bert_features`` [B, 1024, N] channel-first, ``prompt_tokens`` [B, P] semantic
    tokens of the reference audio (``None`` or P = 0 for reference-free mode).  Batch rows in a prefill
    must share N and P (no padding); decode steps take per-row positions, so caches of separately
    prefilled requests can be concatenated along the batch dimension and decoded together.
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        d = config.hidden_dim
        self.bert_proj = nn.Linear(config.bert_dim, d)
        self.ar_text_embedding = TokenEmbedding(config.phoneme_vocab_size, d)
        self.ar_text_position = ScaledPositionalEncoding(d)
        self.ar_audio_embedding = TokenEmbedding(config.vocab_size, d)
        self.ar_audio_position = ScaledPositionalEncoding(d)
        self.h = T2SDecoderStack(config)
        self.ar_predict_layer = nn.Linear(d, config.vocab_size, bias=False)

    @staticmethod
    def expected_shapes(config: GPTConfig) -> dict[str, torch.Size]:
        """Parameter name → shape for ``config``, built on the meta device (no memory, no init cost)."""
        with torch.device("meta"):
            return {name: tensor.shape for name, tensor in Text2SemanticDecoder(config).state_dict().items()}

    # -- embeddings ---------------------------------------------------------------------------------------

    def embed_text(self, phoneme_ids: torch.Tensor, bert_features: torch.Tensor) -> torch.Tensor:
        """Phoneme embedding + projected BERT feature + alpha_text · PE[0..N-1] → [B, N, D]."""
        x = self.ar_text_embedding(phoneme_ids) + self.bert_proj(bert_features.transpose(1, 2))
        positions = torch.arange(phoneme_ids.shape[1], device=phoneme_ids.device)
        return self.ar_text_position(x, positions)

    def embed_audio(self, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Semantic-token embedding + alpha_audio · PE[positions] → [B, T, D].

        Audio positions count from 0 at the first prompt token, independently of the text positions.
        """
        return self.ar_audio_position(self.ar_audio_embedding(tokens), positions)

    def embed_prefill(self, phoneme_ids: torch.Tensor, bert_features: torch.Tensor,
                      prompt_tokens: torch.Tensor | None = None) -> torch.Tensor:
        """The transformer input of the prefill: concat(text part, prompt part) → [B, N + P, D]."""
        text = self.embed_text(phoneme_ids, bert_features)
        if prompt_tokens is None:
            return text
        positions = torch.arange(prompt_tokens.shape[1], device=prompt_tokens.device)
        return torch.cat((text, self.embed_audio(prompt_tokens, positions)), dim=1)

    # -- prefill ------------------------------------------------------------------------------------------

    def prefill(self, phoneme_ids: torch.Tensor, bert_features: torch.Tensor,
                prompt_tokens: torch.Tensor | None = None,
                cache_capacity: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Run the prompt → (logits [B, vocab] of the last position, k_cache, v_cache).

        The caches are ``[n_layer, B, heads, capacity, head_dim]`` with slots ``0 .. N+P-1`` filled and
        the rest zero; ``cache_capacity`` None means exactly N + P slots.  The first generated token
        then goes to slot ``N + P`` with audio position ``P``.
        """
        hidden = self.embed_prefill(phoneme_ids, bert_features, prompt_tokens)
        batch, total_len = hidden.shape[:2]
        allowed = prefill_attention_mask(phoneme_ids.shape[1], total_len, hidden.device).expand(batch, -1, -1)
        c = self.config
        empty = [hidden.new_zeros(batch, c.num_heads, 0, c.head_dim)] * c.num_layers
        logits, keys, values = self.forward_cached(hidden, empty, empty, allowed)
        k_cache, v_cache = torch.stack(keys), torch.stack(values)
        if cache_capacity is not None:
            if cache_capacity < total_len:
                raise ValueError(f"cache_capacity {cache_capacity} < prompt length {total_len}")
            pad = (0, 0, 0, cache_capacity - total_len)
            k_cache, v_cache = F.pad(k_cache, pad), F.pad(v_cache, pad)
        return logits, k_cache, v_cache

    # -- one decode step ----------------------------------------------------------------------------------

    def decode_step(self, token: torch.Tensor, position: torch.Tensor, k_cache: torch.Tensor,
                    v_cache: torch.Tensor, cache_index: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Feed one token per row → (logits [B, vocab], new k_cache, new v_cache).

        ``token`` [B] the token sampled at the previous step; ``position`` [B] its audio position
        (``P + j`` for the j-th generated token, 0-based; ``j`` in reference-free mode); ``cache_index``
        [B] the slot its K/V go to (``N + P + j``).  Slots after ``cache_index`` are ignored, so stale
        or zero content there is harmless.  The input caches are not modified.
        """
        hidden = self.embed_audio(token.reshape(-1, 1), position.reshape(-1, 1))
        slots = torch.arange(k_cache.shape[3], device=k_cache.device)
        index = cache_index.reshape(-1, 1, 1)                      # [B, 1, 1]
        # The slots before each row's index, then the new position itself.
        allowed = torch.cat(((slots < index), torch.ones_like(index, dtype=torch.bool)), dim=-1)  # [B, 1, capacity + 1]
        logits, keys, values = self.forward_cached(hidden, list(k_cache), list(v_cache), allowed)
        write = (slots == index).unsqueeze(-1)                     # [B, 1, capacity, 1]   (broadcast over heads)
        return (logits, torch.stack([torch.where(write, k, past) for k, past in zip(keys, k_cache, strict=True)]),
                torch.stack([torch.where(write, v, past) for v, past in zip(values, v_cache, strict=True)]))


    # -- the one transformer pass: new positions over a caller-owned cache -----------------------------

    def forward_cached(self, hidden: torch.Tensor, k_past: list[torch.Tensor], v_past: list[torch.Tensor],
                       allowed: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        """Run ``S`` new positions (embedded, [B, S, D]) against per-layer caches ``[B, heads, C, head_dim]``.

        Returns the logits of the last new position and the new positions' K/V per layer
        ([B, heads, S, head_dim]); the caller writes them into its cache. It is the only transformer pass:
        :meth:`prefill` is it over an empty cache with the prefill mask, :meth:`decode_step` with S = 1 and
        the filled slots allowed, and the exported ``gpt_transformer`` graph is it with flat tensors. The
        cache is only read: nothing is copied per step.

        The last layer computes every position's K/V but the attention, output projection and FFN of the last
        position only: nothing else of it reaches the outputs (every operation after the K/V projection is
        row-wise). That is 1/24 of a 91-position prefill's work at the released size, done for nothing before.
        """
        allowed = allowed.unsqueeze(1)
        new_keys, new_values = [], []
        last = len(self.h.layers) - 1
        for index, (layer, k_cache, v_cache) in enumerate(zip(self.h.layers, k_past, v_past, strict=True)):
            q, k, v = layer.self_attn.project(hidden)
            if index == last:
                q, hidden, allowed = q[:, :, -1:], hidden[:, -1:], allowed[:, :, -1:]
            hidden = layer.finish(hidden, layer.self_attn.merge_heads(layer.self_attn.attend(q, k, v, k_cache, v_cache, allowed)))
            new_keys.append(k)
            new_values.append(v)
        return self.ar_predict_layer(hidden[:, -1]), new_keys, new_values

    def forward_in_place(self, hidden: torch.Tensor, attention_bias: torch.Tensor, seqlens_k: torch.Tensor,
                         total_sequence_length: torch.Tensor, k_past: list[torch.Tensor], v_past: list[torch.Tensor]
                         ) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        """:meth:`forward_cached` as the exported graph computes it: each layer's attention is
        :func:`.cached_attention.cached_attention`, which writes the new positions' K/V into the caches (returned)
        after each row's filled slots (``seqlens_k[b] + 1 - S`` of them) and attends over the filled slots under the
        additive ``attention_bias`` [B or 1, 1, S, T] (0 where a query may attend, −inf where not).

        As in :meth:`forward_cached`, the last layer's output projection and FFN run for the last position only
        (its attention runs for every position: the kernel writes every position's K/V in the same call)."""
        keys, values = [], []
        last = len(self.h.layers) - 1
        for index, (layer, k_cache, v_cache) in enumerate(zip(self.h.layers, k_past, v_past, strict=True)):
            attention = layer.self_attn
            qkv = F.linear(hidden, attention.in_proj_weight, attention.in_proj_bias)
            context, k_cache, v_cache = cached_attention(qkv, k_cache, v_cache, seqlens_k, total_sequence_length,
                                                         attention_bias, attention.num_heads)
            if index == last:
                hidden, context = hidden[:, -1:], context[:, -1:]
            hidden = layer.finish(hidden, context)
            keys.append(k_cache)
            values.append(v_cache)
        return self.ar_predict_layer(hidden[:, -1]), keys, values


# ------------------------------------------------------------------------------------------------------
# Export-shaped wrappers and a host-side binding
# ------------------------------------------------------------------------------------------------------


class TextEmbeddingGraph(nn.Module):
    """``phoneme_ids [B, N]``, ``bert_features [B, 1024, N]`` → the text part of the GPT input ``[B, N, D]``."""

    def __init__(self, model: Text2SemanticDecoder):
        super().__init__()
        self.model = model

    def forward(self, phoneme_ids: torch.Tensor, bert_features: torch.Tensor) -> torch.Tensor:
        return self.model.embed_text(phoneme_ids, bert_features)


class AudioEmbeddingGraph(nn.Module):
    """``tokens [B, T]``, ``positions [B, T]`` → semantic-token embeddings with positions ``[B, T, D]``."""

    def __init__(self, model: Text2SemanticDecoder):
        super().__init__()
        self.model = model

    def forward(self, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return self.model.embed_audio(tokens, positions)


class TransformerGraph(nn.Module):
    """``forward(hidden, attention_bias, seqlens_k, total_sequence_length, past_key.0 … past_key.{L-1}, past_value.0 …)``
    → ``(logits, present_key.0 …, present_value.0 …)``: :meth:`Text2SemanticDecoder.forward_in_place` with flat
    tensors. One graph serves the prefill and every decode step, so the GPT weights are stored once; the runtime binds
    each ``past_*`` and its ``present_*`` to the same buffer (:mod:`ttsopt.runtime.gpt`).
    """

    def __init__(self, model: Text2SemanticDecoder):
        super().__init__()
        self.model = model
        self.num_layers = model.config.num_layers

    def forward(self, hidden: torch.Tensor, attention_bias: torch.Tensor, seqlens_k: torch.Tensor,
                total_sequence_length: torch.Tensor, *caches: torch.Tensor) -> tuple[torch.Tensor, ...]:
        layers = self.num_layers
        logits, keys, values = self.model.forward_in_place(hidden, attention_bias, seqlens_k, total_sequence_length,
                                                           list(caches[:layers]), list(caches[layers:]))
        return (logits, *keys, *values)


def bind_generation_callables(model: Text2SemanticDecoder, phoneme_ids: np.ndarray, bert_features: np.ndarray,
                              prompt_tokens: np.ndarray | None, max_new_tokens: int = 1500
                              ) -> tuple[Callable[[], np.ndarray], Callable[[int, int], np.ndarray]]:
    """Bind one request (batch 1) to ``(prefill_fn, step_fn)`` for :func:`.sampling.generate`.

    ``prefill_fn()`` returns the raw logits [vocab]; ``step_fn(token, position)`` feeds one token at
    the given audio position and returns the next raw logits.  The cache capacity is
    ``N + P + max_new_tokens``; the cache slot of a step is ``N + position``.  This is the PyTorch
    reference runtime; an onnxruntime session plugs into the same loop the same way.
    """
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    ids = torch.as_tensor(np.asarray(phoneme_ids), dtype=torch.long, device=device).reshape(1, -1)
    bert = torch.as_tensor(np.asarray(bert_features), dtype=dtype, device=device).reshape(1, model.config.bert_dim, -1)
    prompt = None
    if prompt_tokens is not None and np.asarray(prompt_tokens).size:
        prompt = torch.as_tensor(np.asarray(prompt_tokens), dtype=torch.long, device=device).reshape(1, -1)
    text_len = ids.shape[1]
    capacity = text_len + (0 if prompt is None else prompt.shape[1]) + max_new_tokens
    state: dict[str, torch.Tensor] = {}

    @torch.inference_mode()
    def prefill_fn() -> np.ndarray:
        logits, state["k"], state["v"] = model.prefill(ids, bert, prompt, capacity)
        return logits[0].float().cpu().numpy()

    @torch.inference_mode()
    def step_fn(token: int, position: int) -> np.ndarray:
        if text_len + position >= capacity:
            raise ValueError(f"KV cache full: capacity {capacity} slots (max_new_tokens={max_new_tokens})")
        logits, state["k"], state["v"] = model.decode_step(
            torch.tensor([token], device=device), torch.tensor([position], device=device),
            state["k"], state["v"], torch.tensor([text_len + position], device=device))
        return logits[0].float().cpu().numpy()

    return prefill_fn, step_fn
