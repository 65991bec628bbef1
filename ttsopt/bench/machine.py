"""This machine, measured now: its description, and its FP32 and INT8 peaks (the floors' denominators).

Peaks are the best of a few runs of one large kernel: an SGEMM for FP32 (the faster of onnxruntime's and numpy's
BLAS, all cores), and one onnxruntime QLinearConv (U8 × S8) for INT8.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import numpy as np

from ttsopt.hardware import describe_cpu
from ttsopt.runtime import session_options
from ttsopt.runtime.threads import use_shared_pool
from ttsopt.versions import tool_versions


def machine_description() -> dict:
    cpu = describe_cpu()
    return {"cpu": cpu["processor"], "cores": os.cpu_count(), "features": cpu["features"],
            **tool_versions(("onnxruntime", "torch", "numpy"), missing=None)}


def measure_peak_int8_gops(channels: int = 256, kernel: int = 7, length: int = 16384, repeat: int = 5) -> float:
    """Best INT8 convolution rate of this machine right now: one large onnxruntime QLinearConv (U8 × S8)."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weight = rng.integers(-127, 128, (channels, channels, kernel), dtype=np.int8)
    scalars = [numpy_helper.from_array(np.array(v, dtype=t), n) for n, v, t in (
        ("xs", 0.02, np.float32), ("xz", 128, np.uint8), ("ws", 0.01, np.float32), ("wz", 0, np.int8),
        ("ys", 0.5, np.float32), ("yz", 128, np.uint8))]
    node = helper.make_node("QLinearConv", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"], ["y"], pads=[kernel // 2] * 2)
    graph = helper.make_graph([node], "int8_peak", [helper.make_tensor_value_info("x", TensorProto.UINT8, [1, channels, length])],
                              [helper.make_tensor_value_info("y", TensorProto.UINT8, [1, channels, length])],
                              [numpy_helper.from_array(weight, "w"), *scalars])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    options = ort.SessionOptions()
    use_shared_pool(options)
    session_options.apply(options)  # the INT8 convolution kernel packages run (NCHW)
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    x = rng.integers(0, 256, (1, channels, length), dtype=np.uint8)
    session.run(None, {"x": x})
    best = min(timed(lambda: session.run(None, {"x": x})) for _ in range(repeat))
    return 2.0 * channels * channels * kernel * length / best / 1e9


def int8_peak_gops_or_note(notes: list[str]) -> float | None:
    """An INT8 package's floor rate: the best of two :func:`measure_peak_int8_gops`; None, with a note saying why, in
    a runtime-only install (the probe graph is built with onnx, a build-side dependency)."""
    try:
        return max(measure_peak_int8_gops(), measure_peak_int8_gops())
    except ImportError:
        notes.append("INT8 floor not measured: onnx is not installed (pip install 'ttsopt[build]')")
        return None


def measure_weight_stream_gbs(megabytes: int = 256, repeat: int = 5) -> float:
    """Best rate (GB/s) at which onnxruntime streams an FP32 matrix from memory right now: one GEMV (a row times
    a ``megabytes`` matrix, far beyond the caches) on all cores, which is what a decode step does with each of
    its weights. Measured rather than read off a data sheet: the decode floor is what this runtime can reach."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    rows, cols = 4096, megabytes * 2**20 // (4 * 4096)
    node = helper.make_node("MatMul", ["x", "w"], ["y"])
    graph = helper.make_graph([node], "weight_stream", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, rows]),
                                                        helper.make_tensor_value_info("w", TensorProto.FLOAT, [rows, cols])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, cols])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    options = ort.SessionOptions()
    use_shared_pool(options)
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    feed = {"x": np.ones((1, rows), np.float32),
            "w": np.random.default_rng(0).standard_normal((rows, cols), dtype=np.float32)}
    session.run(None, feed)
    best = min(timed(lambda: session.run(None, feed)) for _ in range(repeat))
    return 4.0 * rows * cols / best / 1e9


def measure_peak_gflops(size: int = 2048, repeat: int = 5) -> float:
    """Best FP32 SGEMM rate of this machine right now, all cores: the faster of onnxruntime's MatMul (MLAS, the
    kernels packages run, weights pre-packed as a package's are) and numpy's BLAS. Either alone can miss what the
    machine does: on a Zen 5 EPYC (2 cores) numpy's OpenBLAS reached 221-227 GFLOP/s while the HiFi-GAN package's
    convolutions ran at 287, so a floor from it read "126 % of floor". Without onnx (a runtime-only install: the probe
    graph is built with it), numpy's alone."""
    a = np.random.default_rng(0).standard_normal((size, size), dtype=np.float32)
    b = np.random.default_rng(1).standard_normal((size, size), dtype=np.float32)
    a @ b
    numpy_best = min(timed(lambda: a @ b) for _ in range(repeat))
    try:
        import onnxruntime as ort
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        return 2.0 * size**3 / numpy_best / 1e9
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["y"])], "fp32_peak",
                              [helper.make_tensor_value_info("a", TensorProto.FLOAT, [size, size])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [size, size])],
                              [numpy_helper.from_array(b, "b")])
    options = ort.SessionOptions()
    use_shared_pool(options)
    session = ort.InferenceSession(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]).SerializeToString(),
                                   options, providers=["CPUExecutionProvider"])
    session.run(None, {"a": a})
    ort_best = min(timed(lambda: session.run(None, {"a": a})) for _ in range(repeat))
    return 2.0 * size**3 / min(numpy_best, ort_best) / 1e9


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start
