"""The onnxruntime session settings every CPU session of ttsopt shares, build side and runtime alike, so that what
``quantize`` times is what ``run`` runs: two of onnxruntime's graph optimizers are turned off, each measured slower
than what it replaces on the CPU. A session on a GPU provider keeps them: its kernels are other ones, not measured.

- ``NhwcTransformer``. On x86 it rewrites each QLinearConv to an NHWC kernel and puts a Transpose on either side.
  In ttsopt's INT8 vocoders a convolution is fenced by FP32 nodes (the residual Adds, the equalization Muls,
  DequantizeLinear), so the Transposes stay: 77 of them, 12 % of the v2 generator's time. Without the transformer
  QLinearConv runs in NCHW, and the outputs are identical to the bit (integer arithmetic). Measured on the
  real-size v2 INT8 generator (83 INT8 convolutions, 2 threads, interleaved, 9 rounds): 0.92x the time at 4 s of
  audio and 0.93x at 12 s (BENCHMARKS.md, "INT8 convolutions in NCHW").
- ``SkipLayerNormFusion``. It fuses a residual Add and the LayerNormalization after it into one
  ``SkipLayerNormalization``, whose CPU kernel (onnxruntime 1.32) ran 3-6x slower than the pair on an AMD EPYC
  (Zen 5, 2 threads): 24 of them over 91 rows of 512, 201 us each against 33 us; 1.7-2.5x at one row (hidden 512,
  768 and 1024, 1 to 1000 rows). The real-size v2 prefill of 91 positions took 0.90-0.95x the time without it
  (FP32), 0.80x (its dynamic INT8 graph); a decode step 0.98-1.01x (BENCHMARKS.md, "SkipLayerNormalization").

onnxruntime reads the list of disabled optimizers from one session config entry, names separated by ";" (a list
separated by "," disables nothing, silently: ``tests/test_session_options.py`` holds that).
"""

from __future__ import annotations

from collections.abc import Sequence

CPU = "CPUExecutionProvider"
#: onnxruntime graph optimizers ttsopt turns off in CPU sessions (see the module docstring).
DISABLED_OPTIMIZERS = ("NhwcTransformer", "SkipLayerNormFusion")


def apply(options, providers: Sequence[str] = (CPU,)) -> None:
    """Set ttsopt's shared settings on ``options`` (an ``onnxruntime.SessionOptions``) for a session on
    ``providers``: nothing where a GPU provider runs the graph."""
    if any(provider != CPU for provider in providers):
        return
    options.add_session_config_entry("optimization.disable_specified_optimizers", ";".join(DISABLED_OPTIMIZERS))
