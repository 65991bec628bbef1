"""Cantonese G2P as the official v2 front end does it: ToJyutping readings split into Y-prefixed phones.

Text is normalised by the Mandarin normaliser (:mod:`.zh_normalize`, as upstream does) with Cantonese
punctuation rules; each character's Jyutping syllable is cut at the first initial of the official prefix list
(so "aai" reads as "aa" + "i"), the final carrying the tone, and every phone is prefixed with "Y" to keep
it apart from the Mandarin phones (``nei5`` → ``Yn Yei5``); marks stay one phone each.
"""

from __future__ import annotations

import re

from ttsopt.errors import TtsoptError
from ttsopt.runtime.text import zh_normalize
from ttsopt.runtime.text.zh import PUNCTUATION, keep_hanzi_and_marks

# The official prefix order (first match wins), including its quirks.
INITIALS = ["aa", "aai", "aak", "aap", "aat", "aau", "ai", "au", "ap", "at", "ak", "a", "p", "b", "e", "ts", "t", "dz", "d", "kw",
            "k", "gw", "g", "f", "h", "l", "m", "ng", "n", "s", "y", "w", "c", "z", "j", "ong", "on", "ou", "oi", "ok", "o", "uk",
            "ung", "sp", "spl", "spn", "sil"]
MARKS = {"：": ",", "；": ",", "，": ",", "。": ".", "！": "!", "？": "?", "\n": ".", "·": ",", "、": ",", "...": "…", "$": ".",
         "“": "'", "”": "'", '"': "'", "‘": "'", "’": "'", "（": "'", "）": "'", "(": "'", ")": "'", "《": "'", "》": "'",
         "【": "'", "】": "'", "[": "'", "]": "'", "—": "-", "～": "-", "~": "-", "「": "'", "」": "'"}
_SYLLABLE = re.compile(r"^([a-z]+[1-6]+[ ]?)+$")


def normalize(text: str) -> str:
    """Upstream ``cantonese.text_normalize``: the Mandarin normaliser's sentences (:mod:`.zh_normalize`), each with
    the Cantonese punctuation table (no 嗯/呣 rewrite, repeated marks kept)."""
    return "".join(keep_hanzi_and_marks(s, MARKS) for s in zh_normalize.sentences(text))


def syllable_phones(syllable: str) -> list[str]:
    tone = syllable[-1] if syllable[-1].isdigit() else ""
    base = syllable[:-1] if tone else syllable
    initial = next((i for i in INITIALS if base.startswith(i)), None)
    if initial is None:
        raise TtsoptError(f"Cantonese syllable {syllable!r} has no known initial: the Jyutping table cannot read it")
    if base.startswith("nga"):
        first, final = base[:2], base[2:] or base[-1]
    else:
        first, final = initial, base[len(initial):] or initial[-1]
    return ["Y" + first, "Y" + final + (tone if tone not in ("", "0") else "")]


def g2p(norm_text: str) -> tuple[list[str], list[int]]:
    """(phones, word2ph) of normalised Cantonese text."""
    import ToJyutping

    phones: list[str] = []
    word2ph: list[int] = []
    for word, reading in ToJyutping.get_jyutping_list(norm_text):
        if re.fullmatch(f"[{re.escape(PUNCTUATION)}]+", word):
            phones += list(word)
            word2ph += [1] * len(word)
            continue
        if reading is None or not _SYLLABLE.search(reading):
            raise TtsoptError(f"no Jyutping reading for {word!r}: replace it or write it in another way")
        for syllable in reading.split():
            phones += syllable_phones(syllable)
            word2ph.append(2)
    return phones, word2ph
