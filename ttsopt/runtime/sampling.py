"""Token sampling and the autoregressive loop of the GPT-SoVITS GPT, in numpy only (no torch).

This reproduces the official ``infer_panel_naive`` / ``AR.models.utils.sample`` semantics, in their
order, with every knob a per-request parameter:

0. EOS suppression: during the first ``eos_suppress_steps`` (11) loop indices EOS can neither be drawn
   nor win the argmax stop check (officially the EOS column is dropped; here it is set to −inf, which is
   the same for every later stage and keeps the vector length fixed).
1. Repetition penalty over every distinct token of the history (prompt tokens included): a positive
   logit is divided by the penalty, a negative one multiplied.
2. Top-p: sort descending, cumulative softmax, drop every token whose cumulative probability exceeds
   ``top_p`` — the token that crosses the threshold is dropped too — but always keep the first.
3. Temperature: divide by ``max(temperature, 1e-5)``.
4. Top-k: keep logits ≥ the k-th largest (ties kept).
5. Softmax, then the "exponential race": ``argmax(probs / q)`` with ``q ~ Exp(1)`` i.i.d., which draws
   exactly from ``probs`` (the official exporters' Gaussian ``q`` is a known bug and is not copied).

Stop rules after each draw: EOS if the draw is EOS **or** the argmax of the penalised logits (stage 1
output) is EOS — the EOS itself is not kept; early stop once more than ``early_stop_num`` tokens were
generated (so ``early_stop_num + 1`` are kept, as officially); a hard cap of ``max_new_tokens`` (the
official loop runs at most 1500 iterations).

Deliberate differences from the official code (its quirks, not its semantics):

* The early-stop and max-length paths: the official callers pass ``y[:, -idx:]`` to SoVITS, which there
  holds ``idx + 1`` new tokens, so the FIRST generated token is silently dropped.  :func:`generate`
  returns every generated token.
* Reference-free mode: the official function returns ``idx = 0`` (callers then take the whole ``y``);
  :class:`GenerationResult.steps` is the real loop index.
* If nothing was generated, the official code appends one ``0`` token ("bad zero prediction");
  here ``tokens`` is simply empty (only reachable with ``eos_suppress_steps = 0``).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ttsopt.errors import TtsoptError

EOS_TOKEN = 1024
StopReason = Literal["eos", "early_stop", "max_new_tokens"]

#: The seed that asks for a fresh random draw: api_v2's ``seed=-1`` (``None`` says the same in Python).
RANDOM_SEED = -1


def resolve_seed(seed: int | None) -> int | None:
    """A seed as users give it (CLI ``--seed``, the server's ``seed``, the API) → what numpy takes: ``None``
    (entropy from the OS) for :data:`RANDOM_SEED` or ``None``; a seed below it is refused."""
    if seed is None or seed == RANDOM_SEED:
        return None
    if seed < RANDOM_SEED:
        raise TtsoptError(f"seed {seed} is negative: give a seed >= 0, or {RANDOM_SEED} for a random one")
    return int(seed)


@dataclass(frozen=True)
class SamplingParams:
    """Per-request decoding parameters; defaults are those of the official front ends.

    ``seed``: ``None`` or -1 (:data:`RANDOM_SEED`, stored as ``None``) draw randomly; any seed >= 0 repeats.
    ``top_k=None`` disables top-k (official export scripts use ``config.inference.top_k``; the webui
    sliders default to 15).  ``greedy=True`` ignores top-k/top-p/temperature and takes the argmax of the
    penalised logits (what ``top_k=1`` gives, without drawing random numbers).  ``early_stop_num=-1``
    disables early stop (official front ends pass 50·max_sec = 2700, which never fires before the cap).
    """

    top_k: int | None = 15
    top_p: float = 1.0
    temperature: float = 1.0
    repetition_penalty: float = 1.35
    greedy: bool = False
    early_stop_num: int = -1
    max_new_tokens: int = 1500
    eos_suppress_steps: int = 11
    eos_token: int = EOS_TOKEN
    seed: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "seed", resolve_seed(self.seed))
        problems = []
        if self.top_k is not None and self.top_k < 1:
            problems.append(f"top_k must be >= 1 or None, got {self.top_k}")
        if not 0.0 < self.top_p <= 1.0:
            problems.append(f"top_p must be in (0, 1], got {self.top_p}")
        if not self.temperature >= 0.0:
            problems.append(f"temperature must be >= 0, got {self.temperature}")
        if not self.repetition_penalty > 0.0:
            problems.append(f"repetition_penalty must be > 0, got {self.repetition_penalty}")
        if self.early_stop_num < -1:
            problems.append(f"early_stop_num must be -1 (off) or >= 0, got {self.early_stop_num}")
        if self.max_new_tokens < 1:
            problems.append(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.eos_suppress_steps < 0:
            problems.append(f"eos_suppress_steps must be >= 0, got {self.eos_suppress_steps}")
        if problems:
            raise TtsoptError("invalid sampling parameters: " + "; ".join(problems))

    def make_rng(self) -> np.random.Generator:
        """A fresh generator from ``seed`` (entropy from the OS when ``seed`` is None)."""
        return np.random.default_rng(self.seed)


# ------------------------------------------------------------------------------------------------------
# The stages, each a pure function on a float32 logit vector
# ------------------------------------------------------------------------------------------------------


def suppress_eos(logits: np.ndarray, step: int, params: SamplingParams) -> np.ndarray:
    """Stage 0: EOS → −inf while ``step < eos_suppress_steps`` (loop index; the prefill is step 0)."""
    if step >= params.eos_suppress_steps:
        return logits
    out = logits.copy()
    out[params.eos_token] = -np.inf
    return out


def apply_repetition_penalty(logits: np.ndarray, history: np.ndarray, penalty: float) -> np.ndarray:
    """Stage 1: for every distinct id in ``history``: ``s / penalty`` if ``s >= 0`` else ``s * penalty``."""
    if penalty == 1.0 or history.size == 0:
        return logits
    out = logits.copy()
    scores = out[history]
    out[history] = np.where(scores < 0, scores * np.float32(penalty), scores / np.float32(penalty))
    return out


def apply_top_p(logits: np.ndarray, top_p: float) -> np.ndarray:
    """Stage 2: nucleus filter with the official rule (the threshold-crossing token is removed too)."""
    if top_p >= 1.0:
        return logits
    order = np.argsort(-logits, kind="stable")
    probs = _softmax(logits[order])
    remove_sorted = np.cumsum(probs) > top_p
    remove_sorted[0] = False
    remove = np.empty_like(remove_sorted)
    remove[order] = remove_sorted
    return np.where(remove, np.float32(-np.inf), logits)


def apply_temperature(logits: np.ndarray, temperature: float) -> np.ndarray:
    """Stage 3: divide by ``max(temperature, 1e-5)`` (temperature 0 is thus near-greedy, not an error)."""
    return logits / np.float32(max(temperature, 1e-5))


def apply_top_k(logits: np.ndarray, top_k: int | None) -> np.ndarray:
    """Stage 4: keep logits >= the k-th largest value (ties at the pivot are all kept)."""
    if top_k is None or top_k >= logits.size:
        return logits
    pivot = np.partition(logits, logits.size - top_k)[logits.size - top_k]
    return np.where(logits < pivot, np.float32(-np.inf), logits)


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits.astype(np.float64) - np.max(logits)
    weights = np.exp(shifted)
    return weights / weights.sum()


def next_token_distribution(raw_logits: np.ndarray, history: np.ndarray, step: int,
                            params: SamplingParams) -> tuple[np.ndarray, np.ndarray]:
    """Stages 0–4 + softmax → (probabilities [vocab] float64, penalised logits [vocab] float32).

    The penalised logits (after stages 0 and 1) are what the argmax EOS stop check looks at.
    """
    logits = np.asarray(raw_logits, dtype=np.float32).reshape(-1)
    penalised = apply_repetition_penalty(suppress_eos(logits, step, params),
                                         np.asarray(history, dtype=np.int64).reshape(-1),
                                         params.repetition_penalty)
    filtered = apply_top_k(apply_temperature(apply_top_p(penalised, params.top_p), params.temperature),
                           params.top_k)
    return _softmax(filtered), penalised


def draw_token(probs: np.ndarray, rng: np.random.Generator) -> int:
    """Exponential race: ``argmax(probs / q)``, ``q ~ Exp(1)``; picks index i with probability probs[i]."""
    return int(np.argmax(probs / rng.standard_exponential(probs.shape[0])))


@dataclass(frozen=True)
class TokenDecision:
    """One step's outcome: the chosen token and whether it ends the utterance (EOS rule)."""

    token: int
    is_eos: bool


def sample_next_token(raw_logits: np.ndarray, history: np.ndarray, step: int, params: SamplingParams,
                      rng: np.random.Generator | None) -> TokenDecision:
    """Choose the token of loop index ``step`` from its raw logits and the history (prompt + generated)."""
    if params.greedy:
        logits = np.asarray(raw_logits, dtype=np.float32).reshape(-1)
        penalised = apply_repetition_penalty(suppress_eos(logits, step, params),
                                             np.asarray(history, dtype=np.int64).reshape(-1),
                                             params.repetition_penalty)
        token = int(np.argmax(penalised))
        return TokenDecision(token, token == params.eos_token)
    if rng is None:
        raise ValueError("a numpy Generator is required unless params.greedy is set")
    probs, penalised = next_token_distribution(raw_logits, history, step, params)
    token = draw_token(probs, rng)
    return TokenDecision(token, token == params.eos_token or int(np.argmax(penalised)) == params.eos_token)


# ------------------------------------------------------------------------------------------------------
# The loop
# ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GenerationResult:
    """What one request produced.

    ``tokens``: every generated semantic token in order, EOS excluded — what SoVITS should decode.
    ``steps``: the loop index at which decoding stopped (the prefill is index 0), so
    ``len(tokens) == steps`` after EOS and ``steps + 1`` after an early stop or the length cap.
    ``logits``: the raw logits of every loop index ``[steps + 1, vocab]`` when recorded.
    """

    tokens: np.ndarray
    stop_reason: StopReason
    steps: int
    logits: np.ndarray | None = None


PrefillFn = Callable[[], np.ndarray]
StepFn = Callable[[int, int], np.ndarray]
StopFn = Callable[[], bool]


class Cancelled(TtsoptError):
    """The caller's ``stop()`` asked generation to end (a client went away, a request timed out)."""


def generate(prefill: PrefillFn, step: StepFn, prompt_tokens: np.ndarray | Sequence[int] | None,
             params: SamplingParams, rng: np.random.Generator | None = None, *,
             record_logits: bool = False) -> GenerationResult:
    """Run the autoregressive loop of one request with any runtime (PyTorch, onnxruntime, ...).

    ``prefill()`` returns the raw logits [vocab] of loop index 0.  ``step(token, position)`` feeds the
    token chosen at loop index ``j`` at audio position ``P + j`` (P = number of prompt tokens, 0 in
    reference-free mode) and returns the raw logits of loop index ``j + 1``; the callable owns its
    KV cache.  ``rng`` defaults to ``params.make_rng()``.
    """
    tokens = iterate_tokens(prefill, step, prompt_tokens, params, rng, record_logits=record_logits)
    while True:
        try:
            next(tokens)
        except StopIteration as done:
            return done.value


class TokenLoop:
    """One request's autoregressive loop state, fed one step's raw logits at a time: its history (prompt +
    generated), loop index, random generator and the stop rules above. :func:`iterate_tokens` drives one
    for a single request; the batched scheduler (:mod:`ttsopt.runtime.batching`) drives one per row, so a
    request decides exactly the same tokens alone or in a batch."""

    def __init__(self, prompt_tokens: np.ndarray | Sequence[int] | None, params: SamplingParams,
                 rng: np.random.Generator | None = None, *, record_logits: bool = False):
        prompt = np.asarray([] if prompt_tokens is None else prompt_tokens, dtype=np.int64).reshape(-1)
        if prompt.size and (prompt.min() < 0 or prompt.max() >= params.eos_token):
            raise TtsoptError(f"prompt semantic tokens must lie in [0, {params.eos_token}), "
                              f"got {prompt.min()}..{prompt.max()}")
        self.params, self.prompt_size = params, prompt.size
        self.rng = params.make_rng() if rng is None and not params.greedy else rng
        self.history = np.empty(prompt.size + params.max_new_tokens, dtype=np.int64)
        self.history[:prompt.size] = prompt
        self.generated = 0
        self.idx = 0  # the loop index of the logits :meth:`decide` takes next (the prefill's is 0)
        self.recorded: list[np.ndarray] | None = [] if record_logits else None
        self.result: GenerationResult | None = None

    def decide(self, logits: np.ndarray) -> int | None:
        """The token kept at this loop index (None on EOS); sets :attr:`result` when the loop ends here."""
        if self.recorded is not None:
            self.recorded.append(np.asarray(logits, dtype=np.float32).reshape(-1).copy())
        params = self.params
        decision = sample_next_token(logits, self.history[:self.prompt_size + self.generated], self.idx, params, self.rng)
        reason: StopReason | None = None
        token = None
        if decision.is_eos:
            reason = "eos"
        else:
            token = decision.token
            self.history[self.prompt_size + self.generated] = token
            self.generated += 1
            if params.early_stop_num != -1 and self.generated > params.early_stop_num:
                reason = "early_stop"
            elif self.generated >= params.max_new_tokens:
                reason = "max_new_tokens"
        if reason is not None:
            self.result = GenerationResult(tokens=self.history[self.prompt_size:self.prompt_size + self.generated].copy(),
                                           stop_reason=reason, steps=self.idx,
                                           logits=np.stack(self.recorded) if self.recorded is not None else None)
        return token

    def advance(self) -> int:
        """Move to the next loop index; the audio position at which the token just kept is fed."""
        position = self.prompt_size + self.idx
        self.idx += 1
        return position


def iterate_tokens(prefill: PrefillFn, step: StepFn, prompt_tokens: np.ndarray | Sequence[int] | None,
                   params: SamplingParams, rng: np.random.Generator | None = None, *,
                   record_logits: bool = False, stop: StopFn | None = None) -> Generator[int, None, GenerationResult]:
    """:func:`generate` as a generator: yields each kept token as soon as it is drawn (what streaming
    needs) and returns the :class:`GenerationResult`. ``stop()``, checked before every step, raises
    :class:`Cancelled` when it returns true."""
    loop = TokenLoop(prompt_tokens, params, rng, record_logits=record_logits)
    logits = prefill()
    while True:
        token = loop.decide(logits)
        if token is not None:
            yield token
        if loop.result is not None:
            return loop.result
        if stop is not None and stop():
            raise Cancelled("generation was cancelled: the request was stopped or timed out")
        logits = step(token, loop.advance())
