"""English G2P as the official v2 front end does it: CMU dictionaries, names, compounds, then g2p_en's model.

Lookup order per word: the merged CMU dictionary (``cmudict.rep``, then ``cmudict-fast.rep`` for words
it lacks, then ``engdict-hot.rep`` overriding; six mispronounced abbreviations removed), the name
dictionary for Title-case words, letters spelled for unknown words of ≤ 3 letters, possessive "'s",
wordsegment's split of compounds, and g2p_en's GRU model (its ``checkpoint20.npz``, run here in numpy;
g2p_en itself is not imported, since it loads nltk data at import).

Words are nltk's ``TweetTokenizer`` tokens, as officially (a hyphenated word is one word). Homographs ("read",
"live", ...) need a POS tagger, which is not available offline: they take their first reading (the one the
official code picks for the homograph's first POS tag), a stated difference.
"""

from __future__ import annotations

import importlib.util
import re
from functools import cache
from pathlib import Path

import numpy as np

from ttsopt.errors import TtsoptError
from ttsopt.runtime.text.data import data_file, load_plain_pickle
from ttsopt.runtime.text.en_normalize import normalize

REMOVED_ABBREVIATIONS = ("ae", "ai", "ar", "ios", "hud", "os")
# Homographs whose official readings differ from g2p_en's file.
HOMOGRAPH_FIXES = {"read": (["R", "IY1", "D"], ["R", "EH1", "D"]),
                   "complex": (["K", "AH0", "M", "P", "L", "EH1", "K", "S"], ["K", "AA1", "M", "P", "L", "EH0", "K", "S"])}
DROPPED_PHONES = {" ", "<pad>", "UW", "</s>", "<s>"}
GRAPHEMES = ["<pad>", "<unk>", "</s>"] + list("abcdefghijklmnopqrstuvwxyz")
PREDICTOR_PHONES = ["<pad>", "<unk>", "<s>", "</s>"] + (
    "AA0 AA1 AA2 AE0 AE1 AE2 AH0 AH1 AH2 AO0 AO1 AO2 AW0 AW1 AW2 AY0 AY1 AY2 B CH D DH EH0 EH1 EH2 ER0 ER1 ER2 EY0 EY1 "
    "EY2 F G HH IH0 IH1 IH2 IY0 IY1 IY2 JH K L M N NG OW0 OW1 OW2 OY0 OY1 OY2 P R S SH T TH UH0 UH1 UH2 UW UW0 UW1 UW2 "
    "V W Y Z ZH").split()
VOICELESS_ENDINGS = {"P", "T", "K", "F", "TH", "HH"}
SIBILANT_ENDINGS = {"S", "Z", "SH", "ZH", "CH", "JH"}


def _g2p_en_dir() -> Path:
    spec = importlib.util.find_spec("g2p_en")
    if spec is None or not spec.submodule_search_locations:
        raise TtsoptError("English needs g2p_en's model files: pip install --no-deps g2p_en==2.1.0")
    return Path(next(iter(spec.submodule_search_locations)))


def _read_rep(path: Path, separator: str, first_line: int = 1) -> dict[str, list[str]]:
    entries: dict[str, list[str]] = {}
    with open(path) as f:
        for number, line in enumerate(f, start=1):
            if number < first_line:
                continue
            word, _, phones = line.strip().partition(separator)
            entries.setdefault(word.lower(), phones.split(" "))
    return entries


@cache
def dictionary() -> dict[str, list[str]]:
    """The merged CMU dictionary, as the official ``get_dict`` builds it (the header of cmudict.rep skipped)."""
    words = _read_rep(data_file("cmudict.rep"), "  ", first_line=57)
    for word, phones in _read_rep(data_file("cmudict-fast.rep"), " ").items():
        words.setdefault(word, phones)
    for word, phones in _read_rep(data_file("engdict-hot.rep"), " ").items():
        words[word] = phones
    for word in REMOVED_ABBREVIATIONS:
        words.pop(word, None)
    return words


@cache
def names() -> dict[str, list[str]]:
    """The official name dictionary (word → its first pronunciation)."""
    return {word: readings[0] for word, readings in load_plain_pickle("namedict_cache.pickle").items()}


@cache
def homographs() -> dict[str, list[str]]:
    """Homograph → the reading taken (the first of g2p_en's ``homographs.en``, with the official fixes)."""
    readings = {}
    for line in (_g2p_en_dir() / "homographs.en").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, first, _second, _pos = line.split("|")
            readings[word.lower()] = first.split()
    readings.update({word: pair[0] for word, pair in HOMOGRAPH_FIXES.items()})
    return readings


class GruPredictor:
    """g2p_en's letters → phones seq2seq (one-layer GRU encoder/decoder, greedy, ≤ 20 phones) in numpy."""

    def __init__(self, checkpoint: Path):
        weights = np.load(checkpoint)
        self.w = {name: weights[name] for name in weights.files}
        self.letter_ids = {g: i for i, g in enumerate(GRAPHEMES)}

    @staticmethod
    def _step(x: np.ndarray, h: np.ndarray, w_ih: np.ndarray, w_hh: np.ndarray, b_ih: np.ndarray, b_hh: np.ndarray) -> np.ndarray:
        gates_x, gates_h = x @ w_ih.T + b_ih, h @ w_hh.T + b_hh
        size = gates_x.shape[-1] // 3
        reset_update = 1 / (1 + np.exp(-(gates_x[:, :2 * size] + gates_h[:, :2 * size])))
        reset, update = reset_update[:, :size], reset_update[:, size:]
        candidate = np.tanh(gates_x[:, 2 * size:] + reset * gates_h[:, 2 * size:])
        return (1 - update) * candidate + update * h

    def __call__(self, word: str) -> list[str]:
        w = self.w
        ids = [self.letter_ids.get(c, self.letter_ids["<unk>"]) for c in list(word) + ["</s>"]]
        h = np.zeros((1, w["enc_w_hh"].shape[1]), np.float32)
        for i in ids:
            h = self._step(w["enc_emb"][[i]], h, w["enc_w_ih"], w["enc_w_hh"], w["enc_b_ih"], w["enc_b_hh"]).astype(np.float32)
        previous, phones = 2, []  # start from <s>
        for _ in range(20):
            h = self._step(w["dec_emb"][[previous]], h, w["dec_w_ih"], w["dec_w_hh"], w["dec_b_ih"], w["dec_b_hh"])
            previous = int((h @ w["fc_w"].T + w["fc_b"]).argmax())
            if previous == 3:  # </s>
                break
            phones.append(PREDICTOR_PHONES[previous] if previous < len(PREDICTOR_PHONES) else "<unk>")
        return phones


@cache
def predictor() -> GruPredictor:
    return GruPredictor(_g2p_en_dir() / "checkpoint20.npz")


@cache
def _tokenizer():
    """nltk's TweetTokenizer, the official tokeniser: hyphenated words ("twenty-four", "made-up") and
    contractions stay one word, read as a whole (the dictionary has many hyphenated entries)."""
    from nltk.tokenize.casual import TweetTokenizer

    return TweetTokenizer()


@cache
def _segmenter():
    import wordsegment

    wordsegment.load()
    return wordsegment


def lookup(word: str) -> list[str]:
    """Phones of one word (letters and at most one apostrophe), as the official ``qryword``."""
    lower = word.lower()
    cmu = dictionary()
    if len(lower) > 1 and lower in cmu:
        return cmu[lower]
    if word.istitle() and lower in names():
        return names()[lower]
    if len(lower) <= 3:
        return [p for c in lower for p in (["EY1"] if c == "a" else [c] if not c.isalpha() else cmu[c])]
    if re.match(r"^([a-z]+)('s)$", lower):
        stem = list(lookup(lower[:-2]))
        return stem + (["S"] if stem[-1] in VOICELESS_ENDINGS else ["AH0", "Z"] if stem[-1] in SIBILANT_ENDINGS else ["Z"])
    parts = _segmenter().segment(lower)
    if len(parts) == 1:
        return predictor()(lower)
    return [p for part in parts for p in lookup(part)]


def pronounce(token: str) -> list[str]:
    lower = token.lower()
    if not re.search("[a-z]", lower):
        return [lower]
    if len(lower) == 1:
        return ["EY1"] if token == "A" else dictionary()[lower]
    if lower in homographs():
        return homographs()[lower]
    return lookup(token)


def g2p(norm_text: str, symbols: set[str]) -> list[str]:
    """Phones of normalised English text; anything outside ``symbols`` is dropped ("'" → "-"), as officially."""
    phones = []
    for token in _tokenizer().tokenize(norm_text):
        for phone in pronounce(token):
            phone = "UNK" if phone == "<unk>" else phone
            if phone in DROPPED_PHONES:
                continue
            if phone in symbols:
                phones.append(phone)
            elif phone == "'":
                phones.append("-")
    return phones


__all__ = ["g2p", "normalize"]
