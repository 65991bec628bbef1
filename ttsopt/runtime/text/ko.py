"""Korean G2P as the official v2 front end does it: g2pk2 (mecab-ko) pronunciation, split into jamo.

Latin letters are first read as Korean letter names, g2pk2 applies the pronunciation rules, the result
is decomposed into compatibility jamo with compound vowels split (ㅘ → ㅗㅏ), one known g2pk2 slip is
corrected, and each character becomes a phone; a space is ``空`` and anything the table lacks ``停``.

g2pk2 imports nltk and downloads CMUdict at import (for English inside Korean text); ttsopt gives it a
stand-in nltk whose CMU dictionary is the official GPT-SoVITS one, so nothing is downloaded.
"""

from __future__ import annotations

import contextlib
import io
import re
import sys
import types
from functools import cache

from ttsopt.errors import TtsoptError

LETTER_NAMES = {"a": "에이", "b": "비", "c": "시", "d": "디", "e": "이", "f": "에프", "g": "지", "h": "에이치", "i": "아이",
                "j": "제이", "k": "케이", "l": "엘", "m": "엠", "n": "엔", "o": "오", "p": "피", "q": "큐", "r": "아르",
                "s": "에스", "t": "티", "u": "유", "v": "브이", "w": "더블유", "x": "엑스", "y": "와이", "z": "제트"}
COMPOUND_VOWELS = {"ㅘ": "ㅗㅏ", "ㅙ": "ㅗㅐ", "ㅚ": "ㅗㅣ", "ㅝ": "ㅜㅓ", "ㅞ": "ㅜㅔ", "ㅟ": "ㅜㅣ", "ㅢ": "ㅡㅣ",
                   "ㅑ": "ㅣㅏ", "ㅒ": "ㅣㅐ", "ㅕ": "ㅣㅓ", "ㅖ": "ㅣㅔ", "ㅛ": "ㅣㅗ", "ㅠ": "ㅣㅜ"}
MARKS = {"：": ",", "；": ",", "，": ",", "。": ".", "！": "!", "？": "?", "\n": ".", "·": ",", "、": ",", "...": "…", " ": "空"}
UNKNOWN = "停"


class _CmuForG2pk:
    """nltk's ``cmudict.dict()`` shape (word → list of readings), from the official dictionary, loaded on first use."""

    def _words(self) -> dict[str, list[str]]:
        from ttsopt.runtime.text.en import dictionary

        return dictionary()

    def __contains__(self, word: str) -> bool:
        return word in self._words()

    def __getitem__(self, word: str) -> list[list[str]]:
        return [self._words()[word]]

    def get(self, word: str, default=None):
        return self[word] if word in self else default


@cache
def _g2pk():
    stand_in = types.ModuleType("nltk")
    stand_in.data = types.SimpleNamespace(find=lambda path: path)
    stand_in.download = lambda name: True
    corpus = types.ModuleType("nltk.corpus")
    corpus.cmudict = types.SimpleNamespace(dict=_CmuForG2pk)
    stand_in.corpus = corpus
    saved = {name: sys.modules.get(name) for name in ("nltk", "nltk.corpus")}
    sys.modules.update({"nltk": stand_in, "nltk.corpus": corpus})
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # g2pk2 prints "mecab installed"
            from g2pk2 import G2p

            return G2p()
    except ImportError as e:
        raise TtsoptError("Korean needs g2pk2 and python-mecab-ko: pip install 'ttsopt[text]'") from e
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def _fix_g2pk2(text: str) -> str:
    """g2pk2 leaves "을/를 ㄹ…" where the liaison gives "… ㄴ" (the official correction)."""
    fixed, i = "", 0
    while i < len(text) - 4:
        if text[i:i + 3] in ("ㅇㅡㄹ", "ㄹㅡㄹ") and text[i + 3] == " " and text[i + 4] == "ㄹ":
            fixed += text[i:i + 3] + " ㄴ"
            i += 5
        else:
            fixed += text[i]
            i += 1
    return fixed + text[i:]


def normalize(text: str) -> str:
    return text


def g2p(norm_text: str, symbols: set[str]) -> list[str]:
    from jamo import h2j, j2hcj

    text = re.sub("[a-z]", lambda m: LETTER_NAMES[m.group().lower()], norm_text, flags=re.IGNORECASE)
    text = j2hcj(h2j(_g2pk()(text)))
    for compound, parts in COMPOUND_VOWELS.items():
        text = text.replace(compound, parts)
    text = re.sub(r"([\u3131-\u3163])$", r"\1.", _fix_g2pk2(text))
    phones = []
    for char in text:
        phone = MARKS.get(char, char)
        phones.append(phone if phone in symbols else UNKNOWN)
    return phones
