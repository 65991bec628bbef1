"""The text front end against the official GPT-SoVITS one: every sentence of ``sentences.json`` must give the
phones and normalised text the official code gave (``expected_official.json``, written by ``make_expected.py``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import ROOT
from ttsopt.runtime.text import phonemize

HERE = Path(__file__).parent
EXPECTED = json.loads((HERE / "expected_official.json").read_text(encoding="utf-8"))
# The official tables as every package ships them.
SYMBOLS = {v: json.loads((ROOT / f"ttsopt/families/gpt_sovits/symbols/{v}.json").read_text(encoding="utf-8")) for v in ("v1", "v2")}


@pytest.mark.parametrize("lang", ["en", "zh", "ja", "ko", "yue"])
def test_every_sentence_matches_the_official_front_end(lang: str):
    cases = [c for c in EXPECTED["cases"] if c["lang"] == lang]
    assert len(cases) >= 30
    mismatches = []
    for case in cases:
        sentences = phonemize(case["text"], lang, SYMBOLS[case["version"]], case["version"])
        got = [{"norm_text": s.norm_text, "phones": " ".join(s.phones)} for s in sentences]
        if got != case["sentences"]:
            mismatches.append((case["text"], case["sentences"], got))
    assert not mismatches, mismatches
