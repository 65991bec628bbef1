"""Which channels to remove: magnitude (no data) or first-order Taylor (gradients on real speech), chosen by
measuring both.

Measured on the real HiFi-GAN universal (issue 16): magnitude was no better than random, Taylor 2.6× better;
which wins on another checkpoint is not assumed. Each candidate prunes a copy and is scored on the calibration
crops right after pruning (before recovery); the better is kept and both figures are recorded.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

from ttsopt.audio.mel import MelSettings
from ttsopt.compiler.prune import losses
from ttsopt.compiler.prune.graph import PruneResult, PruneScope, prune_channels

CANDIDATES = ("magnitude", "taylor")


def _importance(kind: str):
    import torch_pruning as tp

    return tp.importance.GroupMagnitudeImportance(p=2) if kind == "magnitude" else tp.importance.GroupTaylorImportance()


def accumulate_taylor_gradients(model: nn.Module, mels: torch.Tensor, audio: torch.Tensor, mel: MelSettings, batch: int = 4) -> None:
    """Gradients of the copy-synthesis log-mel L1 against the recordings themselves, summed over every crop
    (the original's own outputs would give zero gradient). Summed, not last-batch: torch-pruning's Taylor reads
    ``.grad`` as it stands."""
    model.zero_grad()
    for start in range(0, mels.shape[0], batch):
        out = model(mels[start:start + batch])[:, 0]
        losses.logmel_l1(audio[start:start + batch, : out.shape[-1]], out, mel).backward()


def score(model: nn.Module, mels: torch.Tensor, reference: torch.Tensor, mel: MelSettings, batch: int = 8) -> float:
    """Mean log-mel L1 of ``model`` against ``reference`` audio (the original's), over the crops."""
    total = 0.0
    with torch.no_grad():
        for start in range(0, mels.shape[0], batch):
            out = model(mels[start:start + batch])[:, 0]
            total += float(losses.logmel_l1(reference[start:start + batch], out, mel)) * out.shape[0]
    return total / mels.shape[0]


def choose_and_prune(model: nn.Module, scope_of: Callable[[nn.Module], PruneScope], mels: torch.Tensor, audio: torch.Tensor,
                     teacher_audio: torch.Tensor, mel: MelSettings, kinds: tuple[str, ...] = CANDIDATES,
                     step: Callable[[str], None] = lambda m: None) -> tuple[nn.Module, PruneResult, dict]:
    """Prune a copy of ``model`` with each importance in ``kinds``; the best (log-mel L1 vs the original) wins."""
    results = {}
    for kind in kinds:
        step(f"pruning with {kind} importance")
        candidate = copy.deepcopy(model)
        if kind == "taylor":
            for p in candidate.parameters():
                p.requires_grad_(True)
            accumulate_taylor_gradients(candidate, mels, audio, mel)
        result = prune_channels(candidate, scope_of(candidate), _importance(kind))
        candidate.zero_grad(set_to_none=True)
        for p in candidate.parameters():
            p.requires_grad_(False)
        results[kind] = (candidate, result, score(candidate, mels, teacher_audio, mel))
    chosen = min(results, key=lambda k: results[k][2])
    model, result, _ = results[chosen]
    return model, result, {"chosen": chosen, "logmel_l1_after_pruning": {k: v[2] for k, v in results.items()},
                           "measured_on": "calibration crops, before recovery, vs the original's outputs"}
