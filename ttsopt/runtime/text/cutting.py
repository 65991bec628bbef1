"""Sentence cutting before G2P: the official GPT-SoVITS cut methods and the rules around them.

Long text is synthesised sentence by sentence (the GPT takes at most 1500 semantic tokens and drifts on
long inputs), so the text is cut first. ``cut0``–``cut5`` behave as the official methods of the same name
(``cut5``, "at every punctuation mark", is the official API's default); :func:`sentences` then applies the
official pre- and post-rules: a leading "。"/"." when the text starts with a piece shorter than 4
characters, pieces merged until they are at least 5 characters long, pieces of punctuation only
dropped, a closing mark added, and pieces over 510 characters (the BERT limit) cut at punctuation.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from ttsopt.errors import TtsoptError

# The marks a sentence may end with (official ``splits``); ``cut1``/``cut2`` cut after each of them.
SENTENCE_MARKS = frozenset("，。？！,.?!~:：—…")
# What ``cut5`` cuts at.
CUT5_MARKS = frozenset(",.;?!、，。？！;：…")
# Pieces made only of these are dropped by the cut methods.
PUNCTUATION_ONLY = frozenset("!?…,.- ")
# Runs of these collapse to their first mark before cutting (official ``replace_consecutive_punctuation``).
COLLAPSING_MARKS = "!?…,.-"
MIN_PIECE_CHARS = 5
MAX_PIECE_CHARS = 510
DEFAULT_METHOD = "cut5"


def collapse_repeated_marks(text: str, marks: str = COLLAPSING_MARKS) -> str:
    """``"Hi!!?"`` → ``"Hi!"``: a run of marks keeps only its first."""
    escaped = "".join(re.escape(m) for m in marks)
    return re.sub(f"([{escaped}])([{escaped}])+", r"\1", text)


def _only_punctuation(piece: str, marks: frozenset[str] = PUNCTUATION_ONLY) -> bool:
    return set(piece).issubset(marks)


def _after_each_mark(text: str) -> list[str]:
    """Pieces that each end at a sentence mark ("……" and "——" read as "。" and "，" first)."""
    text = text.replace("……", "。").replace("——", "，")
    if text[-1] not in SENTENCE_MARKS:
        text += "。"
    pieces, start = [], 0
    for i, char in enumerate(text):
        if char in SENTENCE_MARKS:
            pieces.append(text[start:i + 1])
            start = i + 1
    return pieces


def cut0(text: str) -> str:
    """No cutting. (The official method returns the literal "/n" for text of punctuation only; so does this.)"""
    return "/n" if _only_punctuation(text) else text


def cut1(text: str) -> str:
    """Four sentences per piece."""
    text = text.strip("\n")
    pieces = _after_each_mark(text)
    bounds = list(range(0, len(pieces), 4))
    bounds[-1] = None
    joined = ["".join(pieces[a:b]) for a, b in zip(bounds, bounds[1:], strict=False)] if len(bounds) > 1 else [text]
    return "\n".join(p for p in joined if not _only_punctuation(p))


def cut2(text: str) -> str:
    """Pieces of just over 50 characters; a short last piece joins the one before."""
    text = text.strip("\n")
    pieces = _after_each_mark(text)
    if len(pieces) < 2:
        return text
    joined, current = [], ""
    for piece in pieces:
        current += piece
        if len(current) > 50:
            joined.append(current)
            current = ""
    if current:
        joined.append(current)
    if len(joined) > 1 and len(joined[-1]) < 50:
        joined[-2:] = [joined[-2] + joined[-1]]
    return "\n".join(p for p in joined if not _only_punctuation(p))


def cut3(text: str) -> str:
    """At every Chinese full stop "。"."""
    text = text.strip("\n")
    return "\n".join(p for p in text.strip("。").split("。") if not _only_punctuation(p))


def cut4(text: str) -> str:
    """At every "." that is not a decimal point."""
    text = text.strip("\n")
    return "\n".join(p for p in re.split(r"(?<!\d)\.(?!\d)", text.strip(".")) if not _only_punctuation(p))


def cut5(text: str) -> str:
    """At every punctuation mark (a "." between digits is kept)."""
    text = text.strip("\n")
    pieces, current = [], []
    for i, char in enumerate(text):
        current.append(char)
        decimal_point = char == "." and 0 < i < len(text) - 1 and text[i - 1].isdigit() and text[i + 1].isdigit()
        if char in CUT5_MARKS and not decimal_point:
            pieces.append("".join(current))
            current = []
    if current:
        pieces.append("".join(current))
    return "\n".join(p for p in pieces if not _only_punctuation(p, CUT5_MARKS))


METHODS: dict[str, Callable[[str], str]] = {"cut0": cut0, "cut1": cut1, "cut2": cut2, "cut3": cut3, "cut4": cut4, "cut5": cut5}


def cut_method(name: str) -> Callable[[str], str]:
    if name not in METHODS:
        raise TtsoptError(f"unknown cut method {name!r}: use one of {', '.join(METHODS)}")
    return METHODS[name]


def _first_piece(text: str) -> str:
    return re.split("[" + "".join(re.escape(m) for m in sorted(SENTENCE_MARKS)) + "]", text)[0].strip()


def merge_short(pieces: list[str], min_chars: int = MIN_PIECE_CHARS) -> list[str]:
    """Join consecutive pieces until each has ``min_chars``; a short tail joins the last piece."""
    if len(pieces) < 2:
        return pieces
    merged, current = [], ""
    for piece in pieces:
        current += piece
        if len(current) >= min_chars:
            merged.append(current)
            current = ""
    if current:
        if merged:
            merged[-1] += current
        else:
            merged.append(current)
    return merged


def split_long(text: str, max_chars: int = MAX_PIECE_CHARS) -> list[str]:
    """Cut a piece over ``max_chars`` at punctuation so that each part fits."""
    parts, current = [], ""
    for segment in re.split("([" + "".join(re.escape(m) for m in sorted(SENTENCE_MARKS)) + "])", text):
        if len(current + segment) > max_chars:
            parts.append(current)
            current = segment
        else:
            current += segment
    if current:
        parts.append(current)
    return parts


def sentences(text: str, lang: str, method: str = DEFAULT_METHOD) -> list[str]:
    """The pieces the official front end synthesises one by one, each closed by a sentence mark.

    Empty text, or text of punctuation only, gives ``[]``.
    """
    closing = "." if lang == "en" else "。"
    text = collapse_repeated_marks(text).strip("\n")
    if not text:
        return []
    if text[0] not in SENTENCE_MARKS and len(_first_piece(text)) < 4:
        text = closing + text
    text = cut_method(method)(text)
    while "\n\n" in text:
        text = text.replace("\n\n", "\n")
    pieces = merge_short([p for p in text.split("\n") if p not in ("", " ")])
    result = []
    for piece in pieces:
        if not piece.strip() or not re.sub(r"\W+", "", piece):
            continue
        if piece[-1] not in SENTENCE_MARKS:
            piece += closing
        result.extend(split_long(piece) if len(piece) > MAX_PIECE_CHARS else [piece])
    return result
