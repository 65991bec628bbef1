"""The Chinese RoBERTa (chinese-roberta-wwm-ext-large) of a GPT-SoVITS checkout as a ``bert`` graph.

The official front end feeds every Chinese segment through ``AutoModelForMaskedLM`` with
``output_hidden_states=True`` and reads ``hidden_states[-3]``: the output of layer L-2 of L (22 of 24 for
the released model). BERT layers are post-norm, so nothing after that layer changes it: the graph runs the
embeddings and the first L-2 layers only, and the last two layers, the pooler and the MLM head are neither
run nor exported (two layers and a 21128 x 1024 decoder less to store and compute).

    bert   input_ids, attention_mask, token_type_ids [batch, tokens] → features [batch, tokens, hidden]

The tokenizer is the one the official ``AutoTokenizer`` builds from the folder, written as a ``tokenizers``
JSON into the package (``bert_tokenizer.json``), so the runtime tokenizes without transformers; the export
checks that both give the same ids on the verification sentences. The golden outputs come from the whole
original model (``hidden_states[-3]`` of every layer run), so ``verify`` checks the cut as well.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ttsopt.compiler.spec import ExportPlan, GoldenItem, GraphExport
from ttsopt.errors import TtsoptError
from ttsopt.package.manifest import DimRange, TensorSpec
from ttsopt.runtime.bert import BERT_GRAPH, HIDDEN_STATE_INDEX, TOKENIZER_FILE, encode, is_chinese
from ttsopt.runtime.text import Sentence

BERT_ROLE = "bert"
BATCH = DimRange(1, 1, 8)
#: [CLS] + characters + [SEP]: the model's 512 positions (the official code cuts sentences over 510 characters).
TOKENS = DimRange(2, 64, 512)
#: Verification sentences: numbers read out, polyphones, punctuation, a rare character, a long one.
GOLDEN_TEXTS = (
    "今天天气很好,我们一起去公园散步吧.",
    "他说明天要去银行办理业务,还要了解一下行情.",
    "重要的事情说三遍!长大以后我想当一名音乐家,每天练习二十五个小时?",
)


@dataclass
class LoadedBert:
    """The user's RoBERTa as the official code loads it (float32), and its tokenizer as ``tokenizers`` JSON."""

    path: Path
    model: torch.nn.Module  # transformers BertForMaskedLM
    tokenizer_json: str
    layers: int
    #: transformers' AutoTokenizer of the folder (what the official code tokenizes with).
    tokenizer: object

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.hidden_size)

    @property
    def used_layers(self) -> int:
        """Layers up to the one the official code reads (``hidden_states[-3]``)."""
        return self.layers + 1 + HIDDEN_STATE_INDEX

    def facts(self) -> dict:
        """What the manifest records about it."""
        c = self.model.config
        used = sum(p.numel() for p in BertFeatureGraph(self.model.bert, self.used_layers).parameters())
        return {"model": "BertForMaskedLM (chinese-roberta-wwm-ext-large)", "source": str(self.path.resolve()), "hidden_size": c.hidden_size,
                "layers": self.layers, "layers_run": self.used_layers, "hidden_state": HIDDEN_STATE_INDEX,
                "heads": c.num_attention_heads, "intermediate_size": c.intermediate_size, "vocab_size": c.vocab_size,
                "max_positions": c.max_position_embeddings, "parameters": used}


def load_bert(path: Path) -> LoadedBert:
    """``chinese-roberta-wwm-ext-large`` (config.json, the weights, the tokenizer), fp16 weights read as float32."""
    from transformers import AutoTokenizer, BertForMaskedLM

    hint = "give GPT_SoVITS/pretrained_models/chinese-roberta-wwm-ext-large of your GPT-SoVITS checkout (--bert DIR or --pretrained)"
    if not (path / "config.json").is_file():
        raise TtsoptError(f"--bert {path}: no config.json in it: {hint}")
    try:
        raw = json.loads((path / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise TtsoptError(f"--bert {path}: config.json is not readable JSON ({str(exc)[:120]}): {hint}") from None
    layers = raw.get("num_hidden_layers", 0) if isinstance(raw, dict) else 0
    kind = raw.get("model_type") if isinstance(raw, dict) else None
    if kind != "bert" or not isinstance(layers, int) or layers < 3:
        raise TtsoptError(f"--bert {path}: a {kind} model with {layers} layers is not a Chinese RoBERTa (BERT, at least "
                          f"3 layers): {hint}")
    quiet = logging.getLogger("transformers")  # "some weights were not used" (pooler), "layers were not sharded"
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        model = BertForMaskedLM.from_pretrained(path, dtype=torch.float32, local_files_only=True)  # the user's folder; never a hub
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, RuntimeError) as exc:
        raise TtsoptError(f"--bert {path}: cannot load it with transformers ({str(exc).splitlines()[0][:160]}): {hint}") from None
    finally:
        quiet.setLevel(level)
    if not getattr(tokenizer, "is_fast", False):
        raise TtsoptError(f"--bert {path}: its tokenizer has no fast (tokenizers) form: {hint}")
    return LoadedBert(path, model.eval(), tokenizer.backend_tokenizer.to_str(), layers, tokenizer)


class BertFeatureGraph(torch.nn.Module):
    """Embeddings and the first ``layers`` BERT layers (shared with the original model, not copied)."""

    def __init__(self, bert: torch.nn.Module, layers: int):
        super().__init__()
        self.embeddings = bert.embeddings
        self.layers = torch.nn.ModuleList(bert.encoder.layer[:layers])

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        hidden = self.embeddings(input_ids=input_ids, token_type_ids=token_type_ids)
        # BertModel's additive mask (padding positions get the dtype's minimum), built without its data-dependent
        # all-ones shortcut so that one graph serves padded batches.
        bias = (1.0 - attention_mask[:, None, None, :].to(hidden.dtype)) * torch.finfo(hidden.dtype).min
        for layer in self.layers:
            hidden = layer(hidden, attention_mask=bias)[0]
        return hidden


def official_features(model: torch.nn.Module):
    """``inputs -> {"features": hidden_states[-3]}`` of the whole original model, as the official code runs it."""
    def run(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with torch.inference_mode():
            out = model(**{k: torch.from_numpy(inputs[k]) for k in ("input_ids", "attention_mask", "token_type_ids")},
                        output_hidden_states=True)
        return {"features": out.hidden_states[HIDDEN_STATE_INDEX].numpy()}
    return run


def official_matrix(loaded: LoadedBert) -> Callable[[Sentence], np.ndarray]:
    """``sentence -> [hidden, phones]`` by the original model and tokenizer, as the official ``get_phones_and_bert``
    joins ``get_bert_feature`` (Chinese segments) and zeros (the others): what stored voices' transcripts get."""
    run = official_features(loaded.model)

    def matrix(sentence: Sentence) -> np.ndarray:
        parts = []
        for segment in sentence.segments:
            if is_chinese(segment) and segment.word2ph is not None:
                rows = run(dict(loaded.tokenizer(segment.norm_text, return_tensors="np")))["features"][0, 1:-1]
                parts.append(np.repeat(rows[: len(segment.word2ph)], segment.word2ph, axis=0).T)
            else:
                parts.append(np.zeros((loaded.hidden_size, len(segment.phones)), np.float32))
        return np.ascontiguousarray(np.concatenate(parts, axis=1), dtype=np.float32)

    return matrix


def bert_graph(loaded: LoadedBert) -> GraphExport:
    hidden = loaded.hidden_size
    rng = torch.Generator().manual_seed(0)
    vocab = loaded.model.config.vocab_size
    # dynamo specialises sizes 0 and 1: the example has a batch of 2 and 9 tokens.
    return GraphExport(
        name=BERT_GRAPH, module=BertFeatureGraph(loaded.model.bert, loaded.used_layers).eval(),
        example_inputs=(torch.randint(0, vocab, (2, 9), generator=rng), torch.ones(2, 9, dtype=torch.int64),
                        torch.zeros(2, 9, dtype=torch.int64)),
        inputs=tuple(TensorSpec(name, "int64", ("batch", "tokens"), kind="tokens")
                     for name in ("input_ids", "attention_mask", "token_type_ids")),
        outputs=(TensorSpec("features", "float32", ("batch", "tokens", hidden), kind="features"),),
        dims={"batch": BATCH, "tokens": TOKENS},
        check_sizes=({"batch": 1, "tokens": 2}, {"batch": 1, "tokens": 37}, {"batch": 2, "tokens": 13}),
    )


def golden_items(loaded: LoadedBert) -> list[GoldenItem]:
    """The verification sentences through the package's tokenizer, checked against the official tokenizer."""
    from tokenizers import Tokenizer

    packaged = Tokenizer.from_str(loaded.tokenizer_json)
    items = []
    for i, text in enumerate(GOLDEN_TEXTS):
        ours = encode(packaged, text)
        official = loaded.tokenizer(text, return_tensors="np")
        for name, array in ours.items():
            if not np.array_equal(array, official[name]):
                raise TtsoptError(f"--bert {loaded.path}: the tokenizer written for the runtime gives other {name} than "
                                  f"transformers' AutoTokenizer for {text!r}: this is a ttsopt bug, please report it")
        items.append(GoldenItem(f"bert-{i}", BERT_GRAPH, ours))
    return items


@dataclass
class BertPart:
    """What the ``bert`` graph adds to a text-to-speech package's export plan."""

    graph: GraphExport
    original: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]
    #: A sentence's whole BERT matrix by the original model (for the transcripts of stored voices).
    matrix: Callable[[Sentence], np.ndarray]
    golden: list[GoldenItem]
    files: dict[str, bytes]
    runtime: dict
    facts: dict


def plan_gpt_bert(auxiliary: Mapping[str, Path], gpt_bert_dim: int | None) -> BertPart | None:
    """The RoBERTa of a text-to-speech package (v2, v2Pro and v4 alike: one GPT architecture), loaded and checked
    against the GPT's feature width now, before anything slow runs. None without ``--bert`` (nor ``--pretrained``'s),
    and None without a GPT (``gpt_bert_dim`` None): only the GPT reads BERT features, so a SoVITS package neither
    holds nor misses RoBERTa."""
    if gpt_bert_dim is None or BERT_ROLE not in auxiliary:
        return None
    return plan_bert(auxiliary[BERT_ROLE], gpt_bert_dim)


def add_bert_to_plan(plan: ExportPlan, part: BertPart | None) -> ExportPlan:
    """``plan`` with RoBERTa in it: for a text-to-speech plan, ``runtime["auxiliary"]["bert"]`` (its facts, or None:
    missing, which ``export`` notes), and with ``part`` its graph, original, golden sentences, tokenizer file and
    ``runtime["bert"]`` (what :class:`ttsopt.runtime.tts.TextToSpeech` reads). A SoVITS plan is left as it is."""
    if plan.task != "tts":
        return plan
    plan.runtime["auxiliary"][BERT_ROLE] = None if part is None else part.facts
    if part is not None:
        plan.graphs.append(part.graph)
        plan.original[part.graph.name] = part.original
        plan.golden += part.golden
        plan.files |= part.files
        plan.runtime["bert"] = part.runtime
    return plan


def plan_bert(path: Path, bert_dim: int) -> BertPart:
    """The user's RoBERTa folder as a graph of a package whose GPT takes ``bert_dim``-wide features."""
    loaded = load_bert(path)
    if loaded.hidden_size != bert_dim:
        raise TtsoptError(f"--bert {path}: the model gives {loaded.hidden_size}-wide features but the GPT takes "
                          f"{bert_dim}-wide ones: give chinese-roberta-wwm-ext-large (GPT_SoVITS/pretrained_models)")
    tokenizer = json.dumps(json.loads(loaded.tokenizer_json), ensure_ascii=False).encode()
    return BertPart(graph=bert_graph(loaded), original=official_features(loaded.model), matrix=official_matrix(loaded),
                    golden=golden_items(loaded),
                    files={TOKENIZER_FILE: tokenizer}, runtime={"graph": BERT_GRAPH, "tokenizer": TOKENIZER_FILE},
                    facts=loaded.facts())


__all__ = ["BERT_ROLE", "BertFeatureGraph", "BertPart", "LoadedBert", "add_bert_to_plan", "bert_graph", "golden_items",
           "load_bert", "official_features", "official_matrix", "plan_bert", "plan_gpt_bert"]
