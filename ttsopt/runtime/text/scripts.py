"""What ``--lang en`` cannot read: letters with no Latin-letter spelling, which the English normaliser drops.

The official English front end silently removes every character it cannot spell with A–Z (after stripping
accents), so "Hello 你好 world" is read "Hello world" and a sentence of Chinese becomes an empty one. ttsopt
reads the same but says so, once per text, naming what was dropped.
"""

from __future__ import annotations

import logging
import unicodedata

log = logging.getLogger("ttsopt")


def _unspellable(char: str) -> bool:
    """A letter that stays no A–Z letter once accents are stripped (the English normaliser's rule)."""
    if not char.isalpha():
        return False
    base = "".join(c for c in unicodedata.normalize("NFD", char) if unicodedata.category(c) != "Mn")
    return not any("A" <= c <= "Z" or "a" <= c <= "z" for c in base)


def unspellable_runs(text: str) -> list[str]:
    """The stretches of ``text`` made of such letters (spaces inside a stretch kept), in order."""
    runs: list[str] = []
    current = ""
    for char in text:
        if _unspellable(char) or (current and char == " "):
            current += char
        elif current:
            runs.append(current.strip())
            current = ""
    if current.strip():
        runs.append(current.strip())
    return runs


def warn_dropped(text: str, lang: str) -> None:
    """One warning naming what English G2P will drop from ``text`` (nothing for other languages)."""
    if lang != "en":
        return
    runs = unspellable_runs(text)
    if runs:
        shown = ", ".join(repr(run) for run in runs[:5]) + (f" and {len(runs) - 5} more" if len(runs) > 5 else "")
        log.warning("--lang en drops the letters it cannot spell with A-Z: %s: speak those words with their own "
                    "--lang (zh, ja, ko, yue) in a separate request", shown)
