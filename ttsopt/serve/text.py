"""Request text → phonemes: the one place the server turns the ``input`` field into what the package reads.

Until ttsopt has a text front end, ``input`` carries phonemes as the GPT-SoVITS front end writes them
(space-separated, e.g. ``"n i2 h ao3 ."``); swap this function for the front end (text + language →
phonemes) and nothing else in the server changes.
"""

from __future__ import annotations

from ttsopt.errors import TtsoptError

PHONEME_NOTE = "the input field carries space-separated phonemes (e.g. \"n i2 h ao3 .\") until ttsopt has a text front end"


def request_text_to_phonemes(text: str, tts) -> str:
    """Phonemes of ``text`` for package ``tts``, checked against its symbol table (a TtsoptError says how to fix)."""
    phonemes = " ".join(text.split())
    try:
        tts.phoneme_ids(phonemes)
    except TtsoptError as exc:
        raise TtsoptError(f"{exc} ({PHONEME_NOTE})") from None
    return phonemes
