"""The GPT-SoVITS GPT in a package: prefill and KV-cache decode steps over three graphs, sampling in numpy.

Graphs: ``gpt_text_embedding`` (phonemes + BERT features → text part), ``gpt_audio_embedding`` (semantic
tokens + positions → audio part) and ``gpt_transformer``, which runs ``S`` new positions against a
caller-owned cache (``past_key.i``/``past_value.i``, BNSH) and returns the last position's logits and the
caches with the new positions' K/V written (``present_*``). One transformer graph serves the prefill (the
official prefill mask as an additive ``attention_bias``) and every decode step (S = 1), so the GPT weights
are stored once; an INT8 package may also hold ``gpt_prefill``, the same graph with weights for the prefill's
many positions (``quantize`` measures which pays: a decode step streams its weights, a prefill multiplies them by
dozens of rows), and then the prefill runs it.

The cache: one array per layer for K and for V, ``[rows, heads, capacity, head_dim]``, owned here, row ``r``
filled in its first ``lengths[r]`` slots. Each step binds every ``past_*`` input and its ``present_*``
output to the same array (onnxruntime's IOBinding, :class:`InPlaceTransformer`): the attention kernel
(GroupQueryAttention, see :mod:`ttsopt.families.gpt_sovits.cached_attention`) writes the new K/V into it
and reads only each row's filled slots, so no step copies the cache or reads its empty capacity. The
capacity is the filled length rounded up to ``CACHE_BLOCK`` slots and grows a block at a time (one copy of
the filled slots each time, 98 KB per slot at real size: under 1 % of what the steps between two growths
read). ``ttsopt bench`` and BENCHMARKS.md have the measurements behind the design.
"""

from __future__ import annotations

from collections.abc import Callable, Generator

import numpy as np

from ttsopt.errors import TtsoptError
from ttsopt.runtime.package import Package
from ttsopt.runtime.sampling import GenerationResult, SamplingParams, StopFn, iterate_tokens

TEXT_EMBEDDING, AUDIO_EMBEDDING, TRANSFORMER = "gpt_text_embedding", "gpt_audio_embedding", "gpt_transformer"
#: The optional graph the prefill runs instead of ``gpt_transformer`` (same inputs and outputs).
PREFILL = "gpt_prefill"
CACHE_BLOCK = 64


def block_capacity(slots: int, max_capacity: int) -> int:
    """``slots`` rounded up to whole :data:`CACHE_BLOCK` s, at most ``max_capacity``."""
    return min(max_capacity, -(-slots // CACHE_BLOCK) * CACHE_BLOCK)


def prefill_mask(text_len: int, total_len: int) -> np.ndarray:
    """``[total, total]`` bool: text rows see all text; audio rows see all text and audio up to themselves."""
    rows, cols = np.arange(total_len)[:, None], np.arange(total_len)[None, :]
    return (cols < text_len) | ((rows >= text_len) & (cols <= rows))


def attention_bias(allowed: np.ndarray) -> np.ndarray:
    """A boolean "may attend" mask ``[S, T]`` as the graph's additive bias ``[1, 1, S, T]``: 0 or −inf."""
    return np.where(allowed, np.float32(0), np.float32(-np.inf))[None, None]


def step_inputs(hidden: np.ndarray, allowed_new: np.ndarray, lengths: np.ndarray) -> dict[str, np.ndarray]:
    """The transformer's inputs other than the caches: ``hidden`` [B, S, D] after ``lengths`` [B] filled slots per
    row; every filled slot is visible and ``allowed_new`` [S, S] says which new positions each new position sees
    (rows of different lengths take one new position each: the bias's columns are the longest row's)."""
    new, totals = hidden.shape[1], np.asarray(lengths, np.int64) + hidden.shape[1]
    total = int(totals.max())
    allowed = np.ones((new, total), dtype=bool)
    allowed[:, total - new:] = allowed_new
    return {"hidden": hidden, "attention_bias": attention_bias(allowed), "seqlens_k": (totals - 1).astype(np.int32),
            "total_sequence_length": np.array(total, np.int32)}


def transformer_feed(hidden: np.ndarray, allowed_new: np.ndarray, keys: list[np.ndarray], values: list[np.ndarray],
                     filled: int) -> dict[str, np.ndarray]:
    """Every input of ``gpt_transformer`` for one row (a plain run: the ``present_*`` outputs are new arrays of the
    caches' shape): ``hidden`` [1, S, D] after ``filled`` slots of caches whose capacity holds ``filled + S``."""
    return {**step_inputs(hidden, allowed_new, np.array([filled])), **{f"past_key.{i}": k for i, k in enumerate(keys)},
            **{f"past_value.{i}": v for i, v in enumerate(values)}}


class InPlaceTransformer:
    """``gpt_transformer`` with each ``past_*`` input and its ``present_*`` output bound to one cache array
    (onnxruntime IOBinding), so the graph writes the new K/V into the caller's cache. One per cache (a binding is
    not shared between threads); the caches are rebound only when their arrays change (a growth, a new row count)."""

    def __init__(self, session, vocab: int):
        self.session, self.vocab = session, vocab
        self.binding = session.io_binding()
        self._bound: tuple = ()

    @classmethod
    def of(cls, package: Package, graph: str = TRANSFORMER) -> InPlaceTransformer:
        """The package's ``graph`` session (``gpt_transformer`` or ``gpt_prefill``), refused in one line if it is of
        the older protocol."""
        entry = package.manifest.graphs[graph]
        if "past_key.0" not in {spec.name for spec in entry.inputs}:
            raise TtsoptError(f"package {package.path}: its GPT graph is of an older ttsopt (a cache read without "
                              "writing it); re-export the package with this ttsopt")
        return cls(package.session(graph), next(spec.shape[1] for spec in entry.outputs if spec.name == "logits"))

    def __call__(self, inputs: dict[str, np.ndarray], keys: list[np.ndarray], values: list[np.ndarray]) -> np.ndarray:
        """Run on ``inputs`` (:func:`step_inputs`) over ``keys``/``values`` (contiguous float32, written in place):
        the logits ``[B, vocab]``."""
        binding = self.binding
        buffers = (*keys, *values)
        bound = (keys[0].shape, *(array.ctypes.data for array in buffers))
        if bound != self._bound:
            for kind, arrays in (("key", keys), ("value", values)):
                for i, array in enumerate(arrays):
                    for name in (f"past_{kind}.{i}", f"present_{kind}.{i}"):
                        bind = binding.bind_input if name.startswith("past") else binding.bind_output
                        bind(name, "cpu", 0, np.float32, list(array.shape), array.ctypes.data)
            self._bound = bound
        for name, array in inputs.items():
            binding.bind_cpu_input(name, array)
        logits = np.empty((inputs["hidden"].shape[0], self.vocab), np.float32)
        binding.bind_output("logits", "cpu", 0, np.float32, list(logits.shape), logits.ctypes.data)
        self.session.run_with_iobinding(binding)
        return logits


class KVCache:
    """One request's per-layer K and V buffers ``[1, heads, capacity, head_dim]`` with ``length`` filled slots."""

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

    def run(self, transformer: Callable, hidden: np.ndarray, allowed_new: np.ndarray) -> np.ndarray:
        """``hidden`` [1, S, D] through ``transformer`` (an :class:`InPlaceTransformer`, or the PyTorch model in the
        same protocol), its K/V written after the filled slots: the logits ``[1, vocab]``."""
        self.reserve(hidden.shape[1])
        logits = transformer(step_inputs(hidden, allowed_new, np.array([self.length])), self.keys, self.values)
        self.length += hidden.shape[1]
        return logits


class Decoder:
    """One request's decoding state: its own KV cache and text length. A :class:`GPT` is shared by
    requests (its onnxruntime sessions are thread-safe); each request gets a fresh decoder, so no
    state passes from one request to another, even when they run at the same time."""

    def __init__(self, gpt: GPT):
        self.gpt = gpt
        self.cache: KVCache | None = None
        self.text_len = 0
        self._transformer = InPlaceTransformer.of(gpt.package)
        self._prefill = InPlaceTransformer.of(gpt.package, PREFILL) if gpt.has_prefill_graph else self._transformer

    def prefill(self, phoneme_ids: np.ndarray, bert_features: np.ndarray | Callable[[], np.ndarray] | None,
                prompt_tokens: np.ndarray | None, reserve: int = 0) -> np.ndarray:
        """Raw logits ``[vocab]`` of loop index 0; ``reserve`` pre-sizes the cache for that many new tokens.
        ``bert_features`` may be a callable, called now (a queued stream's features are made in its turn).

        Reserve nothing for a generation of unknown length: the attention reads only the filled slots, but a
        cache sized for the 1500-token cap holds 150 MB per request at real size (98 KB per slot) from the start;
        growing a block at a time keeps it within a block of the filled length."""
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
        return self.cache.run(self._prefill, hidden, prefill_mask(self.text_len, total))[0]

    def step(self, token: int, position: int) -> np.ndarray:
        """Feed the token chosen at the previous loop index at audio ``position``; raw logits of the next."""
        hidden = self.gpt.package.run_prepared(AUDIO_EMBEDDING, {"tokens": np.array([[token]], np.int64),
                                                                 "positions": np.array([[position]], np.int64)})["hidden"]
        return self.cache.run(self._transformer, hidden, np.ones((1, 1), dtype=bool))[0]


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
        self.has_prefill_graph = PREFILL in package.manifest.graphs
        for graph in (TEXT_EMBEDDING, AUDIO_EMBEDDING, TRANSFORMER, *((PREFILL,) if self.has_prefill_graph else ())):
            package.session(graph)
        self._decoder = Decoder(self)
        self.scheduler = None

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
