"""``ttsopt quantize --int8``: package → INT8 package, gated by measured quality, written atomically.

What is quantized is declared by each family (``QUANTIZATION`` in its spec: graph → method). Today one
method exists: weight-only INT8 for the MatMuls of the GPT decode graph, through onnxruntime's
``MatMulNBitsQuantizer`` (blocks of 32 weights along the input dimension, symmetric, INT8 compute with
``accuracy_level`` 4). A decode step streams every weight from memory, so weights at 1 byte instead of
4 are what makes it faster; activations, attention and LayerNorm stay FP32. The result must pass the
target's ``int8`` gates (GPT: teacher-forced greedy agreement and logit SNR against the original's
reference run), possibly tightened by ``--budget``; otherwise nothing is written and the exit status is 1.

Not here yet: static INT8 for the convolution graphs (HiFi-GAN, the SoVITS generator). Measured on the
real HiFi-GAN: all-conv INT8 gives log-mel L1 0.55 (MinMax calibration; 0.50 percentile, 0.70
entropy), and single convolutions of stages 1–2 already cost 0.005–0.19 each, so the default 0.05
budget admits too few layers for a speed-up; that needs more than a layer search.
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
#: ``--budget`` metric → the gate it sets.
BUDGET_GATES = {"logmel_l1": "logmel_l1_max", "greedy_agreement": "greedy_agreement_min", "snr_db": "snr_db_min"}


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


def quantize_package(source: Path, out: Path, budget: dict[str, float],
                     step: Callable[[str], None] = lambda message: None) -> Manifest:
    from ttsopt.verify import verify_golden

    original = Package(source)
    manifest = original.manifest
    if manifest.precision != "fp32":
        raise TtsoptError(f"{source} is already {manifest.precision}: quantize the FP32 package it was made from")
    plan = getattr(spec_module(manifest.family), "QUANTIZATION", {})
    graphs = {name: method for name, method in plan.items() if name in manifest.graphs}
    if not graphs:
        raise TtsoptError(f"ttsopt quantize --int8 cannot quantize a {manifest.family} {manifest.task} package yet "
                          "(INT8 for convolution graphs is not implemented): keep the FP32 package")
    profile = load_target(manifest.target["name"])
    if "int8" not in profile["gates"]:
        raise TtsoptError(f"target {profile['name']} has no int8 quality gates: add them to its profile")
    gates = {**profile["gates"]["int8"], **budget}

    with PackageWriter(out) as writer:
        for relative in manifest.files:
            shutil.copy2(source / relative, writer.path(relative))
        records = {}
        for name, method in graphs.items():
            assert method == WEIGHT_ONLY_INT8, method
            step(f"quantizing graph {name} ({method})")
            file = writer.path(manifest.graphs[name].file)
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
        if not report.passed:
            raise QualityGateError(f"the INT8 package misses its budget ({'; '.join(g.describe() for g in report.failed)}): "
                                   "nothing was written")
        writer.write_manifest(manifest)
        writer.commit()
    return manifest
