"""BERT features at real size: the ``bert`` graph (FP32, weight-only INT8, dynamic INT8) vs the official PyTorch path, per Chinese
sentence of 20 and 100 characters, and the memory of each (fresh process per variant, interleaved rounds).

The model is a random-weight stand-in with chinese-roberta-wwm-ext-large's released config (24 layers x 1024,
FFN 4096, the real tokenizer from the input-side oracle), saved as fp16 ``pytorch_model.bin`` like the release;
nothing of it is committed. Steps whose output exists in ``--work`` are skipped (the export takes minutes).

    python examples/bench_bert.py --work /tmp/bertbench --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ORACLE_BERT = Path(__file__).resolve().parents[2] / "shared/oracle/gpt-sovits-aux-tiny/chinese-roberta-wwm-ext-large"
TEXT = ("今天天气很好，我们一起去公园散步吧。他说明天要去银行办理业务，还要了解一下行情。重要的事情说三遍，长大以后我想当一名音乐家。"
        "春天来了，河边的柳树发出了嫩绿的新芽，小鸟在枝头唱着欢快的歌，孩子们在草地上奔跑嬉戏，老人们坐在长椅上晒太阳聊天。")
LENGTHS = (20, 100)
VARIANTS = ("fp32", "int8", "dynamic", "eager")


def make_model(work: Path) -> Path:
    import torch
    from transformers import BertConfig, BertForMaskedLM

    folder = work / "roberta-large"
    if (folder / "pytorch_model.bin").is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    config = json.loads((ORACLE_BERT / "config.json").read_text()) | {"num_hidden_layers": 24, "intermediate_size": 4096}
    torch.manual_seed(0)
    BertForMaskedLM(BertConfig(**config)).half().save_pretrained(folder, safe_serialization=False)
    shutil.copy(ORACLE_BERT / "tokenizer.json", folder / "tokenizer.json")
    return folder


def build_graphs(work: Path, folder: Path) -> dict:
    from ttsopt.compiler.onnx_export import export_onnx
    from ttsopt.compiler.passes.matmul_int8 import quantize_dynamic_matmuls
    from ttsopt.compiler.passes.weight_only import quantize_weights
    from ttsopt.families.gpt_sovits.bert import bert_graph, load_bert

    facts_file = work / "facts.json"
    if facts_file.is_file():
        facts = json.loads(facts_file.read_text())
        if not (work / "dynamic.onnx").is_file():  # the candidate `quantize` tries besides weight-only
            facts["dynamic_bytes"] = quantize_dynamic_matmuls(work / "fp32.onnx", work / "dynamic.onnx")["bytes"]["quantized"]
            facts_file.write_text(json.dumps(facts))
        return facts
    os.environ["TTSOPT_CACHE_DIR"] = "off"
    start = time.perf_counter()
    loaded = load_bert(folder)
    fidelity = export_onnx(bert_graph(loaded), work / "fp32.onnx", {})
    export_s = time.perf_counter() - start
    int8 = quantize_weights(work / "fp32.onnx", work / "int8.onnx", 8)
    dynamic = quantize_dynamic_matmuls(work / "fp32.onnx", work / "dynamic.onnx")
    facts = {**loaded.facts(), "dynamic_bytes": dynamic["bytes"]["quantized"], "export_s": round(export_s, 1),
             "fidelity_snr_db": round(fidelity["snr_db"], 1),
             "export_peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
             "bytes": int8["bytes"], "int8_matmuls": int8["quantized_matmuls"]}
    facts_file.write_text(json.dumps(facts))
    return facts


def measure(work: Path, variant: str, repeat: int) -> dict:
    """One fresh process: load the variant, then per length a warm-up and ``repeat`` timed calls (median)."""
    texts = {n: TEXT[:n] for n in LENGTHS}
    start = time.perf_counter()
    if variant == "eager":  # the official get_bert_feature: the whole model, output_hidden_states, [-3]
        import torch
        from transformers import AutoModelForMaskedLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(work / "roberta-large", local_files_only=True)
        model = AutoModelForMaskedLM.from_pretrained(work / "roberta-large", dtype=torch.float32, local_files_only=True).eval()

        def run(text: str) -> np.ndarray:
            with torch.no_grad():
                hidden = model(**tokenizer(text, return_tensors="pt"), output_hidden_states=True)["hidden_states"]
            return hidden[-3][0, 1:-1].numpy()
    else:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        from ttsopt.runtime.bert import encode

        tokenizer = Tokenizer.from_file(str(work / "roberta-large" / "tokenizer.json"))
        session = ort.InferenceSession(str(work / f"{variant}.onnx"), providers=["CPUExecutionProvider"])

        def run(text: str) -> np.ndarray:
            return session.run(None, encode(tokenizer, text))[0][0, 1:-1]
    result = {"variant": variant, "load_s": round(time.perf_counter() - start, 2)}
    for n, text in texts.items():
        run(text)
        times = []
        for _ in range(repeat):
            tick = time.perf_counter()
            features = run(text)
            times.append(time.perf_counter() - tick)
        result[f"ms_{n}"] = 1000 * statistics.median(times)
        np.save(work / f"features_{variant}_{n}.npy", features)
    from ttsopt.bench.memory import _peak_rss_kib

    result["peak_rss_mb"] = _peak_rss_kib() / 1024  # this process's own peak (ru_maxrss carries the parent's)
    return result


def snr_db(reference: np.ndarray, other: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(reference.astype(np.float64) ** 2) / np.sum((reference - other).astype(np.float64) ** 2)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/bertbench"))
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of fresh processes (medians)")
    parser.add_argument("--repeat", type=int, default=5, help="timed calls per length in each process")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.work, args.measure, args.repeat)))
        return
    args.work.mkdir(parents=True, exist_ok=True)
    facts = build_graphs(args.work, make_model(args.work))
    runs: dict[str, list[dict]] = {v: [] for v in VARIANTS}
    loads = []
    for _ in range(args.rounds):
        for variant in VARIANTS:
            done = subprocess.run([sys.executable, __file__, "--work", str(args.work), "--repeat", str(args.repeat),
                                   "--measure", variant], capture_output=True, text=True, check=True)
            runs[variant].append(json.loads(done.stdout.strip().splitlines()[-1]))
            loads.append(os.getloadavg()[0])
    print(f"chinese-roberta-wwm-ext-large config, random weights: {facts['layers']} layers, {facts['layers_run']} run "
          f"(hidden_states[-3]); graph {facts['parameters'] / 1e6:.1f} M parameters; export {facts['export_s']} s "
          f"(peak RSS {facts['export_peak_rss_gb']} GB), fidelity {facts['fidelity_snr_db']} dB; graph FP32 "
          f"{facts['bytes']['fp32'] / 1e6:.0f} MB, INT8 {facts['bytes']['quantized'] / 1e6:.0f} MB "
          f"({facts['int8_matmuls']} MatMulNBits), dynamic INT8 {facts['dynamic_bytes'] / 1e6:.0f} MB; "
          f"load average during the runs {min(loads):.1f}-{max(loads):.1f}")
    print(f"\n| variant | {' | '.join(f'{n} characters' for n in LENGTHS)} | peak RSS | load | features vs official |")
    print("|---|" + "---|" * (len(LENGTHS) + 3))
    for variant in VARIANTS:
        rows = runs[variant]
        times = " | ".join(f"{statistics.median(r[f'ms_{n}'] for r in rows):.0f} ms" for n in LENGTHS)
        quality = ", ".join(f"{snr_db(np.load(args.work / f'features_eager_{n}.npy'), np.load(args.work / f'features_{variant}_{n}.npy')):.1f} dB"
                            for n in LENGTHS) if variant != "eager" else "(reference)"
        print(f"| {variant} | {times} | {statistics.median(r['peak_rss_mb'] for r in rows):.0f} MB | "
              f"{statistics.median(r['load_s'] for r in rows):.1f} s | {quality} |")


if __name__ == "__main__":
    main()
