"""Where a text-to-speech package's time goes: onnxruntime's per-node profiler on the prefill, one decode step and
SoVITS (latent + generator), grouped by operator, beside each stage's floor (FLOP or bytes over this machine's
rates, measured in the same run: :mod:`ttsopt.families.gpt_sovits.floors`).

    python examples/profile_tts.py build/real-tts --positions 91 --filled 240 --seconds 4

The graphs run as the runtime runs them (the GPT transformer's caches bound in place with IOBinding: the prefill
into an empty cache, a decode step after ``--filled`` slots of a cache of the runtime's capacity), on 2 intra-op
threads by default. Needs onnx (the
build extra) to tell weight GEMMs from attention products. BENCHMARKS.md ("where the time goes") has its output.
"""

from __future__ import annotations

import argparse
import collections
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from ttsopt.bench.machine import measure_peak_gflops, measure_weight_stream_gbs
from ttsopt.families.gpt_sovits import floors
from ttsopt.runtime import session_options
from ttsopt.runtime.gpt import InPlaceTransformer, block_capacity, prefill_mask, transformer_feed
from ttsopt.runtime.package import Package

GEMMS = ("MatMul", "FusedMatMul", "MatMulNBits", "Gemm")


def profile(path: Path, feed: dict, runs: int, threads: int, scratch: Path) -> tuple[float, dict[str, float]]:
    """Median wall ms of ``runs`` runs and ms per run by operator (GEMMs split: constant weights vs activations)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.log_severity_level = threads, 3
    options.optimized_model_filepath = str(scratch / f"{path.stem}.optimized.onnx")
    options.enable_profiling, options.profile_file_prefix = True, str(scratch / path.stem)
    session_options.apply(options)  # the runtime's settings: without them the INT8 generator's convolutions ran NHWC
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    run = runner(session, feed)
    run()
    walls = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        walls.append(1e3 * (time.perf_counter() - start))
    events = json.loads(Path(session.end_profiling()).read_text())
    graph = onnx.load(options.optimized_model_filepath, load_external_data=False).graph
    weights = {init.name for init in graph.initializer}
    nodes = {node.name: node for node in graph.node}
    by_op: collections.Counter[str] = collections.Counter()
    for event in events:
        if event.get("cat") != "Node" or not event["name"].endswith("_kernel_time"):
            continue
        op, node = event["args"]["op_name"], nodes.get(event["name"][: -len("_kernel_time")])
        if op in GEMMS:
            op += " (weights)" if node is not None and len(node.input) > 1 and node.input[1] in weights else " (activations)"
        by_op[op] += event["dur"] / 1e3 / (runs + 1)
    return float(np.median(walls)), dict(by_op)


def runner(session: ort.InferenceSession, feed: dict):
    """One call of the graph as the runtime makes it: a GPT transformer through the runtime's
    :class:`~ttsopt.runtime.gpt.InPlaceTransformer` (its caches bound in place), any other graph a plain run."""
    if "past_key.0" not in feed:
        return lambda: session.run(None, feed)
    transformer = InPlaceTransformer(session, session.get_outputs()[0].shape[1])
    caches = {kind: [array for name, array in feed.items() if name.startswith(f"past_{kind}.")] for kind in ("key", "value")}
    inputs = {name: array for name, array in feed.items() if not name.startswith("past_")}
    return lambda: transformer(inputs, caches["key"], caches["value"])


def show(title: str, wall: float, by_op: dict[str, float], floor_ms: float | None = None, work: str = "") -> None:
    total = sum(by_op.values())
    floor = f", floor {floor_ms:.1f} ms ({work}): {100 * floor_ms / wall:.0f} % of floor" if floor_ms else ""
    print(f"\n{title}: {wall:.1f} ms (median){floor}")
    for op, ms in sorted(by_op.items(), key=lambda item: -item[1])[:10]:
        print(f"  {op:28s} {ms:8.2f} ms  {100 * ms / total:5.1f} %")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("package", type=Path)
    parser.add_argument("--positions", type=int, default=91, help="prefill positions (prompt + text)")
    parser.add_argument("--filled", type=int, default=240, help="filled cache slots of the decode step")
    parser.add_argument("--seconds", type=float, default=4.0, help="audio seconds of the SoVITS stage")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    package = Package(args.package)
    config = package.manifest.model_config["gpt"]
    layers, heads, dim = config["num_layers"], config["num_heads"], config["hidden_dim"]
    rng = np.random.default_rng(0)
    peak, stream = measure_peak_gflops(), measure_weight_stream_gbs()
    print(f"FP32 peak {peak:.0f} GFLOP/s, weight stream {stream:.1f} GB/s (measured now)")
    transformer = args.package / package.manifest.graphs["gpt_transformer"].file

    def cache(slots: int) -> list[np.ndarray]:
        return [rng.standard_normal((1, heads, slots, dim // heads), dtype=np.float32) for _ in range(layers)]

    with tempfile.TemporaryDirectory() as scratch:
        hidden = rng.standard_normal((1, args.positions, dim), dtype=np.float32)
        capacity = block_capacity(args.positions, package.manifest.graphs["gpt_transformer"].dims["slots"].max)
        empty = [np.zeros((1, heads, capacity, dim // heads), np.float32) for _ in range(2 * layers)]
        text = args.positions // 2
        feed = transformer_feed(hidden, prefill_mask(text, args.positions), empty[:layers], empty[layers:], 0)
        flop = floors.prefill_flop(config, args.positions)
        show(f"prefill, {args.positions} positions", *profile(transformer, feed, args.runs, args.threads, Path(scratch)),
             1e3 * flop / (peak * 1e9), f"{flop / 1e9:.1f} GFLOP")

        capacity = block_capacity(args.filled + 1, package.manifest.graphs["gpt_transformer"].dims["slots"].max)
        feed = transformer_feed(rng.standard_normal((1, 1, dim), dtype=np.float32), np.ones((1, 1), bool),
                                cache(capacity), cache(capacity), args.filled)
        step = floors.step_bytes(transformer, config, args.filled)
        show(f"decode step, {args.filled} filled of {capacity} slots", *profile(transformer, feed, 10 * args.runs, args.threads,
                                                                              Path(scratch)),
             1e3 * step / (stream * 1e9), f"{step / 1e6:.0f} MB")

        golden = package.golden.inputs(package.golden.first("latent"))
        frames = int(25 * args.seconds)
        latent_feed = {"tokens": np.resize(golden["tokens"][0], frames)[None],
                       "phonemes": np.resize(golden["phonemes"][0], int(12 * args.seconds))[None], "ge": golden["ge"],
                       "noise": rng.standard_normal((1, golden["noise"].shape[1], 2 * frames), dtype=np.float32),
                       "noise_scale": np.array([0.5], np.float32)}
        flop = package.manifest.cost["flop_per_audio_second"] * args.seconds
        latent = package.run("latent", latent_feed)["z"]
        walls = []
        for name, feed in (("latent", latent_feed), ("generator", {"z": latent, "ge": golden["ge"]})):
            wall, by_op = profile(args.package / package.manifest.graphs[name].file, feed, args.runs, args.threads, Path(scratch))
            show(f"{name}, {args.seconds:g} s of audio", wall, by_op)
            walls.append(wall)
        floor_ms = 1e3 * flop / (peak * 1e9)
        print(f"\nSoVITS (latent + generator), {args.seconds:g} s: {sum(walls):.1f} ms, floor {floor_ms:.1f} ms "
              f"({flop / 1e9:.0f} GFLOP): {100 * floor_ms / sum(walls):.0f} % of floor")


if __name__ == "__main__":
    main()
