"""INT8 MatMuls where they pay, else FP32: for compute-bound MatMuls over many rows (RoBERTa once per sentence,
the v4 DiT over its frames, the GPT's prefill over prompt and text).

Two onnxruntime methods are tried, each verified in the package being written (the family's gates for this graph)
and timed against the FP32 graph, interleaved, by the family's timer:

- ``dynamic``: ``quantize_dynamic`` of every MatMul (S8 weights per tensor, activations quantized per call:
  ``DynamicQuantizeLinear`` + ``MatMulInteger``), which computes in INT8 (VNNI where the CPU has it);
- ``weight-only``: MatMulNBits with 8-bit weights in blocks of 32 (:func:`.weight_only.quantize_weights`), which
  saves memory bandwidth and computes in INT8 too (``accuracy_level`` 4).

The fastest candidate that passes is kept only if it beats FP32 by :data:`MIN_SPEEDUP` (less is within a shared
machine's noise); otherwise the graph stays FP32 and the record says why, with the times measured.

A pass with ``made_from`` makes a graph the FP32 package does not have, from one it has (``gpt_prefill`` from
``gpt_transformer``); when no candidate is kept, that graph is left out of the package rather than stored in FP32.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ttsopt.compiler.passes.base import PassContext, time_against_fp32
from ttsopt.compiler.passes.weight_only import quantize_weights
from ttsopt.package.precision import MatMulInt8Record
from ttsopt.runtime.package import Package

#: A candidate must be this much faster than FP32 to be kept (the static INT8 search's threshold).
MIN_SPEEDUP = 1.05
#: Interleaved timing rounds of every candidate (medians reported).
TIMING_ROUNDS = 5


def quantize_dynamic_matmuls(source: Path, destination: Path) -> dict:
    """onnxruntime's dynamic INT8 of every MatMul with a constant weight (S8 weights, U8 activations per call)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()  # onnxruntime.quantization warns on the root logger ("consider pre-processing")
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with tempfile.TemporaryDirectory(prefix="ttsopt-typed-", dir=destination.parent) as scratch:
            quantize_dynamic(str(typed_value_info(source, Path(scratch) / source.name)), str(destination),
                             op_types_to_quantize=["MatMul"], weight_type=QuantType.QInt8)
    finally:
        root.setLevel(level)
    quantized = onnx.load(str(destination), load_external_data=False)
    return {"method": "dynamic INT8: onnxruntime quantize_dynamic, MatMulInteger, S8 weights per tensor, U8 activations per call",
            "quantized_matmuls": sum(n.op_type in ("MatMulInteger", "DynamicQuantizeMatMul") for n in quantized.graph.node),
            "bytes": {"fp32": source.stat().st_size, "quantized": destination.stat().st_size}}


def typed_value_info(source: Path, scratch: Path) -> Path:
    """``source``, or a copy at ``scratch`` without its untyped value_info: the exporter leaves some for the outputs
    of onnxruntime's contrib operators (the GPT's attention), hints only, which onnxruntime's quantizer refuses. One
    copy of the model is in memory at a time (the quantizer loads its own)."""
    import onnx

    model = onnx.load(str(source))
    typed = [info for info in model.graph.value_info if info.type.HasField("tensor_type")]
    if len(typed) == len(model.graph.value_info):
        return source
    del model.graph.value_info[:]
    model.graph.value_info.extend(typed)
    onnx.save(model, str(scratch))
    return scratch


def _weight_only_int8(source: Path, destination: Path) -> dict:
    return quantize_weights(source, destination, 8)


#: Candidate name → how it is made.
METHODS: dict[str, Callable[[Path, Path], dict]] = {"dynamic": quantize_dynamic_matmuls, "weight-only": _weight_only_int8}


@dataclass(frozen=True)
class MatMulInt8:
    #: The verification gates (by name) that hold this graph's candidates.
    gates: tuple[str, ...]
    #: ``timer(package)`` → a probe whose calls return milliseconds of the graph's typical call (sessions made now).
    timer: Callable[[Package], Callable[[], float]]
    #: The candidates tried (names of :data:`METHODS`).
    methods: tuple[str, ...] = tuple(METHODS)
    #: The FP32 graph this one is made from, when the package has no graph of this name (see the module docstring).
    made_from: str | None = None
    name: str = "matmul-int8"

    def apply(self, source: Path, destination: Path, context: PassContext) -> MatMulInt8Record:
        """Needs ``context.verify`` (candidates are verified in the package being written) and ``context.package``."""
        candidates, paths = {}, {}
        with tempfile.TemporaryDirectory(prefix="ttsopt-matmul-int8-") as keep:
            for method, make in ((method, METHODS[method]) for method in self.methods):
                context.step(f"graph {context.graph}: {method} INT8, verifying it")
                paths[method] = Path(keep) / f"{method}.onnx"
                candidate = make(source, paths[method])
                report = context.verify(paths[method])
                gates = [gate for gate in report.gates if gate.name in self.gates]
                candidates[method] = candidate | {"gates": {gate.name: gate.value for gate in gates},
                                                  "failed": [gate.describe() for gate in gates if not gate.passed]}
            context.step(f"timing graph {context.graph}: FP32 vs {', '.join(self.methods)} INT8")
            ms = time_against_fp32(context, paths, self.timer, TIMING_ROUNDS)
            for method, candidate in candidates.items():
                candidate["speedup"] = ms["fp32"] / ms[method]
            passing = [method for method in self.methods if not candidates[method]["failed"]]
            fastest = min(passing, key=ms.get) if passing else None
            chosen = fastest if fastest and candidates[fastest]["speedup"] >= MIN_SPEEDUP else None
            if chosen or self.made_from is None:
                shutil.copy2(Path(keep) / f"{chosen}.onnx" if chosen else source, destination)
            else:  # the candidates were put in place to be verified and timed
                destination.unlink(missing_ok=True)
        record = MatMulInt8Record(
            method=candidates[chosen]["method"] if chosen else "FP32 kept", chosen=chosen, ms={"fp32": ms["fp32"], **{
                method: ms[method] for method in self.methods}},
            speedup=candidates[chosen]["speedup"] if chosen else 1.0, min_speedup=MIN_SPEEDUP,
            candidates={method: {key: c[key] for key in ("method", "quantized_matmuls", "bytes", "gates", "failed", "speedup")}
                        for method, c in candidates.items()})
        if chosen is None:
            record.kept_fp32 = (f"not made ({self.made_from} runs instead): " if self.made_from else "") + "; ".join(
                f"{method}: " + ("; ".join(c["failed"]) if c["failed"] else
                                 f"{c['speedup']:.2f}x the FP32 graph's speed (needs {MIN_SPEEDUP:g}x)")
                for method, c in candidates.items())
        return record
