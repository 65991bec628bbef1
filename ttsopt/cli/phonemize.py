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
    """Text → sentences → phones, ids, normalised text and word2ph (no synthesis, no torch)."""
    from ttsopt.runtime.package import Package
    from ttsopt.runtime.phonemes import PhonemeTable
    from ttsopt.runtime.text import package_langdetect
    from ttsopt.runtime.text import phonemize as to_phonemes
    from ttsopt.runtime.text.g2pw import package_g2pw

    opened = Package(package)
    manifest = opened.manifest
    if "symbols" not in manifest.runtime:
        raise TtsoptError(f"{package} is not a GPT-SoVITS package (it has no symbol table): phonemize needs one")
    table = PhonemeTable.from_file(Path(package) / manifest.runtime["symbols"], manifest.model_config["version"])
    g2pw = package_g2pw(Path(package), manifest.runtime)
    start = time.perf_counter()
    sentences = to_phonemes(text, lang, table.symbols, table.version, cut, g2pw, langdetect=package_langdetect(opened))
    elapsed = time.perf_counter() - start
    rows = [{"text": s.text, "norm_text": s.norm_text, "phones": " ".join(s.phones),
             "ids": table.ids(" ".join(s.phones)).tolist(), "word2ph": s.word2ph,
             "segments": [{"lang": g.lang, "text": g.text, "norm_text": g.norm_text, "phones": " ".join(g.phones),
                           "word2ph": g.word2ph} for g in s.segments]} for s in sentences]
    if as_json:
        print(json.dumps({"lang": lang, "version": table.version, "cut": cut, "g2pw": g2pw is not None,
                          "seconds": round(elapsed, 4), "sentences": rows},
                         ensure_ascii=False))
        return
    for i, row in enumerate(rows, start=1):
        out.print(f"[bold]{i}[/] {row['norm_text']}", highlight=False)
        out.print(f"  phones  {row['phones']}", highlight=False)
        out.print(f"  ids     {' '.join(map(str, row['ids']))}", highlight=False)
        if row["word2ph"] is not None:
            out.print(f"  word2ph {' '.join(map(str, row['word2ph']))}", highlight=False)
    out.print(f"{len(rows)} sentence(s), {lang} ({table.version}), front end {elapsed * 1000:.0f} ms", highlight=False)
