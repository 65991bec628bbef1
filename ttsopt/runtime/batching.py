"""Continuous (in-flight) batching of the GPT decode: every concurrent request's next token in one step.

At batch 1 a decode step of the GPT reads every weight once to make one token: it is bound by memory traffic,
not arithmetic. Stepping B requests together reads the weights once for B tokens (the ``gpt_transformer``
graph has a batch dimension and per-row cache lengths), so B rows cost far less than B steps (issue 24's
measurement on the real-size v2 graph: 1.13x the time for 2 rows, 1.94x for 8).

:class:`DecodeScheduler` has no thread of its own: a step is run by whichever request's thread needs its next token
while no step is running (the others wait for that step and take what it decided for them):

- **join**: a request's prefill runs on its own thread, beside the running steps (a prefill is one graph call
  over all prompt positions; run inside a step it would stall every running stream for its duration), on a cache
  of its own; the next step copies that cache into a free row of the batched store;
- **step**: one ``gpt_audio_embedding`` and one ``gpt_transformer`` call for all active rows, rows at
  different lengths side by side (each row attends over its own filled slots);
- **sample**: each row decides its token with its own :class:`~ttsopt.runtime.sampling.TokenLoop`
  (parameters, random generator, history, stop rules), so a request gets the same tokens alone or in any
  batch (tested: greedy and seeded sampling, with requests joining and leaving);
- **leave**: at EOS, the token cap, early stop, the caller's ``stop()`` (cancellation, timeout) or the
  consumer closing its iterator; the last row moves into the freed one (one row copy), so the active rows are
  always ``[0, n)`` of the store and a step feeds the store's arrays without gathering them.

So the decode runs only while some request is waiting for a token: a request busy with its SoVITS work (a streamed
piece) does not hold up the others (they step, its tokens wait for it), and when every request is busy the decode
stops and the SoVITS work has the cores. A request alone runs its steps on its own thread, one after the other with
its pieces, as an unbatched decode does: no hand-off to another thread and no decode running ahead of it. The first
design (a decode thread of its own, pausing while every consumer was >= 4 tokens behind) made a lone stream's first
audio 16 % later than before batching (513 -> 594 ms); here a lone request's steps are the unbatched decode's steps
on the same thread (``tests/gpt_sovits/test_batching.py``), and ``examples/bench_lone_stream.py`` times the two
side by side (BENCHMARKS.md, "Serving throughput").
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field

import numpy as np

from ttsopt.errors import TtsoptError
from ttsopt.runtime.gpt import AUDIO_EMBEDDING, CACHE_BLOCK, GPT, Decoder, InPlaceTransformer, KVCache, block_capacity, step_inputs
from ttsopt.runtime.sampling import Cancelled, GenerationResult, SamplingParams, StopFn, TokenLoop


class BatchedCache:
    """Per-layer K and V ``[rows, heads, capacity, head_dim]``; rows ``[0, n)`` are active, row r holds
    ``lengths[r]`` filled slots. Capacity is shared (the longest row's) and grows a :data:`~ttsopt.runtime.gpt.CACHE_BLOCK`
    at a time, as a lone request's cache does (one copy per growth); a step's attention reads each row's filled
    slots only (``seqlens_k``), so a short row beside a long one reads what it reads alone."""

    def __init__(self, layers: int, heads: int, head_dim: int, rows: int, capacity: int, max_capacity: int):
        self.layers, self.heads, self.head_dim, self.max_capacity = layers, heads, head_dim, max_capacity
        self.rows, self.n = rows, 0
        self.lengths = np.zeros(rows, np.int64)
        self.keys = [np.zeros((rows, heads, capacity, head_dim), np.float32) for _ in range(layers)]
        self.values = [np.zeros((rows, heads, capacity, head_dim), np.float32) for _ in range(layers)]

    @property
    def capacity(self) -> int:
        return self.keys[0].shape[2]

    def _grow(self, needed: int) -> None:
        if needed <= self.capacity:
            return
        capacity = block_capacity(needed, self.max_capacity)
        filled = int(self.lengths[: self.n].max(initial=0))
        for buffers in (self.keys, self.values):
            for i, old in enumerate(buffers):
                grown = np.zeros((self.rows, self.heads, capacity, self.head_dim), np.float32)
                grown[: self.n, :, :filled] = old[: self.n, :, :filled]
                buffers[i] = grown

    def insert(self, cache: KVCache) -> int:
        """Copy a prefilled request's cache into the next free row; its index. An empty store first goes back to
        the size this request needs (a long request before it does not make every later one read its slots)."""
        row, length = self.n, cache.length
        if self.n == 0 and self.capacity > block_capacity(length + 1, self.max_capacity):
            small = block_capacity(length + 1, self.max_capacity)
            self.keys = [np.zeros((self.rows, self.heads, small, self.head_dim), np.float32) for _ in range(self.layers)]
            self.values = [np.zeros((self.rows, self.heads, small, self.head_dim), np.float32) for _ in range(self.layers)]
        self._grow(length + 1)
        for mine, theirs in ((self.keys, cache.keys), (self.values, cache.values)):
            for i in range(self.layers):
                mine[i][row, :, :length] = theirs[i][0, :, :length]
        self.lengths[row] = length
        self.n += 1
        return row

    def remove(self, row: int) -> None:
        """Free ``row``: the last active row moves into it (callers mirror the move)."""
        last = self.n - 1
        if row != last:
            length = self.lengths[last]
            for buffers in (self.keys, self.values):
                for i in range(self.layers):
                    buffers[i][row, :, :length] = buffers[i][last, :, :length]
            self.lengths[row] = length
        self.n -= 1

    def run(self, transformer: InPlaceTransformer, hidden: np.ndarray) -> np.ndarray:
        """One new position per active row (``hidden`` [n, 1, D]) through ``transformer``, each row's K/V written
        after its own filled slots: the logits ``[n, vocab]``."""
        n = self.n
        needed = int(self.lengths[:n].max()) + 1
        if needed > self.max_capacity:
            raise TtsoptError(f"the GPT context would hold {needed} positions; this package allows {self.max_capacity}: "
                              "use a shorter prompt or text, or fewer new tokens")
        self._grow(needed)
        logits = transformer(step_inputs(hidden, np.ones((1, 1), bool), self.lengths[:n]),
                             [k[:n] for k in self.keys], [v[:n] for v in self.values])
        self.lengths[:n] += 1
        return logits


@dataclass(eq=False)
class _Row:
    """One request in the batch: its loop state, the token to feed next, its decided tokens not yet taken."""

    loop: TokenLoop
    token: int
    position: int
    stop: StopFn | None
    out: collections.deque = field(default_factory=collections.deque)
    abandoned: bool = False
    queued_at: float = field(default_factory=time.perf_counter)


@dataclass
class BatchStats:
    """What the scheduler did (for ``/metrics`` and tests): steps run, rows stepped, the largest batch."""

    steps: int = 0
    rows_stepped: int = 0
    largest_batch: int = 0
    step_seconds: float = 0.0


class DecodeScheduler:
    """The decode steps of every concurrent request of one :class:`GPT`, batched (see the module docstring).

    :meth:`tokens` has :meth:`GPT.tokens`'s contract, so callers (``speak``, ``stream``, the server) are
    unchanged; ``GPT.batch()`` routes them here. :meth:`close` cancels the requests still running
    (:class:`Cancelled`).

    ``on_step(rows, seconds)`` and ``on_join(wait_seconds)``, when set, observe every step and every row's wait
    for a place in the batch (the server's ``/metrics``)."""

    on_step: Callable[[int, float], None] | None = None
    on_join: Callable[[float], None] | None = None

    def __init__(self, gpt: GPT, max_rows: int):
        if max_rows < 1:
            raise TtsoptError(f"the decode batch must hold at least one request, got {max_rows}")
        self.gpt, self.max_rows = gpt, max_rows
        self.stats = BatchStats()
        self._joining: list[tuple[_Row, KVCache]] = []
        self._active: list[_Row] = []  # only the thread holding the step touches it, and the store
        self._cache = BatchedCache(gpt.layers, gpt.heads, gpt.head_dim, max_rows, CACHE_BLOCK, gpt.max_capacity)
        self._transformer = InPlaceTransformer.of(gpt.package)  # used by the thread holding the step only
        self._lock = threading.Condition()
        self._stepping = False
        self._closed = False

    # -- the requests' side ---------------------------------------------------------------------------

    def tokens(self, phoneme_ids: np.ndarray, bert_features: np.ndarray | Callable[[], np.ndarray] | None,
               prompt_tokens: np.ndarray | None, params: SamplingParams, record_logits: bool = False,
               stop: StopFn | None = None) -> Generator[int, None, GenerationResult]:
        """One request: prefill here, then its steps in the shared batch; yields tokens as they are decided."""
        loop = TokenLoop(prompt_tokens, params, record_logits=record_logits)
        decoder = Decoder(self.gpt)
        token = loop.decide(decoder.prefill(phoneme_ids, bert_features, prompt_tokens))
        if token is not None:
            yield token
        if loop.result is not None:
            return loop.result
        if stop is not None and stop():
            raise Cancelled("generation was cancelled: the request was stopped or timed out")
        row = _Row(loop, token, loop.advance(), stop)
        with self._lock:
            if self._closed:
                raise Cancelled("the decode scheduler was closed")
            self._joining.append((row, decoder.cache))
        try:
            while True:
                item = self._next(row)
                if isinstance(item, GenerationResult):
                    return item
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            with self._lock:
                row.abandoned = True  # a consumer that stops early frees the row at the next step

    def _next(self, row: _Row) -> int | GenerationResult | BaseException:
        """The row's next item: one already decided, else the result of a step this thread runs (when no other
        thread is stepping), else what another thread's step decides."""
        while True:
            with self._lock:
                while True:
                    if row.out:
                        return row.out.popleft()
                    if self._closed:
                        return Cancelled("the decode scheduler was closed")
                    if not self._stepping:
                        self._stepping = True
                        break
                    self._lock.wait()
            try:
                self._step_once()
            finally:
                with self._lock:
                    self._stepping = False
                    self._lock.notify_all()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._lock.notify_all()

    # -- the step, run by whichever consumer needs a token while no step runs -------------------------

    def _step_once(self) -> None:
        """Admit the rows waiting for a place, drop the stopped ones, and step the batch once."""
        with self._lock:
            while self._joining and len(self._active) < self.max_rows:
                row, cache = self._joining.pop(0)
                self._cache.insert(cache)
                self._active.append(row)
                if self.on_join is not None:
                    self.on_join(time.perf_counter() - row.queued_at)
            self._drop_stopped()
        if not self._active:
            return
        try:
            decided = self._step()
        except BaseException as exc:  # a failed step fails the rows in it, not the scheduler
            decided = [(row, exc) for row in self._active]
            for index in reversed(range(len(self._active))):
                self._leave(index)
        with self._lock:
            for row, item in decided:
                row.out.append(item)

    def _leave(self, index: int) -> None:
        self._cache.remove(index)
        last = self._active.pop()
        if index < len(self._active):
            self._active[index] = last

    def _drop_stopped(self) -> None:
        for index in reversed(range(len(self._active))):
            row = self._active[index]
            if row.abandoned:
                self._leave(index)
            elif row.stop is not None and row.stop():
                row.out.append(Cancelled("generation was cancelled: the request was stopped or timed out"))
                self._leave(index)

    def _step(self) -> list[tuple[_Row, int | GenerationResult]]:
        """One decode step of every active row: what each row decided (a token, then its result when it ended)."""
        started = time.perf_counter()
        rows, package = self._active, self.gpt.package
        tokens = np.array([[row.token] for row in rows], np.int64)
        positions = np.array([[row.position] for row in rows], np.int64)
        hidden = package.run_prepared(AUDIO_EMBEDDING, {"tokens": tokens, "positions": positions})["hidden"]
        logits = self._cache.run(self._transformer, hidden)
        decided, finished = [], []
        for index, row in enumerate(rows):
            token = row.loop.decide(logits[index])
            if token is not None:
                decided.append((row, token))
            if row.loop.result is not None:
                decided.append((row, row.loop.result))
                finished.append(index)
            else:
                row.token, row.position = token, row.loop.advance()
        for index in reversed(finished):
            self._leave(index)
        seconds, stats = time.perf_counter() - started, self.stats
        stats.steps += 1
        stats.rows_stepped += len(logits)
        stats.largest_batch = max(stats.largest_batch, len(logits))
        stats.step_seconds += seconds
        if self.on_step is not None:
            self.on_step(len(logits), seconds)
        return decided


__all__ = ["BatchStats", "BatchedCache", "DecodeScheduler"]
