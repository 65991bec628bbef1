"""Mandarin G2P (the official v1 path): normalise → jieba (POS) → pypinyin → tone sandhi → opencpop phones.

Each hanzi becomes an initial and a final with its tone (``n i2``, from the official opencpop-strict
table; zero-initial syllables use the table's ``y``/``w``/vowel initials), each punctuation mark one phone:
``word2ph`` is 2 per hanzi and 1 per mark, which is what spreads BERT features over the phones.

v2 models read polyphones with g2pW (the user's ``G2PWModel``, carried by the package; :mod:`.g2pw`), then the
official word overrides (``g2pw/polyphonic.rep`` and ``polyphonic-fix.rep``), tone sandhi and erhua
(:func:`g2p_g2pw`); without it the pypinyin readings of v1 are used and :func:`g2p_v2` says so once.

Text is normalised by :mod:`.zh_normalize` (upstream's ``TextNormalizer``: numbers, dates, times, units, phone
numbers read out as upstream reads them), then the Mandarin punctuation table (:func:`normalize`).
"""

from __future__ import annotations

import ast
import logging
import re
from functools import cache
from typing import TYPE_CHECKING

from ttsopt.runtime.text import zh_normalize, zh_tones
from ttsopt.runtime.text.data import data_file

if TYPE_CHECKING:
    from ttsopt.runtime.text.g2pw import G2PW

log = logging.getLogger("ttsopt")

PUNCTUATION = "!?…,.-"
MARKS = {"：": ",", "；": ",", "，": ",", "。": ".", "！": "!", "？": "?", "\n": ".", "·": ",", "、": ",", "...": "…",
         "$": ".", "/": ",", "—": "-", "~": "…", "～": "…"}
# Syllables without an initial, spelled the way the opencpop table lists them.
ZERO_INITIAL = {"ing": "ying", "i": "yi", "in": "yin", "u": "wu"}
ZERO_INITIAL_FIRST = {"v": "yu", "e": "e", "i": "y", "u": "w"}
CONTRACTED_FINALS = {"uei": "ui", "iou": "iu", "uen": "un"}


@cache
def pinyin_table() -> dict[str, tuple[str, str]]:
    """Toneless pinyin → (initial, final) phones, the official ``opencpop-strict.txt``."""
    table = {}
    for line in data_file("opencpop-strict.txt").read_text(encoding="utf-8").splitlines():
        if line.strip():
            syllable, phones = line.split("\t")
            initial, final = phones.strip().split(" ")
            table[syllable] = (initial, final)
    return table


def keep_hanzi_and_marks(text: str, marks: dict[str, str]) -> str:
    """Marks mapped to the six phone marks ``!?…,.-``; everything else that is not a hanzi removed."""
    text = re.sub("|".join(re.escape(m) for m in marks), lambda m: marks[m.group()], text)
    return re.sub(r"[^\u4e00-\u9fa5" + re.escape(PUNCTUATION) + r"]+", "", text)


def normalize(text: str) -> str:
    """Normalised Mandarin (upstream ``chinese.text_normalize``, the same in ``chinese2``): the shared normaliser's
    sentences (:mod:`.zh_normalize`), each with 嗯/呣 → 恩/母 and only hanzi and the six marks ``!?…,.-`` kept,
    joined, no mark repeated."""
    text = "".join(keep_hanzi_and_marks(s.replace("嗯", "恩").replace("呣", "母"), MARKS) for s in zh_normalize.sentences(text))
    escaped = re.escape(PUNCTUATION)
    return re.sub(f"([{escaped}])([{escaped}])+", r"\1", text)


#: Marks that make every pause of a Mandarin segment a special silence phone (upstream ``cleaner.special``, first
#: match wins): the mark is read as "," and each "," phone becomes the symbol.
SPECIAL_PAUSES = (("￥", "SP2"), ("^", "SP3"))


def read(text: str, version: str, g2pw: G2PW | None = None) -> tuple[str, list[str], list[int]]:
    """(norm_text, phones, word2ph) of one Mandarin segment, as upstream's ``clean_text`` gives them: v1 reads
    with pypinyin (:func:`g2p`), v2 with g2pW (:func:`g2p_v2`); a segment with ``￥`` or ``^`` has each of them
    read as "," and every "," phone replaced by ``SP2``/``SP3`` (upstream's ``clean_special``, which is how
    ``￥`` is handled: the sign is never read as money)."""
    special = next(((mark, phone) for mark, phone in SPECIAL_PAUSES if mark in text), None)
    if special:
        text = text.replace(special[0], ",")
    norm = normalize(text)
    phones, word2ph = g2p(norm) if version == "v1" else g2p_v2(norm, g2pw)
    if special:
        phones = [special[1] if p == "," else p for p in phones]
    return norm, phones, word2ph


def _emit(initials: list[str], finals: list[str], phones: list[str], word2ph: list[int]) -> None:
    """Append a word's phones: two per syllable (initial + final), one per punctuation mark (initial == final)."""
    for initial, final in zip(initials, finals, strict=False):
        if initial == final:
            phones.append(initial)
            word2ph.append(1)
        else:
            phones += _syllable_phones(initial, final)
            word2ph.append(2)


def _syllable_phones(initial: str, final_with_tone: str) -> list[str]:
    final, tone = final_with_tone[:-1], final_with_tone[-1]
    if initial:
        syllable = initial + CONTRACTED_FINALS.get(final, final)
    else:
        syllable = final
        syllable = ZERO_INITIAL.get(syllable) or (ZERO_INITIAL_FIRST.get(syllable[0], syllable[0]) + syllable[1:])
    phone_initial, phone_final = pinyin_table()[syllable]
    return [phone_initial, phone_final + tone]


@cache
def _segmenter():
    """jieba_fast's POS segmenter, without its dictionary-loading chatter on stderr."""
    import jieba_fast
    import jieba_fast.posseg

    jieba_fast.setLogLevel(logging.CRITICAL)
    return jieba_fast.posseg


def g2p(norm_text: str) -> tuple[list[str], list[int]]:
    """(phones, word2ph) of normalised Mandarin text."""
    from pypinyin import Style, lazy_pinyin

    phones: list[str] = []
    word2ph: list[int] = []
    for piece in re.split(f"(?<=[{re.escape(PUNCTUATION)}])\\s*", norm_text):
        if not piece.strip():
            continue
        words = zh_tones.merge_for_sandhi([(w, p) for w, p in _segmenter().lcut(re.sub("[a-zA-Z]+", "", piece))])
        for word, pos in words:
            if pos == "eng":
                continue
            initials = lazy_pinyin(word, neutral_tone_with_five=True, style=Style.INITIALS)
            finals = zh_tones.apply(word, pos, lazy_pinyin(word, neutral_tone_with_five=True, style=Style.FINALS_TONE3))
            _emit(initials, finals, phones, word2ph)
    return phones, word2ph


#: polyphonic-fix.rep entries of the official data that gpt-sovits-cpufast 0.1.0's copy lacks (its last line).
_FIX_MISSING_FROM_CPUFAST = {"唑": ["zuo4"]}


def _rep_file(name: str) -> dict[str, list[str]]:
    """``word: ['pin1', 'yin1']`` lines, read as data."""
    table = {}
    for line in data_file(f"g2pw/{name}").read_text(encoding="utf-8").splitlines():
        word, sep, readings = line.partition(":")
        if sep:
            table[word.strip()] = re.findall(r"'([^']*)'", readings)
    return table


@cache
def word_overrides() -> dict[str, list[str]]:
    """The official readings that replace g2pW's: per word, else per character (``polyphonic-fix.rep`` wins)."""
    fix = _rep_file("polyphonic-fix.rep")
    for word, readings in _FIX_MISSING_FROM_CPUFAST.items():
        fix.setdefault(word, readings)
    return _rep_file("polyphonic.rep") | fix


@cache
def _erhua_words() -> tuple[frozenset[str], frozenset[str]]:
    """(words always read with erhua, words never), the official sets of ``chinese2.py`` parsed as data."""
    found = {}
    for node in ast.parse(data_file("chinese2.py").read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name) and node.targets[0].id in ("must_erhua", "not_erhua"):
            found[node.targets[0].id] = frozenset(ast.literal_eval(node.value))
    return found["must_erhua"], found["not_erhua"]


def _override(word: str, readings: list[str]) -> list[str]:
    table = word_overrides()
    if word in table:
        return list(table[word])
    return [table[char][0] if char in table else reading for char, reading in zip(word, readings, strict=False)] + readings[len(word):]


def _erhua(initials: list[str], finals: list[str], word: str, pos: str) -> tuple[list[str], list[str]]:
    """儿 after a syllable takes that syllable's tone, except in the official exception words and POS."""
    must, never = _erhua_words()
    if finals and len(finals) <= len(word) and word[len(finals) - 1] == "儿" and finals[-1] == "er1":
        finals = finals[:-1] + ["er2"]
    if (word not in must and (word in never or pos in {"a", "j", "nr"})) or len(finals) != len(word):
        return initials, finals
    if len(word) > 1 and word[-1] == "儿" and finals[-1] in {"er2", "er5"} and word[-2:] not in never:
        finals = finals[:-1] + ["er" + finals[-2][-1]]
    return initials, finals


def g2p_g2pw(norm_text: str, g2pw: G2PW) -> tuple[list[str], list[int]]:
    """(phones, word2ph) of normalised Mandarin the v2 way: g2pW readings for every piece between marks (one
    batch), then per jieba word the official overrides, tone sandhi and erhua."""
    from pypinyin.contrib.tone_convert import to_finals_tone3, to_initials

    pieces = [p for p in re.split(f"(?<=[{re.escape(PUNCTUATION)}])\\s*", norm_text) if p.strip()]
    pieces = [re.sub("[a-zA-Z]+", "", p) for p in pieces]
    read = [p for p in pieces if p]
    readings = iter(g2pw(read) if read else [])
    phones: list[str] = []
    word2ph: list[int] = []
    for piece in pieces:
        pinyins = next(readings) if piece else []
        start = 0
        for word, pos in zh_tones.merge_for_sandhi(_segmenter().lcut(piece)):
            end = start + len(word)
            word_pinyins, start = pinyins[start:end], end
            if pos == "eng":
                continue
            initials, finals = [], []
            for reading in _override(word, word_pinyins):
                if reading[0].isalpha():
                    initials.append(to_initials(reading))
                    finals.append(to_finals_tone3(reading, neutral_tone_with_five=True))
                else:
                    initials.append(reading)
                    finals.append(reading)
            initials, finals = _erhua(initials, zh_tones.apply(word, pos, finals), word, pos)
            _emit(initials, finals, phones, word2ph)
    return phones, word2ph


_warned_g2pw = False


def g2p_v2(norm_text: str, g2pw: G2PW | None = None) -> tuple[list[str], list[int]]:
    """v2: g2pW's readings (:func:`g2p_g2pw`); without the model, the v1 readings, with a warning once per process."""
    global _warned_g2pw
    if g2pw is not None:
        return g2p_g2pw(norm_text, g2pw)
    if not _warned_g2pw:
        log.warning("zh (v2): g2pW is not available, polyphones use pypinyin's readings (the v1 front end; many differ "
                    "from the official ones): export with --g2pw or --pretrained (your checkout's GPT_SoVITS/text/G2PWModel)")
        _warned_g2pw = True
    return g2p(norm_text)
