"""``ttsopt quantize --int8``: package → INT8 package, gated by measured quality, written atomically.

What is quantized is declared by each family (``QUANTIZATION`` in its spec: graph → method):

- ``static-int8`` (convolution graphs, e.g. the HiFi-GAN vocoder): calibrated QDQ INT8 with per-channel
  activation scales for the convolutions that fit the log-mel budget, searched layer by layer
  (:mod:`ttsopt.build.static_int8`, :mod:`ttsopt.build.equalization`)
  on calibration recordings turned into the graph's inputs by the family's own front end
  (``calibration_feeds`` in its spec) or on saved inputs (``.npz``).
- ``weight-only-int8`` (the GPT decode graph): onnxruntime's ``MatMulNBitsQuantizer`` (blocks of 32
  weights, symmetric, INT8 compute with ``accuracy_level`` 4). A decode step streams every weight from
  memory, so 1-byte weights are what makes it faster; activations, attention and LayerNorm stay FP32.

The result must pass the target's ``int8`` gates (vocoders: log-mel L1 against the golden outputs; GPT:
teacher-forced greedy agreement and logit SNR), possibly changed by ``--budget``; otherwise nothing is
written and the exit status is 1. The speed-up of every quantized graph is measured and stored.
"""

from __future__ import annotations

import logging
import shutil
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ttsopt.errors import QualityGateError, TtsoptError
from ttsopt.families import spec_module
from ttsopt.package import PackageWriter
from ttsopt.package.manifest import Manifest
from ttsopt.runtime.package import Package
from ttsopt.targets import load_target

WEIGHT_ONLY_INT8 = "weight-only-int8"
STATIC_INT8 = "static-int8"
#: Recordings to calibrate on when ``--calib`` is not given: espeak-ng speech, other sentences and voices
#: than the verification set's.
DEFAULT_CALIBRATION = "calibration"
#: How many calibration recordings score the layer search, and their length cap (frames of the time dim).
SEARCH_UTTERANCES = 2
SEARCH_FRAMES = 256
#: The search aims this far inside the budget, so that the verification set (other sentences and voices
#: than the search's) lands inside it too.
SEARCH_MARGIN = 0.9
#: ``--budget`` metric → the gate it sets.
BUDGET_GATES = {"logmel_l1": "logmel_l1_max", "greedy_agreement": "greedy_agreement_min",
                "logits_snr_db": "logits_snr_db_min", "snr_db": "snr_db_min"}


def parse_budget(text: str | None) -> dict[str, float]:
    if not text:
        return {}
    metric, sep, value = text.partition("=")
    if not sep or metric not in BUDGET_GATES:
        raise TtsoptError(f"--budget {text!r} must be METRIC=VALUE with METRIC one of {', '.join(BUDGET_GATES)}")
    try:
        return {BUDGET_GATES[metric]: float(value)}
    except ValueError:
        raise TtsoptError(f"--budget {text!r}: {value!r} is not a number") from None


def _weight_only_int8(source: Path, destination: Path) -> dict:
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer

    logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer").setLevel(logging.ERROR)  # a line per node otherwise
    model = onnx.load(str(source))
    config = DefaultWeightOnlyQuantConfig(block_size=32, is_symmetric=True, accuracy_level=4, bits=8)
    quantizer = MatMulNBitsQuantizer(model, bits=8, block_size=32, is_symmetric=True, accuracy_level=4, algo_config=config)
    quantizer.process()
    quantized = quantizer.model.model
    onnx.save(quantized, str(destination))
    weights = {init.name for init in quantized.graph.initializer}
    kept = [n.name for n in quantized.graph.node if n.op_type in ("MatMul", "Gemm") and len(n.input) > 1 and n.input[1] in weights]
    return {"method": "weight-only INT8: onnxruntime MatMulNBits, blocks of 32, symmetric, INT8 compute (accuracy_level 4)",
            "quantized_matmuls": sum(n.op_type == "MatMulNBits" for n in quantized.graph.node),
            "fp32_weight_matmuls": len(kept),
            "bytes": {"fp32": source.stat().st_size, "int8": destination.stat().st_size}}


def calibration_recordings(directory: Path | None) -> list[Path]:
    """``.wav`` recordings and ``.npz`` saved inputs of ``directory``, or the bundled calibration speech."""
    if directory is None:
        from importlib.resources import files

        directory = Path(str(files("ttsopt.assets").joinpath(DEFAULT_CALIBRATION)))
    if not Path(directory).is_dir():
        raise TtsoptError(f"--calib {directory} is not a directory: give a folder of .wav recordings or .npz saved inputs")
    found = sorted(p for p in Path(directory).iterdir() if p.suffix.lower() in (".wav", ".npz"))
    if not found:
        raise TtsoptError(f"--calib {directory} holds no .wav recordings or .npz saved inputs: add some (10–30 s of speech)")
    return found


def _calibration_feeds(manifest: Manifest, graph: str, files: list[Path]) -> list[dict[str, np.ndarray]]:
    """The graph's inputs for each calibration file: recordings through the family's front end, saved inputs as they are."""
    from ttsopt.audio.io import read_wav

    entry = manifest.graphs[graph]
    names = {spec.name for spec in entry.inputs}
    wavs = [read_wav(p, manifest.sample_rate) for p in files if p.suffix.lower() == ".wav"]
    feeds = spec_module(manifest.family).calibration_feeds(manifest, wavs)[graph] if wavs else []
    for path in (p for p in files if p.suffix.lower() == ".npz"):
        with np.load(path) as saved:
            if set(saved.files) != names:
                raise TtsoptError(f"{path} holds {sorted(saved.files)}, graph {graph} takes {sorted(names)}: save exactly its inputs")
            feeds.append({name: saved[name].astype(np.float32) for name in names})
    return feeds


def _window_axes(entry) -> tuple[dict[str, int], str]:
    """The inputs' time axis: the one symbolic dim besides ``batch`` that they share."""
    axes, dims = {}, set()
    for spec in entry.inputs:
        for axis, dim in enumerate(spec.shape):
            if isinstance(dim, str) and dim != "batch":
                axes[spec.name] = axis
                dims.add(dim)
    if len(dims) != 1:
        raise TtsoptError(f"static INT8 needs one time dim shared by the inputs, found {sorted(dims)}")
    return axes, dims.pop()


def _graph_seconds(path: Path, feed: dict[str, np.ndarray], repeat: int = 5, others: tuple[Path, ...] = ()) -> list[float]:
    """Median run time of ``path`` and ``others`` on ``feed``, interleaved (this machine is shared)."""
    from ttsopt.build.ort_runs import session

    runners = [session(p) for p in (path, *others)]
    times = [[] for _ in runners]
    for runner in runners:
        runner.run(None, feed)
    for _ in range(repeat):
        for runner, record in zip(runners, times, strict=True):
            start = time.perf_counter()
            runner.run(None, feed)
            record.append(time.perf_counter() - start)
    return [statistics.median(record) for record in times]


def _static_int8(package: Package, graph: str, destination: Path, calib: Path | None, budget: float,
                 step: Callable[[str], None]) -> dict:
    from ttsopt.audio.mel import MelSettings
    from ttsopt.audio.metrics import logmel_l1
    from ttsopt.build import static_int8
    from ttsopt.build.ort_runs import run_all
    from ttsopt.hardware import has_int8_dot_product

    manifest = package.manifest
    entry = manifest.graphs[graph]
    if "mel" not in manifest.audio:
        raise TtsoptError(f"static INT8 of graph {graph} is scored in log-mel terms, but the package has no mel settings")
    mel = MelSettings(**manifest.audio["mel"])
    files = calibration_recordings(calib)
    feeds = _calibration_feeds(manifest, graph, files)
    axes, dim = _window_axes(entry)
    window = min(entry.dims[dim].opt, *(static_int8.feed_length(feed, axes) for feed in feeds))
    windows = static_int8.fixed_windows(feeds, axes, window)
    # Whole utterances, their first SEARCH_FRAMES only (cropped, never padded).
    search_feeds = [static_int8.fixed_windows([feed], axes, min(SEARCH_FRAMES, static_int8.feed_length(feed, axes)))[0]
                    for feed in feeds[:SEARCH_UTTERANCES]]
    source = package.path / entry.file
    audio = [spec.name for spec in entry.outputs if spec.kind == "audio"]
    reference = run_all(source, search_feeds)

    def score(outputs: list[dict[str, np.ndarray]]) -> float:
        return max(logmel_l1(want[name].reshape(-1), got[name].reshape(-1), mel)
                   for want, got in zip(reference, outputs, strict=True) for name in audio)

    reduce_range = not has_int8_dot_product()
    result = static_int8.search(source, destination, windows, search_feeds, score, SEARCH_MARGIN * budget, reduce_range, step)
    if not result.quantized:
        least = min(result.sensitivity.values())
        raise QualityGateError(f"no convolution of graph {graph} fits the budget log-mel L1 ≤ {budget:g} (the least "
                               f"sensitive one alone scores {least:.3g}): nothing was written; keep the FP32 package")
    step("timing FP32 vs INT8")
    fp32, int8 = _graph_seconds(source, feeds[0], others=(destination,))
    return {"method": "static INT8 (QDQ): onnxruntime quantize_static, U8 activations (channels equalized), "
                      "per-channel S8 weights"
                      + (", reduced range (no VNNI)" if reduce_range else ""),
            "calibration": {"chosen": result.calibration, "all_layers_logmel_l1": result.calibration_scores,
                            "files": [p.name for p in files], "windows": len(windows),
                            "window": {dim: window}},
            "budget": {"logmel_l1_max": budget, "search_target": SEARCH_MARGIN * budget, "search_logmel_l1": result.score,
                       "all_layers_logmel_l1": result.all_layers_score, "probes": result.probes},
            "equalization": result.equalization,
            "sensitivity": result.sensitivity,
            "quantized_layers": result.quantized, "fp32_layers": [layer for layer in result.sensitivity if layer not in result.quantized],
            "int8_flops_share": result.flops_share,
            "seconds": {"fp32": fp32, "int8": int8, "input": f"{next(iter(feeds[0].values())).shape}"},
            "speedup": fp32 / int8}


def _decode_step_ms(package: Package, repeat: int = 15) -> float:
    """Median time of one GPT decode step at 256 cache slots (the runtime's smallest capacity)."""
    from ttsopt.runtime.gpt import GPT

    gpt = GPT(package)
    gpt.prefill(np.arange(20) % 100, None, np.arange(50) % 1000, reserve=200)
    times = []
    for position in range(50, 50 + repeat):
        start = time.perf_counter()
        gpt.step(position % 1000, position)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def quantize_package(source: Path, out: Path, budget: dict[str, float], calib: Path | None = None,
                     step: Callable[[str], None] = lambda message: None) -> Manifest:
    from ttsopt.verify import verify_golden

    original = Package(source)
    manifest = original.manifest
    if manifest.precision != "fp32":
        raise TtsoptError(f"{source} is already {manifest.precision}: quantize the FP32 package it was made from")
    plan = getattr(spec_module(manifest.family), "QUANTIZATION", {})
    graphs = {name: method for name, method in plan.items() if name in manifest.graphs}
    if not graphs:
        raise TtsoptError(f"ttsopt quantize --int8 has no INT8 method for the graphs of a {manifest.family} "
                          f"{manifest.task} package: keep the FP32 package")
    profile = load_target(manifest.target["name"])
    if "int8" not in profile["gates"]:
        raise TtsoptError(f"target {profile['name']} has no int8 quality gates: add them to its profile")
    gates = {**profile["gates"]["int8"], **budget}

    with PackageWriter(out) as writer:
        for relative in manifest.files:
            shutil.copy2(source / relative, writer.path(relative))
        records = {}
        for name, method in graphs.items():
            step(f"quantizing graph {name} ({method})")
            file = writer.path(manifest.graphs[name].file)
            if method == STATIC_INT8:
                records[name] = _static_int8(original, name, file, calib, gates["logmel_l1_max"], step)
            else:
                records[name] = _weight_only_int8(source / manifest.graphs[name].file, file)
        manifest.precision = "int8"
        manifest.target = {**manifest.target, "gates": {**manifest.target["gates"], "int8": gates}}
        manifest.source = {**manifest.source, "quantized_from": str(Path(source).resolve())}
        writer.write_manifest(manifest)

        step("verifying the INT8 package against the original's outputs")
        quantized = Package(writer.scratch)
        report = verify_golden(quantized)
        if "gpt_transformer" in graphs:
            step("timing decode steps, FP32 vs INT8")
            fp32, int8 = [], []
            for _ in range(3):  # interleaved: this machine is shared
                fp32.append(_decode_step_ms(original))
                int8.append(_decode_step_ms(quantized))
            records["gpt_transformer"]["decode_step_ms"] = {"fp32": statistics.median(fp32), "int8": statistics.median(int8)}
            records["gpt_transformer"]["speedup"] = statistics.median(fp32) / statistics.median(int8)
        manifest.quantization = records
        manifest.verification = report.to_dict()
        report.require("the INT8 package misses its budget")
        writer.write_manifest(manifest)
        writer.commit()
    return manifest
