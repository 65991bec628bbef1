"""g2pW polyphone reading, torch-free: the user's ``G2PWModel`` ONNX run the way the official converter runs it.

GPT-SoVITS v2/v2Pro/v2ProPlus read Mandarin polyphones with g2pW (``GPT_SoVITS/text/g2pw/``, used by
``chinese2.py``). What decides its readings, and so what this module rebuilds exactly:

* each sentence is converted to Taiwan traditional characters (OpenCC ``s2tw``; the model was trained on them),
  and read by pypinyin in simplified form for every character g2pW does not decide;
* a character g2pW decides is one of ``POLYPHONIC_CHARS.txt`` (less the official exclusions); one of
  ``MONOPHONIC_CHARS.txt`` takes its table reading; everything else pypinyin's (``TONE3``, neutral tone 5);
* the model sees the sentence cut to 16 characters either side of its first and last polyphone, lower-cased,
  tokenised word by word (runs of ``[a-z0-9]`` are one word, every other character one) with the RoBERTa
  tokenizer of ``chinese-roberta-wwm-ext-large`` (``tokenizer.json``, through the ``tokenizers`` library),
  as ``[CLS] … [SEP]``, every row padded to the batch's longest;
* per polyphone one row of ``phoneme_mask`` (its candidate labels), ``char_ids`` and ``position_ids``; queries
  that share one context text are sent as ONE row of ``input_ids`` (sentence dedup, the official default),
  one ONNX call per context text, unless no text repeats, when everything goes in one call;
* the argmax label (bopomofo + tone) becomes pinyin through ``bopomofo_to_pinyin_wo_tune_dict.json``.

The word overrides (``polyphonic.rep``) and tone sandhi that follow are :mod:`ttsopt.runtime.text.zh`'s.
``char_bopomofo_dict.json`` is not needed: the official code reads it only to choose between two branches that
give the same pypinyin reading.
"""

from __future__ import annotations

import ast
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from ttsopt.errors import TtsoptError

log = logging.getLogger("ttsopt")

#: The files of the user's ``G2PWModel`` folder a package carries (``g2pW.onnx`` may also be spelt ``g2pw.onnx``).
MODEL_FILES = ("g2pW.onnx", "POLYPHONIC_CHARS.txt", "MONOPHONIC_CHARS.txt", "bopomofo_to_pinyin_wo_tune_dict.json",
               "config.py")
#: The RoBERTa tokenizer the official converter is given (its ``model_source`` is the BERT folder).
TOKENIZER_FILE = "tokenizer.json"
FEEDS = ("input_ids", "token_type_ids", "attention_mask", "phoneme_mask", "char_ids", "position_ids")
#: Characters of POLYPHONIC_CHARS.txt the official converter leaves to pypinyin, and of MONOPHONIC_CHARS.txt it drops.
NOT_POLYPHONIC = frozenset("一不和咋嗲剖差攢倒難奔勁拗肖瘙誒泊听噢")
NOT_MONOPHONIC = frozenset("似攢")
CONTEXT_CHARS = 16  # official default of g2pw_polyphonic_context_chars
MAX_TOKENS = 512
_WORD = re.compile(r" +|[a-zA-Z0-9]+|.", re.DOTALL)

#: ``observer(feeds, probs)``: sees every ONNX call (tests compare the feeds with the official ones).
Observer = Callable[[dict[str, np.ndarray], np.ndarray], None]


def model_config(path: Path) -> dict[str, bool]:
    """``use_mask`` / ``use_char_phoneme`` of the folder's ``config.py``, read as data (nothing there runs);
    the official defaults (True / False) where it does not set them."""
    found: dict[str, object] = {}
    try:
        body = ast.parse(path.read_text(encoding="utf-8")).body
    except (SyntaxError, UnicodeDecodeError) as error:
        raise TtsoptError(f"{path} is not the g2pW config.py ({type(error).__name__}): give G2PWModel of your "
                          f"GPT-SoVITS checkout") from None
    for node in body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                found[node.targets[0].id] = ast.literal_eval(node.value)
            except (ValueError, TypeError):
                continue
    return {"use_mask": bool(found.get("use_mask", True)), "use_char_phoneme": bool(found.get("use_char_phoneme", False))}


@dataclass
class Tokenized:
    """One context text through the RoBERTa tokenizer, with where each character's token is."""

    tokens: list[str]
    text2token: list[int | None]
    token2text: list[tuple[int, int]]


class G2PW:
    """The official g2pW converter (``onnx_api.G2PWOnnxConverter`` with ``style="pinyin"`` and OpenCC on).

    ``G2PW(folder, tokenizer_json)(sentences)`` → per sentence, per character its pinyin with tone digit
    (``"hang2"``), pypinyin's item for non-hanzi (the mark itself). The ONNX session opens on first use.
    """

    def __init__(self, folder: Path, tokenizer_file: Path):
        self.folder = Path(folder)
        missing = [name for name in MODEL_FILES[1:] if not (self.folder / name).is_file()]
        if missing or self.onnx_path is None:
            raise TtsoptError(f"{self.folder} is not a G2PWModel folder (missing {', '.join(missing or ['g2pW.onnx'])}): "
                              "give GPT_SoVITS/text/G2PWModel of your GPT-SoVITS checkout")
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(tokenizer_file))
        self.unk_id = self.tokenizer.token_to_id("[UNK]")
        config = model_config(self.folder / "config.py")
        self.use_mask, self.use_char_phoneme = config["use_mask"], config["use_char_phoneme"]
        polyphonic = _pairs(self.folder / "POLYPHONIC_CHARS.txt")
        if self.use_char_phoneme:
            self.labels = sorted({f"{c} {p}" for c, p in polyphonic})
        else:
            self.labels = sorted({p for _, p in polyphonic})
        index = {label: i for i, label in enumerate(self.labels)}
        self.candidates: dict[str, list[int]] = {}
        for char, phoneme in polyphonic:
            self.candidates.setdefault(char, []).append(index[f"{char} {phoneme}" if self.use_char_phoneme else phoneme])
        chars = sorted(self.candidates)
        self.char_ids = {char: i for i, char in enumerate(chars)}
        self.polyphonic = frozenset(chars) - NOT_POLYPHONIC
        self.to_pinyin_table: dict[str, str] = json.loads(
            (self.folder / "bopomofo_to_pinyin_wo_tune_dict.json").read_text(encoding="utf-8"))
        self.monophonic = {c: p for c, p in _pairs(self.folder / "MONOPHONIC_CHARS.txt") if c not in NOT_MONOPHONIC}
        self.observer: Observer | None = None
        self._masks: dict[str, np.ndarray] = {}

    @property
    def onnx_path(self) -> Path | None:
        return next((self.folder / n for n in ("g2pW.onnx", "g2pw.onnx") if (self.folder / n).is_file()), None)

    @cached_property
    def session(self):
        """Opened on the first polyphone: a text without one never pays for loading the model."""
        import onnxruntime as ort

        from ttsopt.runtime import session_options
        from ttsopt.runtime.threads import taking_turns, use_shared_pool

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        session_options.apply(options)  # a BERT: its residual LayerNorms as the faster pair, not SkipLayerNormalization
        if not use_shared_pool(options):
            options.intra_op_num_threads = 2  # the official converter's setting
        return taking_turns(ort.InferenceSession(str(self.onnx_path), options, providers=["CPUExecutionProvider"]), "g2pw")

    @cached_property
    def _s2tw(self):
        import opencc

        return opencc.OpenCC("s2tw")

    def pinyin(self, bopomofo: str) -> str | None:
        """``ㄏㄤ2`` → ``hang2``; None for a syllable the official table lacks (the official code then fails)."""
        syllable = self.to_pinyin_table.get(bopomofo[:-1])
        return syllable + bopomofo[-1] if syllable else None

    def _mask(self, char: str) -> np.ndarray:
        if char not in self._masks:
            mask = np.zeros(len(self.labels), np.float32)
            mask[self.candidates[char]] = 1
            self._masks[char] = mask
        return self._masks[char]

    def __call__(self, sentences: list[str]) -> list[list[str]]:
        from pypinyin import Style, pinyin

        from ttsopt.runtime.text.zh_normalize import to_simplified

        results: list[list[str]] = []
        queries: list[tuple[int, int, str, int]] = []  # (sentence, char index, context text, index in context)
        for n, sentence in enumerate(sentences):
            traditional = self._s2tw.convert(sentence)
            if len(traditional) != len(sentence):  # the official code asserts this never happens
                traditional = sentence
            items = pinyin(to_simplified(traditional), neutral_tone_with_five=True, style=Style.TONE3)
            # pypinyin's reading per character (a run of several non-hanzi would be one item, where the official
            # code fails: normalised text has none); kept for a polyphone whose label has no pinyin
            fallback = [items[i][0] if i < len(items) else char for i, char in enumerate(traditional)]
            result: list[str] = []
            poly: list[int] = []
            for i, char in enumerate(traditional):
                if char in self.polyphonic:
                    poly.append(i)
                    result.append(fallback[i])
                elif char in self.monophonic:
                    result.append(self.pinyin(self.monophonic[char]) or fallback[i])
                else:
                    result.append(fallback[i])
            if poly:
                left, right = max(0, poly[0] - CONTEXT_CHARS), min(len(traditional), poly[-1] + CONTEXT_CHARS + 1)
                queries += [(n, i, traditional[left:right], i - left) for i in poly]
            results.append(result)
        if queries:
            for (n, i, _, _), label in zip(queries, self._predict([(t, q) for _, _, t, q in queries]), strict=True):
                if label is None:
                    continue
                reading = self.pinyin(label.split(" ")[1] if self.use_char_phoneme else label)
                if reading is None:
                    log.debug("g2pW label %s has no pinyin in the official table; pypinyin's reading is kept", label)
                else:
                    results[n][i] = reading
        return results

    def _tokenize(self, text: str) -> Tokenized:
        """Word by word through the tokenizer; a character's token is the token whose text span covers it (a
        character no span covers keeps its word's index, as the official map does)."""
        text2token: list[int | None] = []
        tokens: list[str] = []
        token2text: list[tuple[int, int]] = []
        words = 0
        for match in _WORD.finditer(text):
            word, start = match.group(), match.start()
            if word[0] == " ":
                text2token += [None] * len(word)
                continue
            text2token += [words] * len(word)
            words += 1
            pieces = self.tokenizer.encode(word, add_special_tokens=False).tokens
            if not pieces or pieces == ["[UNK]"]:
                token2text.append((start, match.end()))
                tokens.append("[UNK]")
                continue
            for piece in pieces:
                length = len(piece[2:] if piece.startswith("##") else piece)
                token2text.append((start, start + length))
                tokens.append(piece)
                start += length
        for t, (start, end) in enumerate(token2text):
            for position in range(start, end):
                text2token[position] = t  # IndexError past the text: the official converter then gives up
        return Tokenized(tokens, text2token, token2text)

    def _ids(self, tokens: list[str]) -> list[int]:
        ids = [self.tokenizer.token_to_id(t) for t in ["[CLS]", *tokens, "[SEP]"]]
        return [self.unk_id if i is None else i for i in ids]

    def _predict(self, queries: list[tuple[str, int]]) -> list[str | None]:
        """The official feeds for (context text, character index) queries, run as the official dedup runs them."""
        rows: list[tuple[list[int], np.ndarray, int, int]] = []
        cache: dict[str, Tokenized] = {}
        for text, query in queries:
            text = text.lower()
            if text not in cache:
                try:
                    cache[text] = self._tokenize(text)
                except IndexError:  # the official converter reads no polyphone of the whole batch then
                    log.debug("g2pW cannot map the tokens of %r to its characters; pypinyin reads its polyphones", text)
                    return [None] * len(queries)
            tokenized = cache[text]
            tokens, text2token, query_text = tokenized.tokens, tokenized.text2token, text
            if len(tokens) > MAX_TOKENS - 2:
                query_text, query, tokens, text2token = _truncate(text, query, tokenized)
            char = query_text[query]
            mask = self._mask(char) if self.use_mask else np.ones(len(self.labels), np.float32)
            rows.append((self._ids(tokens), mask, self.char_ids[char], text2token[query] + 1))
        width = max(len(r[0]) for r in rows)
        ids = np.array([r[0] + [0] * (width - len(r[0])) for r in rows], np.int64)
        attention = np.array([[1] * len(r[0]) + [0] * (width - len(r[0])) for r in rows], np.int64)
        feeds = {"input_ids": ids, "token_type_ids": np.zeros_like(ids), "attention_mask": attention,
                 "phoneme_mask": np.stack([r[1] for r in rows]).astype(np.float32),
                 "char_ids": np.array([r[2] for r in rows], np.int64), "position_ids": np.array([r[3] for r in rows], np.int64)}
        groups: dict[str, list[int]] = {}
        for k, (text, _) in enumerate(queries):
            groups.setdefault(text, []).append(k)
        if len(queries) <= 1 or all(len(g) == 1 for g in groups.values()):
            return self._run(feeds)
        labels: list[str | None] = [None] * len(queries)
        for members in groups.values():
            group = {name: value[members] for name, value in feeds.items()}
            if len(members) > 1:  # one row of context for all of the sentence's polyphones
                for name in ("input_ids", "token_type_ids", "attention_mask"):
                    group[name] = group[name][:1]
            for k, label in zip(members, self._run(group), strict=True):
                labels[k] = label
        return labels

    def _run(self, feeds: dict[str, np.ndarray]) -> list[str]:
        probs = self.session.run(None, feeds)[0]
        if self.observer is not None:
            self.observer(feeds, probs)
        return [self.labels[i] for i in np.argmax(probs, axis=1)]


def _truncate(text: str, query: int, tokenized: Tokenized) -> tuple[str, int, list[str], list[int | None]]:
    """A text of more than 510 tokens cut to 510 tokens centred on the query's, moved inside the text at its ends
    (official ``_truncate``)."""
    keep = MAX_TOKENS - 2
    tokens, text2token, token2text = tokenized.tokens, tokenized.text2token, tokenized.token2text
    first = text2token[query] - keep // 2
    if first < 0:
        first = 0
    elif first + keep > len(tokens):
        first = len(tokens) - keep
    start, end = token2text[first][0], token2text[first + keep - 1][1]
    return (text[start:end], query - start, tokens[first:first + keep],
            [None if t is None else t - first for t in text2token[start:end]])


def package_g2pw(package: Path, runtime: dict) -> G2PW | None:
    """The g2pW a package carries (``runtime["auxiliary"]["g2pw"]`` of its manifest: its folder and tokenizer), or
    None when it was exported without one."""
    facts = (runtime.get("auxiliary") or {}).get("g2pw")
    if not facts:
        return None
    return G2PW(Path(package) / facts["folder"], Path(package) / facts["tokenizer"])


def _pairs(path: Path) -> list[tuple[str, str]]:
    return [tuple(line.split("\t")) for line in path.read_text(encoding="utf-8").strip().split("\n")]  # type: ignore[misc]


__all__ = ["FEEDS", "G2PW", "MODEL_FILES", "TOKENIZER_FILE", "Observer", "model_config", "package_g2pw"]
