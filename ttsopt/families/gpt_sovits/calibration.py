"""Calibration inputs of the SoVITS generator, the v2Pro speaker-verification graph and the v4 vocoder, made
from recordings (the generator's by the package's own FP32 graphs)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ttsopt.audio.io import resample
from ttsopt.runtime import cfm
from ttsopt.runtime.package import Package
from ttsopt.runtime.sovits import Synthesizer, reference_sv_features


def generator_feeds(package: Package, recordings: Sequence[np.ndarray]) -> list[dict[str, np.ndarray]]:
    """Generator inputs for calibration recordings, made by the package's own FP32 graphs (the runtime).

    Each recording gives a voice (``ge`` from the ``reference_encoder`` graph) and a length; ``z`` is the
    ``latent`` graph's output for that voice and length. A package holds no HuBERT, so it cannot read a
    recording's semantic tokens: they are drawn from the codebook and the phonemes from the symbol table
    (seeded, so calibration is repeatable). Calibrating on real content means saving the generator's
    inputs (``z``, ``ge``) as ``.npz`` files and passing them with ``--calib``.
    """
    synth = Synthesizer(package)
    rng = np.random.default_rng(0)
    feeds = []
    for index, wav in enumerate(recordings):
        ge = synth.voice_embedding([wav])
        n_tokens = max(2, round(len(wav) / synth.sample_rate * synth.settings["token_rate_hz"]))
        tokens = rng.integers(0, synth.codebook_size, n_tokens)
        phonemes = rng.integers(1, len(synth.phonemes.symbols), max(1, n_tokens // 3))
        z, _ = synth.latent(tokens, phonemes, ge, seed=index)
        feeds.append({"z": z, "ge": ge})
    return feeds


def speaker_verification_feeds(package: Package, recordings: Sequence[np.ndarray]) -> list[dict[str, np.ndarray]]:
    """The ``speaker_verification`` graph's input for each recording: its fbank, as the runtime makes it for a reference."""
    return [{"fbank": reference_sv_features(wav, package.manifest.sample_rate)} for wav in recordings]


def vocoder_v4_feeds(package: Package, recordings: Sequence[np.ndarray]) -> list[dict[str, np.ndarray]]:
    """The v4 vocoder's input for each recording: its denormalised log-mel, which is what the CFM learns to write
    (the official ``mel_fn_v4`` of the recording at 32 kHz; recordings arrive at the package's 48 kHz)."""
    rate = package.manifest.sample_rate
    return [{"mel": cfm.reference_mel(resample(wav, rate, cfm.MEL_RATE))} for wav in recordings]
