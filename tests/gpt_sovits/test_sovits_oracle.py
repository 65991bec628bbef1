"""SoVITS (s2) model + loader against the official oracle (shared/oracle/gpt-sovits-v2-tiny).

The oracle was produced by the official ``SynthesizerTrn.decode`` / ``extract_latent`` on CPU in float32
(README there). Protocol followed here: load ``sovits_tiny.pth`` with our loader, feed the saved inputs
(``refer=[ref_spec]``, the saved ``noise`` in place of ``randn_like`` for noise_scale 0.5), compare every
SoVITS array at atol 1e-4 and the extract_latent codes exactly.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn.utils import parametrize

from examples.random_gpt_sovits import S2_V2, save_official_sovits
from ttsopt.audio.mel import linear_spectrogram
from ttsopt.errors import TtsoptError
from ttsopt.families.gpt_sovits.sovits_checkpoint import (
    HParams,
    detect_sovits_version,
    load_sovits_checkpoint,
    read_sovits_checkpoint,
    to_official_state_dict,
)
from ttsopt.families.gpt_sovits.sovits_model import SoVITSConfig, SoVITSModel

ORACLE = Path(__file__).resolve().parents[3] / "shared/oracle/gpt-sovits-v2-tiny"
SOVITS_PTH = ORACLE / "sovits_tiny.pth"
ATOL = 1e-4

needs_oracle = pytest.mark.skipif(not (SOVITS_PTH.is_file() and (ORACLE / "sovits_tiny.npz").is_file()),
                                  reason=f"GPT-SoVITS oracle not found under {ORACLE}")


@pytest.fixture(scope="module")
def oracle() -> dict[str, torch.Tensor]:
    if not (ORACLE / "sovits_tiny.npz").is_file():
        pytest.skip(f"GPT-SoVITS oracle not found under {ORACLE}")
    with np.load(ORACLE / "sovits_tiny.npz") as arrays:
        return {name: torch.from_numpy(arrays[name]) for name in arrays.files}


@pytest.fixture(scope="module")
def loaded():
    if not SOVITS_PTH.is_file():
        pytest.skip(f"GPT-SoVITS oracle not found under {ORACLE}")
    return load_sovits_checkpoint(SOVITS_PTH)


@pytest.fixture(scope="module")
def model(loaded) -> SoVITSModel:
    return loaded.model


def _spectrogram(model: SoVITSModel, wav: torch.Tensor) -> torch.Tensor:
    """ttsopt's numpy reference spectrogram (the runtime's front end) as a ``[1, bins, frames]`` tensor."""
    c = model.config
    return torch.from_numpy(linear_spectrogram(wav.numpy()[0], c.filter_length, c.hop_length, c.win_length))[None]


def assert_close(actual: torch.Tensor, expected: torch.Tensor, name: str) -> None:
    assert tuple(actual.shape) == tuple(expected.shape), f"{name}: shape {list(actual.shape)} != {list(expected.shape)}"
    diff = float((actual - expected).abs().max())
    assert diff <= ATOL, f"{name}: max abs diff {diff:.3e} > {ATOL}"


# --------------------------------------------------------------------------------------------------
# Official-format writer (test-only): what process_ckpt.savee produces, with a stand-in utils.HParams
# --------------------------------------------------------------------------------------------------


def _plain(value):
    return {k: _plain(v) for k, v in value.items()} if isinstance(value, dict) else value


@pytest.fixture
def save_official():
    """``save(path, weights, hparams_dict, info)`` writing ``{'weight', 'config': utils.HParams, 'info'}``."""
    return save_official_sovits


@pytest.fixture(scope="module")
def tiny_raw():
    if not SOVITS_PTH.is_file():
        pytest.skip(f"GPT-SoVITS oracle not found under {ORACLE}")
    return read_sovits_checkpoint(SOVITS_PTH)


# --------------------------------------------------------------------------------------------------
# Oracle comparisons
# --------------------------------------------------------------------------------------------------


@needs_oracle
def test_loader_reads_the_tiny_v2_file(loaded):
    assert loaded.version == "v2"
    assert loaded.info == "1epoch_100iteration"
    assert loaded.config.inter_channels == 64 and loaded.config.upsample_initial_channel == 64
    assert loaded.config.n_symbols == 732 and loaded.config.reference_bins == 704
    assert not loaded.model.training
    assert all(p.dtype == torch.float32 for p in loaded.model.state_dict().values())


@needs_oracle
def test_spectrogram(model, oracle):
    assert_close(_spectrogram(model, oracle["ref_wav_32k"]), oracle["ref_spec"], "ref_spec")
    assert_close(_spectrogram(model, oracle["ref_wav2_32k"]), oracle["ref_spec2"], "ref_spec2")


@needs_oracle
@torch.no_grad()
def test_reference_embedding(model, oracle):
    assert_close(model.reference_embedding([oracle["ref_spec"]]), oracle["ge"], "ge")
    assert_close(model.reference_embedding(oracle["ref_spec2"]), oracle["ge_ref2"], "ge_ref2")
    assert_close(model.reference_embedding([oracle["ref_spec"], oracle["ref_spec2"]]), oracle["ge_2refs_mean"],
                 "ge_2refs_mean")


@needs_oracle
@torch.no_grad()
def test_intermediates(model, oracle):
    ge = model.reference_embedding([oracle["ref_spec"]])
    quantized = model.dequantize(oracle["codes"])
    assert_close(quantized, oracle["quantized_up"], "quantized_up")
    hidden, m_p, logs_p = model.enc_p(quantized, oracle["text"], ge)
    assert_close(hidden, oracle["encp_x"], "encp_x")
    assert_close(m_p, oracle["m_p"], "m_p")
    assert_close(logs_p, oracle["logs_p"], "logs_p")
    z = model.flow(model.sample_prior(m_p, logs_p, noise_scale=0.0), ge)
    assert_close(z, oracle["z"], "z")
    assert_close(z, oracle["dec_in"], "dec_in")  # all-ones mask: dec input = z
    z_noise = model.flow(model.sample_prior(m_p, logs_p, 0.5, noise=oracle["noise"]), ge)
    assert_close(z_noise, oracle["z_noise05"], "z_noise05")
    _, m_p_fast, _ = model.enc_p(quantized, oracle["text"], ge, speed=1.25)
    assert_close(m_p_fast, oracle["m_p_speed125"], "m_p_speed125")


@needs_oracle
@torch.no_grad()
@pytest.mark.parametrize("name", ["audio_ns0", "audio_noise05", "audio_speed125", "audio_2refs"])
def test_audio(model, oracle, name):
    refer = [oracle["ref_spec"], oracle["ref_spec2"]] if name == "audio_2refs" else [oracle["ref_spec"]]
    kwargs = {"audio_ns0": {"noise_scale": 0.0},
              "audio_noise05": {"noise_scale": 0.5, "noise": oracle["noise"]},
              "audio_speed125": {"noise_scale": 0.0, "speed": 1.25},
              "audio_2refs": {"noise_scale": 0.0}}[name]
    assert_close(model.decode(oracle["codes"], oracle["text"], refer, **kwargs), oracle[name], name)


@needs_oracle
@torch.no_grad()
def test_audio_from_waveform_and_folded_weight_norm(model, oracle):
    """End to end from the reference wav (our spectrogram), and again after folding weight norm."""
    spec = _spectrogram(model, oracle["ref_wav_32k"])
    assert_close(model.decode(oracle["codes"], oracle["text"], spec, noise_scale=0.0), oracle["audio_ns0"],
                 "audio_ns0 (from wav)")
    # A fresh load, not copy.deepcopy(model): a deep copy shares the generated Parametrized* classes, and
    # remove_parametrizations deletes the ``weight`` property from that shared class, breaking the original.
    folded = load_sovits_checkpoint(SOVITS_PTH).model
    n_folded = 0
    for module in folded.modules():
        if parametrize.is_parametrized(module, "weight"):
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
            n_folded += 1
    assert n_folded == 4 * (4 + 4 + 1) + 5 + 15 * 6  # flow WaveNets, decoder upsamplers, resblock convs
    assert_close(folded(oracle["codes"], oracle["text"], oracle["ref_spec"], noise=oracle["noise"]),
                 oracle["audio_noise05"], "audio_noise05 (folded)")


@needs_oracle
@torch.no_grad()
def test_extract_latent_codes_exact(model, oracle):
    codes = model.extract_latent(oracle["ssl_content"])
    assert codes.dtype == torch.int64
    assert torch.equal(codes, oracle["extract_latent_codes"])


@needs_oracle
@torch.no_grad()
def test_noise_is_injectable_and_seedable(model, oracle):
    args = (oracle["codes"], oracle["text"], oracle["ref_spec"])
    a = model.decode(*args, noise_scale=0.5, seed=7)
    b = model.decode(*args, noise_scale=0.5, seed=7)
    assert torch.equal(a, b)
    noise = torch.randn(1, 64, 80, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, model.decode(*args, noise_scale=0.5, noise=noise))
    assert not torch.equal(a, model.decode(*args, noise_scale=0.5, seed=8))
    ge = model.reference_embedding(oracle["ref_spec"])
    assert torch.equal(a, model.decode(oracle["codes"], oracle["text"], ge=ge, noise_scale=0.5, noise=noise))
    with pytest.raises(ValueError, match="prior's shape"):
        model.decode(*args, noise=torch.zeros(1, 64, 79))
    assert model.config.latent_frames(40, 1.25) == 65


# --------------------------------------------------------------------------------------------------
# Loader: safety and version handling
# --------------------------------------------------------------------------------------------------


class _RunsShell:
    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy-pickle"])
def test_malicious_pickle_is_refused_and_never_runs(tmp_path, zip_format):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"weight": {"enc_p.text_embedding.weight": torch.zeros(732, 4)},
                "config": _RunsShell(f"touch {marker}"), "info": "x"}, path,
               _use_new_zipfile_serialization=zip_format)
    with pytest.raises(TtsoptError) as excinfo:
        load_sovits_checkpoint(path)
    message = str(excinfo.value)
    if zip_format:
        assert message.startswith(f"refusing to unpickle {os.system.__module__}.system from {path}:")
    else:
        assert "not a PyTorch zip checkpoint" in message
    assert "\n" not in message
    assert not marker.exists()


@needs_oracle
def test_header_tagged_file_loads(tmp_path, loaded):
    tagged = tmp_path / "tagged.pth"
    tagged.write_bytes(b"01" + SOVITS_PTH.read_bytes()[2:])
    result = load_sovits_checkpoint(tagged)
    assert result.version == "v2"
    expected = loaded.model.state_dict()
    assert all(torch.equal(v, expected[k]) for k, v in result.model.state_dict().items())


@needs_oracle
@pytest.mark.parametrize("tag,version", [(b"03", "v3"), (b"04", "v4")])  # v2Pro/ProPlus load: test_v2pro.py
def test_header_tag_of_unsupported_version(tmp_path, tag, version):
    path = tmp_path / "tagged.pth"
    path.write_bytes(tag + SOVITS_PTH.read_bytes()[2:])
    with pytest.raises(TtsoptError, match=f"^{version} SoVITS checkpoints are not supported yet"):
        load_sovits_checkpoint(path)


@needs_oracle
@pytest.mark.parametrize("variant", ["v3", "v3/v4"])  # v2Pro/ProPlus load: test_v2pro.py
def test_unsupported_versions_from_tensors(tmp_path, tiny_raw, save_official, variant):
    weights = dict(tiny_raw.weights)
    hparams = _plain(dict(tiny_raw.hparams))
    if variant.startswith("v2Pro"):  # the extra keys of s2v2Pro.json models (fact sheet §9)
        weights["sv_emb.weight"] = torch.zeros(1024, 20480)
        weights["sv_emb.bias"] = torch.zeros(1024)
        weights["ge_to512.weight"] = torch.zeros(512, 1024)
        weights["ge_to512.bias"] = torch.zeros(512)
        weights["prelu.weight"] = torch.zeros(1024)
        weights["ref_enc.fc.fc.weight"] = torch.zeros(1024, 128)
        if variant == "v2ProPlus":
            weights["dec.conv_pre.weight"] = torch.zeros(768, 64, 7)
    else:  # SynthesizerTrnV3: CFM tensors; v3/v4 are told apart only by the config
        weights["cfm.proj_m.weight"] = torch.zeros(100, 512, 1)
        weights["cfm.estimator.proj_out.weight"] = torch.zeros(100, 1024)
        hparams["model"]["version"] = "v3" if variant == "v3" else None
    path = save_official(tmp_path / "variant.pth", weights, hparams)
    with pytest.raises(TtsoptError, match=f"^{variant} SoVITS checkpoints are not supported yet"):
        load_sovits_checkpoint(path)


@needs_oracle
@torch.no_grad()
def test_v1_layout_loads_and_runs(tmp_path, tiny_raw, save_official, oracle):
    weights = dict(tiny_raw.weights)
    weights["enc_p.text_embedding.weight"] = weights["enc_p.text_embedding.weight"][:322]
    weights["ref_enc.spectral.0.fc.weight"] = torch.randn(128, 1025) * 0.03  # v1 reads all 1025 bins
    path = save_official(tmp_path / "v1.pth", weights, _plain(dict(tiny_raw.hparams)))
    result = load_sovits_checkpoint(path)
    assert result.version == "v1" and result.config.reference_bins == 1025
    audio = result.model.decode(oracle["codes"][..., :5], oracle["text"], oracle["ref_spec"], noise_scale=0.0)
    assert audio.shape == (1, 1, 5 * 1280) and torch.isfinite(audio).all()
    assert detect_sovits_version(weights) == "v1"


def test_missing_file(tmp_path):
    with pytest.raises(TtsoptError, match="SoVITS checkpoint not found"):
        load_sovits_checkpoint(tmp_path / "nope.pth")


@needs_oracle
def test_truncated_and_garbage_files(tmp_path):
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(SOVITS_PTH.read_bytes()[: SOVITS_PTH.stat().st_size // 2])
    with pytest.raises(TtsoptError, match="truncated or corrupt"):
        load_sovits_checkpoint(truncated)
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    with pytest.raises(TtsoptError, match="truncated or corrupt"):
        load_sovits_checkpoint(empty)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"hello, this is not a checkpoint")
    with pytest.raises(TtsoptError, match="not a PyTorch zip checkpoint"):
        load_sovits_checkpoint(garbage)


@needs_oracle
def test_other_checkpoints_are_named(tmp_path):
    gpt = ORACLE / "gpt_tiny.ckpt"
    if gpt.is_file():
        with pytest.raises(TtsoptError, match=r"GPT \(s1, \.ckpt\) checkpoint, not a GPT-SoVITS SoVITS"):
            load_sovits_checkpoint(gpt)
    hifigan = tmp_path / "g_02500000"
    torch.save({"generator": {"conv_pre.weight_v": torch.zeros(512, 80, 7)}}, hifigan)
    with pytest.raises(TtsoptError, match="HiFi-GAN generator"):
        load_sovits_checkpoint(hifigan)


def test_hparams_stand_in_behaves_like_a_config():
    h = HParams(model=HParams(version="v2"))
    assert h.model.version == "v2" and h["model"]["version"] == "v2"
    with pytest.raises(AttributeError):
        _ = h.missing


# --------------------------------------------------------------------------------------------------
# Real size (configs/s2.json), random weights, through the official file format
# --------------------------------------------------------------------------------------------------

S2_JSON = S2_V2


@torch.no_grad()
def test_real_size_v2_roundtrip(tmp_path, save_official):
    torch.manual_seed(0)
    built = SoVITSModel(SoVITSConfig())
    official = to_official_state_dict(built)
    # Fact sheet §4.1: 776 tensors of which 103 enc_q.*; 42,389,633 elements without enc_q.
    assert len(official) == 776 - 103
    assert sum(t.numel() for t in official.values()) == 42_389_633
    path = save_official(tmp_path / "real_e8_s100.pth", official, S2_JSON, info="8epoch_100iteration")

    result = load_sovits_checkpoint(path)
    assert result.version == "v2" and result.config == SoVITSConfig() and result.info == "8epoch_100iteration"
    reloaded = to_official_state_dict(result.model)
    assert reloaded.keys() == official.keys()
    assert all(torch.equal(reloaded[k], official[k]) for k in official)

    wav = 0.3 * torch.sin(torch.arange(16000) * 0.05).unsqueeze(0)
    codes = torch.randint(0, 1024, (1, 1, 5))
    text = torch.randint(0, 732, (1, 8))
    audio = result.model.decode(codes, text, _spectrogram(result.model, wav), noise_scale=0.5, seed=0)
    assert audio.shape == (1, 1, 5 * 1280)
    assert torch.isfinite(audio).all() and float(audio.abs().max()) <= 1.0
