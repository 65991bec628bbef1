"""The GPT part of a GPT-SoVITS package: its three graphs, golden items and a reference generation.

Graphs (one transformer graph for prefill and decode, so the weights are stored once; see
:mod:`ttsopt.runtime.gpt` for the cache protocol)::

    gpt_text_embedding   phoneme_ids [batch, phonemes], bert_features [batch, 1024, phonemes] → hidden
    gpt_audio_embedding  tokens [batch, tokens], positions [batch, tokens]                   → hidden
    gpt_transformer      hidden [batch, new, D], allowed [batch, new, visible],
                         k_cache.i / v_cache.i [batch, heads, slots, head_dim]               → logits [batch, vocab],
                                                                                               k_new.i / v_new.i

The reference generation (``gpt_reference.npz``) is the original PyTorch model's greedy run on the
golden prompt: its tokens and the raw logits of every step. ``verify`` replays it teacher-forced through
the package (logit error, greedy agreement) and speaks it through the package's SoVITS graphs with fixed
noise (whole-chain audio).
"""

from __future__ import annotations

import numpy as np
import torch

from ttsopt.compiler.spec import GoldenItem, GraphExport
from ttsopt.families.gpt_sovits.gpt_model import (
    AudioEmbeddingGraph,
    Text2SemanticDecoder,
    TextEmbeddingGraph,
    TransformerGraph,
)
from ttsopt.package.manifest import DimRange, TensorSpec
from ttsopt.runtime.gpt import AUDIO_EMBEDDING, TEXT_EMBEDDING, TRANSFORMER, KVCache, block_capacity, prefill_mask, transformer_feed
from ttsopt.runtime.sampling import SamplingParams

BATCH = DimRange(1, 1, 8)
#: Prompt + target phonemes of one request.
PHONEMES = DimRange(1, 64, 1024)
TOKENS = DimRange(1, 1, 2048)
#: Positions run at once (the prefill: prompt phonemes + text phonemes + prompt tokens).
NEW = DimRange(1, 1, 2048)
#: Cache slots: prefill + up to 1500 new tokens (60 s) fit with room to spare.
SLOTS = DimRange(1, 512, 4096)
VISIBLE = DimRange(2, 513, NEW.max + SLOTS.max)
#: Greedy steps of the reference generation (``verify`` replays them).
REFERENCE_STEPS = 40


def graphs(model: Text2SemanticDecoder) -> list[GraphExport]:
    c = model.config
    layers, heads, head_dim, width = c.num_layers, c.num_heads, c.head_dim, c.hidden_dim
    hidden = TensorSpec("hidden", "float32", ("batch", "positions", width), kind="hidden")
    caches = tuple(TensorSpec(f"{kind}_cache.{i}", "float32", ("batch", heads, "slots", head_dim), kind="cache")
                   for kind in "kv" for i in range(layers))
    news = tuple(TensorSpec(f"{kind}_new.{i}", "float32", ("batch", heads, "new", head_dim), kind="cache")
                 for kind in "kv" for i in range(layers))
    rng = torch.Generator().manual_seed(0)
    return [
        GraphExport(
            name=TEXT_EMBEDDING, module=TextEmbeddingGraph(model).eval(),
            example_inputs=(torch.randint(0, c.phoneme_vocab_size, (2, 9), generator=rng),
                            torch.randn(2, c.bert_dim, 9, generator=rng)),
            inputs=(TensorSpec("phoneme_ids", "int64", ("batch", "positions"), kind="tokens"),
                    TensorSpec("bert_features", "float32", ("batch", c.bert_dim, "positions"), kind="features")),
            outputs=(hidden,), dims={"batch": BATCH, "positions": PHONEMES},
            check_sizes=({"batch": 1, "positions": 1}, {"batch": 2, "positions": 37}),
        ),
        GraphExport(
            name=AUDIO_EMBEDDING, module=AudioEmbeddingGraph(model).eval(),
            example_inputs=(torch.randint(0, c.vocab_size, (2, 7), generator=rng), torch.arange(14).reshape(2, 7)),
            inputs=(TensorSpec("tokens", "int64", ("batch", "positions"), kind="tokens"),
                    TensorSpec("positions", "int64", ("batch", "positions"), kind="tokens")),
            outputs=(hidden,), dims={"batch": BATCH, "positions": TOKENS},
            check_sizes=({"batch": 1, "positions": 1}, {"batch": 1, "positions": 50}),
        ),
        GraphExport(
            name=TRANSFORMER, module=TransformerGraph(model).eval(),
            example_inputs=(torch.randn(2, 5, width, generator=rng), torch.ones(2, 5, 12, dtype=torch.bool),
                            *(torch.randn(2, heads, 7, head_dim, generator=rng) for _ in range(2 * layers))),
            inputs=(TensorSpec("hidden", "float32", ("batch", "new", width), kind="hidden"),
                    TensorSpec("allowed", "bool", ("batch", "new", "visible"), kind="mask"), *caches),
            outputs=(TensorSpec("logits", "float32", ("batch", c.vocab_size), kind="logits"), *news),
            dims={"batch": BATCH, "new": NEW, "slots": SLOTS, "visible": VISIBLE},
            check_sizes=({"batch": 1, "new": 1, "slots": 3, "visible": 4}, {"batch": 1, "new": 30, "slots": 9, "visible": 39}),
        ),
    ]


def golden(model: Text2SemanticDecoder, run, phoneme_ids: np.ndarray, bert: np.ndarray,
           prompt: np.ndarray) -> list[GoldenItem]:
    """Embeddings, a prefill and a decode step; ``run[graph](inputs)`` is the original model."""
    c = model.config
    layers, heads, head_dim = c.num_layers, c.num_heads, c.head_dim
    positions = np.arange(prompt.shape[1], dtype=np.int64)[None]
    text_in = {"phoneme_ids": phoneme_ids, "bert_features": bert}
    audio_in = {"tokens": prompt, "positions": positions}
    hidden = np.concatenate((run[TEXT_EMBEDDING](text_in)["hidden"], run[AUDIO_EMBEDDING](audio_in)["hidden"]), axis=1)
    total = hidden.shape[1]
    empty = [np.zeros((1, heads, 4, head_dim), np.float32) for _ in range(layers)]
    prefill_in = transformer_feed(hidden, prefill_mask(phoneme_ids.shape[1], total), empty, empty, filled=0)
    prefill_out = run[TRANSFORMER](prefill_in)
    capacity = total + 3
    keys = [np.pad(prefill_out[f"k_new.{i}"], ((0, 0), (0, 0), (0, capacity - total), (0, 0))) for i in range(layers)]
    values = [np.pad(prefill_out[f"v_new.{i}"], ((0, 0), (0, 0), (0, capacity - total), (0, 0))) for i in range(layers)]
    token = int(np.argmax(prefill_out["logits"][0, :-1]))
    step_hidden = run[AUDIO_EMBEDDING]({"tokens": np.array([[token]]), "positions": np.array([[prompt.shape[1]]])})["hidden"]
    step_in = transformer_feed(step_hidden, np.ones((1, 1), bool), keys, values, filled=total)
    return [GoldenItem("gpt-text", TEXT_EMBEDDING, text_in), GoldenItem("gpt-audio", AUDIO_EMBEDDING, audio_in),
            GoldenItem("gpt-prefill", TRANSFORMER, prefill_in), GoldenItem("gpt-step", TRANSFORMER, step_in)]


def reference_generation(model: Text2SemanticDecoder, phoneme_ids: np.ndarray, bert: np.ndarray,
                         prompt: np.ndarray) -> dict[str, np.ndarray]:
    """The original model's greedy run (official defaults otherwise) for ``REFERENCE_STEPS`` steps."""
    from ttsopt.families.gpt_sovits.gpt_model import bind_generation_callables
    from ttsopt.runtime.sampling import generate

    params = reference_params()
    prefill, step = bind_generation_callables(model, phoneme_ids, bert, prompt, params.max_new_tokens)
    result = generate(prefill, step, prompt[0], params, record_logits=True)
    return {"phoneme_ids": phoneme_ids, "bert_features": bert, "prompt_tokens": prompt, "tokens": result.tokens,
            "logits": result.logits}


def reference_params() -> SamplingParams:
    """Greedy with the official repetition penalty, EOS allowed after the official 11 steps."""
    return SamplingParams(greedy=True, max_new_tokens=REFERENCE_STEPS)


class EagerGPT:
    """The original GPT in PyTorch eager FP32 with the package's cache protocol (the runtime's :class:`KVCache`,
    read by torch through zero-copy views), so ``bench`` compares the same algorithm, eager against the graphs."""

    def __init__(self, model: Text2SemanticDecoder):
        self.model = model.eval()
        self.cache: KVCache | None = None

    @torch.inference_mode()
    def _run(self, hidden: torch.Tensor, allowed_new: np.ndarray) -> np.ndarray:
        cache = self.cache
        cache.reserve(hidden.shape[1])
        feed = cache.feed(hidden.numpy(), allowed_new)
        layers = self.model.config.num_layers
        logits, keys, values = self.model.forward_cached(
            hidden, [torch.from_numpy(feed[f"k_cache.{i}"]) for i in range(layers)],
            [torch.from_numpy(feed[f"v_cache.{i}"]) for i in range(layers)], torch.from_numpy(feed["allowed"]))
        cache.append({**{f"k_new.{i}": k.numpy() for i, k in enumerate(keys)}, **{f"v_new.{i}": v.numpy() for i, v in enumerate(values)}})
        return logits[0].numpy()

    @torch.inference_mode()
    def prefill(self, phoneme_ids: np.ndarray, bert: np.ndarray | None, prompt: np.ndarray | None, reserve: int = 0) -> np.ndarray:
        c = self.model.config
        ids = torch.from_numpy(np.asarray(phoneme_ids, dtype=np.int64).reshape(1, -1))
        bert_t = torch.zeros(1, c.bert_dim, ids.shape[1]) if bert is None else torch.from_numpy(bert)
        prompt_t = None if prompt is None or np.size(prompt) == 0 else torch.from_numpy(np.asarray(prompt).reshape(1, -1))
        hidden = self.model.embed_prefill(ids, bert_t, prompt_t)
        total = hidden.shape[1]
        self.cache = KVCache(c.num_layers, c.num_heads, c.head_dim, block_capacity(total + reserve, SLOTS.max), SLOTS.max)
        return self._run(hidden, prefill_mask(ids.shape[1], total))

    @torch.inference_mode()
    def step(self, token: int, position: int) -> np.ndarray:
        hidden = self.model.embed_audio(torch.tensor([[token]]), torch.tensor([[position]]))
        return self._run(hidden, np.ones((1, 1), dtype=bool))
