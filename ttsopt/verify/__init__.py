"""``ttsopt verify``: measure a package against the original model, in audio terms, and gate it.

(a) :mod:`.golden`: against the golden outputs stored at export (the original PyTorch model on the
    verification set), plus the family's own checks: waveform SNR, max abs error, log-mel L1 in the model's
    mel space, multi-resolution STFT distance.
(b) the family's reference checks: the user's recordings through the package, beside the original checkpoint
    (vocoders: :mod:`.copy_synthesis`), so the cost of the optimisation is visible next to the model's own error.

Gates come from the package's target profile for its precision (:mod:`.report`). Torch is imported only
to run the original checkpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ttsopt.audio.mel import MelSettings
from ttsopt.families import get_family
from ttsopt.runtime import load
from ttsopt.verify.golden import verify_golden
from ttsopt.verify.plot import golden_audio_pair, write_spectrogram_comparison
from ttsopt.verify.report import Gate, VerifyReport


def verify_package(path: str | Path, references: Sequence[Path] = (), original: Path | None = None,
                   original_config: Path | None = None, plot: Path | None = None) -> VerifyReport:
    """Full verification: golden outputs, the family's checks on reference recordings, gates, plot."""
    model = load(path)
    report = verify_golden(model.package)
    plot_pair = get_family(model.manifest.family).reference_checks(model, report, list(references), original, original_config)
    if plot is not None:
        mel = MelSettings(**model.manifest.audio["mel"])
        write_spectrogram_comparison(plot, *(plot_pair or golden_audio_pair(model.package)), mel)
    return report


__all__ = ["Gate", "VerifyReport", "verify_golden", "verify_package"]
