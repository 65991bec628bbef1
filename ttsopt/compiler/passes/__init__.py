"""Precision passes: one signature for every precision mode, as polygraphy's loaders and onnxruntime's
quantization functions have one.

``PrecisionPass.apply(source, destination, context) -> PassRecord``: the FP32 graph at ``source`` in, the
converted graph at ``destination`` out (absent when the pass keeps FP32), and a typed record of what was
done and measured, which the manifest stores (``quantization[graph]``) and which describes itself for the
CLI. A family says which pass each of its graphs gets (:meth:`Family.quantization`); ``export`` applies
:class:`FP16` on GPU targets.
"""

from ttsopt.compiler.passes.base import PassContext, PrecisionPass
from ttsopt.compiler.passes.fp16 import FP16
from ttsopt.compiler.passes.matmul_int8 import MatMulInt8
from ttsopt.compiler.passes.static_int8 import StaticInt8
from ttsopt.compiler.passes.weight_only import WeightOnly
from ttsopt.package.precision import FP16Record, MatMulInt8Record, PassRecord, StaticInt8Record, WeightOnlyRecord, record_from_dict

__all__ = ["FP16", "FP16Record", "MatMulInt8", "MatMulInt8Record", "PassContext", "PassRecord", "PrecisionPass", "StaticInt8", "StaticInt8Record",
           "WeightOnly", "WeightOnlyRecord", "record_from_dict"]
