"""Mixed FP16 for GPU targets: FP32 islands found by measurement, not by a hand list.

FP16 fails in two ways: a tensor exceeds its range (65504) and becomes Inf, then NaN downstream; or
rounding somewhere is amplified until the output drifts. Both are measured on real inputs (the
package's golden inputs, made from speech):

1. **Range**: the FP32 graph runs with every intermediate tensor exposed; a tensor whose largest
   magnitude comes within :data:`HEADROOM` of FP16's limit, or is not finite, is kept FP32 together with
   the node that makes it and every node that reads it (a Cast at the boundary would overflow too).
2. **Error**: the FP16 graph runs the same inputs with its intermediate tensors exposed; while the
   outputs miss ``snr_db_min`` against FP32, the node that adds the most error (its output's SNR
   against FP32 minus its inputs' worst) joins the islands.

The conversion itself is onnxruntime's ``transformers.float16.convert_float_to_float16`` (full FP16
range, graph inputs and outputs kept FP32 so the runtime's contract does not change); one pass of
ours joins neighbouring FP32 islands (the converter casts every kept node's output back to FP16). onnxruntime's
CPU provider is the numerics oracle here: it stores every FP16 tensor as FP16 (so range and rounding
are real) but computes some FP16 ops through FP32 kernels; TensorRT's accumulation can differ, which
is why ``ttsopt build`` verifies its engines again on the GPU.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ttsopt.audio.metrics import snr_db
from ttsopt.compiler.ort_runs import Feed, exposing_session, run_in_groups, run_together_in_groups
from ttsopt.errors import QualityGateError

FP16_MAX = 65504.0
#: A tensor is kept FP32 when real inputs already bring it within this factor of FP16's limit:
#: louder or longer inputs than the verification set must not overflow.
HEADROOM = 8.0
#: At most this many nodes are moved to FP32 by the error search before ttsopt gives up.
MAX_ERROR_ISLANDS = 16


def _float_tensors(model) -> set[str]:
    """Node outputs that hold floating-point values in the FP32 graph (what FP16 would store)."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    types = {info.name: info.type.tensor_type.elem_type for info in (*inferred.graph.value_info, *inferred.graph.output)}
    return {out for node in model.graph.node for out in node.output if types.get(out) == onnx.TensorProto.FLOAT}


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


def _ranges(fp32, floats: set[str], feeds: Sequence[Feed]) -> dict[str, float]:
    """Each float tensor's largest magnitude over ``feeds`` (``inf`` once it is not finite), reduced a group of
    tensors at a time (:func:`~ttsopt.compiler.ort_runs.run_in_groups`): the released-size v4 DiT step's tensors
    of two feeds, held at once with their FP16 runs, took the export to 21.6 GB before it was killed."""
    names = [output.name for output in fp32.get_outputs()]
    peak = dict.fromkeys(floats, 0.0)
    for feed in feeds:
        for name, value in run_in_groups(fp32, names, feed):
            if name in peak:
                finite = np.all(np.isfinite(value))
                peak[name] = max(peak[name], float(np.max(np.abs(value), initial=0.0)) if finite else np.inf)
    return peak


def _errors(fp32, mixed, floats: set[str], outputs: Sequence[str], feeds: Sequence[Feed]) -> tuple[dict[str, float], float]:
    """Each float tensor's worst SNR of the mixed graph against FP32 over ``feeds``, and the graph outputs' worst
    (:func:`_output_snr_db`): both sessions run the same group of tensors, compared and dropped before the next."""
    produced = {output.name for output in mixed.get_outputs()}
    names = [output.name for output in fp32.get_outputs() if output.name in produced]
    snr = dict.fromkeys((name for name in names if name in floats), np.inf)
    worst_output = np.inf
    for feed in feeds:
        for name, (want, got) in run_together_in_groups([fp32, mixed], names, feed):
            if name in snr:
                snr[name] = min(snr[name], snr_db(want, got))
            if name in outputs:
                worst_output = min(worst_output, _output_snr_db(want, got))
    return snr, worst_output


def convert(source: Path, destination: Path, feeds: Sequence[Feed], snr_db_min: float,
            step: Callable[[str], None] = lambda message: None) -> dict:
    """Write the mixed-precision graph of ``source`` to ``destination``; return what was kept FP32 and why."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(source))
    floats = _float_tensors(model)
    outputs = [output.name for output in model.graph.output]
    with exposing_session(model, floats) as fp32:
        step(f"measuring {len(floats)} tensors' ranges on {len(feeds)} inputs")
        peak = _ranges(fp32, floats, feeds)
        hot = {name for name, value in peak.items() if value * HEADROOM > FP16_MAX}
        islands: dict[str, str] = {}
        for node in model.graph.node:
            touched = sorted(hot & {*node.input, *node.output})
            if touched:
                islands[node.name] = f"range: |{touched[0]}| up to {peak[touched[0]]:.3g}"

        while True:
            step(f"FP16 with {len(islands)} FP32 islands: measuring error")
            original = onnx.ModelProto()
            original.CopyFrom(model)  # the converter edits its input in place
            mixed = _join_fp32_islands(convert_float_to_float16(original, keep_io_types=True, node_block_list=list(islands)))
            with exposing_session(mixed, floats) as half:
                snr, worst_output = _errors(fp32, half, floats, outputs, feeds)
            if worst_output >= snr_db_min:
                break
            error_islands = sum(reason.startswith("error") for reason in islands.values())
            if error_islands >= MAX_ERROR_ISLANDS:
                raise QualityGateError(f"FP16 output SNR {worst_output:.1f} dB stays below {snr_db_min:g} dB with "
                                       f"{len(islands)} FP32 islands: this graph needs FP32 (use --precision fp32)")
            added = {}
            for node in model.graph.node:
                if node.name in islands or not node.output or node.output[0] not in snr:
                    continue
                inputs = [snr[name] for name in node.input if name in snr]
                added[node.name] = (min(inputs) if inputs else np.inf) - snr[node.output[0]]
            culprit = max(added, key=added.get)
            islands[culprit] = f"error: output SNR drops {added[culprit]:.1f} dB in this node"

    onnx.save(mixed, str(destination))
    return {"method": "onnxruntime float16 conversion, FP32 inputs/outputs, FP32 islands by measurement",
            "headroom": HEADROOM, "fp32_islands": islands,
            "fp16_nodes": sum(1 for node in model.graph.node if node.name not in islands),
            "peak_abs": max(value for value in peak.values()), "output_snr_db": worst_output}
