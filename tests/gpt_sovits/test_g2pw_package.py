"""g2pW in a text-to-speech package: copied at export (with its tokenizer), hashed, and read by the front end."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import AUX_ORACLE as AUX
from tests.conftest import ORACLE, assert_one_line_error, ttsopt
from ttsopt.errors import TtsoptError
from ttsopt.families.gpt_sovits.g2pw_payload import g2pw_payload, tokenizer_file
from ttsopt.package.manifest import read_manifest, sha256_file

POLYPHONES = "他说明天要去银行。"
# What the stand-in model (random weights) reads: 他/说 → tuo1, unlike pypinyin's t a1 sh uo1.
STAND_IN_PHONES = "t uo1 t uo1 m ing2 t ian1 y ao4 q v4 y in2 h ang2 ."


def test_package_carries_g2pw_and_its_tokenizer(tts_package: Path):
    if not AUX.is_dir():
        pytest.skip(f"oracle not found under {AUX}")
    manifest = read_manifest(tts_package)
    entry = manifest.runtime["auxiliary"]["g2pw"]
    assert entry["labels"] == 1305 and Path(entry["source"]) == (AUX / "G2PWModel").resolve()
    sources = {"g2pw/g2pW.onnx": AUX / "G2PWModel/g2pW.onnx", "g2pw/POLYPHONIC_CHARS.txt": AUX / "G2PWModel/POLYPHONIC_CHARS.txt",
               "g2pw/tokenizer.json": AUX / "chinese-roberta-wwm-ext-large/tokenizer.json"}
    for name, source in sources.items():
        assert manifest.files[name] == sha256_file(source), name
    inspected = ttsopt("inspect", tts_package, check=True).stdout
    assert "g2pw (G2PWModel)" in inspected and "no G2PWModel" not in inspected


def test_phonemize_and_run_read_polyphones_with_the_package_g2pw(tts_package: Path, tmp_path: Path):
    if not AUX.is_dir():
        pytest.skip(f"oracle not found under {AUX}")
    done = ttsopt("phonemize", tts_package, "--text", POLYPHONES, "--lang", "zh", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["g2pw"] is True and report["sentences"][0]["phones"] == STAND_IN_PHONES
    assert "g2pW is not available" not in done.stderr
    done = ttsopt("run", tts_package, "--text", POLYPHONES, "--lang", "zh", "--voice", "fox", "--seed", "0",
                  "--max-tokens", "20", "-o", tmp_path / "zh.wav")
    assert done.returncode == 0 and "g2pW is not available" not in done.stderr, done.stderr


def test_export_refuses_an_incomplete_g2pw_folder_or_no_tokenizer(tmp_path: Path):
    if not AUX.is_dir():
        pytest.skip(f"oracle not found under {AUX}")
    empty = tmp_path / "G2PWModel"
    empty.mkdir()
    common = ["export", "--sovits", ORACLE / "sovits_tiny.pth", "-o", tmp_path / "out"]
    assert_one_line_error(ttsopt(*common, "--g2pw", empty, "--bert", AUX / "chinese-roberta-wwm-ext-large"),
                          "is not a G2PWModel folder", "POLYPHONIC_CHARS.txt")
    assert not (tmp_path / "out").exists()
    with pytest.raises(TtsoptError, match="tokenizer.json.*--bert"):  # the same check, without another CLI start
        g2pw_payload({"g2pw": AUX / "G2PWModel"}, "v2")


def test_tokenizer_found_beside_g2pw_in_a_checkout(tmp_path: Path):
    g2pw = tmp_path / "GPT_SoVITS" / "text" / "G2PWModel"
    roberta = tmp_path / "GPT_SoVITS" / "pretrained_models" / "chinese-roberta-wwm-ext-large"
    g2pw.mkdir(parents=True)
    roberta.mkdir(parents=True)
    with pytest.raises(TtsoptError, match="no RoBERTa folder was given"):
        tokenizer_file(g2pw, None)
    (roberta / "tokenizer.json").write_text("{}")
    assert tokenizer_file(g2pw, None) == (roberta / "tokenizer.json").resolve()
    with pytest.raises(TtsoptError, match="has no tokenizer.json"):
        tokenizer_file(g2pw, tmp_path)  # an explicit --bert without the file is not silently replaced


def test_payload_only_for_v2_tables_and_only_a_model_that_runs(tmp_path: Path, caplog):
    if not AUX.is_dir():
        pytest.skip(f"oracle not found under {AUX}")
    auxiliary = {"g2pw": AUX / "G2PWModel", "bert": AUX / "chinese-roberta-wwm-ext-large"}
    with caplog.at_level("WARNING", logger="ttsopt"):
        assert g2pw_payload(auxiliary, "v1") == ({}, None, None)
    assert "v1 models read Chinese with pypinyin" in caplog.text
    files, entry, _ = g2pw_payload(auxiliary, "v2")
    assert files["g2pw/g2pW.onnx"] == AUX / "G2PWModel/g2pW.onnx" and entry["tokenizer"] == "g2pw/tokenizer.json"
    broken = tmp_path / "G2PWModel"
    shutil.copytree(AUX / "G2PWModel", broken)
    (broken / "g2pW.onnx").chmod(0o644)
    (broken / "g2pW.onnx").write_bytes(b"not an onnx model")
    with pytest.raises(TtsoptError, match="does not run with the official g2pW inputs"):
        g2pw_payload(auxiliary | {"g2pw": broken}, "v2")
