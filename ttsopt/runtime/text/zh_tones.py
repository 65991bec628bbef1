"""Mandarin tone sandhi (不, 一, neutral tones, third-tone chains) as the official front end applies it.

The rules work on jieba's (word, POS) pieces: first pieces are merged so that the rules see whole
units (不 + next word, reduplications, 一 between or before words, third-tone pairs, 儿), then each
word's finals (pypinyin ``FINALS_TONE3``, neutral tone 5) are rewritten. The word lists that decide the
neutral tone are the official ones, read from the data directory's ``tone_sandhi.py`` (as data: the two
set literals are parsed, nothing there is executed).
"""

from __future__ import annotations

import ast
from functools import cache

from ttsopt.runtime.text.data import data_file

NEUTRAL_ENDINGS = "吧呢哈啊呐噻嘛吖嗨呐哦哒额滴哩哟喽啰耶喔诶"
PUNCTUATION = "：，；。？！“”‘’':,;.?!"
Pieces = list[list[str]]


@cache
def word_lists() -> tuple[frozenset[str], frozenset[str]]:
    """(words that must take a neutral tone, words that must not), from the official table."""
    tree = ast.parse(data_file("tone_sandhi.py").read_text(encoding="utf-8"))
    found: dict[str, frozenset[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Set):
            for target in node.targets:
                if isinstance(target, ast.Attribute):
                    found[target.attr] = frozenset(ast.literal_eval(node.value))
    return found["must_neural_tone_words"], found["must_not_neural_tone_words"]


def _finals(word: str) -> list[str]:
    from pypinyin import Style, lazy_pinyin

    return lazy_pinyin(word, neutral_tone_with_five=True, style=Style.FINALS_TONE3)


def _retone(final: str, tone: str) -> str:
    return final[:-1] + tone


def _all_third(finals: list[str]) -> bool:
    return all(f[-1] == "3" for f in finals)


def _two_parts(word: str) -> list[str]:
    """The word cut in two around its shortest search-mode sub-word (official ``_split_word``)."""
    import jieba_fast

    shortest = sorted(jieba_fast.cut_for_search(word), key=len)[0]
    return [shortest, word[len(shortest):]] if word.find(shortest) == 0 else [word[:-len(shortest)], shortest]


def _neutral(word: str, pos: str, finals: list[str]) -> list[str]:
    must, must_not = word_lists()
    for j in range(1, len(word)):
        if word[j] == word[j - 1] and pos[0] in "nva" and word not in must_not:
            finals[j] = _retone(finals[j], "5")
    ge = word.find("个")
    if word and word[-1] in NEUTRAL_ENDINGS + "的地得":
        finals[-1] = _retone(finals[-1], "5")
    elif len(word) == 1 and word in "了着过" and pos in {"ul", "uz", "ug"}:
        finals[-1] = _retone(finals[-1], "5")
    elif len(word) > 1 and word[-1] in "们子" and pos in {"r", "n"} and word not in must_not:
        finals[-1] = _retone(finals[-1], "5")
    elif len(word) > 1 and word[-1] in "上下里" and pos in {"s", "l", "f"}:
        finals[-1] = _retone(finals[-1], "5")
    elif len(word) > 1 and word[-1] in "来去" and word[-2] in "上下进出回过起开":
        finals[-1] = _retone(finals[-1], "5")
    elif (ge >= 1 and (word[ge - 1].isnumeric() or word[ge - 1] in "几有两半多各整每做是")) or word == "个":
        finals[ge] = _retone(finals[ge], "5")
    elif word in must or word[-2:] in must:
        finals[-1] = _retone(finals[-1], "5")
    parts = _two_parts(word)
    split = [finals[:len(parts[0])], finals[len(parts[0]):]]
    for part, part_finals in zip(parts, split, strict=True):
        if part in must or part[-2:] in must:
            part_finals[-1] = _retone(part_finals[-1], "5")
    return split[0] + split[1]


def _bu(word: str, finals: list[str]) -> list[str]:
    if len(word) == 3 and word[1] == "不":  # 看不懂
        finals[1] = _retone(finals[1], "5")
        return finals
    for i, char in enumerate(word[:-1]):
        if char == "不" and finals[i + 1][-1] == "4":  # 不怕
            finals[i] = _retone(finals[i], "2")
    return finals


def _yi(word: str, finals: list[str]) -> list[str]:
    if "一" in word and all(c.isnumeric() for c in word if c != "一"):  # 一零零
        return finals
    if len(word) == 3 and word[1] == "一" and word[0] == word[-1]:  # 看一看
        finals[1] = _retone(finals[1], "5")
    elif word.startswith("第一"):
        finals[1] = _retone(finals[1], "1")
    else:
        for i, char in enumerate(word[:-1]):
            if char == "一":
                if finals[i + 1][-1] == "4":
                    finals[i] = _retone(finals[i], "2")
                elif word[i + 1] not in PUNCTUATION:
                    finals[i] = _retone(finals[i], "4")
    return finals


def _third(word: str, finals: list[str]) -> list[str]:
    if len(word) == 2 and _all_third(finals):
        finals[0] = _retone(finals[0], "2")
    elif len(word) == 3:
        parts = _two_parts(word)
        if _all_third(finals):
            if len(parts[0]) == 2:  # 蒙古/包
                finals[0], finals[1] = _retone(finals[0], "2"), _retone(finals[1], "2")
            elif len(parts[0]) == 1:  # 纸/老虎
                finals[1] = _retone(finals[1], "2")
        else:
            split = [finals[:len(parts[0])], finals[len(parts[0]):]]
            for i, sub in enumerate(split):
                if _all_third(sub) and len(sub) == 2:  # 所有/人
                    sub[0] = _retone(sub[0], "2")
                elif i == 1 and not _all_third(sub) and sub[0][-1] == "3" and split[0][-1][-1] == "3":  # 好/喜欢
                    split[0][-1] = _retone(split[0][-1], "2")
            finals = split[0] + split[1]
    elif len(word) == 4:  # idioms: two pairs
        finals = [_retone(f, "2") if k == 0 and _all_third(pair) else f
                  for pair in (finals[:2], finals[2:]) for k, f in enumerate(pair)]
    return finals


def apply(word: str, pos: str, finals: list[str]) -> list[str]:
    """The word's finals after every sandhi rule (不, 一, neutral, third tone, in the official order)."""
    return _third(word, _neutral(word, pos, _yi(word, _bu(word, list(finals)))))


def _merge_bu(pieces: Pieces) -> Pieces:
    merged, last = [], ""
    for word, pos in pieces:
        if last == "不":
            word = last + word
        if word != "不":
            merged.append([word, pos])
        last = word
    if last == "不":
        merged.append([last, "d"])
    return merged


def _merge_yi(pieces: Pieces) -> Pieces:
    merged, i = [], 0
    while i < len(pieces):
        word, pos = pieces[i]
        if i >= 1 and word == "一" and i + 1 < len(pieces):
            last = merged[-1] if merged else pieces[i - 1]
            following = pieces[i + 1]
            if last[0] == following[0] and last[1] == "v" and following[1] == "v":  # 听一听
                merged[-1] = [last[0] + "一" + following[0], last[1]]
                i += 2
                continue
        merged.append([word, pos])
        i += 1
    result: Pieces = []
    for word, pos in merged:  # a lone 一 takes the next word
        if result and result[-1][0] == "一":
            result[-1][0] += word
        else:
            result.append([word, pos])
    return result


def _merge_reduplication(pieces: Pieces) -> Pieces:
    merged: Pieces = []
    for word, pos in pieces:
        if merged and word == merged[-1][0]:
            merged[-1][0] += word
        else:
            merged.append([word, pos])
    return merged


def _merge_third_tones(pieces: Pieces, whole_words: bool) -> Pieces:
    """Join neighbours that are both all third tone (``whole_words``) or meet on two third tones."""
    finals = [_finals(word) for word, _ in pieces]
    merged: Pieces = []
    joined = [False] * len(pieces)
    for i, (word, pos) in enumerate(pieces):
        if whole_words:
            meets = i >= 1 and _all_third(finals[i - 1]) and _all_third(finals[i])
        else:
            meets = i >= 1 and finals[i - 1][-1][-1] == "3" and finals[i][0][-1] == "3"
        previous = pieces[i - 1][0] if i >= 1 else ""
        reduplicated = len(previous) == 2 and previous[0] == previous[1]
        if meets and not joined[i - 1] and not reduplicated and len(previous) + len(word) <= 3:
            merged[-1][0] += word
            joined[i] = True
        else:
            merged.append([word, pos])
    return merged


def _merge_er(pieces: Pieces) -> Pieces:
    merged: Pieces = []
    for i, (word, pos) in enumerate(pieces):
        if i >= 1 and word == "儿" and pieces[i - 1][0] != "#":
            merged[-1][0] += word
        else:
            merged.append([word, pos])
    return merged


def _guarded(merge, pieces: Pieces, *args) -> Pieces:
    """The official code skips a merge step that fails (e.g. a piece pypinyin gives no final for)."""
    try:
        return merge(pieces, *args)
    except (IndexError, ValueError):
        return pieces


def merge_for_sandhi(pieces: list[tuple[str, str]]) -> Pieces:
    """jieba's (word, POS) pieces regrouped the way the sandhi rules expect them."""
    merged = _merge_bu([list(p) for p in pieces])
    merged = _guarded(_merge_yi, merged)
    merged = _merge_reduplication(merged)
    merged = _guarded(_merge_third_tones, merged, True)
    merged = _guarded(_merge_third_tones, merged, False)
    return _merge_er(merged)
