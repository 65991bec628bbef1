"""The numpy front end and metrics: the mel convention of jik876, checked against torch.stft."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import SPEECH
from ttsopt.audio import metrics
from ttsopt.audio.io import read_wav, resample
from ttsopt.audio.mel import MelSettings, _hz_to_mel, _mel_to_hz, log_mel, mel_filterbank

MEL = MelSettings(sample_rate=22050, n_fft=1024, hop_length=256, win_length=1024, n_mels=80, fmin=0.0, fmax=8000.0)


def test_slaney_mel_scale_known_points():
    # Slaney's scale: linear 200/3 Hz per mel below 1 kHz (1 kHz = 15 mel), log above (6.4× per 27 mel).
    assert _hz_to_mel(np.array([0.0, 1000.0, 6400.0]))[:2] == pytest.approx([0.0, 15.0])
    assert _hz_to_mel(np.array([6400.0]))[0] == pytest.approx(15.0 + 27.0)
    freqs = np.array([50.0, 700.0, 1000.0, 4000.0, 8000.0])
    assert _mel_to_hz(_hz_to_mel(freqs)) == pytest.approx(freqs)


def test_filterbank_is_area_normalised_triangles():
    basis = mel_filterbank(22050, 1024, 80, 0.0, 8000.0)
    assert basis.shape == (80, 513) and (basis >= 0).all()
    # Slaney normalisation: each triangle's height is 2 / (its width in Hz), so height × width = 2.
    edges = _mel_to_hz(np.linspace(0, _hz_to_mel(np.array([8000.0]))[0], 82))
    heights = basis.max(axis=1)
    assert np.all(heights <= 2.0 / (edges[2:] - edges[:-2]) + 1e-6)
    assert basis[:, np.fft.rfftfreq(1024, 1 / 22050) > 8000.0].sum() == 0.0


def test_log_mel_matches_the_torch_reference_convention():
    torch = pytest.importorskip("torch")
    audio = read_wav(SPEECH, 22050)
    pad = (1024 - 256) // 2
    y = torch.nn.functional.pad(torch.from_numpy(audio)[None, None], (pad, pad), mode="reflect")[0, 0]
    spec = torch.stft(y, 1024, hop_length=256, win_length=1024, window=torch.hann_window(1024), center=False,
                      onesided=True, return_complex=True)
    magnitude = torch.sqrt(spec.real**2 + spec.imag**2 + 1e-9)
    expected = torch.log(torch.clamp(torch.from_numpy(mel_filterbank(22050, 1024, 80, 0.0, 8000.0)) @ magnitude, min=1e-5))
    ours = log_mel(audio, MEL)
    assert ours.shape == tuple(expected.shape) == (80, len(audio) // 256)
    np.testing.assert_allclose(ours, expected.numpy(), atol=2e-4)


def test_metrics_behave():
    rng = np.random.default_rng(0)
    audio = read_wav(SPEECH, 22050)
    assert metrics.snr_db(audio, audio) == float("inf")
    noisy = audio + 1e-3 * rng.standard_normal(audio.shape).astype(np.float32)
    expected_snr = 10 * np.log10(np.sum(audio.astype(np.float64) ** 2) / np.sum((noisy - audio).astype(np.float64) ** 2))
    assert metrics.snr_db(audio, noisy) == pytest.approx(expected_snr, abs=1e-3)
    assert metrics.logmel_l1(audio, audio, MEL) == 0.0
    assert metrics.mel_cepstral_distortion(audio, audio, MEL) == 0.0
    louder = metrics.multi_resolution_stft_distance(audio, noisy * 0.5)
    assert louder > metrics.multi_resolution_stft_distance(audio, noisy) > 0.0


def test_a_reference_log_mel_computed_once_scores_as_logmel_l1():
    """The INT8 search scores every candidate against one reference whose log-mel is computed once: the same value as
    :func:`metrics.logmel_l1` to the bit, for an estimate of the reference's length and for a shorter one."""
    rng = np.random.default_rng(1)
    audio = read_wav(SPEECH, 22050)[:22050]
    reference = metrics.LogMelReference(audio, MEL)
    for estimate in (audio + 1e-2 * rng.standard_normal(audio.shape).astype(np.float32), audio[:-1000] * 0.5):
        assert reference.l1(estimate) == metrics.logmel_l1(audio, estimate, MEL) > 0.0


def test_resampling_keeps_a_tone():
    t = np.arange(16000) / 16000
    tone = np.sin(2 * np.pi * 440 * t).astype(np.float32)
    up = resample(tone, 16000, 22050)
    assert len(up) == 22050
    spectrum = np.abs(np.fft.rfft(up))
    assert np.fft.rfftfreq(len(up), 1 / 22050)[spectrum.argmax()] == pytest.approx(440, abs=2)


def test_resampling_is_said_for_the_users_files_not_for_the_bundled_speech(tmp_path: Path, caplog):
    from ttsopt.assets import VERIFICATION, bundled_recordings

    bundled = bundled_recordings(VERIFICATION)[0]
    mine = tmp_path / bundled.name
    shutil.copy(bundled, mine)
    with caplog.at_level("WARNING", logger="ttsopt"):
        read_wav(bundled, 32000)
        assert caplog.records == []  # an export the user gave no recording to prints no note about one
        read_wav(mine, 32000)
    assert [r.getMessage() for r in caplog.records] == [f"{bundled.name} is 22050 Hz; resampled to the model's 32000 Hz"]
