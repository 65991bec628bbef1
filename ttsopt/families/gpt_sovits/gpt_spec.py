"""The GPT part of a GPT-SoVITS package: its three graphs, golden items and a reference generation.

Graphs (one transformer graph for prefill and decode, so the weights are stored once; see
:mod:`ttsopt.runtime.gpt` for the cache protocol)::

    gpt_text_embedding   phoneme_ids [batch, phonemes], bert_features [batch, 1024, phonemes] → hidden
    gpt_audio_embedding  tokens [batch, tokens], positions [batch, tokens]                   → hidden
    gpt_transformer      hidden [batch, new, D], attention_bias [1, 1, new, total],
                         seqlens_k [batch], total_sequence_length [],
                         past_key.i / past_value.i [batch, heads, slots, head_dim]           → logits [batch, vocab],
                                                                                               present_key.i / present_value.i

The reference generation (``gpt_reference.npz``) is the original PyTorch model's greedy run on the
golden prompt: its tokens and the raw logits of every step. ``verify`` replays it teacher-forced through
the package (logit error, greedy agreement) and speaks it through the package's SoVITS graphs with fixed
noise (whole-chain audio).
"""

from __future__ import annotations

import numpy as np
import torch

from ttsopt.compiler.spec import GoldenItem, GraphExport
from ttsopt.families.gpt_sovits.cached_attention import onnx_translation
from ttsopt.families.gpt_sovits.gpt_model import (
    AudioEmbeddingGraph,
    Text2SemanticDecoder,
    TextEmbeddingGraph,
    TransformerGraph,
)
from ttsopt.package.manifest import DimRange, TensorSpec
from ttsopt.runtime.gpt import AUDIO_EMBEDDING, TEXT_EMBEDDING, TRANSFORMER, KVCache, block_capacity, prefill_mask, step_inputs, transformer_feed
from ttsopt.runtime.sampling import SamplingParams

BATCH = DimRange(1, 1, 8)
#: Prompt + target phonemes of one request.
PHONEMES = DimRange(1, 64, 1024)
TOKENS = DimRange(1, 1, 2048)
#: Positions run at once (the prefill: prompt phonemes + text phonemes + prompt tokens).
NEW = DimRange(1, 1, 2048)
#: Cache slots: prefill + up to 1500 new tokens (60 s) fit with room to spare.
SLOTS = DimRange(1, 512, 4096)
#: Filled slots after a call (the attention's key positions): at most the cache's slots.
TOTAL = DimRange(1, 256, SLOTS.max)
#: Greedy steps of the reference generation (``verify`` replays them).
REFERENCE_STEPS = 40


def graphs(model: Text2SemanticDecoder) -> list[GraphExport]:
    c = model.config
    layers, heads, head_dim, width = c.num_layers, c.num_heads, c.head_dim, c.hidden_dim
    hidden = TensorSpec("hidden", "float32", ("batch", "positions", width), kind="hidden")
    caches = {direction: tuple(TensorSpec(f"{direction}_{kind}.{i}", "float32", ("batch", heads, "slots", head_dim),
                                          kind="cache") for kind in ("key", "value") for i in range(layers))
              for direction in ("past", "present")}
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
            example_inputs=transformer_check_inputs(c, {"batch": 2, "new": 5, "slots": 16, "total": 12}, 0),
            inputs=(TensorSpec("hidden", "float32", ("batch", "new", width), kind="hidden"),
                    TensorSpec("attention_bias", "float32", (1, 1, "new", "total"), kind="mask"),
                    TensorSpec("seqlens_k", "int32", ("batch",), kind="lengths"),
                    TensorSpec("total_sequence_length", "int32", (), kind="lengths"), *caches["past"]),
            outputs=(TensorSpec("logits", "float32", ("batch", c.vocab_size), kind="logits"), *caches["present"]),
            dims={"batch": BATCH, "new": NEW, "slots": SLOTS, "total": TOTAL},
            check_sizes=({"batch": 1, "new": 1, "slots": 5, "total": 4}, {"batch": 1, "new": 30, "slots": 32, "total": 30},
                         {"batch": 3, "new": 1, "slots": 9, "total": 8}),
            check_inputs=lambda sizes, seed: transformer_check_inputs(c, sizes, seed), translations=onnx_translation,
        ),
    ]


def transformer_check_inputs(config, sizes: dict[str, int], seed: int) -> tuple[torch.Tensor, ...]:
    """Consistent ``gpt_transformer`` inputs at ``sizes``: a prefill (``new`` > 1, one row, the official mask over
    half text, half audio) or a step over rows of different lengths (row r has 3r fewer filled slots, at least 0);
    random caches, so slots past a row's length hold values the graph must ignore."""
    generator = torch.Generator().manual_seed(seed)
    batch, new, slots, total = sizes["batch"], sizes["new"], sizes["slots"], sizes["total"]
    lengths = np.maximum(total - new - 3 * np.arange(batch), 0)
    allowed_new = prefill_mask(new // 2, new) if new > 1 else np.ones((1, 1), bool)
    inputs = step_inputs(np.zeros((batch, new, config.hidden_dim), np.float32), allowed_new, lengths)
    caches = [torch.randn(batch, config.num_heads, slots, config.head_dim, generator=generator)
              for _ in range(2 * config.num_layers)]
    return (torch.randn(batch, new, config.hidden_dim, generator=generator), torch.from_numpy(inputs["attention_bias"]),
            torch.from_numpy(inputs["seqlens_k"]), torch.from_numpy(inputs["total_sequence_length"]), *caches)


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
    capacity = total + 3
    empty = [np.zeros((1, heads, capacity, head_dim), np.float32) for _ in range(layers)]
    prefill_in = transformer_feed(hidden, prefill_mask(phoneme_ids.shape[1], total), empty, empty, filled=0)
    prefill_out = run[TRANSFORMER](prefill_in)
    keys = [prefill_out[f"present_key.{i}"] for i in range(layers)]
    values = [prefill_out[f"present_value.{i}"] for i in range(layers)]
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
    def _transformer(self, inputs: dict[str, np.ndarray], keys: list[np.ndarray], values: list[np.ndarray]) -> np.ndarray:
        """The runtime's transformer protocol in PyTorch: the cache arrays are read and written through zero-copy
        views (the model's own attention over the filled slots, the new K/V written after them)."""
        filled = int(inputs["seqlens_k"][0]) + 1 - inputs["hidden"].shape[1]
        hidden = torch.from_numpy(inputs["hidden"])
        allowed = torch.from_numpy(np.isfinite(inputs["attention_bias"][0]))
        k_views, v_views = [torch.from_numpy(k) for k in keys], [torch.from_numpy(v) for v in values]
        logits, new_keys, new_values = self.model.forward_cached(
            hidden, [k[:, :, :filled] for k in k_views], [v[:, :, :filled] for v in v_views], allowed)
        for views, news in ((k_views, new_keys), (v_views, new_values)):
            for view, written in zip(views, news, strict=True):
                view[:, :, filled: filled + written.shape[2]] = written
        return logits.numpy()

    def _run(self, hidden: torch.Tensor, allowed_new: np.ndarray) -> np.ndarray:
        return self.cache.run(self._transformer, hidden.numpy(), allowed_new)[0]

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
