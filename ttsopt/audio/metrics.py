"""Audio quality metrics: how far an optimised artefact's audio is from the original's.

Two kinds of comparison, with different metrics, because a GAN vocoder does not preserve phase:

* artefact vs golden output of the same model on the same input (should be near-identical):
  waveform SNR and max abs error, plus the spectral metrics below;
* vocoder output vs a real recording (copy synthesis): only spectral metrics mean anything there
  (waveform SNR of any GAN vocoder against its input recording is ≈ −2 dB).

Spectral metrics: log-mel L1 in the model's own mel space, multi-resolution STFT distance (spectral
convergence + log-magnitude L1, averaged over three resolutions, as in Parallel WaveGAN's loss), and
mel-cepstral distortion computed from the DCT of the log-mel spectrum (13 coefficients, c0 dropped).
"""

from __future__ import annotations

import math

import numpy as np

from ttsopt.audio.mel import MelSettings, log_mel, stft_magnitude

#: (n_fft, hop, window) triples of the multi-resolution STFT distance.
STFT_RESOLUTIONS = ((512, 128, 512), (1024, 256, 1024), (2048, 512, 2048))
MCD_COEFFICIENTS = 13


def _aligned(reference: np.ndarray, estimate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    reference = np.asarray(reference, dtype=np.float64).reshape(-1)
    estimate = np.asarray(estimate, dtype=np.float64).reshape(-1)
    n = min(reference.shape[0], estimate.shape[0])
    return reference[:n], estimate[:n]


def snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Signal-to-noise ratio of ``estimate`` against ``reference`` in dB (``inf`` when identical, ``-inf``
    when the estimate holds NaN/Inf: a broken output must fail every SNR gate, not compare as NaN)."""
    reference, estimate = _aligned(reference, estimate)
    if not np.all(np.isfinite(estimate)):
        return -math.inf
    noise = float(np.sum((reference - estimate) ** 2))
    signal = float(np.sum(reference**2))
    if noise == 0.0:
        return math.inf
    if signal == 0.0:
        return -math.inf
    return 10.0 * math.log10(signal / noise)


def max_abs_error(reference: np.ndarray, estimate: np.ndarray) -> float:
    reference, estimate = _aligned(reference, estimate)
    return float(np.max(np.abs(reference - estimate))) if reference.size else 0.0


def logmel_l1(reference: np.ndarray, estimate: np.ndarray, mel: MelSettings) -> float:
    """Mean absolute difference of the two waveforms' log-mel spectrograms (natural log)."""
    reference, estimate = _aligned(reference, estimate)
    return float(np.mean(np.abs(log_mel(reference, mel) - log_mel(estimate, mel))))


class LogMelReference:
    """One reference waveform's log-mel, computed once, for :func:`logmel_l1` against many estimates: the INT8
    layer search scores every candidate against the same FP32 speech (on the real-size v2ProPlus generator the
    reference's log-mel, recomputed per call, was about 10 s of the 165 s sweep). The same value as
    :func:`logmel_l1` to the bit; an estimate of another length is aligned as that function does."""

    def __init__(self, reference: np.ndarray, mel: MelSettings) -> None:
        self.reference = np.asarray(reference, dtype=np.float64).reshape(-1)
        self.mel = mel
        self.log_mel = log_mel(self.reference, mel)

    def l1(self, estimate: np.ndarray) -> float:
        """:func:`logmel_l1` of the reference and ``estimate``."""
        reference, estimate = _aligned(self.reference, estimate)
        wanted = self.log_mel if reference.shape[0] == self.reference.shape[0] else log_mel(reference, self.mel)
        return float(np.mean(np.abs(wanted - log_mel(estimate, self.mel))))


def multi_resolution_stft_distance(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Spectral convergence + mean |log magnitude difference|, averaged over ``STFT_RESOLUTIONS``."""
    reference, estimate = _aligned(reference, estimate)
    total = 0.0
    for n_fft, hop, win in STFT_RESOLUTIONS:
        ref_mag = stft_magnitude(reference, n_fft, hop, win, pad=n_fft // 2)
        est_mag = stft_magnitude(estimate, n_fft, hop, win, pad=n_fft // 2)
        convergence = np.linalg.norm(ref_mag - est_mag) / max(np.linalg.norm(ref_mag), 1e-12)
        log_distance = np.mean(np.abs(np.log(ref_mag) - np.log(est_mag)))
        total += float(convergence + log_distance)
    return total / len(STFT_RESOLUTIONS)


def mel_cepstral_distortion(reference: np.ndarray, estimate: np.ndarray, mel: MelSettings) -> float:
    """Mean per-frame MCD in dB between the two waveforms (frames aligned one to one)."""
    from scipy.fft import dct

    reference, estimate = _aligned(reference, estimate)
    ref_cep = dct(log_mel(reference, mel), type=2, norm="ortho", axis=0)[1:MCD_COEFFICIENTS]
    est_cep = dct(log_mel(estimate, mel), type=2, norm="ortho", axis=0)[1:MCD_COEFFICIENTS]
    per_frame = np.sqrt(2.0 * np.sum((ref_cep - est_cep) ** 2, axis=0))
    return float(10.0 / math.log(10.0) * np.mean(per_frame))


def tensor_metrics(want: np.ndarray, got: np.ndarray) -> dict:
    """Elementwise figures of a non-audio output (embeddings, latents, logits, K/V)."""
    return {"snr_db": snr_db(want, got), "max_abs_error": max_abs_error(want, got),
            "nonfinite": int(np.size(got) - np.count_nonzero(np.isfinite(got)))}


def golden_metrics(golden: np.ndarray, output: np.ndarray, mel: MelSettings) -> dict[str, float]:
    """Artefact output vs the original model's output on the same input."""
    return {
        "snr_db": snr_db(golden, output),
        "max_abs_error": max_abs_error(golden, output),
        "logmel_l1": logmel_l1(golden, output, mel),
        "mrstft": multi_resolution_stft_distance(golden, output),
        "nonfinite": int(np.size(output) - np.count_nonzero(np.isfinite(output))),
    }


def reference_metrics(recording: np.ndarray, resynthesis: np.ndarray, mel: MelSettings) -> dict[str, float]:
    """A vocoder's copy synthesis vs the recording it was given (its own error on that speech)."""
    return {
        "logmel_l1": logmel_l1(recording, resynthesis, mel),
        "mcd_db": mel_cepstral_distortion(recording, resynthesis, mel),
    }
