"""Japanese G2P as the official v2 front end does it: pyopenjtalk phones with prosody marks.

Runs of Japanese characters go through OpenJTalk (pyopenjtalk, with the official user dictionary);
from its full-context labels each phone is written, followed by ``[`` where the pitch rises, ``]`` where
it falls and ``#`` at an accent-phrase border (the prosody scheme of Kurihara et al. that the official
code uses; ``#`` is not in the symbol table and becomes ``UNK`` there, as officially); a pause is ``_``.
Other characters (punctuation) are kept as they are, spaces dropped.

pyopenjtalk 0.4.1 would download its dictionary on first use; ttsopt points it at Debian's
byte-identical ``open-jtalk-mecab-naist-jdic`` instead (``$OPEN_JTALK_DICT_DIR`` overrides).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import sys
from functools import cache
from pathlib import Path

from ttsopt.errors import TtsoptError
from ttsopt.runtime.text.data import text_data_dir

SYSTEM_DICTIONARY = "/var/lib/mecab/dic/open-jtalk/naist-jdic"
JAPANESE = r"A-Za-z\d\u3005\u3040-\u30ff\u4e00-\u9fff\uff11-\uff19\uff21-\uff3a\uff41-\uff5a\uff66-\uff9d"
_JAPANESE_CHAR = re.compile(f"[{JAPANESE}]")
_OTHER_CHAR = re.compile(f"[^{JAPANESE}]")
MARKS = {"：": ",", "；": ",", "，": ",", "。": ".", "！": "!", "？": "?", "\n": ".", "·": ",", "、": ",", "...": "…"}
PUNCTUATION = "!?…,.-"


def _cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ttsopt" / "ja"


@contextlib.contextmanager
def _stdout_to_stderr():
    """Point file descriptor 1 at stderr for a while (C code writes there directly, past sys.stdout)."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


@cache
def _openjtalk():
    """pyopenjtalk on the system dictionary, with the official user dictionary compiled once (cached by hash)."""
    dictionary = os.environ.get("OPEN_JTALK_DICT_DIR", SYSTEM_DICTIONARY)
    if not (Path(dictionary) / "sys.dic").is_file():
        raise TtsoptError(f"Japanese needs the OpenJTalk dictionary at {dictionary}: apt-get install open-jtalk-mecab-naist-jdic "
                          "(or set OPEN_JTALK_DICT_DIR)")
    os.environ["OPEN_JTALK_DICT_DIR"] = dictionary  # read by pyopenjtalk at import
    try:
        import pyopenjtalk
    except ImportError as e:
        raise TtsoptError("Japanese needs pyopenjtalk: pip install 'ttsopt[text]'") from e
    user_csv = text_data_dir() / "ja_userdic" / "userdict.csv"
    if user_csv.is_file():
        digest = hashlib.md5(user_csv.read_bytes()).hexdigest()
        compiled = _cache_dir() / f"user-{digest}.dic"
        if not compiled.is_file():
            compiled.parent.mkdir(parents=True, exist_ok=True)
            partial = compiled.with_suffix(f".{os.getpid()}.tmp")
            with _stdout_to_stderr():  # mecab prints its progress on stdout, where --json output goes
                pyopenjtalk.mecab_dict_index(str(user_csv), str(partial))
            partial.replace(compiled)
        pyopenjtalk.update_global_jtalk_with_user_dict(str(compiled))
    return pyopenjtalk


def _field(pattern: str, label: str) -> int:
    match = re.search(pattern, label)
    return int(match.group(1)) if match else -50


def prosody_phones(text: str) -> list[str]:
    """Phones and prosody marks of one run of Japanese, without the leading/closing silence marks."""
    labels = _openjtalk().make_label(_openjtalk().run_frontend(text))
    phones: list[str] = []
    for n, label in enumerate(labels):
        phone = re.search(r"\-(.*?)\+", label).group(1)
        if phone in "AEIOU":  # devoiced vowels are read as plain vowels
            phone = phone.lower()
        if phone == "sil":
            continue  # the first and last label; their ^ / $ / ? marks are cut off officially
        if phone == "pau":
            phones.append("_")
            continue
        phones.append(phone)
        position, accent = _field(r"/A:([0-9\-]+)\+", label), _field(r"\+(\d+)\+", label)
        backward, moras = _field(r"\+(\d+)/", label), _field(r"/F:(\d+)_", label)
        next_accent = _field(r"\+(\d+)\+", labels[n + 1])
        if backward == 1 and next_accent == 1 and phone in "aeiouAEIOUNcl":
            phones.append("#")
        elif position == 0 and next_accent == accent + 1 and accent != moras:
            phones.append("]")
        elif accent == 1 and next_accent == 2:
            phones.append("[")
    return phones


def normalize(text: str) -> str:
    escaped = re.escape(PUNCTUATION)
    return re.sub(f"([{escaped}])([{escaped}])+", r"\1", text)


def g2p(norm_text: str) -> list[str]:
    text = norm_text.replace("％", "パーセント").lower()
    runs, marks = _OTHER_CHAR.split(text), _OTHER_CHAR.findall(text)
    phones: list[str] = []
    for i, run in enumerate(runs):
        if _JAPANESE_CHAR.match(run):
            phones += prosody_phones(run)
        if i < len(marks) and marks[i] != " ":
            phones.append(marks[i])
    return [MARKS.get(p, p) for p in phones]
