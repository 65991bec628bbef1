"""Making a voice from a 5 s recording, per stage, FP32 and with a weight-only INT8 ``ssl`` graph, and peak memory.

    python examples/bench_voice.py PKG [--hubert-int8] [--repeat 5]

PKG: a text-to-speech package exported with ``--hubert``. For the released size, export one with the real-size
stand-in of chinese-hubert-base (its released config, 12 × 768, random weights) that
``python examples/bench_voice.py --make-hubert DIR`` writes. The recording is the first 5 s of the bundled
verification speech (espeak-ng). Each variant runs in a fresh process (peak RSS is the process's), stages are medians
of ``--repeat`` runs after one warm-up: read + 16 kHz (soxr), ``ssl`` (HuBERT), ``prompt_codes``, the reference encoder
(+ speaker verification for v2Pro/v2ProPlus), and the whole ``Voice.from_recording``. ``--hubert-int8`` swaps the
``ssl`` graph for onnxruntime's MatMulNBits INT8 (weight-only, blocks of 32; the convolution feature encoder stays FP32)
and reports how many prompt codes of the oracle's four references it changes.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ORACLE = ROOT.parent / "shared" / "oracle" / "gpt-sovits-aux-tiny"


def make_hubert(out: Path) -> None:
    """chinese-hubert-base's released config (12 layers, 3072) with random weights, fp16, legacy weight-norm names."""
    import torch
    from transformers import HubertConfig, HubertModel

    config = json.loads((ORACLE / "chinese-hubert-base" / "config.json").read_text())
    config.update(num_hidden_layers=12, intermediate_size=3072)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(config, indent=2))
    torch.manual_seed(0)
    model = HubertModel(HubertConfig(**config)).eval()
    state = {k.replace("parametrizations.weight.original0", "weight_g").replace("parametrizations.weight.original1", "weight_v"):
             v.half() for k, v in model.state_dict().items()}
    torch.save(state, out / "pytorch_model.bin")


def measure(package: Path, repeat: int) -> dict:
    """One variant in this process: per-stage medians (ms) and peak RSS."""
    import numpy as np

    import ttsopt.runtime
    from ttsopt.runtime.prompt import hubert_input, load_16k, padding_samples
    from ttsopt.runtime.voice import Voice

    ttsopt.runtime.share_thread_pool()
    speech = ROOT / "ttsopt" / "assets" / "speech"
    recording = sorted(speech.glob("*.wav"))[0]
    import soundfile

    samples, rate = soundfile.read(str(recording), dtype="float32")
    samples = np.resize(samples, 5 * rate)  # 5 s (repeated if the file is shorter)
    tts = ttsopt.runtime.load(package)
    stages: dict[str, list[float]] = {"16 kHz": [], "ssl": [], "prompt_codes": [], "reference": [], "whole voice": []}
    for run in range(repeat + 1):
        t0 = time.perf_counter()
        wav16k = load_16k((samples, rate)).wav16k
        t1 = time.perf_counter()
        features = tts.package.run("ssl", {"waveform": hubert_input(wav16k, padding_samples(tts.sample_rate))[None]})["ssl"]
        t2 = time.perf_counter()
        tts.prompt_codes(features)
        t3 = time.perf_counter()
        from ttsopt.audio.io import resample

        tts.package.run("reference_encoder", tts.reference_inputs(resample(samples, rate, tts.sample_rate)))
        t4 = time.perf_counter()
        Voice.from_recording(tts, (samples, rate), "Hello, this is a short test recording.", "en")
        t5 = time.perf_counter()
        if run:
            for key, value in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4), strict=True):
                stages[key].append(1000 * value)
    codes = {}
    for name in ("ref_a_22k", "ref_b_32k", "ref_c_44k", "ref_g_32k"):
        wav = load_16k(ORACLE / "wavs" / f"{name}.wav").wav16k
        waveform = hubert_input(wav, padding_samples(tts.sample_rate))[None]
        codes[name] = tts.prompt_codes(tts.package.run("ssl", {"waveform": waveform})["ssl"]).tolist()
    return {"ms": {k: round(statistics.median(v), 1) for k, v in stages.items()},
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1), "codes": codes}


def int8_copy(package: Path, work: Path) -> Path:
    """The package with its ``ssl`` graph as weight-only INT8 (manifest hashes updated)."""
    from ttsopt.compiler.passes.weight_only import quantize_weights
    from ttsopt.package.manifest import read_manifest, sha256_file

    copy = work / "int8"
    shutil.copytree(package, copy)
    entry = read_manifest(copy, check_files=False).graphs["ssl"]
    record = quantize_weights(package / entry.file, copy / entry.file, 8)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["files"][entry.file] = sha256_file(copy / entry.file)
    (copy / "manifest.json").write_text(json.dumps(manifest, indent=2))
    print(f"ssl INT8: {record['quantized_matmuls']} MatMulNBits, {record['bytes']['fp32'] / 1e6:.0f} → "
          f"{record['bytes']['quantized'] / 1e6:.0f} MB", file=sys.stderr)
    return copy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("package", type=Path, nargs="?")
    parser.add_argument("--make-hubert", type=Path)
    parser.add_argument("--hubert-int8", action="store_true")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.make_hubert:
        make_hubert(args.make_hubert)
        return
    if args.child:
        print(json.dumps(measure(args.package, args.repeat)))
        return
    with tempfile.TemporaryDirectory() as work:
        variants = {"fp32": args.package}
        if args.hubert_int8:
            variants["ssl int8"] = int8_copy(args.package, Path(work))
        results = {}
        for name, path in variants.items():
            done = subprocess.run([sys.executable, __file__, str(path), "--child", "--repeat", str(args.repeat)],
                                  capture_output=True, text=True, check=True, cwd=ROOT)
            results[name] = json.loads(done.stdout.strip().splitlines()[-1])
    for name, result in results.items():
        print(f"{name}: " + ", ".join(f"{k} {v} ms" for k, v in result["ms"].items()) + f"; peak RSS {result['peak_rss_mb']} MB")
    if "ssl int8" in results:
        changed = {k: sum(a != b for a, b in zip(v, results["fp32"]["codes"][k], strict=True))
                   for k, v in results["ssl int8"]["codes"].items()}
        total = sum(len(v) for v in results["fp32"]["codes"].values())
        print(f"ssl int8: prompt codes changed on the oracle's references: {changed} (of {total})")


if __name__ == "__main__":
    main()
