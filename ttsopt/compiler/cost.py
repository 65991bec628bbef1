"""Arithmetic cost of a model: the numerator of the "floor" every benchmark is compared with.

Counts multiply-accumulates of the convolutions and linear layers (the rest is negligible for the
models ttsopt handles) with forward hooks, and reports FLOP = 2 × MAC.
"""

from __future__ import annotations

import torch
from torch import nn


def count_flops(module: nn.Module, *inputs: torch.Tensor) -> float:
    total = 0

    def conv(layer: nn.Conv1d | nn.Conv2d, args: tuple, out: torch.Tensor) -> None:
        nonlocal total
        total += out.numel() * (layer.in_channels // layer.groups) * int(torch.tensor(layer.kernel_size).prod())

    def conv_transpose(layer: nn.ConvTranspose1d, args: tuple, out: torch.Tensor) -> None:
        nonlocal total
        total += args[0].numel() * (layer.out_channels // layer.groups) * int(torch.tensor(layer.kernel_size).prod())

    def linear(layer: nn.Linear, args: tuple, out: torch.Tensor) -> None:
        nonlocal total
        total += out.numel() * layer.in_features

    hooks = []
    for layer in module.modules():
        if isinstance(layer, (nn.ConvTranspose1d, nn.ConvTranspose2d)):
            hooks.append(layer.register_forward_hook(conv_transpose))
        elif isinstance(layer, (nn.Conv1d, nn.Conv2d)):
            hooks.append(layer.register_forward_hook(conv))
        elif isinstance(layer, nn.Linear):
            hooks.append(layer.register_forward_hook(linear))
    try:
        with torch.inference_mode():
            module(*inputs)
    finally:
        for hook in hooks:
            hook.remove()
    return 2.0 * total
