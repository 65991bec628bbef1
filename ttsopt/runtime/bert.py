"""BERT features of Chinese text, torch-free: the package's tokenizer (``tokenizers``) → ``bert`` graph → per phone.

The official ``get_bert_feature(norm_text, word2ph)`` tokenizes a Chinese segment's normalised text, takes
RoBERTa's ``hidden_states[-3]`` without [CLS] and [SEP] (one row per character: the tokenizer splits CJK
characters and marks one by one), repeats row ``i`` ``word2ph[i]`` times and transposes: ``[1024, phones]``.
Segments in any other language (en, ja, ko, yue) get zeros of their phone count, and the segments are
joined along phones. :class:`BertFeatures` does exactly that with the package's ``bert`` graph (exported by
:mod:`ttsopt.families.gpt_sovits.bert`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np

from ttsopt.errors import TtsoptError

if TYPE_CHECKING:
    from ttsopt.runtime.package import Package
    from ttsopt.runtime.text import Segment

BERT_GRAPH = "bert"
TOKENIZER_FILE = "bert_tokenizer.json"
#: The hidden state the official code reads (``hidden_states[-3]``: layer L-2 of L).
HIDDEN_STATE_INDEX = -3
#: Characters per graph call: the model's 512 positions less [CLS] and [SEP].
MAX_CHARACTERS = 510


def encode(tokenizer, text: str) -> dict[str, np.ndarray]:
    """The graph's inputs for ``text`` (batch of 1), as transformers' tokenizer call gives them."""
    encoding = tokenizer.encode(text)
    return {"input_ids": np.array([encoding.ids], np.int64),
            "attention_mask": np.array([encoding.attention_mask], np.int64),
            "token_type_ids": np.array([encoding.type_ids], np.int64)}


def is_chinese(segment: Segment) -> bool:
    """Whether the official code gives a segment BERT features (``zh`` and ``all_zh``; never yue, ja, ko, en)."""
    return segment.lang.removeprefix("all_") == "zh"


class BertFeatures:
    """Per-phone features of Chinese text with a package's ``bert`` graph and tokenizer."""

    def __init__(self, package: Package):
        from tokenizers import Tokenizer

        self.package = package
        graph = package.manifest.graphs[BERT_GRAPH]
        self.dim = int(graph.outputs[0].shape[-1])
        self.tokenizer = Tokenizer.from_file(str(package.path / package.manifest.runtime["bert"]["tokenizer"]))

    def characters(self, text: str) -> np.ndarray:
        """``[tokens - 2, dim]``: the chosen hidden state of each token between [CLS] and [SEP]."""
        if len(text) > MAX_CHARACTERS:
            # The official front end never gets here: it cuts sentences over 510 characters before BERT.
            return np.concatenate([self.characters(text[i:i + MAX_CHARACTERS])
                                   for i in range(0, len(text), MAX_CHARACTERS)])
        features = self.package.run(BERT_GRAPH, encode(self.tokenizer, text))["features"]
        return features[0, 1:-1]

    def phones(self, norm_text: str, word2ph: list[int]) -> np.ndarray:
        """``[dim, sum(word2ph)]``: character ``i``'s row repeated ``word2ph[i]`` times (``get_bert_feature``)."""
        if len(word2ph) != len(norm_text):
            raise TtsoptError(f"word2ph has {len(word2ph)} entries for {len(norm_text)} characters of {norm_text!r}: "
                              "give one phone count per character")
        rows = self.characters(norm_text)
        if rows.shape[0] < len(word2ph):
            raise TtsoptError(f"the BERT tokenizer makes {rows.shape[0]} tokens of the {len(word2ph)} characters of "
                              f"{norm_text!r}, so its features cannot be given per character: write the text in "
                              "Chinese characters and punctuation")
        return np.ascontiguousarray(np.repeat(rows[: len(word2ph)], word2ph, axis=0).T, dtype=np.float32)

    def segments(self, segments: Iterable[Segment]) -> np.ndarray:
        """``[dim, phones]`` of a sentence's segments: Chinese ones through BERT, zeros for the others."""
        parts = [self.phones(s.norm_text, s.word2ph) if is_chinese(s) and s.word2ph is not None
                 else np.zeros((self.dim, len(s.phones)), np.float32) for s in segments]
        return np.concatenate(parts, axis=1) if parts else np.zeros((self.dim, 0), np.float32)


__all__ = ["BERT_GRAPH", "BertFeatures", "HIDDEN_STATE_INDEX", "MAX_CHARACTERS", "TOKENIZER_FILE", "encode", "is_chinese"]
