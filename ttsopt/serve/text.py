"""Request text → phonemes: the one place the server turns the ``input`` field into what the package reads.

``input`` is text in ``lang`` (the request's, else the server's ``--lang``): the runtime's text front end
(:mod:`ttsopt.runtime.text`) cuts it into sentences and gives each sentence's phonemes, which are synthesised
one after the other. ``lang: "phonemes"`` takes ``input`` as space-separated phonemes, as the GPT-SoVITS
front end writes them (one utterance), for clients that run their own front end.

A sentence too long for one synthesis (text without punctuation: the official cut methods cut only at
marks, and its ``split_big_text`` too) is cut here instead of refused: in two at the space (else the
character) nearest its middle, each half phonemized again, until every piece fits ``room`` phonemes.

The front end's dependencies are the ``text`` extra, imported at the first use of a language: a missing one
is the server's fault, not the request's, so it is a :class:`FrontEndUnavailable` (503) naming the extra.
"""

from __future__ import annotations

from ttsopt.errors import TtsoptError
from ttsopt.runtime.text import Sentence

PHONEMES = "phonemes"
INPUT_NOTE = ("text in `lang` (the official modes: zh, ja, ko, yue, all_zh, all_ja, all_ko, all_yue, en, auto, auto_yue; "
              "default: the server's --lang), or space-separated phonemes (e.g. \"n i2 h ao3 .\") with lang \"phonemes\"")
TEXT_EXTRA = "pip install 'ttsopt[text]'"
#: A sentence of each language, phonemized at start-up so that the first request does not load the dictionaries.
WARM_UP = {"en": "Hello, world. I have 5 apples.", "zh": "你好，世界。我有5个苹果。", "yue": "你好，世界。我有5個蘋果。",
           "ja": "こんにちは、世界。", "ko": "안녕하세요, 세계."}


class FrontEndUnavailable(TtsoptError):
    """The text front end of a language cannot run on this server (its dependencies or data are missing)."""


def _front_end(call, lang: str):
    """``call()`` with a missing dependency of the front end reported as :class:`FrontEndUnavailable`."""
    try:
        return call()
    except ImportError as exc:
        missing = exc.name or str(exc)
        raise FrontEndUnavailable(f"the text front end for {lang!r} is not installed on this server ({missing} is missing): "
                                  f"{TEXT_EXTRA}") from None
    except TtsoptError as exc:
        if "install" in str(exc):  # the runtime's own "needs X: pip install ..." / "data is not installed" notes
            raise FrontEndUnavailable(f"the text front end for {lang!r} cannot run on this server: {exc}") from None
        raise


def _fit(text: str, lang: str, tts, room: int, depth: int = 0) -> list[Sentence]:
    """``text`` (one cut sentence) in pieces of at most ``room`` phones, each a front-end sentence (with the text
    its BERT features are made of)."""
    from ttsopt.runtime.text import package_langdetect, sentence_phones

    sentence = sentence_phones(text, lang, tts.phonemes.version, set(tts.phonemes.symbols), getattr(tts, "g2pw", None),
                               langdetect=package_langdetect(tts.package))
    phones = sentence.phones
    if len(phones) <= room:
        return [sentence] if phones else []
    stripped = text.strip()
    if len(stripped) < 2 or depth > 32:
        raise TtsoptError(f"a word of {len(phones)} phonemes does not fit this package's {room}: split it")
    middle = len(stripped) // 2
    spaces = [i for i, char in enumerate(stripped) if char.isspace()]
    cut = min(spaces, key=lambda i: abs(i - middle)) if spaces else middle
    cut = cut or middle
    return _fit(stripped[:cut], lang, tts, room, depth + 1) + _fit(stripped[cut:], lang, tts, room, depth + 1)


def request_sentences(text: str, lang: str, tts, room: int, piece: int, cut: str = "cut5") -> tuple[str | Sentence, ...]:
    """Each piece of ``text`` for package ``tts``: phonemes as given (one utterance of at most ``room``), or the front
    end's sentences (cut by ``cut``, the official cut methods; their phones, and the text their BERT features are made
    of) cut into pieces of at most ``piece`` phonemes (a TtsoptError says how to fix the request;
    :class:`FrontEndUnavailable`, how to fix the server)."""
    if lang == PHONEMES:
        phonemes = " ".join(text.split())
        ids = tts.phoneme_ids(phonemes)
        if ids.size > room:
            raise TtsoptError(f"{ids.size} phonemes; with this voice one request of phonemes takes at most {room}: "
                              "split them into sentences")
        return (phonemes,)
    sentences = _front_end(lambda: tts.phonemize(text, lang, cut), lang)
    pieces: list[Sentence] = []
    for sentence in sentences:
        if len(sentence.phones) <= piece:
            pieces.append(sentence)
        else:
            pieces += _front_end(lambda s=sentence: _fit(s.text, lang, tts, piece), lang)
    return tuple(pieces)


def sentences_key(sentences: tuple[str | Sentence, ...]) -> tuple:
    """What decides the speech of ``sentences`` (phones, and per segment the text and alignment BERT reads), hashable."""
    return tuple(s if isinstance(s, str) else tuple((g.lang, g.norm_text, tuple(g.phones), tuple(g.word2ph or ()))
                                                    for g in s.segments) for s in sentences)


def warm_up(lang: str, tts) -> None:
    """Load ``lang``'s front end (modules, dictionaries) now; :class:`FrontEndUnavailable` if it cannot run."""
    if lang != PHONEMES:
        # a mode's language (all_zh → zh, auto_yue → yue); auto warms the segmenter with Chinese
        _front_end(lambda: tts.phonemize(WARM_UP.get(lang.split("_")[-1], WARM_UP["zh"]), lang), lang)


def server_lang(lang: str, tts) -> str:
    """``--lang`` checked against what the package's symbol table takes."""
    from ttsopt.runtime.text import LANGUAGES

    languages = LANGUAGES.get(tts.phonemes.version, ())
    if lang != PHONEMES and lang not in languages:
        raise TtsoptError(f"--lang {lang} is not available for this {tts.phonemes.version} package: use one of "
                          f"{', '.join(languages)} or {PHONEMES}")
    return lang
