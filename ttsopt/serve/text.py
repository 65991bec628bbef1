"""Request text → phonemes: the one place the server turns the ``input`` field into what the package reads.

``input`` is text in ``lang`` (the request's, else the server's ``--lang``): the runtime's text front end
(:mod:`ttsopt.runtime.text`) cuts it into sentences and gives each sentence's phonemes, which are synthesised
one after the other. ``lang: "phonemes"`` takes ``input`` as space-separated phonemes, as the GPT-SoVITS
front end writes them (one utterance), for clients that run their own front end.
"""

from __future__ import annotations

from ttsopt.errors import TtsoptError

PHONEMES = "phonemes"
INPUT_NOTE = ("text in `lang` (the official modes: zh, ja, ko, yue, all_zh, all_ja, all_ko, all_yue, en, auto, auto_yue; "
              "default: the server's --lang), or space-separated phonemes (e.g. \"n i2 h ao3 .\") with lang \"phonemes\"")


def request_sentences(text: str, lang: str, tts) -> tuple[str, ...]:
    """The phonemes of each sentence of ``text`` for package ``tts`` (a TtsoptError says how to fix the request)."""
    if lang == PHONEMES:
        phonemes = " ".join(text.split())
        tts.phoneme_ids(phonemes)
        return (phonemes,)
    return tuple(" ".join(sentence.phones) for sentence in tts.phonemize(text, lang))



def server_lang(lang: str, tts) -> str:
    """``--lang`` checked against what the package's symbol table takes."""
    from ttsopt.runtime.text import LANGUAGES

    languages = LANGUAGES.get(tts.phonemes.version, ())
    if lang != PHONEMES and lang not in languages:
        raise TtsoptError(f"--lang {lang} is not available for this {tts.phonemes.version} package: use one of "
                          f"{', '.join(languages)} or {PHONEMES}")
    return lang
