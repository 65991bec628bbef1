"""What the text front end does beyond the official one: SSML-looking markup is not read aloud, and what --lang en
drops is said (once) instead of being dropped silently, without an empty sentence left to synthesise."""

from __future__ import annotations

import json

import pytest

from tests.conftest import ROOT
from ttsopt.runtime.text import phonemize
from ttsopt.runtime.text.scripts import unspellable_runs

SYMBOLS = json.loads((ROOT / "ttsopt/families/gpt_sovits/symbols/v2.json").read_text(encoding="utf-8"))


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]


@pytest.mark.parametrize(("lang", "text", "plain"), [
    ("en", '<speak>Hello there, <break time="500ms"/> my friend.</speak>', "Hello there,. my friend."),
    ("en", "<speak><p><s>The first one.</s><s>And a second</s></p></speak>", "The first one. And a second."),
    ("en", '<speak>Tom &amp; Jerry <emphasis level="strong">run</emphasis> fast.</speak>', "Tom & Jerry run fast."),
    ("zh", "<speak>你好<break/>世界。</speak>", "你好。世界。"),
])
def test_ssml_tags_are_removed_and_breaks_end_sentences(lang: str, text: str, plain: str, caplog):
    with caplog.at_level("WARNING", logger="ttsopt"):
        got = phonemize(text, lang, SYMBOLS)
    assert [s.phones for s in got] == [s.phones for s in phonemize(plain, lang, SYMBOLS)]
    spoken = " ".join(" ".join(s.phones) for s in got)
    assert "S P IY1 K" not in spoken and "B R EY1 K" not in spoken  # "speak", "break" are not read
    assert sum("SSML is not interpreted" in m for m in _warnings(caplog)) == 1


def test_text_without_tags_is_untouched(caplog):
    with caplog.at_level("WARNING", logger="ttsopt"):
        got = phonemize("a < b and 3 > 2, AT&T.", "en", SYMBOLS)
    assert len(got) >= 1 and not any("SSML" in m for m in _warnings(caplog))


def test_other_scripts_in_english_are_dropped_with_one_warning(caplog):
    with caplog.at_level("WARNING", logger="ttsopt"):
        got = phonemize("Hello 你好 world, this is 東京 fine. 안녕하세요 세계。", "en", SYMBOLS)
    assert [s.text.strip() for s in got] == ["Hello 你好 world,", "this is 東京 fine."]  # no sentence of marks only
    (message,) = [m for m in _warnings(caplog) if "drops" in m]
    assert "'你好'" in message and "'東京'" in message and "'안녕하세요 세계'" in message
    assert unspellable_runs("Café naïve Straße") == ["ß"] and unspellable_runs("Привет, мир") == ["Привет", "мир"]
    caplog.clear()
    with caplog.at_level("WARNING", logger="ttsopt"):
        phonemize("Café au lait.", "en", SYMBOLS)
        phonemize("你好 world。", "zh", SYMBOLS)
    assert not [m for m in _warnings(caplog) if "drops" in m]
    with pytest.raises(Exception, match="nothing in the text can be read"):
        phonemize("你好世界。", "en", SYMBOLS)
