"""ttsopt's shared onnxruntime settings are what onnxruntime does: each optimizer named is really off."""

from __future__ import annotations

import collections

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from ttsopt.runtime import session_options


def _residual_layer_norm() -> bytes:
    """x + r → LayerNormalization: the pattern onnxruntime's SkipLayerNormFusion rewrites."""
    hidden = 8
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "r"], ["sum"]),
         helper.make_node("LayerNormalization", ["sum", "gamma", "beta"], ["y"], axis=-1, epsilon=1e-5)],
        "residual_layer_norm",
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, "rows", hidden]) for name in ("x", "r")],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, "rows", hidden])],
        [numpy_helper.from_array(np.ones(hidden, np.float32), "gamma"), numpy_helper.from_array(np.zeros(hidden, np.float32), "beta")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def _int8_convolution() -> bytes:
    """Quantize → QLinearConv → Dequantize: what onnxruntime's NhwcTransformer wraps in Transposes on x86."""
    channels = 4
    scalar = lambda value, dtype, name: numpy_helper.from_array(np.array(value, dtype), name)  # noqa: E731
    graph = helper.make_graph(
        [helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zero"], ["xq"]),
         helper.make_node("QLinearConv", ["xq", "x_scale", "x_zero", "w", "w_scale", "w_zero", "y_scale", "y_zero"], ["yq"],
                          kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
         helper.make_node("DequantizeLinear", ["yq", "y_scale", "y_zero"], ["y"])],
        "int8_convolution",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, channels, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, channels, 8, 8])],
        [scalar(0.1, np.float32, "x_scale"), scalar(128, np.uint8, "x_zero"), scalar(0.01, np.float32, "w_scale"),
         scalar(0, np.int8, "w_zero"), scalar(0.2, np.float32, "y_scale"), scalar(128, np.uint8, "y_zero"),
         numpy_helper.from_array(np.ones((channels, channels, 3, 3), np.int8), "w")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def _optimized_ops(tmp_path, model: bytes, apply_settings: bool) -> collections.Counter:
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / f"optimized-{apply_settings}.onnx")
    if apply_settings:
        session_options.apply(options)
    ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    return collections.Counter(node.op_type for node in onnx.load(options.optimized_model_filepath).graph.node)


def test_skip_layer_norm_fusion_is_off(tmp_path):
    model = _residual_layer_norm()
    assert _optimized_ops(tmp_path, model, apply_settings=False)["SkipLayerNormalization"] == 1  # what is turned off
    ops = _optimized_ops(tmp_path, model, apply_settings=True)
    assert ops["SkipLayerNormalization"] == 0 and ops["LayerNormalization"] == 1 and ops["Add"] == 1


def test_nhwc_transformer_is_off(tmp_path):
    model = _int8_convolution()
    assert _optimized_ops(tmp_path, model, apply_settings=False)["Transpose"] > 0  # what is turned off (on x86)
    assert _optimized_ops(tmp_path, model, apply_settings=True)["Transpose"] == 0


def test_every_disabled_optimizer_is_a_separate_name():
    options = ort.SessionOptions()
    session_options.apply(options)
    entry = options.get_session_config_entry("optimization.disable_specified_optimizers")
    assert entry.split(";") == list(session_options.DISABLED_OPTIMIZERS)


def test_a_gpu_session_keeps_onnxruntime_defaults():
    options = ort.SessionOptions()
    session_options.apply(options, ["CUDAExecutionProvider", "CPUExecutionProvider"])
    with pytest.raises(RuntimeError, match="does not have configuration"):  # nothing set
        options.get_session_config_entry("optimization.disable_specified_optimizers")
