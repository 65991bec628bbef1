"""Export one :class:`GraphExport` to a checked, simplified, self-describing ONNX file.

Steps: ``torch.onnx.export`` (the torch.export-based exporter, dynamic dims from the spec) → ONNX
checker with full shape inference → onnxslim (a maintained pure-Python simplifier: constant folding,
dead-node and identity removal) → checker → metadata → a fidelity check in onnxruntime against the PyTorch
module on sizes the export never saw. The steps before the fidelity check are skipped when the trace cache holds
the same module's graph; the fidelity check never is.

Memory (real size, the released sizes must export within a laptop's 8 GB): each step holds at most one copy of the
graph in Python. The checker reads the file (``check_model(path)``: no Python-side serialization), onnxslim's shape
inference runs without the weights (:mod:`ttsopt.compiler.onnx_memory`), the metadata is written without loading
the graph (:mod:`ttsopt.compiler.onnx_metadata`), and freed memory goes back to the system before the next step.
Measured on the real-size RoBERTa graph: 9.7 GB → see BENCHMARKS.md ("The exporter's memory").
"""

from __future__ import annotations

import functools
import inspect
import logging
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch

from ttsopt.audio.metrics import snr_db
from ttsopt.compiler.onnx_memory import lean_onnxslim, release_memory, save_streamed
from ttsopt.compiler.onnx_metadata import write_metadata
from ttsopt.compiler.spec import GraphExport
from ttsopt.compiler.trace_cache import TraceCache, trace_key
from ttsopt.errors import TtsoptError
from ttsopt.runtime.threads import use_shared_pool

OPSET = 18
#: The files whose code decides what a trace produces (besides the model's own): part of every cache key.
_PROCEDURE = tuple(Path(__file__).with_name(name) for name in ("onnx_export.py", "trace_cache.py", "onnx_memory.py"))
log = logging.getLogger("ttsopt")


def _dynamic_shapes(graph: GraphExport) -> tuple:
    """One ``{axis: Dim}`` per input; inputs taken by a ``*args`` parameter are grouped, as torch.export sees them."""
    dims = {name: torch.export.Dim(name, min=r.min, max=r.max) for name, r in graph.dims.items()}
    shapes = tuple({axis: dims[size] for axis, size in enumerate(spec.shape) if isinstance(size, str)}
                   for spec in graph.inputs)
    parameters = list(inspect.signature(graph.module.forward).parameters.values())
    varargs = next((i for i, p in enumerate(parameters) if p.kind is inspect.Parameter.VAR_POSITIONAL), None)
    return shapes if varargs is None else (*shapes[:varargs], shapes[varargs:])


def export_onnx(graph: GraphExport, path: Path, metadata: dict[str, object]) -> dict[str, float | str]:
    """Write ``graph`` to ``path``; returns the fidelity check's worst figures and whether it was traced now
    or taken from the trace cache (:mod:`ttsopt.compiler.trace_cache`)."""
    cache = TraceCache.from_environment()
    key = trace_key(graph, _PROCEDURE) if cache is not None else ""
    stored = cache.fetch(key, path) if cache is not None else None
    if stored is not None:
        write_metadata(path, metadata)
        fidelity = check_fidelity(graph, path)
        if cache.faithful(stored, fidelity):
            return fidelity | {"traced": "cache"}
        cache.discard(key)
    _trace(graph, path)
    write_metadata(path, metadata)
    release_memory()
    fidelity = check_fidelity(graph, path)
    if cache is not None:
        cache.store(key, path, fidelity)
    return fidelity | {"traced": "now"}


def _trace(graph: GraphExport, path: Path) -> None:
    """torch.onnx.export → full check → onnxslim → the spec's dim names → full check (checks read the file)."""
    import onnxslim

    # The exporter logs a warning per torchvision op it cannot register; none of them matters here.
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            graph.module, graph.example_inputs, None, dynamo=True, opset_version=OPSET,
            input_names=[t.name for t in graph.inputs], output_names=[t.name for t in graph.outputs],
            dynamic_shapes=_dynamic_shapes(graph), verbose=False, report=False, optimize=True,
            custom_translation_table=graph.translations() if graph.translations else None,
        )
    # What torch.onnx.export(f=path) writes (ONNXProgram.save: serialize_model + onnx.save), the program freed before
    # the save and the proto written tensor by tensor: one copy of the weights at a time.
    model = program.model_proto
    del program
    release_memory()
    save_streamed(model, path)
    del model
    release_memory()
    onnx.checker.check_model(str(path), full_check=True)
    with lean_onnxslim():
        model = onnxslim.slim(str(path))
    release_memory()
    _name_symbolic_dims(model, graph)
    save_streamed(model, path)
    del model
    release_memory()
    onnx.checker.check_model(str(path), full_check=True)


def _name_symbolic_dims(model: onnx.ModelProto, graph: GraphExport) -> None:
    """Give the graph's inputs/outputs the spec's dim names (the exporter invents its own)."""
    specs = {t.name: t for t in (*graph.inputs, *graph.outputs)}
    for value in (*model.graph.input, *model.graph.output):
        spec = specs.get(value.name)
        if spec is None:
            raise TtsoptError(f"exported graph {graph.name} has an unexpected input/output {value.name}")
        for dim, size in zip(value.type.tensor_type.shape.dim, spec.shape, strict=False):
            if isinstance(size, str):
                dim.dim_param = size
            elif dim.HasField("dim_value") and dim.dim_value != size:
                raise TtsoptError(f"exported graph {graph.name}: {value.name} has size {dim.dim_value} where the spec says {size}")


def _random_inputs(graph: GraphExport, sizes: dict[str, int], seed: int) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(seed)
    tensors = []
    for spec in graph.inputs:
        shape = [sizes[s] if isinstance(s, str) else s for s in spec.shape]
        if spec.dtype == "bool":  # masks: all-True (a random mask can block whole rows, which is undefined)
            tensors.append(torch.ones(shape, dtype=torch.bool))
        elif spec.dtype.startswith("float"):
            tensors.append(torch.randn(shape, generator=generator) * 2.0 - 4.0)  # log-mel-like range
        else:
            tensors.append(torch.randint(0, 2, shape, generator=generator))
    return tuple(tensors)


def check_fidelity(graph: GraphExport, path: Path) -> dict[str, float]:
    """Run the ONNX file in onnxruntime and the module in PyTorch on ``graph.check_sizes``."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    use_shared_pool(options)
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    worst = {"snr_db": float("inf"), "max_abs_error": 0.0}
    for seed, sizes in enumerate(graph.check_sizes):
        inputs = (graph.check_inputs or functools.partial(_random_inputs, graph))(sizes, seed)
        with torch.inference_mode():
            expected = graph.module(*inputs)
        expected = expected if isinstance(expected, tuple) else (expected,)
        actual = session.run(None, {t.name: x.numpy() for t, x in zip(graph.inputs, inputs, strict=False)})
        for spec, want, got in zip(graph.outputs, expected, actual, strict=False):
            want = want.numpy()
            if want.shape != got.shape:
                raise TtsoptError(f"exported graph {graph.name} gives {spec.name} of shape {list(got.shape)} "
                                  f"for sizes {sizes}, PyTorch {list(want.shape)}: this is a ttsopt bug, please report it")
            worst["snr_db"] = min(worst["snr_db"], snr_db(want, got))
            worst["max_abs_error"] = max(worst["max_abs_error"], float(np.max(np.abs(want - got))))
    return worst
