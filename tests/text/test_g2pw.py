"""g2pW through the official algorithm, torch-free, against the official code's own calls.

``gpt-sovits-aux-tiny/text.json`` recorded every ONNX call the official converter made (exact feeds, argmax) and
the phones it led to, with a random-weight stand-in model of the official interface: its unusual readings (他 →
tuo1) make any difference in the feeds, the dedup or the word overrides after it visible in the phones.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import ROOT
from ttsopt.runtime.text import sentence_phones, zh
from ttsopt.runtime.text.g2pw import G2PW

AUX = ROOT.parent / "shared" / "oracle" / "gpt-sovits-aux-tiny"
SYMBOLS = set(json.loads((ROOT / "ttsopt/families/gpt_sovits/symbols/v2.json").read_text(encoding="utf-8")))
ENTRIES = json.loads((AUX / "text.json").read_text(encoding="utf-8"))["entries"] if AUX.is_dir() else []
ZH = [e for e in ENTRIES if any(s["lang"] == "zh" for s in e["segments"])]
# Whole sentences whose segmentation does not depend on the official language splitter (its zh mode is another item).
WHOLE = ["zh_poly_bank", "zh_poly_long", "zh_sandhi_short", "zh_retry_dot", "zh_mixed_chatgpt", "allzh_with_en"]


@pytest.fixture(scope="module")
def g2pw() -> G2PW:
    if not AUX.is_dir():
        pytest.skip(f"oracle not found under {AUX}")
    return G2PW(AUX / "G2PWModel", AUX / "chinese-roberta-wwm-ext-large" / "tokenizer.json")


@pytest.fixture
def calls(g2pw: G2PW):
    seen: list[tuple[dict[str, np.ndarray], np.ndarray]] = []
    g2pw.observer = lambda feeds, probs: seen.append((feeds, probs))
    yield seen
    g2pw.observer = None


@pytest.mark.parametrize("entry", ZH, ids=[e["id"] for e in ZH])
def test_every_g2pw_call_and_the_phones_match_the_official_converter(entry: dict, g2pw: G2PW, calls: list):
    for segment in (s for s in entry["segments"] if s["lang"] == "zh"):
        assert zh.normalize(segment["text"]) == segment["norm_text"]
        phones, word2ph = zh.g2p_v2(segment["norm_text"], g2pw)
        assert (phones, word2ph) == (segment["phones"], segment["word2ph"]), segment["text"]
    assert len(calls) == len(entry["g2pw_calls"])
    for (feeds, probs), official in zip(calls, entry["g2pw_calls"], strict=True):
        for name in ("input_ids", "token_type_ids", "attention_mask", "char_ids", "position_ids"):
            assert feeds[name].dtype == np.dtype(official["dtypes"][name]), name
            assert feeds[name].tolist() == official[name], name
        assert feeds["phoneme_mask"].dtype == np.float32
        assert list(feeds["phoneme_mask"].shape) == official["shapes"]["phoneme_mask"]
        assert [np.flatnonzero(row).tolist() for row in feeds["phoneme_mask"]] == official["phoneme_mask_nonzero"]
        assert np.argmax(probs, axis=1).tolist() == official["argmax"]
        assert [g2pw.labels[i] for i in official["argmax"]] == official["argmax_label"]


@pytest.mark.parametrize("name", WHOLE)
def test_whole_sentences_with_the_retry_rule(name: str, g2pw: G2PW):
    entry = next(e for e in ENTRIES if e["id"] == name)
    sentence = sentence_phones(entry["text"], "zh", "v2", SYMBOLS, g2pw)
    assert sentence.phones == entry["phones"]
    assert sentence.norm_text == entry["norm_text"]


def test_one_call_per_context_unless_no_context_repeats(g2pw: G2PW, calls: list):
    """Two pieces with one polyphone each: one call, a row of input_ids each. A piece with two polyphones beside
    one with one: a call per piece, the first with ONE row of context for its two queries, both padded alike."""
    g2pw(["银行。", "长。"])  # polyphones of the stand-in's tables: 行, 長
    assert [feeds["input_ids"].shape for feeds, _ in calls] == [(2, 5)]
    calls.clear()
    g2pw(["他说。", "长。"])  # 他, 說; 長
    assert [(f["input_ids"].shape, f["char_ids"].shape) for f, _ in calls] == [((1, 5), (2,)), ((1, 5), (1,))]
    assert calls[1][0]["attention_mask"].tolist() == [[1, 1, 1, 1, 0]]


def test_context_is_cut_to_16_characters_around_the_polyphones(g2pw: G2PW, calls: list):
    plain = "我今天去园步春秋冬山" * 3  # 30 characters none of which is a polyphone
    g2pw([plain + "银行" + plain])
    (feeds, _), = calls
    assert feeds["input_ids"].shape == (1, 1 + 16 + 1 + 16 + 1)  # [CLS] 15 + 银 | 行 | 16 [SEP]
    assert feeds["position_ids"].tolist() == [17]


def test_readings_are_pinyin_with_tones_and_the_word_overrides_follow(g2pw: G2PW):
    (readings,) = g2pw(["重要的事情说三遍,"])
    assert readings[-1] == "," and all(r[-1] in "12345" for r in readings[:-1])
    assert readings[0] == "chong2"  # the stand-in model's reading …
    phones, _ = zh.g2p_v2("重要的事情说三遍,", g2pw)
    assert phones[:4] == ["zh", "ong4", "y", "ao4"]  # … replaced by the official word override 重要 → zhong4 yao4


def test_without_a_model_pypinyin_reads_and_says_so(caplog):
    zh._warned_g2pw = False
    with caplog.at_level("WARNING", logger="ttsopt"):
        phones, _ = zh.g2p_v2("他说银行.")
    assert phones[:4] == ["t", "a1", "sh", "uo1"]
    assert "g2pW is not available" in caplog.text and "export with --g2pw or --pretrained" in caplog.text


def test_sentences_match_the_official_v2_g2p(g2pw: G2PW):
    """100 sentences through the official ``chinese2`` (``g2pw_expected.json``, by ``make_g2pw_expected.py``):
    polyphone words of the official override table, erhua, 一/不, third tones, repeated and long pieces."""
    expected = json.loads((ROOT / "tests/text/g2pw_expected.json").read_text(encoding="utf-8"))
    mismatches = []
    for case in expected["cases"]:
        phones, word2ph = zh.g2p_v2(case["norm_text"], g2pw)
        got = (zh.normalize(case["text"]), " ".join(phones), word2ph)
        if got != (case["norm_text"], case["phones"], case["word2ph"]):
            mismatches.append((case, got))
    assert len(expected["cases"]) == 100 and not mismatches, mismatches[:3]


def test_a_voice_transcript_is_read_with_the_package_g2pw(g2pw: G2PW):
    """A voice's transcript (export or run time) is the GPT's prompt text: the same readings as the target text."""
    from ttsopt.runtime.voice import transcript_phones

    sentence = transcript_phones("他说明天要去银行", "zh", sorted(SYMBOLS), "v2", g2pw)
    assert sentence.phones[:4] == ["t", "uo1", "t", "uo1"] and sentence.norm_text == "他说明天要去银行."
