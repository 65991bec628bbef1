"""``ttsopt phonemize``: what the text front end makes of a text, to compare with the official one."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from ttsopt.cli._common import LANG_HELP, command, out
from ttsopt.errors import TtsoptError


@command
def phonemize(
    package: Annotated[Path, typer.Argument(help="A GPT-SoVITS package (its symbol table and model version are used).")],
    text: Annotated[str, typer.Option("--text", help="The text.")],
    lang: Annotated[str, typer.Option("--lang", help=LANG_HELP)],
    cut: Annotated[str, typer.Option("--cut", help="Sentence cutting, official cut0..cut5.")] = "cut5",
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
) -> None:
    """Text → sentences → phones, ids, normalised text and word2ph, and per segment its language and how many
    phones get BERT features (no synthesis, no torch): what to compare with the official get_phones_and_bert."""
    from ttsopt.runtime.bert import BERT_GRAPH, is_chinese
    from ttsopt.runtime.package import Package
    from ttsopt.runtime.phonemes import PhonemeTable
    from ttsopt.runtime.text import package_langdetect
    from ttsopt.runtime.text import phonemize as to_phonemes
    from ttsopt.runtime.text.g2pw import package_g2pw

    opened = Package(package)
    manifest = opened.manifest
    if "symbols" not in manifest.runtime:
        raise TtsoptError(f"{package} is not a GPT-SoVITS package (it has no symbol table): phonemize needs one")
    config = manifest.model_config  # the symbol table (v1/v2) is the front end's version; v2Pro/v2ProPlus/v4 read v2
    table = PhonemeTable.from_file(Path(package) / manifest.runtime["symbols"], config.get("symbol_version", config["version"]))
    g2pw = package_g2pw(Path(package), manifest.runtime)
    start = time.perf_counter()
    sentences = to_phonemes(text, lang, table.symbols, table.version, cut, g2pw, langdetect=package_langdetect(opened))
    elapsed = time.perf_counter() - start
    has_bert = BERT_GRAPH in manifest.graphs  # RoBERTa features for Chinese segments; zeros without it, and elsewhere
    rows = []
    for s in sentences:
        segments = [{"lang": g.lang, "text": g.text, "norm_text": g.norm_text, "phones": " ".join(g.phones), "word2ph": g.word2ph,
                     "bert_phones": len(g.phones) if has_bert and is_chinese(g) and g.word2ph is not None else 0}
                    for g in s.segments]
        rows.append({"text": s.text, "norm_text": s.norm_text, "phones": " ".join(s.phones),
                     "ids": table.ids(" ".join(s.phones)).tolist(), "word2ph": s.word2ph,
                     "bert_phones": sum(g["bert_phones"] for g in segments), "segments": segments})
    if as_json:
        print(json.dumps({"lang": lang, "version": table.version, "cut": cut, "g2pw": g2pw is not None, "bert": has_bert,
                          "seconds": round(elapsed, 4), "sentences": rows}, ensure_ascii=False))
        return
    for i, row in enumerate(rows, start=1):
        out.print(f"[bold]{i}[/] {row['norm_text']}", highlight=False)
        out.print(f"  phones  {row['phones']}", highlight=False)
        out.print(f"  ids     {' '.join(map(str, row['ids']))}", highlight=False)
        if row["word2ph"] is not None:
            out.print(f"  word2ph {' '.join(map(str, row['word2ph']))}", highlight=False)
        if len(row["segments"]) > 1:
            out.print("  segments " + " | ".join(f"{g['lang']} {g['norm_text']!r}" for g in row["segments"]), highlight=False)
        out.print(f"  bert    {row['bert_phones']} of {len(row['ids'])} phones"
                  + ("" if has_bert else " (no BERT model in the package: zeros)"), highlight=False)
    out.print(f"{len(rows)} sentence(s), {lang} ({table.version}), front end {elapsed * 1000:.0f} ms", highlight=False)
