"""Phoneme strings → ids through a GPT-SoVITS symbol table (``symbols.json`` in the package).

The table is the official one of the model's version (v1: 322 symbols, v2: 732; index = id), so
``"n i2 h ao3 ,"`` maps to the ids the official ``cleaned_text_to_sequence`` gives. Phonemes come from
the text front end (:mod:`ttsopt.runtime.text`) or from the caller, as the official front end writes
them, separated by spaces.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path

import numpy as np

from ttsopt.errors import TtsoptError


class PhonemeTable:
    def __init__(self, symbols: list[str], version: str):
        self.symbols = symbols
        self.version = version
        self._ids = {symbol: i for i, symbol in enumerate(symbols)}

    @classmethod
    def from_file(cls, path: Path, version: str) -> PhonemeTable:
        return cls(json.loads(Path(path).read_text()), version)

    def ids(self, phonemes: str, limit: int | None = None) -> np.ndarray:
        """``"n i2 h ao3 ..."`` → int64 ids ``[N]``; refuses empty input, unknown symbols and > ``limit`` phonemes."""
        tokens = phonemes.split()
        if not tokens:
            raise TtsoptError("no phonemes given: pass them space-separated, e.g. --phonemes \"n i2 h ao3 .\"")
        unknown = [t for t in tokens if t not in self._ids]
        if unknown:
            close = difflib.get_close_matches(unknown[0], self.symbols, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise TtsoptError(f"unknown phoneme {unknown[0]!r} (not in the {self.version} symbol table of "
                              f"{len(self.symbols)} symbols){hint}: pass phonemes as the GPT-SoVITS text front end writes them")
        if limit is not None and len(tokens) > limit:
            raise TtsoptError(f"{len(tokens)} phonemes; this package takes at most {limit}: split the text into sentences")
        return np.array([self._ids[t] for t in tokens], dtype=np.int64)
