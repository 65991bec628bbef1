"""Mixed FP16 for GPU targets: FP32 islands found by measurement, not by a hand list.

FP16 fails in two ways: a tensor exceeds its range (65504) and becomes Inf, then NaN downstream; or
rounding somewhere is amplified until the output drifts. Both are measured on real inputs (the
package's golden inputs, made from speech):

1. **Range**: the FP32 graph runs with each intermediate tensor's largest magnitude computed in the graph; a
   tensor whose largest magnitude comes within :data:`HEADROOM` of FP16's limit, or is not finite, is kept FP32
   together with the node that makes it and every node that reads it (a Cast at the boundary would overflow too).
2. **Error**: the FP16 graph runs the same inputs; while its outputs miss ``snr_db_min`` against FP32, both graphs
   run again with their intermediate tensors exposed, and the node that adds the most error (its output's SNR
   against FP32 minus its inputs' worst) joins the islands.

Memory: the released v4 DiT step (1.33 GB, 2013 float tensors, two golden inputs) was killed at 21.6 GB when every
exposed tensor of both graphs was held at once. Now the ranges come back as three scalars a tensor, the error search
compares a group of tensors at a time and only when the outputs fail, and the weights are held once (each FP16
conversion reads the source file again).

The conversion itself is onnxruntime's ``transformers.float16.convert_float_to_float16`` (full FP16
range, graph inputs and outputs kept FP32 so the runtime's contract does not change); one pass of
ours joins neighbouring FP32 islands (the converter casts every kept node's output back to FP16). onnxruntime's
CPU provider is the numerics oracle here: it stores every FP16 tensor as FP16 (so range and rounding
are real) but computes some FP16 ops through FP32 kernels; TensorRT's accumulation can differ, which
is why ``ttsopt build`` verifies its engines again on the GPU.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ttsopt.audio.metrics import snr_db
from ttsopt.compiler.ort_runs import Feed, exposing_session, run_all, run_together_in_groups, session
from ttsopt.errors import QualityGateError

FP16_MAX = 65504.0
#: A tensor is kept FP32 when real inputs already bring it within this factor of FP16's limit:
#: louder or longer inputs than the verification set must not overflow.
HEADROOM = 8.0
#: At most this many nodes are moved to FP32 by the error search before ttsopt gives up.
MAX_ERROR_ISLANDS = 16


def _float_tensors(model) -> list[str]:
    """Node outputs that hold floating-point values in the FP32 graph (what FP16 would store), in graph order.
    Types are inferred on the graph without its weights (each large initializer stands as a typed input): onnx's
    shape inference copies the model it is given, gigabytes for the released v4 DiT."""
    import onnx
    from onnx import helper

    small = [init for init in model.graph.initializer
             if init.data_type != onnx.TensorProto.FLOAT or int(np.prod(init.dims, dtype=np.int64)) <= 1024]
    kept = {init.name for init in small}
    weights = [helper.make_tensor_value_info(init.name, init.data_type, init.dims)
               for init in model.graph.initializer if init.name not in kept]
    light = helper.make_model(helper.make_graph(model.graph.node, "types", [*model.graph.input, *weights],
                                                model.graph.output, small),
                              opset_imports=model.opset_import, ir_version=model.ir_version)
    inferred = onnx.shape_inference.infer_shapes(light)
    types = {info.name: info.type.tensor_type.elem_type for info in (*inferred.graph.value_info, *inferred.graph.output)}
    return [out for node in model.graph.node for out in node.output if types.get(out) == onnx.TensorProto.FLOAT]


@dataclass
class Ranges:
    """What one FP32 run per feed measured: each float tensor's largest magnitude (``inf``: not finite) and largest
    size in bytes, and the graph's outputs (the reference the FP16 graph is held to)."""

    peak: dict[str, float]
    nbytes: dict[str, int]
    outputs: list[dict[str, np.ndarray]]


def _measure_ranges(model, floats: Sequence[str], feeds: Sequence[Feed], scratch: Path) -> Ranges:
    """Run ``model`` with ``ReduceMax(Abs(t))``, ``ReduceSum(t)`` and ``Size(t)`` of every float tensor ``t`` as extra
    outputs: scalars come back, not tensors, so a run holds what a plain run holds. ``ReduceMax`` may pass over a NaN
    (onnxruntime's does unless it comes last), a sum never does: a tensor whose sum or maximum is not finite counts
    as not finite (a sum that overflows FP32 would too, which only keeps FP32 a tensor far out of FP16's range).
    ``model``'s initializers are dropped once the probe is written (the caller reads the source file again)."""
    import onnx
    from onnx import helper

    nodes, outputs = len(model.graph.node), len(model.graph.output)
    own = [output.name for output in model.graph.output]
    probe = scratch / "ranges.onnx"
    try:
        for i, name in enumerate(floats):
            measure = f"fp16_range/{i}"
            model.graph.node.extend([helper.make_node("Abs", [name], [f"{measure}/abs"]),
                                     helper.make_node("ReduceMax", [f"{measure}/abs"], [f"{measure}/max"], keepdims=0),
                                     helper.make_node("ReduceSum", [name], [f"{measure}/sum"], keepdims=0),
                                     helper.make_node("Size", [name], [f"{measure}/size"])])
            model.graph.output.extend([helper.make_tensor_value_info(f"{measure}/max", onnx.TensorProto.FLOAT, []),
                                       helper.make_tensor_value_info(f"{measure}/sum", onnx.TensorProto.FLOAT, []),
                                       helper.make_tensor_value_info(f"{measure}/size", onnx.TensorProto.INT64, [])])
        onnx.save(model, str(probe))
    finally:
        del model.graph.node[nodes:], model.graph.output[outputs:]
    del model.graph.initializer[:]
    runner = session(probe)
    names = [output.name for output in runner.get_outputs()]
    peak, nbytes = dict.fromkeys(floats, 0.0), dict.fromkeys(floats, 0)
    references = []
    for feed in feeds:
        run = dict(zip(names, runner.run(None, feed), strict=True))
        references.append({name: run[name] for name in own})
        for i, name in enumerate(floats):
            size, total, largest = (run[f"fp16_range/{i}/{what}"] for what in ("size", "sum", "max"))
            if size == 0:
                continue
            finite = math.isfinite(float(total)) and math.isfinite(float(largest))
            peak[name] = max(peak[name], float(largest) if finite else math.inf)
            nbytes[name] = max(nbytes[name], 4 * int(size))
    del runner
    probe.unlink()
    return Ranges(peak, nbytes, references)


def _join_fp32_islands(model):
    """Drop the FP32 → FP16 → FP32 Cast pairs that onnxruntime's converter puts between two FP32 nodes:
    the round trip would overflow exactly the tensors the islands are there to keep."""
    import onnx
    from onnxruntime.quantization.onnx_model import ONNXModel

    nodes = list(model.graph.node)
    readers = ONNXModel(model).input_name_to_nodes()
    outputs = {output.name for output in model.graph.output}

    def cast_to(node, dtype: int) -> bool:
        return node.op_type == "Cast" and next(a.i for a in node.attribute if a.name == "to") == dtype

    dropped = set()
    for down in nodes:
        if not cast_to(down, onnx.TensorProto.FLOAT16) or down.output[0] in outputs:
            continue
        ups = readers.get(down.output[0], [])
        if not ups or not all(cast_to(up, onnx.TensorProto.FLOAT) and up.output[0] not in outputs for up in ups):
            continue
        for up in ups:
            for reader in readers.get(up.output[0], []):
                reader.input[:] = [down.input[0] if name == up.output[0] else name for name in reader.input]
            dropped.add(id(up))
        dropped.add(id(down))
    kept = [node for node in nodes if id(node) not in dropped]
    del model.graph.node[:]
    model.graph.node.extend(kept)
    return model


def _output_snr_db(want: np.ndarray, got: np.ndarray) -> float:
    """SNR of a float output; integer outputs (token codes) must match exactly (inf) or fail (-inf)."""
    if np.issubdtype(want.dtype, np.floating):
        return snr_db(want, got)
    return np.inf if np.array_equal(want, got) else -np.inf


def _tensor_errors(source: Path, mixed: Path, floats: Sequence[str], feeds: Sequence[Feed],
                   nbytes: dict[str, int]) -> dict[str, float]:
    """Each float tensor's worst SNR in the mixed graph against FP32 over ``feeds``: both graphs run the same group of
    exposed tensors (about :data:`~ttsopt.compiler.ort_runs.GROUP_BYTES` of FP32, sized by the range run's byte
    counts), compared and dropped before the next."""
    with exposing_session(source, floats) as fp32, exposing_session(mixed, floats) as half:
        produced = {output.name for output in half.get_outputs()}
        wanted = set(floats)
        names = [output.name for output in fp32.get_outputs() if output.name in produced and output.name in wanted]
        snr = dict.fromkeys(names, math.inf)
        for feed in feeds:
            for name, (want, got) in run_together_in_groups([fp32, half], names, feed, sizes=nbytes):
                snr[name] = min(snr[name], snr_db(want, got))
    return snr


def convert(source: Path, destination: Path, feeds: Sequence[Feed], snr_db_min: float,
            step: Callable[[str], None] = lambda message: None) -> dict:
    """Write the mixed-precision graph of ``source`` to ``destination``; return what was kept FP32 and why."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(source))
    floats = _float_tensors(model)
    outputs = [output.name for output in model.graph.output]
    with tempfile.TemporaryDirectory(dir=destination.parent) as scratch:
        step(f"measuring {len(floats)} tensors' ranges on {len(feeds)} inputs")
        ranges = _measure_ranges(model, floats, feeds, Path(scratch))  # ``model`` keeps its nodes, not its weights
        hot = {name for name, value in ranges.peak.items() if value * HEADROOM > FP16_MAX}
        islands: dict[str, str] = {}
        for node in model.graph.node:
            touched = sorted(hot & {*node.input, *node.output})
            if touched:
                islands[node.name] = f"range: |{touched[0]}| up to {ranges.peak[touched[0]]:.3g}"

        mixed = Path(scratch) / "mixed.onnx"
        while True:
            step(f"FP16 with {len(islands)} FP32 islands: measuring error")
            converted = convert_float_to_float16(onnx.load(str(source)), keep_io_types=True, node_block_list=list(islands))
            onnx.save(_join_fp32_islands(converted), str(mixed))
            del converted
            runs = run_all(mixed, feeds)
            worst_output = min(_output_snr_db(want[name], got[name])
                               for want, got in zip(ranges.outputs, runs, strict=True) for name in outputs)
            if worst_output >= snr_db_min:
                break
            error_islands = sum(reason.startswith("error") for reason in islands.values())
            if error_islands >= MAX_ERROR_ISLANDS:
                raise QualityGateError(f"FP16 output SNR {worst_output:.1f} dB stays below {snr_db_min:g} dB with "
                                       f"{len(islands)} FP32 islands: this graph needs FP32 (use --precision fp32)")
            step(f"FP16 output SNR {worst_output:.1f} dB: finding the node that loses the most")
            snr = _tensor_errors(source, mixed, floats, feeds, ranges.nbytes)
            added = {}
            for node in model.graph.node:
                if node.name in islands or not node.output or node.output[0] not in snr:
                    continue
                inputs = [snr[name] for name in node.input if name in snr]
                added[node.name] = (min(inputs) if inputs else math.inf) - snr[node.output[0]]
            culprit = max(added, key=added.get)
            islands[culprit] = f"error: output SNR drops {added[culprit]:.1f} dB in this node"
        shutil.move(mixed, destination)

    return {"method": "onnxruntime float16 conversion, FP32 inputs/outputs, FP32 islands by measurement",
            "headroom": HEADROOM, "fp32_islands": islands,
            "fp16_nodes": sum(1 for node in model.graph.node if node.name not in islands),
            "peak_abs": max(ranges.peak.values()), "output_snr_db": worst_output}
