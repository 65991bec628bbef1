"""``ttsopt quantize --int8``: package → INT8 package, gated by measured quality, written atomically.

What is quantized is declared by each family (``QUANTIZATION`` in its spec: graph → method):

- ``static-int8`` (convolution graphs: the HiFi-GAN vocoder, the SoVITS generator): calibrated QDQ
  INT8 with equalized channels for the convolutions that fit the log-mel budget, searched layer by
  layer and then timed (:mod:`ttsopt.compiler.static_int8`, :mod:`ttsopt.compiler.equalization`) on
  calibration recordings turned into the graph's inputs by the family's own front end
  (``calibration_feeds`` in its spec) or on saved inputs (``.npz``).
- ``weight-only`` (the GPT decode graph): onnxruntime's ``MatMulNBitsQuantizer`` (blocks of 32
  weights, symmetric, INT8 compute with ``accuracy_level`` 4), with 8-bit and with 4-bit weights; each
  is verified (greedy agreement, logit SNR) and timed, and the fastest that passes is kept. A decode
  step streams every weight from memory, so narrow weights are what makes it faster; activations,
  attention and LayerNorm stay FP32.

The result must pass the target's ``int8`` gates (vocoders: log-mel L1 against the golden outputs; GPT:
teacher-forced greedy agreement and logit SNR), possibly changed by ``--budget``; otherwise nothing is
written and the exit status is 1. The speed-up of every quantized graph is measured and stored.
"""

from __future__ import annotations

import logging
import shutil
import statistics
import tempfile
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

WEIGHT_ONLY = "weight-only"
STATIC_INT8 = "static-int8"
#: Weight widths tried by ``weight-only`` (MatMulNBits); the fastest that passes the gates is kept.
WEIGHT_BITS = (8, 4)
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


def _weight_only(source: Path, destination: Path, bits: int) -> dict:
    """onnxruntime's MatMulNBits for every constant-weight MatMul of ``source``: ``bits``-bit weights in blocks
    of 32, symmetric, INT8 compute (``accuracy_level`` 4)."""
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer

    logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer").setLevel(logging.ERROR)  # a line per node otherwise
    model = onnx.load(str(source))
    config = DefaultWeightOnlyQuantConfig(block_size=32, is_symmetric=True, accuracy_level=4, bits=bits)
    quantizer = MatMulNBitsQuantizer(model, bits=bits, block_size=32, is_symmetric=True, accuracy_level=4, algo_config=config)
    quantizer.process()
    quantized = quantizer.model.model
    onnx.save(quantized, str(destination))
    weights = {init.name for init in quantized.graph.initializer}
    kept = [n.name for n in quantized.graph.node if n.op_type in ("MatMul", "Gemm") and len(n.input) > 1 and n.input[1] in weights]
    return {"method": f"weight-only INT{bits}: onnxruntime MatMulNBits, blocks of 32, symmetric, INT8 compute (accuracy_level 4)",
            "bits": bits, "quantized_matmuls": sum(n.op_type == "MatMulNBits" for n in quantized.graph.node),
            "fp32_weight_matmuls": len(kept),
            "bytes": {"fp32": source.stat().st_size, "quantized": destination.stat().st_size}}


def _weight_only_search(writer: PackageWriter, manifest: Manifest, original: Package, graph: str,
                        step: Callable[[str], None]) -> dict:
    """Each of :data:`WEIGHT_BITS` for ``graph`` (the GPT decode step), verified in the package being written
    (teacher-forced greedy agreement and logit SNR) and timed per decode step against the FP32 package,
    interleaved; the fastest candidate that passes is kept (the widest when none does: the final
    verification then reports the miss)."""
    from ttsopt.runtime.gpt import GPT
    from ttsopt.verify import verify_golden

    target = writer.path(manifest.graphs[graph].file)
    candidates, decoders = {}, {}
    with tempfile.TemporaryDirectory(prefix="ttsopt-weights-") as keep:
        for bits in WEIGHT_BITS:
            step(f"graph {graph}: weight-only INT{bits}, verifying it")
            path = Path(keep) / f"int{bits}.onnx"
            candidate = _weight_only(original.path / manifest.graphs[graph].file, path, bits)
            shutil.copy2(path, target)
            writer.write_manifest(manifest)
            package = Package(writer.scratch)
            gates = [gate for gate in verify_golden(package).gates if gate.name.startswith("GPT")]
            candidates[bits] = candidate | {"gates": {gate.name: gate.value for gate in gates},
                                            "passed": all(gate.passed for gate in gates)}
            decoders[bits] = GPT(package)  # its sessions hold this candidate's graph
        step(f"timing decode steps: FP32 vs {', '.join(f'INT{bits}' for bits in WEIGHT_BITS)}")
        fp32 = GPT(original)
        times: dict[str | int, list[float]] = {"fp32": [], **{bits: [] for bits in WEIGHT_BITS}}
        for _ in range(3):  # interleaved: this machine is shared
            for key, decoder in (("fp32", fp32), *decoders.items()):
                times[key].append(_decode_step_ms(decoder))
        ms = {key: statistics.median(values) for key, values in times.items()}
        passing = [bits for bits in WEIGHT_BITS if candidates[bits]["passed"]]
        chosen = min(passing, key=ms.get) if passing else max(WEIGHT_BITS)
        shutil.copy2(Path(keep) / f"int{chosen}.onnx", target)
    return candidates[chosen] | {
        "decode_step_ms": {"fp32": ms["fp32"], **{f"int{bits}": ms[bits] for bits in WEIGHT_BITS}},
        "speedup": ms["fp32"] / ms[chosen],
        "candidates": {f"int{bits}": {"passed": c["passed"], "gates": c["gates"], "bytes": c["bytes"]["quantized"]}
                       for bits, c in candidates.items()}}


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


def _calibration_feeds(package: Package, graph: str, files: list[Path]) -> list[dict[str, np.ndarray]]:
    """The graph's inputs for each calibration file: recordings through the family's front end (which may run
    the package's other graphs), saved inputs as they are."""
    from ttsopt.audio.io import read_wav

    manifest = package.manifest
    entry = manifest.graphs[graph]
    names = {spec.name for spec in entry.inputs}
    wavs = [read_wav(p, manifest.sample_rate) for p in files if p.suffix.lower() == ".wav"]
    feeds = spec_module(manifest.family).calibration_feeds(package, wavs)[graph] if wavs else []
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


def _static_int8(package: Package, graph: str, destination: Path, calib: Path | None, budget: float,
                 step: Callable[[str], None]) -> dict:
    from ttsopt.audio.mel import MelSettings
    from ttsopt.audio.metrics import logmel_l1
    from ttsopt.compiler import static_int8
    from ttsopt.compiler.ort_runs import run_all
    from ttsopt.hardware import has_int8_dot_product

    manifest = package.manifest
    entry = manifest.graphs[graph]
    if "mel" not in manifest.audio:
        raise TtsoptError(f"static INT8 of graph {graph} is scored in log-mel terms, but the package has no mel settings")
    mel = MelSettings(**manifest.audio["mel"])
    files = calibration_recordings(calib)
    feeds = _calibration_feeds(package, graph, files)
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
    result = static_int8.search(source, destination, windows, search_feeds, score, SEARCH_MARGIN * budget,
                                feeds[0], reduce_range, step)
    if not result.fitting_layers:
        least = min(result.sensitivity.values())
        raise QualityGateError(f"no convolution of graph {graph} fits the budget log-mel L1 ≤ {budget:g} (the least "
                               f"sensitive one alone scores {least:.3g}): nothing was written; keep the FP32 package")
    record = {"method": "static INT8 (QDQ): onnxruntime quantize_static, U8 activations (channels equalized), "
                        "per-channel S8 weights"
                        + (", reduced range (no VNNI)" if reduce_range else ""),
              "calibration": {"chosen": result.calibration, "all_layers_logmel_l1": result.calibration_scores,
                              "not_computable": sorted(set(static_int8.CALIBRATIONS) - set(result.calibration_scores)),
                              "files": [p.name for p in files], "windows": len(windows),
                              "window": {dim: window}},
              "budget": {"logmel_l1_max": budget, "search_target": SEARCH_MARGIN * budget, "search_logmel_l1": result.score,
                         "all_layers_logmel_l1": result.all_layers_score, "probes": result.probes,
                         "fitting_layers": result.fitting_layers},
              "equalization": result.equalization,
              "sensitivity": result.sensitivity,
              "quantized_layers": result.quantized,
              "fp32_layers": [layer for layer in result.sensitivity if layer not in result.quantized],
              "int8_flops_share": result.flops_share,
              "seconds": {"fp32": result.fp32_seconds, "int8": result.seconds, "input": f"{next(iter(feeds[0].values())).shape}",
                          "timed_int8_layers": result.timings},
              "speedup": result.fp32_seconds / result.seconds}
    if not result.quantized:
        fastest = min(result.timings, key=lambda timing: timing["seconds"])
        record["kept_fp32"] = (f"INT8 is not faster here: the fastest INT8 variant ({fastest['layers']} layers) ran at "
                               f"{result.fp32_seconds / fastest['seconds']:.3f}x the FP32 graph's speed "
                               f"(needs {static_int8.MIN_SPEEDUP:g}x)")
    return record


def _decode_step_ms(gpt, repeat: int = 15) -> float:
    """Median time of one GPT decode step at 256 cache slots (the runtime's smallest capacity)."""
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
        manifest.precision = "int8"
        manifest.target = {**manifest.target, "gates": {**manifest.target["gates"], "int8": gates}}
        manifest.source = {**manifest.source, "quantized_from": str(Path(source).resolve())}
        records = {}
        for name, method in sorted(graphs.items(), key=lambda item: item[1] != STATIC_INT8):  # weight-only ones last:
            step(f"quantizing graph {name} ({method})")                                   # verified in the package
            if method == STATIC_INT8:
                records[name] = _static_int8(original, name, writer.path(manifest.graphs[name].file), calib,
                                             gates["logmel_l1_max"], step)
            else:
                records[name] = _weight_only_search(writer, manifest, original, name, step)
        unchanged = {name: record["kept_fp32"] for name, record in records.items() if "kept_fp32" in record}
        if len(unchanged) == len(records):
            raise QualityGateError("INT8 makes no graph of this package faster (" + "; ".join(
                f"{name}: {why}" for name, why in unchanged.items()) + "): nothing was written; keep the FP32 package")
        writer.write_manifest(manifest)

        step("verifying the INT8 package against the original's outputs")
        report = verify_golden(Package(writer.scratch))
        manifest.quantization = records
        manifest.verification = report.to_dict()
        report.require("the INT8 package misses its budget")
        writer.write_manifest(manifest)
        writer.commit()
    return manifest
