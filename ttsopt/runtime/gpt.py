"""The GPT-SoVITS GPT in a package: prefill and KV-cache decode steps over three graphs, sampling in numpy.

Graphs: ``gpt_text_embedding`` (phonemes + BERT features → text part), ``gpt_audio_embedding`` (semantic
tokens + positions → audio part) and ``gpt_transformer``, which runs ``S`` new positions against a
caller-owned cache and returns the last position's logits and the new positions' K/V. One transformer
graph serves the prefill (one masked cache slot, the official prefill mask on the new part) and every
decode step (S = 1), so the GPT weights are stored once.

The cache: one array per layer for K and for V, ``[1, heads, capacity, head_dim]``, owned here. A step
feeds the arrays as they are (onnxruntime reads numpy memory in place) with a mask that shows the filled
slots, and writes the one new K/V row back in place: no step copies the cache. The capacity is the filled
length rounded up to ``CACHE_BLOCK`` slots and grows a block at a time (one copy each time), so the attention
reads at most a block of empty slots. Attention cost follows the capacity, not the filled length: reading
the K/V cache is the largest cost of an INT8 step after its weights (24 layers x 2 x 16 heads x 32 x 4 bytes
= 98 KB per slot: 50 MB at 512 slots against 78 MB of INT8 weights); one INT8 step with 250 filled slots
took 0.83x the time at 320 slots that it took at 512, where doubling from 256 had put it (interleaved, real
size). Each growth copies the filled slots (98 KB each): amortised over a block of steps, under 1 % of what a
step reads. A 1500-slot reserve made a short sentence's steps 1.67x slower. ``ttsopt bench`` and
BENCHMARKS.md have the measurements behind the design (vs writing the cache inside the graph).
"""

from __future__ import annotations

from collections.abc import Callable, Generator

import numpy as np

from ttsopt.errors import TtsoptError
from ttsopt.runtime.package import Package
from ttsopt.runtime.sampling import GenerationResult, SamplingParams, StopFn, iterate_tokens

TEXT_EMBEDDING, AUDIO_EMBEDDING, TRANSFORMER = "gpt_text_embedding", "gpt_audio_embedding", "gpt_transformer"
CACHE_BLOCK = 64


def block_capacity(slots: int, max_capacity: int) -> int:
    """``slots`` rounded up to whole :data:`CACHE_BLOCK` s, at most ``max_capacity``."""
    return min(max_capacity, -(-slots // CACHE_BLOCK) * CACHE_BLOCK)


def prefill_mask(text_len: int, total_len: int) -> np.ndarray:
    """``[total, total]`` bool: text rows see all text; audio rows see all text and audio up to themselves."""
    rows, cols = np.arange(total_len)[:, None], np.arange(total_len)[None, :]
    return (cols < text_len) | ((rows >= text_len) & (cols <= rows))


def transformer_feed(hidden: np.ndarray, allowed_new: np.ndarray, keys: list[np.ndarray], values: list[np.ndarray],
                     filled: int) -> dict[str, np.ndarray]:
    """Inputs of ``gpt_transformer``: ``hidden`` [1, S, D] over per-layer caches whose first ``filled`` slots are
    visible; ``allowed_new`` [S, S] says which new positions each new position sees."""
    slots, new = keys[0].shape[2], hidden.shape[1]
    allowed = np.zeros((1, new, slots + new), dtype=bool)
    allowed[0, :, :filled] = True
    allowed[0, :, slots:] = allowed_new
    return {"hidden": hidden, "allowed": allowed, **{f"k_cache.{i}": k for i, k in enumerate(keys)},
            **{f"v_cache.{i}": v for i, v in enumerate(values)}}


class KVCache:
    """Per-layer K and V buffers ``[1, heads, capacity, head_dim]`` with ``length`` filled slots."""

    def __init__(self, layers: int, heads: int, head_dim: int, capacity: int, max_capacity: int):
        self.layers, self.heads, self.head_dim, self.max_capacity = layers, heads, head_dim, max_capacity
        self.length = 0
        self.keys = [np.zeros((1, heads, capacity, head_dim), np.float32) for _ in range(layers)]
        self.values = [np.zeros((1, heads, capacity, head_dim), np.float32) for _ in range(layers)]

    @property
    def capacity(self) -> int:
        return self.keys[0].shape[2]

    def reserve(self, slots: int) -> None:
        """Make room for ``slots`` more positions (whole blocks, one copy per growth)."""
        needed = self.length + slots
        if needed > self.max_capacity:
            raise TtsoptError(f"the GPT context would hold {needed} positions; this package allows {self.max_capacity}: "
                              "use a shorter prompt or text, or fewer new tokens")
        if needed <= self.capacity:
            return
        capacity = block_capacity(needed, self.max_capacity)
        for buffers in (self.keys, self.values):
            for i, old in enumerate(buffers):
                grown = np.zeros((1, self.heads, capacity, self.head_dim), np.float32)
                grown[:, :, : self.length] = old[:, :, : self.length]
                buffers[i] = grown

    def feed(self, hidden: np.ndarray, allowed_new: np.ndarray) -> dict[str, np.ndarray]:
        """The transformer's inputs for ``hidden`` (after :meth:`reserve`): see :func:`transformer_feed`.

        An empty cache (the prefill) is fed as one masked slot, not as its capacity: the prefill's attention
        then spans its own positions only (real-size GPT, 91 positions over a 256-slot cache: 0.68x the time,
        interleaved; logits within 1.3e-6 of the full-capacity feed)."""
        if self.length == 0:
            empty = [np.zeros((1, self.heads, 1, self.head_dim), np.float32)] * self.layers
            return transformer_feed(hidden, allowed_new, empty, empty, 0)
        return transformer_feed(hidden, allowed_new, self.keys, self.values, self.length)

    def append(self, outputs: dict[str, np.ndarray]) -> None:
        new = outputs["k_new.0"].shape[2]
        for i in range(self.layers):
            self.keys[i][:, :, self.length: self.length + new] = outputs[f"k_new.{i}"]
            self.values[i][:, :, self.length: self.length + new] = outputs[f"v_new.{i}"]
        self.length += new


class Decoder:
    """One request's decoding state: its own KV cache and text length. A :class:`GPT` is shared by
    requests (its onnxruntime sessions are thread-safe); each request gets a fresh decoder, so no
    state passes from one request to another, even when they run at the same time."""

    def __init__(self, gpt: GPT):
        self.gpt = gpt
        self.cache: KVCache | None = None
        self.text_len = 0

    def _transformer(self, hidden: np.ndarray, allowed_new: np.ndarray) -> np.ndarray:
        cache = self.cache
        cache.reserve(hidden.shape[1])
        outputs = self.gpt.package.run_prepared(TRANSFORMER, cache.feed(hidden, allowed_new))
        cache.append(outputs)
        return outputs["logits"][0]

    def prefill(self, phoneme_ids: np.ndarray, bert_features: np.ndarray | Callable[[], np.ndarray] | None,
                prompt_tokens: np.ndarray | None, reserve: int = 0) -> np.ndarray:
        """Raw logits ``[vocab]`` of loop index 0; ``reserve`` pre-sizes the cache for that many new tokens.
        ``bert_features`` may be a callable, called now (a queued stream's features are made in its turn).

        Reserve nothing for a generation of unknown length: every step's attention reads the whole
        capacity (filled or not), so a cache sized for the 1500-token cap made each step of a short
        sentence 1.5x slower (real-size GPT: 74 vs 49 ms); growing a block at a time keeps the capacity
        within a block of the filled length."""
        gpt = self.gpt
        bert_features = bert_features() if callable(bert_features) else bert_features
        ids = np.asarray(phoneme_ids, dtype=np.int64).reshape(1, -1)
        bert = np.zeros((1, gpt.bert_dim, ids.shape[1]), np.float32) if bert_features is None else bert_features
        if bert.shape != (1, gpt.bert_dim, ids.shape[1]):
            raise TtsoptError(f"BERT features must be [{gpt.bert_dim}, {ids.shape[1]}] (one column per phoneme, prompt "
                              f"phonemes first), got {list(bert.shape[1:] if bert.ndim == 3 else bert.shape)}")
        parts = [gpt.package.run(TEXT_EMBEDDING, {"phoneme_ids": ids, "bert_features": bert})["hidden"]]
        prompt = np.asarray([] if prompt_tokens is None else prompt_tokens, dtype=np.int64).reshape(1, -1)
        if prompt.size:
            positions = np.arange(prompt.shape[1], dtype=np.int64)[None]
            parts.append(gpt.package.run(AUDIO_EMBEDDING, {"tokens": prompt, "positions": positions})["hidden"])
        hidden = np.concatenate(parts, axis=1)
        total = hidden.shape[1]
        if total > gpt.max_new_positions:
            raise TtsoptError(f"prompt + text are {total} positions; this package's prefill takes at most "
                              f"{gpt.max_new_positions}: shorten the text or the prompt")
        self.text_len = ids.shape[1]
        capacity = block_capacity(total + reserve, gpt.max_capacity)
        self.cache = KVCache(gpt.layers, gpt.heads, gpt.head_dim, capacity, gpt.max_capacity)
        return self._transformer(hidden, prefill_mask(self.text_len, total))

    def step(self, token: int, position: int) -> np.ndarray:
        """Feed the token chosen at the previous loop index at audio ``position``; raw logits of the next."""
        hidden = self.gpt.package.run_prepared(AUDIO_EMBEDDING, {"tokens": np.array([[token]], np.int64),
                                                                 "positions": np.array([[position]], np.int64)})["hidden"]
        return self._transformer(hidden, np.ones((1, 1), dtype=bool))


class GPT:
    """The GPT's graphs. :meth:`generate` and :meth:`tokens` run one request each on a fresh
    :class:`Decoder`; :meth:`prefill` / :meth:`step` drive a default decoder by hand (tests, benchmarks)."""

    def __init__(self, package: Package):
        self.package = package
        config = package.manifest.model_config["gpt"]
        self.layers, self.heads = config["num_layers"], config["num_heads"]
        self.head_dim = config["hidden_dim"] // config["num_heads"]
        self.bert_dim, self.eos, self.default_top_k = config["bert_dim"], config["eos_token"], config["default_top_k"]
        transformer = package.manifest.graphs[TRANSFORMER]
        self.max_capacity = transformer.dims["slots"].max
        self.max_new_positions = transformer.dims["new"].max
        self.max_batch = transformer.dims["batch"].max
        self._decoder = Decoder(self)
        self.scheduler = None
        for graph in (TEXT_EMBEDDING, AUDIO_EMBEDDING, TRANSFORMER):
            package.session(graph)

    def batch(self, max_rows: int | None = None):
        """From now on, batch the decode steps of concurrent requests (:mod:`ttsopt.runtime.batching`) with at
        most ``max_rows`` rows per step (default: the package's largest batch). Returns the scheduler."""
        from ttsopt.runtime.batching import DecodeScheduler

        if self.scheduler is None:
            rows = self.max_batch if max_rows is None else max_rows
            if not 1 <= rows <= self.max_batch:
                raise TtsoptError(f"a decode batch of {rows} rows: this package's GPT takes 1 to {self.max_batch}")
            self.scheduler = DecodeScheduler(self, rows)
        return self.scheduler

    @property
    def cache(self) -> KVCache | None:
        return self._decoder.cache

    @property
    def text_len(self) -> int:
        return self._decoder.text_len

    def prefill(self, phoneme_ids: np.ndarray, bert_features: np.ndarray | None, prompt_tokens: np.ndarray | None,
                reserve: int = 0) -> np.ndarray:
        """:meth:`Decoder.prefill` on the default decoder."""
        self._decoder = Decoder(self)
        return self._decoder.prefill(phoneme_ids, bert_features, prompt_tokens, reserve)

    def step(self, token: int, position: int) -> np.ndarray:
        return self._decoder.step(token, position)

    def tokens(self, phoneme_ids: np.ndarray, bert_features: np.ndarray | Callable[[], np.ndarray] | None,
               prompt_tokens: np.ndarray | None, params: SamplingParams, record_logits: bool = False,
               stop: StopFn | None = None) -> Generator[int, None, GenerationResult]:
        """One request on its own decoder (or in the shared batch after :meth:`batch`): yields tokens as they
        are drawn, returns the result."""
        if self.scheduler is not None:
            return self.scheduler.tokens(phoneme_ids, bert_features, prompt_tokens, params, record_logits, stop)
        decoder = Decoder(self)
        return iterate_tokens(lambda: decoder.prefill(phoneme_ids, bert_features, prompt_tokens), decoder.step,
                              prompt_tokens, params, record_logits=record_logits, stop=stop)

    def generate(self, phoneme_ids: np.ndarray, bert_features: np.ndarray | Callable[[], np.ndarray] | None,
                 prompt_tokens: np.ndarray | None,
                 params: SamplingParams, record_logits: bool = False, stop: StopFn | None = None) -> GenerationResult:
        tokens = self.tokens(phoneme_ids, bert_features, prompt_tokens, params, record_logits, stop)
        while True:
            try:
                next(tokens)
            except StopIteration as done:
                return done.value
