"""The exporter's memory-lean steps give exactly what the plain onnx/onnxslim calls give (byte for byte)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from ttsopt.compiler.onnx_memory import LARGE_BYTES, infer_shapes, lean_onnxslim, save_streamed, without_weights
from ttsopt.compiler.onnx_metadata import write_metadata
from ttsopt.errors import TtsoptError


def _model() -> onnx.ModelProto:
    """A large weight (MatMul), a shape tensor that inference reads (Reshape), a local function, metadata."""
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.standard_normal((64, 512), dtype=np.float32), "w")
    shape = numpy_helper.from_array(np.array([-1, 4, 128], np.int64), "s")
    function = helper.make_function("local", "Twice", ["a"], ["b"], [helper.make_node("Add", ["a", "a"], ["b"])],
                                    [helper.make_opsetid("", 18)])
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"]), helper.make_node("Reshape", ["y", "s"], ["z"]),
         helper.make_node("Twice", ["z"], ["t"], domain="local"), helper.make_node("Relu", ["t"], ["out"])],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 64])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)], [weight, shape])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("local", 1)],
                              functions=[function])
    helper.set_model_props(model, {"old": "value", "ttsopt.graph": "before"})
    return model


def test_shape_inference_without_weights_is_onnx_shape_inference():
    model = _model()
    assert without_weights(model).ByteSize() < LARGE_BYTES < model.ByteSize()
    want = onnx.shape_inference.infer_shapes(model)
    got = infer_shapes(_model())
    assert got.SerializeToString() == want.SerializeToString()
    assert [d.dim_value for d in got.graph.output[0].type.tensor_type.shape.dim][1:] == [4, 128]  # read from "s"


def test_streamed_save_writes_what_onnx_save_writes(tmp_path: Path):
    model = onnx.shape_inference.infer_shapes(_model())
    onnx.save(model, str(tmp_path / "plain.onnx"))
    save_streamed(model, tmp_path / "streamed.onnx")
    assert (tmp_path / "streamed.onnx").read_bytes() == (tmp_path / "plain.onnx").read_bytes()


def test_metadata_is_replaced_without_loading_the_graph(tmp_path: Path):
    path = tmp_path / "m.onnx"
    onnx.save(_model(), str(path))
    metadata = {"ttsopt.graph": "after", "ttsopt.audio": {"sample_rate": 48000}}
    write_metadata(path, metadata)
    expected = _model()
    del expected.metadata_props[:]
    helper.set_model_props(expected, {k: v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()})
    onnx.save(expected, str(tmp_path / "expected.onnx"))
    assert path.read_bytes() == (tmp_path / "expected.onnx").read_bytes()  # functions (field 25) stay after it
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(TtsoptError, match="not a readable ONNX file"):
        write_metadata(truncated, metadata)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["expected.onnx", "m.onnx", "truncated.onnx"]


def test_traced_graph_and_onnxslim_are_the_same_with_the_lean_steps(tmp_path: Path, monkeypatch):
    """torch.onnx.export(f=None) + the streamed save writes what torch.onnx.export(f=path) writes; onnxslim with the
    lean shape inference gives the graph it gives without (the exporter's _trace uses both)."""
    import onnxslim

    from ttsopt.compiler import onnx_memory

    module = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.GELU(), torch.nn.Linear(256, 64)).eval()
    options = {"dynamo": True, "dynamic_shapes": ({0: torch.export.Dim("batch", min=1, max=8)},), "optimize": True}
    torch.onnx.export(module, (torch.randn(2, 64),), str(tmp_path / "plain.onnx"), external_data=False, **options)
    save_streamed(torch.onnx.export(module, (torch.randn(2, 64),), None, **options).model_proto, tmp_path / "lean.onnx")
    assert (tmp_path / "lean.onnx").read_bytes() == (tmp_path / "plain.onnx").read_bytes()
    plain = onnxslim.slim(str(tmp_path / "plain.onnx"))
    calls = []
    monkeypatch.setattr(onnx_memory, "infer_shapes", lambda model: calls.append(1) or infer_shapes(model))
    with lean_onnxslim():
        lean = onnxslim.slim(str(tmp_path / "lean.onnx"))
    assert calls, "onnxslim's symbolic shape inference succeeded: the lean path was not exercised"
    assert lean.SerializeToString() == plain.SerializeToString()
