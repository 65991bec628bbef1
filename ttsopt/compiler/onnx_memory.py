"""The exporter's big-graph steps without the copies that made a real-size export need more than a laptop's 8 GB.

Measured on the real-size RoBERTa ``bert`` graph (1.2 GB, ``examples/export_one_graph.py`` under
``examples/measure_memory.py``; BENCHMARKS.md has the timeline): the single-graph export peaked at 9.7 GB, in
onnxslim's shape inference. onnxslim first tries its symbolic inference, which fails on these graphs, then falls
back to ``onnx.shape_inference.infer_shapes(model)``: the proto serialized to bytes, parsed in C++, inferred,
serialized back and parsed again, four copies of the weights on top of the model's (+4.4 GB). Shape inference
reads no weight values (only the small integer tensors that shape ops take), so :func:`infer_shapes` runs it on a
copy of the graph whose large weights keep their name, type and dims but not their bytes, and copies the inferred
``value_info`` (and outputs) back: the same result without the copies.

:func:`release_memory` hands freed heap back to the system between phases: without it the process kept 6.3 GB
resident after the trace, of which the module and the fidelity session needed ~3 GB.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import onnx

#: Initializers larger than this (bytes) are left out of the shape-inference copy; shape ops take small int64 tensors.
LARGE_BYTES = 1 << 16
_FLOATS = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16, onnx.TensorProto.DOUBLE}


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _encoded_fields(message, field, value) -> Iterator[bytes]:
    """The wire encoding of ``message``'s field ``field`` (set to ``value``), one repeated item at a time."""
    if hasattr(value, "extend") and field.message_type is not None:  # repeated messages: one item at a time
        tag = _varint(field.number << 3 | 2)
        for item in value:
            payload = item.SerializeToString()
            yield tag + _varint(len(payload)) + payload
        return
    holder = type(message)()
    _copy_fields(_Only(message, field.name), holder)
    yield holder.SerializeToString()


class _Only:
    """A view of one field of a protobuf message, for :func:`_copy_fields`."""

    def __init__(self, message, name: str):
        self.message, self.name = message, name

    def ListFields(self):  # noqa: N802 - protobuf's name
        return [(f, v) for f, v in self.message.ListFields() if f.name == self.name]


def save_streamed(model: onnx.ModelProto, path) -> None:
    """``onnx.save(model, path)``, byte for byte, without serializing the whole model at once.

    ``onnx.save`` builds the serialized model in protobuf's arena and copies it into a Python ``bytes``: two
    transient copies of the weights (+3.1 GB measured at the RoBERTa graph's save). Here the graph's initializers
    are encoded and written one by one; the graph's length prefix is the sum of their sizes."""
    with open(path, "wb") as out:
        for field, value in model.ListFields():  # in field-number order, as protobuf serializes
            if field.name != "graph":
                for piece in _encoded_fields(model, field, value):
                    out.write(piece)
                continue
            graph = value
            size = sum(len(piece) for f, v in graph.ListFields() if f.name != "initializer"
                       for piece in _encoded_fields(graph, f, v))
            tag = len(_varint(graph.DESCRIPTOR.fields_by_name["initializer"].number << 3 | 2))
            size += sum(tag + len(_varint(n := t.ByteSize())) + n for t in graph.initializer)
            out.write(_varint(field.number << 3 | 2) + _varint(size))
            for f, v in graph.ListFields():
                for piece in _encoded_fields(graph, f, v):
                    out.write(piece)


def release_memory() -> None:
    """Collect garbage, then return freed heap pages to the system (glibc ``malloc_trim``; a no-op elsewhere)."""
    gc.collect()
    name = ctypes.util.find_library("c")
    if name is None:
        return
    try:
        libc = ctypes.CDLL(name)
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS)
        return
    trim(0)


def _copy_fields(source, target, skip: str | None = None) -> None:
    """Copy every set field of the protobuf message ``source`` into ``target`` except ``skip``."""
    for field, value in source.ListFields():
        if field.name == skip:
            continue
        if hasattr(value, "extend"):  # a repeated field (FieldDescriptor.label is gone from protobuf's upb backend)
            getattr(target, field.name).extend(value)
        elif field.message_type is not None:
            getattr(target, field.name).CopyFrom(value)
        else:
            setattr(target, field.name, value)


def _is_large(tensor: onnx.TensorProto) -> bool:
    return tensor.data_type in _FLOATS and tensor.ByteSize() > LARGE_BYTES


def without_weights(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` whose large float initializers have no data (name, type and dims kept)."""
    skeleton = onnx.ModelProto()
    _copy_fields(model, skeleton, skip="graph")
    _copy_fields(model.graph, skeleton.graph, skip="initializer")
    for tensor in model.graph.initializer:
        copy = skeleton.graph.initializer.add()
        if _is_large(tensor):
            copy.name, copy.data_type = tensor.name, tensor.data_type
            copy.dims.extend(tensor.dims)
        else:
            copy.CopyFrom(tensor)
    return skeleton


def _inferred_parts(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` less what shape inference writes (``value_info``, the outputs' types), to compare."""
    rest = onnx.ModelProto()
    rest.CopyFrom(model)
    del rest.graph.value_info[:]
    del rest.graph.output[:]
    return rest


def infer_shapes(model: onnx.ModelProto) -> onnx.ModelProto:
    """``onnx.shape_inference.infer_shapes(model)``, run on :func:`without_weights`; ``model`` gets the result in place.

    Falls back to the plain call if inference changed anything but ``value_info`` and the outputs."""
    skeleton = without_weights(model)
    inferred = onnx.shape_inference.infer_shapes(skeleton)
    if _inferred_parts(inferred) != _inferred_parts(skeleton):
        del skeleton, inferred
        return onnx.shape_inference.infer_shapes(model)
    del model.graph.value_info[:]
    model.graph.value_info.extend(inferred.graph.value_info)
    del model.graph.output[:]
    model.graph.output.extend(inferred.graph.output)
    return model


def _onnxslim_shape_infer(original: Callable) -> Callable[[onnx.ModelProto], onnx.ModelProto]:
    """onnxslim's ``shape_infer`` (its symbolic inference, else onnx's) with onnx's run by :func:`infer_shapes`."""
    from onnxslim.core import AUTO_MERGE, FORCE_ONNXRUNTIME_SHAPE_INFERENCE, SymbolicShapeInference

    def shape_infer(model: onnx.ModelProto) -> onnx.ModelProto:
        if FORCE_ONNXRUNTIME_SHAPE_INFERENCE:
            return original(model)
        try:
            return SymbolicShapeInference.infer_shapes(model, auto_merge=AUTO_MERGE)
        except Exception:  # onnxslim catches everything here too, then runs onnx's inference
            return infer_shapes(model)

    return shape_infer


@contextmanager
def lean_onnxslim() -> Iterator[None]:
    """While inside, ``onnxslim.slim`` infers shapes through :func:`infer_shapes` (same graph, no weight copies)."""
    import onnxslim.core

    original = onnxslim.core.shape_infer
    onnxslim.core.shape_infer = _onnxslim_shape_infer(original)
    try:
        yield
    finally:
        onnxslim.core.shape_infer = original


__all__ = ["LARGE_BYTES", "infer_shapes", "lean_onnxslim", "release_memory", "save_streamed", "without_weights"]
