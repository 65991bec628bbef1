"""Differential check of :mod:`ttsopt.runtime.text.zh_normalize` against upstream's ``TextNormalizer`` on random
strings (run by hand, not a test: it needs upstream's code, extracted as in ``make_expected.py``):

    python tests/text/compare_zh_normalize.py /tmp/gsv [SEED] [COUNT]

Each string is 1–14 pieces drawn from digits and the characters the rules look at (signs, separators, units,
measure words, date and time words, superscripts, circled numbers, Greek, full-width and traditional forms, marks);
both normalisers' sentence lists must be equal. Prints the first differences and the count.
"""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path

PIECES = (list("0123456789") * 8 + list("-+~:./%年月日号 ：，。,;=×÷²³ⁿ①αΩ\n—(“”^") +
          ["°C", "℃", "度", "摄氏度", "km", "cm²", "kg", "mm", "ms", "db", "个", "第", "名", "小时", "元", "多", "两", "半",
           "86", "+86", "138", "400", "010-", "00", "30", "x", "a", "\u3000", "１", "ａ", "萬", "兩", "％", "$", "€", "￥"])


def main(upstream: Path, seed: int, count: int) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from ttsopt.runtime.text import zh_normalize

    sys.path.insert(0, str(upstream / "GPT_SoVITS"))
    os.chdir(upstream)
    from text.zh_normalization.text_normlization import TextNormalizer

    official = TextNormalizer()
    rng = random.Random(seed)
    differ = 0
    for _ in range(count):
        text = "".join(rng.choice(PIECES) for _ in range(rng.randint(1, 14)))
        expected, got = official.normalize(text), zh_normalize.sentences(text)
        if expected != got:
            differ += 1
            if differ <= 20:
                print(repr(text), expected, got)
    print(f"{count} strings, {differ} differ")
    return 1 if differ else 0


if __name__ == "__main__":
    args = sys.argv[1:]
    sys.exit(main(Path(args[0]).resolve(), int(args[1]) if len(args) > 1 else 0, int(args[2]) if len(args) > 2 else 100_000))
