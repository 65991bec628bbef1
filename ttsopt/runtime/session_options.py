"""The onnxruntime session settings every CPU session of ttsopt shares, build side and runtime alike, so that what
``quantize`` times is what ``run`` runs.

onnxruntime's ``NhwcTransformer`` is turned off. On x86 it rewrites each QLinearConv to an NHWC kernel and puts a
Transpose on either side. In ttsopt's INT8 vocoders a convolution is fenced by FP32 nodes (the residual Adds, the
equalization Muls, DequantizeLinear), so the Transposes stay: 77 of them, 12 % of the v2 generator's time. Without the
transformer QLinearConv runs in NCHW, and the outputs are identical to the bit (integer arithmetic). Measured on the
real-size v2 INT8 generator (83 INT8 convolutions, 2 threads, interleaved, 9 rounds): 0.92x the time at 4 s of audio
and 0.93x at 12 s (BENCHMARKS.md, "INT8 convolutions in NCHW").
"""

from __future__ import annotations

#: onnxruntime graph optimizers ttsopt turns off (see the module docstring).
DISABLED_OPTIMIZERS = ("NhwcTransformer",)


def apply(options) -> None:
    """Set ttsopt's shared settings on ``options`` (an ``onnxruntime.SessionOptions``)."""
    options.add_session_config_entry("optimization.disable_specified_optimizers", ",".join(DISABLED_OPTIMIZERS))
