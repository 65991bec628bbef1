"""Arithmetic cost of a model: the numerator of the "floor" every benchmark is compared with.

PyTorch's own ``FlopCounterMode`` counts every matmul, convolution (transposed ones by their input) and
attention product the model runs; it reports FLOP = 2 × MAC.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_flops(module: nn.Module, *inputs: torch.Tensor) -> float:
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        module(*inputs)
    return float(counter.get_total_flops())
