"""Writes ``g2pw_expected.json``: what the official v2 Mandarin G2P (``chinese2.text_normalize`` + ``chinese2.g2p``,
g2pW through ``G2PWPinyin`` and ``correct_pronunciation``) gives for ``g2pw_sentences.json`` with the stand-in
g2pW of ``../shared/oracle/gpt-sovits-aux-tiny`` (official interface and tables, random weights: its unusual
readings make every difference in the feeds, the dedup and the overrides after it show in the phones).

Run once, offline, by hand (not a test), with ``GPT_SoVITS/text`` of the upstream GPT-SoVITS commit the oracles
were made with (48b1a01; its ``G2PWModel`` folder linked to the stand-in's):

    python tests/text/make_g2pw_expected.py UPSTREAM_DIR   # UPSTREAM_DIR/GPT_SoVITS/text/{chinese2.py,g2pw/,G2PWModel}

Needs the text libraries of ``ttsopt[text]`` plus transformers (the official converter's AutoTokenizer).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import sys
from pathlib import Path

HERE = Path(__file__).parent
AUX = HERE.parents[1].parent / "shared" / "oracle" / "gpt-sovits-aux-tiny"


def main(upstream: Path) -> None:
    os.chdir(upstream)  # the official code opens GPT_SoVITS/text/G2PWModel relative to the working directory
    os.environ["bert_path"] = str(AUX / "chinese-roberta-wwm-ext-large")
    sys.path.insert(0, str(upstream / "GPT_SoVITS"))
    from text import chinese2

    sentences = json.loads((HERE / "g2pw_sentences.json").read_text(encoding="utf-8"))
    cases = []
    for text in sentences:
        norm = chinese2.text_normalize(text)
        phones, word2ph = chinese2.g2p(norm)
        cases.append({"text": text, "norm_text": norm, "phones": " ".join(phones), "word2ph": word2ph})
    versions = {p: importlib.metadata.version(p) for p in ("pypinyin", "jieba_fast", "cn2an", "opencc", "transformers", "onnxruntime")}
    out = {"official_commit": "48b1a0169a28582a8984402f82cf438d3bfa6aca", "g2pw_model": "gpt-sovits-aux-tiny stand-in",
           "versions": versions, "cases": cases}
    text = json.dumps(out, ensure_ascii=False, indent=1)
    text = re.sub(r"\[\n\s+([\d,\s]+?)\n\s+\]", lambda m: "[" + re.sub(r"\s+", " ", m.group(1)) + "]", text)  # word2ph: one line
    (HERE / "g2pw_expected.json").write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve())
