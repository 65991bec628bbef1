"""Graph folding on the PyTorch side: passes that change how a model computes, never what.

Weight norm re-derives every conv weight as ``g · v / ‖v‖`` on each call; at inference the weight is
a constant, so it is computed once and stored (otherwise the exported graph carries a ReduceL2, a Div
and a Mul per conv: Genie-TTS's VITS graph ships 131 of them).  Both torch APIs are handled:
``torch.nn.utils.parametrizations.weight_norm`` (parametrizations) and the legacy
``torch.nn.utils.weight_norm`` (a forward pre-hook, ``weight_g``/``weight_v`` parameters).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize


def _legacy_weight_norm_names(module: nn.Module) -> list[str]:
    from torch.nn.utils.weight_norm import WeightNorm

    return [hook.name for hook in module._forward_pre_hooks.values() if isinstance(hook, WeightNorm)]


def remove_weight_norm(model: nn.Module) -> int:
    """Fold every weight norm of ``model`` in place into a plain weight; returns how many were folded."""
    folded = 0
    for module in model.modules():
        if parametrize.is_parametrized(module):
            for name in list(module.parametrizations.keys()):
                parametrize.remove_parametrizations(module, name, leave_parametrized=True)
                folded += 1
        for name in _legacy_weight_norm_names(module):
            torch.nn.utils.remove_weight_norm(module, name)
            folded += 1
    return folded
