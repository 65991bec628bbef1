"""Copy synthesis for vocoder packages: each reference recording → its mel → the package (and the original
beside it), so the cost of the optimisation shows next to the vocoder's own error on real speech."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ttsopt.audio.io import read_wav
from ttsopt.audio.metrics import reference_metrics
from ttsopt.verify.original import load_original
from ttsopt.verify.report import Gate, VerifyReport


def check_copy_synthesis(vocoder, report: VerifyReport, references: Sequence[Path], original: Path | None,
                         original_config: Path | None) -> tuple[np.ndarray, np.ndarray, str] | None:
    """Resynthesise each recording from its mel; with ``original``, the original's own error and the gate on the
    package's excess over it."""
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
    if eager is not None and report.references:
        excess = max(r["package"]["logmel_l1"] - r["original"]["logmel_l1"] for r in report.references)
        limit = manifest.gates.get("reference_logmel_l1_excess_max")
        if limit is not None:
            report.gates.append(Gate("reference log-mel L1 excess over original", excess, limit, "max"))
    return plot_pair
