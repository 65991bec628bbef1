"""Weight-only INT8/INT4 for memory-bound MatMul graphs (a GPT decode step streams every weight per token).

onnxruntime's ``MatMulNBitsQuantizer`` (blocks of 32 weights, symmetric, INT8 compute with ``accuracy_level``
4) with each width of :data:`WEIGHT_BITS`; each candidate is verified in the package being written (the
family's gates for this graph) and timed against the FP32 graph, interleaved, by the family's timer; the
fastest that passes is kept (the widest when none does: the package's final verification reports the miss).
Activations, attention and LayerNorm stay FP32.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ttsopt.compiler.passes.base import PassContext, time_against_fp32
from ttsopt.package.precision import WeightOnlyRecord
from ttsopt.runtime.package import Package

#: Weight widths tried; the fastest that passes the gates is kept.
WEIGHT_BITS = (8, 4)
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
            "bits": bits, "quantized_matmuls": sum(n.op_type == "MatMulNBits" for n in quantized.graph.node),
            "fp32_weight_matmuls": len(kept),
            "bytes": {"fp32": source.stat().st_size, "quantized": destination.stat().st_size}}


@dataclass(frozen=True)
class WeightOnly:
    #: The verification gates (by name) that hold this graph's candidates.
    gates: tuple[str, ...]
    #: ``timer(package)`` → a probe whose calls return milliseconds of the graph's typical step (sessions made now).
    timer: Callable[[Package], Callable[[], float]]
    name: str = "weight-only"

    def apply(self, source: Path, destination: Path, context: PassContext) -> WeightOnlyRecord:
        """Needs ``context.verify`` (candidates are verified in the package being written) and ``context.package``."""
        candidates, paths = {}, {}
        with tempfile.TemporaryDirectory(prefix="ttsopt-weights-") as keep:
            for bits in WEIGHT_BITS:
                context.step(f"graph {context.graph}: weight-only INT{bits}, verifying it")
                paths[bits] = Path(keep) / f"int{bits}.onnx"
                candidate = quantize_weights(source, paths[bits], bits)
                report = context.verify(paths[bits])
                gates = [gate for gate in report.gates if gate.name in self.gates]
                candidates[bits] = candidate | {"gates": {gate.name: gate.value for gate in gates},
                                                "passed": all(gate.passed for gate in gates)}
            context.step(f"timing graph {context.graph}: FP32 vs {', '.join(f'INT{bits}' for bits in WEIGHT_BITS)}")
            ms = time_against_fp32(context, paths, self.timer, TIMING_ROUNDS)
            passing = [bits for bits in WEIGHT_BITS if candidates[bits]["passed"]]
            chosen = min(passing, key=ms.get) if passing else max(WEIGHT_BITS)
            shutil.copy2(Path(keep) / f"int{chosen}.onnx", destination)
        return WeightOnlyRecord(
            **candidates[chosen],
            decode_step_ms={"fp32": ms["fp32"], **{f"int{bits}": ms[bits] for bits in WEIGHT_BITS}},
            speedup=ms["fp32"] / ms[chosen],
            candidates={f"int{bits}": {"passed": c["passed"], "gates": c["gates"], "bytes": c["bytes"]["quantized"]}
                        for bits, c in candidates.items()})
