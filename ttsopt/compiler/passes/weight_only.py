"""INT8/INT4 MatMul weights for graphs whose weights dominate: weight-only (a GPT decode step streams every weight
per token) or dynamic (a v4 DiT step multiplies hundreds of frames by 22 blocks of 1024-wide weights: compute-bound).

Candidates: onnxruntime's ``MatMulNBitsQuantizer`` (blocks of 32 weights, symmetric, INT8 compute with
``accuracy_level`` 4) with each width the family asks for (default :data:`WEIGHT_BITS`), and with ``dynamic``
onnxruntime's ``quantize_dynamic`` of the constant-weight MatMuls (per-channel S8 weights, activations quantized
per call: U8 × S8 GEMMs, which VNNI/AMX cores run faster than FP32 at hundreds of rows; measured on the tiny v4
oracle's DiT step in one ``quantize`` run on this shared machine: dynamic INT8 1.21×, MatMulNBits INT8 0.84×).
Each candidate is verified in the package
being written (the family's gates for this graph) and timed against the FP32 graph, interleaved, by the family's
timer; the fastest that passes is kept. With ``keep_fp32`` the graph stays FP32 when no candidate passes or the
fastest is not faster (the record says why); without it the widest is kept and the package's final verification
reports the miss. Activations, attention and LayerNorm stay FP32 (the activation × activation MatMuls too).
"""

from __future__ import annotations

import logging
import shutil
import statistics
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ttsopt.compiler.passes.base import PassContext
from ttsopt.package.precision import WeightOnlyRecord
from ttsopt.runtime.package import Package

#: Weight widths tried; the fastest that passes the gates is kept.
WEIGHT_BITS = (8, 4)
#: The dynamic INT8 candidate's name in records.
DYNAMIC = "dynamic-int8"
#: A candidate must be at least this much faster than FP32 to be kept (with ``keep_fp32``).
MIN_SPEEDUP = 1.05
#: Interleaved timing rounds of every candidate (medians reported).
TIMING_ROUNDS = 3


def quantize_weights(source: Path, destination: Path, bits: int) -> dict:
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
            "bits": bits, "candidate": f"int{bits}", "quantized_matmuls": sum(n.op_type == "MatMulNBits" for n in quantized.graph.node),
            "fp32_weight_matmuls": len(kept),
            "bytes": {"fp32": source.stat().st_size, "quantized": destination.stat().st_size}}


def _weight_matmuls(model) -> list[str]:
    """Names of the MatMuls of ``model`` whose second input is a constant (weights, not activation × activation)."""
    weights = {init.name for init in model.graph.initializer}
    return [n.name for n in model.graph.node if n.op_type == "MatMul" and len(n.input) > 1 and n.input[1] in weights]


def quantize_dynamic_int8(source: Path, destination: Path) -> dict:
    """onnxruntime's ``quantize_dynamic`` of every constant-weight MatMul of ``source``: per-channel S8 weights,
    U8 activations quantized per call (DynamicQuantizeMatMul)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    targets = _weight_matmuls(onnx.load(str(source), load_external_data=False))
    quantize_dynamic(str(source), str(destination), op_types_to_quantize=["MatMul"], nodes_to_quantize=targets,
                     weight_type=QuantType.QInt8, per_channel=True)
    quantized = onnx.load(str(destination), load_external_data=False)
    return {"method": "dynamic INT8: onnxruntime quantize_dynamic, per-channel S8 weights, U8 activations quantized per call",
            "bits": 8, "candidate": DYNAMIC,
            "quantized_matmuls": sum(n.op_type in ("DynamicQuantizeMatMul", "MatMulInteger") for n in quantized.graph.node),
            "fp32_weight_matmuls": len(_weight_matmuls(quantized)),
            "bytes": {"fp32": source.stat().st_size, "quantized": destination.stat().st_size}}


@dataclass(frozen=True)
class WeightOnly:
    #: The verification gates (by name) that hold this graph's candidates.
    gates: tuple[str, ...]
    #: ``timer(package)`` → a probe whose calls return milliseconds of the graph's typical step (sessions made now).
    timer: Callable[[Package], Callable[[], float]]
    #: Weight widths to try (MatMulNBits).
    bits: tuple[int, ...] = WEIGHT_BITS
    #: Also try dynamic INT8 (:func:`quantize_dynamic_int8`).
    dynamic: bool = False
    #: Keep FP32 when no width passes the gates or is :data:`MIN_SPEEDUP` faster (else the widest is kept).
    keep_fp32: bool = False
    name: str = "weight-only"

    def apply(self, source: Path, destination: Path, context: PassContext) -> WeightOnlyRecord:
        """Needs ``context.verify`` (candidates are verified in the package being written) and ``context.package``."""
        builders = {f"int{bits}": (lambda src, dst, bits=bits: quantize_weights(src, dst, bits)) for bits in self.bits}
        if self.dynamic:
            builders[DYNAMIC] = quantize_dynamic_int8
        candidates, probes = {}, {}
        with tempfile.TemporaryDirectory(prefix="ttsopt-weights-") as keep:
            for name, build in builders.items():
                context.step(f"graph {context.graph}: {name}, verifying it")
                path = Path(keep) / f"{name}.onnx"
                candidate = build(source, path)
                report = context.verify(path)
                gates = [gate for gate in report.gates if gate.name in self.gates]
                candidates[name] = candidate | {"gates": {gate.name: gate.value for gate in gates},
                                                "passed": all(gate.passed for gate in gates)}
                probes[name] = self.timer(Package(Path(report.package)))  # its sessions hold this candidate's graph
            context.step(f"timing graph {context.graph}: FP32 vs {', '.join(builders)}")
            fp32 = self.timer(context.package)
            times: dict[str, list[float]] = {"fp32": [], **{name: [] for name in builders}}
            for _ in range(TIMING_ROUNDS):  # interleaved: this machine is shared
                for key, probe in (("fp32", fp32), *probes.items()):
                    times[key].append(probe())
            ms = {key: statistics.median(values) for key, values in times.items()}
            passing = [name for name in builders if candidates[name]["passed"]]
            chosen = min(passing, key=ms.get) if passing else f"int{max(self.bits)}"
            kept_fp32 = None
            if self.keep_fp32 and not passing:
                kept_fp32 = "INT8 misses the gates (" + "; ".join(
                    f"{name}: " + ", ".join(f"{gate} {value:.4g}" for gate, value in candidates[name]["gates"].items())
                    for name in builders) + ")"
            elif self.keep_fp32 and ms["fp32"] / ms[chosen] < MIN_SPEEDUP:
                kept_fp32 = (f"{chosen} is not faster: {ms[chosen]:.2f} vs FP32 {ms['fp32']:.2f} ms per step "
                             f"(needs {MIN_SPEEDUP:g}x)")
            shutil.copy2(source if kept_fp32 else Path(keep) / f"{chosen}.onnx", destination)
        return WeightOnlyRecord(
            **candidates[chosen],
            decode_step_ms=ms,
            speedup=1.0 if kept_fp32 else ms["fp32"] / ms[chosen],
            candidates={name: {"passed": c["passed"], "gates": c["gates"], "bytes": c["bytes"]["quantized"]}
                        for name, c in candidates.items()},
            kept_fp32=kept_fp32)
