"""How much feature error the GPT notices: where the ``bert`` gates' limits come from (docs/precision.md).

For a text-to-speech package with a ``bert`` graph: the golden Chinese sentences' FP32 features (the original
model's, stored at export) with white noise added at a given SNR, and each INT8 candidate of the graph (dynamic and
weight-only, made here), each read by the package's GPT teacher-forced along its greedy run with the FP32
features (:mod:`ttsopt.families.gpt_sovits.bert_verification`): the worst sentence's agreement, and how far the
free-running greedy tokens stay equal. Prints a markdown table.

    python examples/bert_gate_sweep.py build/tiny-bert --snr 15,20,25,30,35,40 --seeds 3
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

import numpy as np

from ttsopt.audio.metrics import snr_db
from ttsopt.compiler.passes.matmul_int8 import METHODS
from ttsopt.families.gpt_sovits.bert_verification import GREEDY_STEPS, golden_text, per_phone, teacher_forced
from ttsopt.runtime import load
from ttsopt.runtime.bert import BERT_GRAPH
from ttsopt.runtime.sampling import SamplingParams


def sentences(tts) -> list[dict]:
    golden = tts.package.golden
    out = []
    for item in (i["name"] for i in golden.items if i["graph"] == BERT_GRAPH):
        inputs = golden.inputs(item)
        (sentence,) = tts.phonemize(golden_text(tts, inputs["input_ids"]), "all_zh", cut="cut0")
        word2ph = sentence.segments[0].word2ph
        out.append({"inputs": inputs, "word2ph": word2ph, "ids": tts.phoneme_ids(" ".join(sentence.phones)),
                    "rows": golden.outputs(item)["features"][0, 1:-1]})
    return out


def judge(tts, items: list[dict], rows_of, params: SamplingParams) -> tuple[float, float, int]:
    """(worst feature SNR dB, worst teacher-forced agreement, fewest leading free-running tokens equal)."""
    worst_snr, worst_agree, worst_equal = np.inf, 1.0, GREEDY_STEPS
    for item in items:
        fp32, ours = per_phone(item["rows"], item["word2ph"]), per_phone(rows_of(item), item["word2ph"])
        want = tts.gpt.generate(item["ids"], fp32, None, params).tokens
        _, agree = teacher_forced(tts, item["ids"], ours, None, want, params)
        got = tts.gpt.generate(item["ids"], ours, None, params).tokens
        differ = np.flatnonzero(want != got)
        worst_snr = min(worst_snr, snr_db(item["rows"], rows_of(item)))
        worst_agree = min(worst_agree, agree / len(want))
        worst_equal = min(worst_equal, int(differ[0]) if differ.size else len(want))
    return worst_snr, worst_agree, worst_equal


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("package", type=Path)
    parser.add_argument("--snr", default="15,20,25,30,35,40", help="feature SNRs (dB) of the noise rows")
    parser.add_argument("--seeds", type=int, default=3, help="noise draws per SNR (the worst is reported)")
    args = parser.parse_args()
    logging.getLogger("ttsopt").setLevel(logging.ERROR)
    tts = load(args.package)
    items = sentences(tts)
    params = SamplingParams(greedy=True, max_new_tokens=GREEDY_STEPS, eos_suppress_steps=GREEDY_STEPS)
    print(f"| features | worst SNR dB | worst teacher-forced agreement ({GREEDY_STEPS} steps) | free-running tokens equal (fewest) |")
    print("|---|---|---|---|")
    for target in (float(x) for x in args.snr.split(",")):
        results = []
        for seed in range(args.seeds):
            rng = np.random.default_rng(seed)

            def noisy(item, rng=rng, target=target):
                rows = item["rows"]
                scale = np.sqrt(np.mean(rows.astype(np.float64) ** 2) / 10 ** (target / 10))
                return (rows + scale * rng.standard_normal(rows.shape)).astype(np.float32)
            results.append(judge(tts, items, noisy, params))
        print(f"| FP32 + white noise at {target:g} dB ({args.seeds} draws) | {min(r[0] for r in results):.1f} | "
              f"{min(r[1] for r in results):.3f} | {min(r[2] for r in results)} |")
    import onnxruntime as ort

    source = args.package / tts.manifest.graphs[BERT_GRAPH].file
    with tempfile.TemporaryDirectory() as work:
        for method, make in METHODS.items():
            path = Path(work) / f"{method}.onnx"
            make(source, path)
            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            snr, agree, equal = judge(tts, items, lambda item, s=session: s.run(None, item["inputs"])[0][0, 1:-1], params)
            print(f"| {method} INT8 graph | {snr:.1f} | {agree:.3f} | {equal} |")


if __name__ == "__main__":
    main()
