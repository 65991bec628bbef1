"""Where the static INT8 search's per-layer sensitivity sweep spends its time, on a real-size package's graph.

``python examples/profile_int8_sweep.py PACKAGE [--graph generator] [--work build/sweep] [--layers 8]``

Builds the graph's search inputs as ``quantize --int8`` does (the bundled calibration recordings through the family's
front end, :class:`~ttsopt.compiler.passes.static_int8.StaticInt8`'s windows, search feeds and log-mel score), then the
equalization plan and the percentile-99.99 calibration (cached under ``--work``: they take minutes at real size), and
measures ``--layers`` convolutions (spread over the graph) alone, as step 2 of :func:`ttsopt.compiler.static_int8.search`
does, timing each phase of one measure: the old path (equalize the whole graph, save, ``quantize_static``, a session,
the runs) and the sweep's (:class:`ttsopt.compiler.static_int8.Sweep`), interleaved layer by layer, with both scores.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx


def peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def prepare(package_dir: Path, graph: str, work: Path):
    """(model, plan, cache, search_feeds, score), the slow parts cached in ``work``."""
    from ttsopt.compiler import equalization, static_int8
    from ttsopt.compiler.passes.static_int8 import StaticInt8
    from ttsopt.compiler.quantize import calibration_feeds, calibration_recordings
    from ttsopt.families import get_family
    from ttsopt.runtime.package import Package

    package = Package(package_dir)
    precision_pass = get_family(package.manifest.family).quantization()[graph]
    assert isinstance(precision_pass, StaticInt8)
    work.mkdir(parents=True, exist_ok=True)
    feeds_file = work / "feeds.npz"
    if not feeds_file.exists():
        feeds = calibration_feeds(package, [graph], calibration_recordings(None))[graph]
        np.savez(feeds_file, **{f"{i}/{name}": value for i, feed in enumerate(feeds) for name, value in feed.items()})
    with np.load(feeds_file) as saved:
        count = 1 + max(int(key.split("/")[0]) for key in saved.files)
        feeds = [{key.split("/")[1]: saved[key] for key in saved.files if key.startswith(f"{i}/")} for i in range(count)]
    inputs = precision_pass.search_inputs(package, graph, feeds)
    source = package.path / package.manifest.graphs[graph].file
    model = onnx.load(str(source))
    plan_file, cache = work / "plan.npz", work / "calibration-percentile-99.99.json"
    if not plan_file.exists():
        start = time.perf_counter()
        every = [cost.node for cost in static_int8.conv_costs(model, inputs.search_feeds[0])]
        plan = equalization.measure(model, every, inputs.windows)
        np.savez(plan_file, **{f"scale/{k}": v for k, v in plan.scales.items()},
                 meta=np.array(json.dumps({"convs": plan.convs, "chains": plan.chains})))
        print(f"equalization plan: {time.perf_counter() - start:.1f} s")
    with np.load(plan_file) as saved:
        meta = json.loads(str(saved["meta"]))
        plan = equalization.Equalization(convs=meta["convs"], chains=meta["chains"],
                                         scales={k.removeprefix("scale/"): saved[k] for k in saved.files if k.startswith("scale/")})
    if not cache.exists():
        start = time.perf_counter()
        every = [cost.node for cost in static_int8.conv_costs(model, inputs.search_feeds[0])]
        equalized = work / "equalized.onnx"
        onnx.save(equalization.apply(model, plan, every), str(equalized))
        static_int8.calibrate(equalized, inputs.windows, work, ["percentile-99.99"])
        equalized.unlink()
        print(f"calibration: {time.perf_counter() - start:.1f} s")
    return source, model, plan, cache, inputs


def old_measure(model, plan, node: str, cache: Path, search_feeds, score, scratch: Path) -> tuple[float, dict[str, float]]:
    """The search's measure([node]) before the sweep, phase by phase."""
    from ttsopt.compiler import equalization, static_int8
    from ttsopt.compiler.ort_runs import session

    times = {}
    start = time.perf_counter()
    subset = equalization.apply(model, plan, [node])
    times["equalization.apply"] = time.perf_counter() - start
    start = time.perf_counter()
    onnx.save(subset, str(scratch / "subset.onnx"))
    del subset
    times["onnx.save"] = time.perf_counter() - start
    start = time.perf_counter()
    static_int8.quantize_nodes(scratch / "subset.onnx", scratch / "trial.onnx", [node], "percentile-99.99", cache)
    times["quantize_static"] = time.perf_counter() - start
    start = time.perf_counter()
    runner = session(scratch / "trial.onnx")
    times["session"] = time.perf_counter() - start
    start = time.perf_counter()
    names = [output.name for output in runner.get_outputs()]
    outputs = [dict(zip(names, runner.run(None, feed), strict=True)) for feed in search_feeds]
    times["runs"] = time.perf_counter() - start
    start = time.perf_counter()
    value = score(outputs)
    times["score"] = time.perf_counter() - start
    return value, times


def main() -> None:
    from ttsopt.compiler import static_int8

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("package", type=Path)
    parser.add_argument("--graph", default="generator")
    parser.add_argument("--work", type=Path, default=Path("build/sweep"))
    parser.add_argument("--layers", type=int, default=8, help="convolutions measured (spread over the graph); 0: all")
    parser.add_argument("--no-old", action="store_true", help="the sweep only (not the old path)")
    args = parser.parse_args()

    source, model, plan, cache, inputs = prepare(args.package, args.graph, args.work)
    costs = static_int8.conv_costs(model, inputs.search_feeds[0])
    picked = costs if args.layers <= 0 else [costs[round(i)] for i in np.linspace(0, len(costs) - 1, args.layers)]
    print(f"{len(costs)} convolutions; peak so far {peak_gb():.2f} GB")
    rows = []
    with tempfile.TemporaryDirectory(dir=args.work) as scratch_dir:
        scratch = Path(scratch_dir)
        start = time.perf_counter()
        sweep = static_int8.Sweep(model, plan, "percentile-99.99", cache, inputs.search_feeds, inputs.score, scratch)
        setup = time.perf_counter() - start
        print(f"sweep setup (chains folded): {setup:.1f} s; peak {peak_gb():.2f} GB")
        layers = {cost.node: cost.layer for cost in picked}
        start = time.perf_counter()
        for node, value in sweep.scores(list(layers)):
            row = {"layer": layers[node], "new": value, "new_s": time.perf_counter() - start,
                   "part_nodes": len(sweep.part(node).nodes)}
            if not args.no_old:
                row["old"], row["old_times"] = old_measure(model, plan, node, cache, inputs.search_feeds,
                                                           inputs.score, scratch)
            rows.append(row)
            old = (f"old {row['old']:.6f} in {sum(row['old_times'].values()):.2f} s ("
                   + ", ".join(f"{k} {v:.2f}" for k, v in row["old_times"].items()) + ") | ") if "old" in row else ""
            print(f"{row['layer']} ({row['part_nodes']} nodes): {old}new {value:.6f} in {row['new_s']:.2f} s | "
                  f"peak {peak_gb():.2f} GB", flush=True)
            start = time.perf_counter()
    summary = {"layers": len(rows), "graph_nodes": len(model.graph.node), "setup_s": setup, "peak_gb": peak_gb(),
               "new_s": float(np.sum([r["new_s"] for r in rows])), "new_phases_s": sweep.seconds,
               "fp32_groups": sweep.groups, "cache_bytes": static_int8.SWEEP_CACHE_BYTES}
    if not args.no_old:
        summary["old_s"] = float(np.sum([sum(r["old_times"].values()) for r in rows]))
        summary["old_phases_s"] = {k: float(np.sum([r["old_times"][k] for r in rows])) for k in rows[0]["old_times"]}
        summary["max_abs_score_difference"] = float(max(abs(r["old"] - r["new"]) for r in rows))
        summary["max_relative_score_difference"] = float(max(abs(r["old"] - r["new"]) / abs(r["old"]) for r in rows))
    print(json.dumps(summary, indent=1))
    (args.work / "profile.json").write_text(json.dumps({"summary": summary, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
