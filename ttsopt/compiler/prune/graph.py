"""Removing channels with torch-pruning's dependency graph.

torch-pruning traces the model and groups every conv dimension that must shrink together (a conv's outputs,
the next conv's inputs, and every layer tied to them by a residual sum), so the ties of a residual vocoder are
found, not hand-written. A family says which convs may lose output channels and at what share
(:class:`PruneScope`); weight norm must be folded first (torch-pruning prunes ``weight``, not ``weight_v``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version

import torch
from torch import nn

Importance = Callable[..., torch.Tensor]


@dataclass
class PruneScope:
    """What may be pruned: ``ignored`` convs keep their output channels; ``ratios`` maps every prunable root
    conv to the share of its group's channels to remove; ``stage_of`` names the stage of each prunable conv."""

    example: torch.Tensor
    ignored: list[nn.Module]
    ratios: dict[nn.Module, float]
    stage_of: dict[nn.Module, str]


@dataclass
class PruneResult:
    """Per conv name, the indices of the output channels kept (into the unpruned layer), and a record."""

    kept: dict[str, torch.Tensor]
    record: dict


def prune_channels(model: nn.Module, scope: PruneScope, importance: Importance) -> PruneResult:
    """Prune ``model`` in place; the groups torch-pruning found and the channels each stage kept are recorded."""
    import torch_pruning as tp

    # torch-pruning traces the autograd graph: parameters that need no gradient leave no trace to follow.
    needs_grad = {p: p.requires_grad for p in model.parameters()}
    for p in model.parameters():
        p.requires_grad_(True)
    names = {module: name for name, module in model.named_modules()}
    before = {name: m.out_channels for name, m in model.named_modules() if isinstance(m, (nn.Conv1d, nn.ConvTranspose1d))}
    pruner = tp.pruner.BasePruner(model, scope.example, importance=importance, pruning_ratio=0.0,
                                  pruning_ratio_dict={m: r for m, r in scope.ratios.items() if r > 0},
                                  ignored_layers=scope.ignored, global_pruning=False)
    removed: dict[str, list[int]] = {}
    groups: dict[str, int] = {}
    for group in pruner.step(interactive=True):
        root = group[0].dep.target.module
        stage = scope.stage_of.get(root, "?")
        groups[stage] = groups.get(stage, 0) + 1
        for dep, idxs in group:
            module = dep.target.module
            if dep.handler.__name__ == "prune_out_channels" and module in names and isinstance(module, (nn.Conv1d, nn.ConvTranspose1d)):
                removed[names[module]] = sorted(set(removed.get(names[module], [])) | {int(i) for i in idxs})
        group.prune()
    for p in model.parameters():
        p.requires_grad_(needs_grad.get(p, False))
    kept = {name: torch.tensor([i for i in range(before[name]) if i not in set(removed.get(name, []))], dtype=torch.long)
            for name in before}
    after = {name: m.out_channels for name, m in model.named_modules() if isinstance(m, (nn.Conv1d, nn.ConvTranspose1d))}
    for name, index in kept.items():
        if len(index) != after[name]:
            raise RuntimeError(f"torch-pruning left {name} with {after[name]} channels but {len(index)} were recorded as kept")
    stages: dict[str, list[int]] = {}
    for module, stage in scope.stage_of.items():
        name = names[module]
        pair = stages.setdefault(stage, [0, 0])
        pair[0] += before[name]
        pair[1] += after[name]
    return PruneResult(kept, {"groups": groups, "output_channels": {s: {"before": b, "after": a} for s, (b, a) in sorted(stages.items())},
                              "torch_pruning": version("torch-pruning")})
