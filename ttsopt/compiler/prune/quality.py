"""The pruned model against the **original** on held-out speech, and the ``pruned`` gates of the target profile.

Two comparisons, as ``verify`` makes them: against the original's outputs on the same mels (log-mel L1,
MR-STFT; no waveform SNR, a pruned GAN vocoder does not keep the phase), and against the recordings themselves
(resynthesis log-mel L1 of the pruned model minus the original's: the *excess*, what the listener loses).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from ttsopt.audio.mel import MelSettings, log_mel
from ttsopt.audio.metrics import logmel_l1, multi_resolution_stft_distance, reference_metrics
from ttsopt.errors import TtsoptError
from ttsopt.package.pruning import EXCESS_GATE, LOGMEL_GATE
from ttsopt.verify.report import Gate, VerifyReport

PRECISION = "pruned"
#: ``--budget`` metric → gate key in the profile's ``pruned`` gates.
BUDGET_GATES = {"logmel_l1": "logmel_l1_max", "reference_excess": "reference_logmel_l1_excess_max"}


def parse_budget(text: str | None) -> dict[str, float]:
    if not text:
        return {}
    limits = {}
    for part in text.split(","):
        metric, sep, value = part.strip().partition("=")
        if not sep or metric not in BUDGET_GATES:
            raise TtsoptError(f"--budget {part!r} must be METRIC=VALUE with METRIC one of {', '.join(BUDGET_GATES)}")
        try:
            limits[BUDGET_GATES[metric]] = float(value)
        except ValueError:
            raise TtsoptError(f"--budget {part!r}: {value!r} is not a number") from None
    return limits


def pruned_gates(profile: dict, overrides: dict[str, float]) -> dict[str, float]:
    """The target's ``pruned`` gates with ``--budget`` applied (one source of truth: ``configs/<target>.yaml``)."""
    gates = profile["gates"].get(PRECISION)
    if not gates:
        raise TtsoptError(f"target profile {profile['name']} has no 'pruned' quality gates: add them to configs/{profile['name']}.yaml")
    return {**gates, **overrides}


def _vocode(model: nn.Module, mel: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(mel)[None]).numpy().reshape(-1)


def measure(student: nn.Module, teacher: nn.Module, recordings: Sequence[tuple[str, np.ndarray]], mel: MelSettings,
            gates: dict[str, float], subject: str) -> VerifyReport:
    """Held-out recordings → mel → both models; rows and gates in a :class:`VerifyReport`."""
    report = VerifyReport(subject, "", PRECISION)
    for name, wav in recordings:
        spectrogram = log_mel(wav, mel)
        original, pruned = _vocode(teacher, spectrogram), _vocode(student, spectrogram)
        report.golden.append({"item": name, "logmel_l1": logmel_l1(original, pruned, mel),
                              "mrstft": multi_resolution_stft_distance(original, pruned)})
        report.references.append({"reference": name, "seconds": round(len(wav) / mel.sample_rate, 3),
                                  "package": reference_metrics(wav, pruned, mel), "original": reference_metrics(wav, original, mel)})
    worst = max(r["logmel_l1"] for r in report.golden)
    excess = max(r["package"]["logmel_l1"] - r["original"]["logmel_l1"] for r in report.references)
    if "logmel_l1_max" in gates:
        report.gates.append(Gate(LOGMEL_GATE, worst, gates["logmel_l1_max"], "max"))
    if "reference_logmel_l1_excess_max" in gates:
        report.gates.append(Gate(EXCESS_GATE, excess, gates["reference_logmel_l1_excess_max"], "max"))
    return report
