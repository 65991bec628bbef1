"""Copy synthesis for vocoder packages: each reference recording → its mel → the package (and the original
beside it), so the cost of the optimisation shows next to the vocoder's own error on real speech.

With ``--original`` the package is also run on its golden mels against that checkpoint. For a pruned package
given the unpruned checkpoint it was pruned from, this is the only comparison with the real original (its golden
outputs are the pruned model's), and the gates against it add the pruning's budget to the precision's
(:mod:`ttsopt.package.pruning`): ``prune → quantize`` is held to both.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ttsopt.audio.io import read_wav
from ttsopt.audio.metrics import logmel_l1, multi_resolution_stft_distance, reference_metrics
from ttsopt.package.manifest import Manifest
from ttsopt.package.pruning import pruned_from, pruned_limits, pruning_record
from ttsopt.verify.original import load_original
from ttsopt.verify.report import Gate, VerifyReport


def check_copy_synthesis(vocoder, report: VerifyReport, references: Sequence[Path], original: Path | None,
                         original_config: Path | None) -> tuple[np.ndarray, np.ndarray, str] | None:
    """Resynthesise each recording from its mel; with ``original``, the original's own error and the gate on the
    package's excess over it, and, for a package pruned from ``original``, the package against it on the golden mels
    (for any other package the golden gates already are that comparison)."""
    manifest = vocoder.manifest
    eager = load_original(manifest, original, original_config) if original is not None else None
    plot_pair = None
    for reference in references:
        recording = read_wav(reference, vocoder.sample_rate)
        mel = vocoder.mel(recording)
        output = vocoder.vocode(mel)
        row = {"reference": str(reference), "seconds": round(len(recording) / vocoder.sample_rate, 3),
               "package": reference_metrics(recording, output, vocoder.mel_settings)}
        if eager is not None:
            row["original"] = reference_metrics(recording, eager(mel[None]), vocoder.mel_settings)
        report.references.append(row)
        plot_pair = plot_pair or (recording, output, f"reference {Path(reference).name}")
    if eager is None:
        return plot_pair
    limits = original_limits(manifest, original)
    if limits["logmel_l1_max"] is not None:  # pruned from ``original``: its golden outputs are the pruned model's
        check_golden_against_original(vocoder, report, eager, limits["logmel_l1_max"])
    if report.references:
        excess = max(r["package"]["logmel_l1"] - r["original"]["logmel_l1"] for r in report.references)
        limit = limits.get("reference_logmel_l1_excess_max")
        if limit is not None:
            report.gates.append(Gate("reference log-mel L1 excess over original", excess, limit, "max"))
    return plot_pair


def original_limits(manifest: Manifest, original: Path | None) -> dict[str, float | None]:
    """The limits against ``original``: the package's precision gates, plus the pruning's own budget when
    ``original`` is the unpruned checkpoint the package was pruned from. The golden log-mel gate applies against
    the original only then (otherwise the golden gates already compare with the package's own source)."""
    gates, record = manifest.gates, pruning_record(manifest)
    if not pruned_from(record, original):
        return {"reference_logmel_l1_excess_max": gates.get("reference_logmel_l1_excess_max"), "logmel_l1_max": None}
    pruned = pruned_limits(record)
    return {key: gates[key] + pruned[key] if key in gates and key in pruned else None
            for key in ("reference_logmel_l1_excess_max", "logmel_l1_max")}


def check_golden_against_original(vocoder, report: VerifyReport, eager: Callable[[np.ndarray], np.ndarray],
                                  limit: float | None) -> None:
    """The package and ``eager`` on each golden mel: log-mel L1 and MR-STFT (no waveform SNR: a pruned GAN
    vocoder does not keep the phase), and the gate on the worst log-mel L1 when ``limit`` is given."""
    golden = vocoder.package.golden
    for item in golden.items:
        mel = golden.inputs(item["name"])["mel"]
        want, got = eager(mel), vocoder.vocode(mel)
        report.original.append({"item": item["name"], "logmel_l1": logmel_l1(want, got, vocoder.mel_settings),
                                "mrstft": multi_resolution_stft_distance(want, got)})
    if limit is not None and report.original:
        worst = max(row["logmel_l1"] for row in report.original)
        report.gates.append(Gate("golden log-mel L1 vs the unpruned original (worst)", worst, limit, "max"))
