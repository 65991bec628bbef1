"""Loading jik876 checkpoints: the real V1 weights, V2/V3 configs, mismatches, foreign and bad files."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from tests.conftest import ORACLE, V1, V2, V3, save_jik876
from ttsopt.errors import TtsoptError
from ttsopt.families.hifigan.checkpoint import load_hifigan


def test_real_v1_checkpoint_loads(universal: Path):
    loaded = load_hifigan(universal)
    assert loaded.config.upsample_initial_channel == 512 and loaded.config.resblock == "1"
    assert sum(p.numel() for p in loaded.model.parameters()) == 13_936_130
    with torch.inference_mode():
        audio = loaded.model(torch.zeros(1, 80, 10) - 5.0)
    assert audio.shape == (1, 1, 2560) and torch.isfinite(audio).all()


@pytest.mark.parametrize("config, channels", [(V1, 512), (V2, 128), (V3, 256)], ids=["V1", "V2", "V3"])
def test_v1_v2_v3_configs(tmp_path: Path, config: dict, channels: int):
    checkpoint = save_jik876(tmp_path, config)
    loaded = load_hifigan(checkpoint)  # config.json found beside the checkpoint, as jik876 lays them out
    assert loaded.model.conv_pre.weight.shape[0] == channels
    with torch.inference_mode():
        assert loaded.model(torch.randn(1, 80, 7)).shape == (1, 1, 7 * 256)


def test_config_mismatch_is_reported_from_shapes(tmp_path: Path, hifigan_dir: Path):
    v2_weights = save_jik876(tmp_path / "v2", V2)
    with pytest.raises(TtsoptError, match=r"does not match checkpoint.*conv_pre.*\[128\].*\[512\].*upsample_initial_channel"):
        load_hifigan(v2_weights, hifigan_dir / "config.json")
    v3_weights = save_jik876(tmp_path / "v3", V3)
    with pytest.raises(TtsoptError, match="does not match checkpoint"):
        load_hifigan(v3_weights, hifigan_dir / "config.json")


def test_inconsistent_config_is_refused(tmp_path: Path, universal: Path):
    bad = tmp_path / "config.json"
    bad.write_text(__import__("json").dumps(V1 | {"hop_size": 300}))
    with pytest.raises(TtsoptError, match="multiply to 256 but hop_size is 300"):
        load_hifigan(universal, bad)
    bad.write_text(__import__("json").dumps({k: v for k, v in V1.items() if k != "num_mels"}))
    with pytest.raises(TtsoptError, match="lacks num_mels"):
        load_hifigan(universal, bad)


def test_bad_files(tmp_path: Path, universal: Path, hifigan_dir: Path):
    config = hifigan_dir / "config.json"
    with pytest.raises(TtsoptError, match="checkpoint not found"):
        load_hifigan(tmp_path / "nope.pth", config)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(universal.read_bytes()[: 20_000_000])
    with pytest.raises(TtsoptError, match="truncated or corrupt"):
        load_hifigan(truncated, config)
    wav = tmp_path / "speech.pth"
    wav.write_bytes(b"RIFF" + bytes(100))
    with pytest.raises(TtsoptError, match="not a PyTorch checkpoint"):
        load_hifigan(wav, config)
    other = tmp_path / "other.pth"
    torch.save({"model": {"w": torch.zeros(2)}}, other)
    with pytest.raises(TtsoptError, match="no 'generator' state dict"):
        load_hifigan(other, config)


@pytest.mark.skipif(not ORACLE.is_dir(), reason="the GPT-SoVITS oracle checkpoints are not beside the repository")
def test_gpt_sovits_files_given_as_vocoder(hifigan_dir: Path):
    config = hifigan_dir / "config.json"
    with pytest.raises(TtsoptError, match="GPT-SoVITS SoVITS"):
        load_hifigan(ORACLE / "sovits_tiny.pth", config)
    with pytest.raises(TtsoptError, match="GPT-SoVITS GPT"):
        load_hifigan(ORACLE / "gpt_tiny.ckpt", config)


def test_header_tagged_sovits_file(tmp_path: Path, universal: Path, hifigan_dir: Path):
    tagged = tmp_path / "v2pro.pth"
    tagged.write_bytes(b"05" + universal.read_bytes()[2:4096])
    with pytest.raises(TtsoptError, match="GPT-SoVITS SoVITS v2Pro checkpoint"):
        load_hifigan(tagged, hifigan_dir / "config.json")


def test_malicious_pickle_is_refused_and_never_runs(tmp_path: Path, hifigan_dir: Path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            import os
            return os.system, (f"touch {marker}",)

    evil = tmp_path / "evil.pth"
    torch.save({"generator": Exploit()}, evil, pickle_protocol=pickle.DEFAULT_PROTOCOL)
    with pytest.raises(TtsoptError, match="refusing to load"):
        load_hifigan(evil, hifigan_dir / "config.json")
    assert not marker.exists()
