"""The official small rules (cutting, merging, retry, commas, UNK) and the one-line errors for bad text."""

from __future__ import annotations

import json

import pytest

from tests.conftest import ROOT
from ttsopt.errors import TtsoptError
from ttsopt.runtime.text import cutting, phonemize

SYMBOLS = json.loads((ROOT / "ttsopt/families/gpt_sovits/symbols/v2.json").read_text(encoding="utf-8"))


def test_cut5_cuts_at_every_mark_but_keeps_decimal_points():
    assert cutting.cut5("It is 3.5 km. Go, now!") == "It is 3.5 km.\n Go,\n now!"


@pytest.mark.parametrize(("method", "text", "expected"), [
    ("cut0", "一句话，不切。", "一句话，不切。"),
    ("cut1", "一。二。三。四。五。六。七。八。九。", "一。二。三。四。\n五。六。七。八。九。"),  # the last group takes the rest
    ("cut3", "第一句。第二句。", "第一句\n第二句"),
    ("cut4", "One. Two 3.5 three.", "One\n Two 3.5 three"),
])
def test_official_cut_methods(method: str, text: str, expected: str):
    assert cutting.cut_method(method)(text) == expected


def test_short_pieces_merge_to_five_characters_and_sentences_get_a_closing_mark():
    assert cutting.merge_short(["a,", "b,", "ccccc"]) == ["a,b,ccccc"]
    assert cutting.sentences("你好，我是小明，今天天气很好", "zh") == ["你好，我是小明，", "今天天气很好。"]
    assert cutting.sentences("你好", "zh", "cut0") == ["。你好。"]  # a start shorter than 4 characters gets a mark
    assert cutting.sentences("Hi", "en", "cut0") == [".Hi."]


def test_long_pieces_are_split_under_the_bert_limit():
    parts = cutting.split_long("字" * 300 + "，" + "字" * 300 + "。")
    assert len(parts) == 2 and all(len(p) <= cutting.MAX_PIECE_CHARS for p in parts)


def test_a_short_sentence_is_retried_with_a_leading_mark():
    (sentence,) = phonemize("好。", "zh", SYMBOLS, "v1")
    assert sentence.phones == [".", "h", "ao3", "."] and sentence.word2ph == [1, 2, 1]


def test_word2ph_is_two_per_hanzi_one_per_mark():
    (sentence,) = phonemize("你好，世界。", "zh", SYMBOLS, "v1")
    assert sentence.norm_text == "你好,世界." and sentence.word2ph == [2, 2, 1, 2, 2, 1]
    assert sum(sentence.word2ph) == len(sentence.phones)


def test_latin_inside_chinese_is_read_as_english():
    (sentence,) = phonemize("我喜欢Python编程。", "zh", SYMBOLS, "v1")
    assert [s.lang for s in sentence.segments] == ["zh", "en", "zh"]
    assert "P" in sentence.phones and sentence.word2ph is None


def test_a_paragraph_becomes_sentences_and_chinese_v2_warns_once(caplog):
    sentences = phonemize("今天天气很好。我们去公园散步吧。然后回家吃饭。", "zh", SYMBOLS, "v2")
    assert len(sentences) == 3
    assert sum("g2pW" in r.getMessage() for r in caplog.records) <= 1


def test_phones_no_table_knows_become_unk():
    (sentence,) = phonemize("今日はとても良い天気ですね。", "ja", SYMBOLS)
    assert "UNK" in sentence.phones  # the accent-phrase border "#" is not in the v2 table: UNK, as officially


@pytest.mark.parametrize(("text", "lang", "version", "fragment"), [
    ("", "en", "v2", "nothing to speak"),
    ("。。。！", "zh", "v2", "nothing to speak"),
    ("Hello.", "fr", "v2", "unsupported language 'fr'"),
    ("Hello.", "auto_ko", "v2", "unsupported language 'auto_ko'"),
    ("안녕하세요.", "ko", "v1", "use one of zh, ja, en"),
    ("こんにちは。", "en", "v2", "nothing in the text can be read as 'en'"),
    ("😀😀，😀。", "zh", "v2", "nothing to speak"),
    ("hello", "en", "v2", None),
])
def test_bad_text_is_one_clear_error(text: str, lang: str, version: str, fragment: str | None):
    if fragment is None:
        assert phonemize(text, lang, SYMBOLS, version)
        return
    with pytest.raises(TtsoptError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        phonemize(text, lang, SYMBOLS, version)
