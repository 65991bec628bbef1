"""The machine's rates that ``ttsopt bench`` divides by (``ttsopt.bench.machine``)."""

from __future__ import annotations

import sys

import pytest

from ttsopt.bench.machine import measure_peak_gflops


@pytest.mark.parametrize("onnx_installed", [True, False])
def test_fp32_peak_is_measured_with_and_without_onnx(monkeypatch, onnx_installed):
    """With onnx the peak is the faster of onnxruntime's and numpy's SGEMM; a runtime-only install (no onnx to build
    the probe graph) still gets numpy's, not an ImportError."""
    if not onnx_installed:
        monkeypatch.setitem(sys.modules, "onnx", None)
    assert measure_peak_gflops(size=128, repeat=1) > 0
