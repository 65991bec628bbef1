"""Request text → phonemes: the one place the server turns the ``input`` field into what the package reads.

``input`` is text in ``lang`` (the request's, else the server's ``--lang``): the runtime's text front end
(:mod:`ttsopt.runtime.text`) cuts it into sentences and gives each sentence's phonemes, which are synthesised
one after the other. ``lang: "phonemes"`` takes ``input`` as space-separated phonemes, as the GPT-SoVITS
front end writes them (one utterance), for clients that run their own front end.
"""

from __future__ import annotations

from ttsopt.errors import TtsoptError
from ttsopt.runtime.text import Sentence

PHONEMES = "phonemes"
INPUT_NOTE = ("text in `lang` (en, zh, ja, ko, yue; default: the server's --lang), or space-separated phonemes "
              "(e.g. \"n i2 h ao3 .\") with lang \"phonemes\"")


def request_sentences(text: str, lang: str, tts) -> tuple[str | Sentence, ...]:
    """Each sentence of ``text`` for package ``tts`` (a TtsoptError says how to fix the request): the front end's
    sentences (their phones, and the text their BERT features are made of), or one phoneme string."""
    if lang == PHONEMES:
        phonemes = " ".join(text.split())
        tts.phoneme_ids(phonemes)
        return (phonemes,)
    return tuple(tts.phonemize(text, lang))


def sentences_key(sentences: tuple[str | Sentence, ...]) -> tuple:
    """What decides the speech of ``sentences`` (phones, and per segment the text and alignment BERT reads), hashable."""
    return tuple(s if isinstance(s, str) else tuple((g.lang, g.norm_text, tuple(g.phones), tuple(g.word2ph or ()))
                                                    for g in s.segments) for s in sentences)



def server_lang(lang: str, tts) -> str:
    """``--lang`` checked against what the package's symbol table takes."""
    from ttsopt.runtime.text import LANGUAGES

    languages = LANGUAGES.get(tts.phonemes.version, ())
    if lang != PHONEMES and lang not in languages:
        raise TtsoptError(f"--lang {lang} is not available for this {tts.phonemes.version} package: use one of "
                          f"{', '.join(languages)} or {PHONEMES}")
    return lang
