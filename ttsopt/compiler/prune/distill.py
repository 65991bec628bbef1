"""Optional distillation after the refit: the pruned model (student) descends MR-STFT + log-mel L1 (+ waveform
L1) against the original's (teacher's) audio on 1 s crops, at a low learning rate, keeping the best state.

Measured on the real HiFi-GAN (issue 16): after a refit, lr 5e-4 destroyed it and 5e-5 wandered, so the default
is 5e-5 and the best state (on crops held out of training) is what is kept, never the last. On a CPU this
is a few minutes of SGD and buys little; it runs on CUDA where present.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable

import torch
from torch import nn

from ttsopt.audio.mel import MelSettings
from ttsopt.compiler.prune import losses

LEARNING_RATE = 5e-5
BATCH = 4
#: Every how many steps the held-out crops are scored.
EVAL_EVERY = 20


def _score(model: nn.Module, mels: torch.Tensor, teacher_audio: torch.Tensor, mel: MelSettings) -> float:
    with torch.no_grad():
        total = 0.0
        for start in range(0, mels.shape[0], 8):
            out = model(mels[start:start + 8])[:, 0]
            total += float(losses.logmel_l1(teacher_audio[start:start + 8], out, mel)) * out.shape[0]
    return total / mels.shape[0]


def distill(student: nn.Module, mels: torch.Tensor, teacher_audio: torch.Tensor, mel: MelSettings, minutes: float,
            target: float | None, lr: float = LEARNING_RATE, device: str | None = None,
            progress: Callable[[float, str], None] = lambda fraction, text: None) -> dict:
    """Train ``student`` in place for up to ``minutes`` (or until the held-out log-mel L1 ≤ ``target``);
    ``mels``/``teacher_audio`` are the crops and the teacher's audio of them. Every fifth crop is held out to
    choose the best state. Returns the record (steps, minutes, device, the held-out figure before and after)."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    held = torch.arange(mels.shape[0]) % 5 == 4
    if held.all() or not held.any():
        held = torch.zeros(mels.shape[0], dtype=torch.bool)
        held[-1] = True
    train_mels, train_audio = mels[~held].to(device), teacher_audio[~held].to(device)
    val_mels, val_audio = mels[held].to(device), teacher_audio[held].to(device)
    student.to(device).train()
    for p in student.parameters():
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW(student.parameters(), lr=lr, betas=(0.8, 0.99))
    initial = best = _score(student, val_mels, val_audio, mel)
    best_state, best_step, steps = copy.deepcopy(student.state_dict()), 0, 0
    history = [(0, initial)]
    start = time.perf_counter()
    generator = torch.Generator().manual_seed(0)
    while time.perf_counter() - start < minutes * 60 and not (target is not None and best <= target):
        batch = torch.randint(0, train_mels.shape[0], (min(BATCH, train_mels.shape[0]),), generator=generator).to(device)
        out = student(train_mels[batch])[:, 0]
        loss = losses.distillation_loss(train_audio[batch], out, mel)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        steps += 1
        if steps % EVAL_EVERY == 0:
            current = _score(student, val_mels, val_audio, mel)
            history.append((steps, current))
            if current < best:
                best, best_state, best_step = current, copy.deepcopy(student.state_dict()), steps
        elapsed = (time.perf_counter() - start) / 60
        progress(min(elapsed / minutes, 1.0), f"step {steps}, loss {loss.item():.3f}, held-out log-mel L1 {best:.3f} (best)")
    student.load_state_dict(best_state)
    student.to("cpu").eval()
    for p in student.parameters():
        p.requires_grad_(False)
    return {"steps": steps, "best_step": best_step, "minutes": round((time.perf_counter() - start) / 60, 2), "device": device,
            "lr": lr, "batch": BATCH, "crop_seconds": None, "loss": "MR-STFT + log-mel L1 + waveform L1 vs the original",
            "heldout_logmel_l1_before": initial, "heldout_logmel_l1_best": best, "history": history,
            "stopped": "budget" if target is not None and best <= target else "time"}
