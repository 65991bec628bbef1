"""``--pretrained``: the auxiliary models of a GPT-SoVITS checkout found at their official paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import assert_one_line_error, ttsopt
from ttsopt.errors import TtsoptError
from ttsopt.families.gpt_sovits.pretrained import find_auxiliaries, missing_notes


def _checkout(root: Path) -> Path:
    models = root / "GPT_SoVITS" / "pretrained_models"
    (models / "chinese-hubert-base").mkdir(parents=True)
    (models / "sv").mkdir()
    (models / "sv" / "pretrained_eres2netv2w24s4ep4.ckpt").write_bytes(b"x")
    (root / "GPT_SoVITS" / "text" / "G2PWModel").mkdir(parents=True)
    return models


@pytest.mark.parametrize("given", ["root", "gpt_sovits", "pretrained_models"])
def test_checkout_found_from_any_of_its_levels(tmp_path: Path, given: str) -> None:
    models = _checkout(tmp_path)
    path = {"root": tmp_path, "gpt_sovits": tmp_path / "GPT_SoVITS", "pretrained_models": models}[given]
    found = find_auxiliaries(path, {})
    assert found == {"hubert": (models / "chinese-hubert-base").resolve(), "g2pw": (tmp_path / "GPT_SoVITS/text/G2PWModel").resolve(),
                     "sv": (models / "sv/pretrained_eres2netv2w24s4ep4.ckpt").resolve()}
    notes = missing_notes(["hubert", "bert"], set(found))
    assert len(notes) == 1 and "chinese-roberta-wwm-ext-large" in notes[0] and "zero BERT features" in notes[0]


def test_explicit_option_wins_and_must_exist(tmp_path: Path) -> None:
    _checkout(tmp_path)
    other = tmp_path / "my-hubert"
    other.mkdir()
    assert find_auxiliaries(tmp_path, {"hubert": other})["hubert"] == other
    with pytest.raises(TtsoptError, match="--bert .*no such folder"):
        find_auxiliaries(None, {"bert": tmp_path / "missing"})
    with pytest.raises(TtsoptError, match="no GPT_SoVITS/pretrained_models inside it"):
        find_auxiliaries(other, {})


def test_cli_refuses_a_missing_checkout_in_one_line(tmp_path: Path) -> None:
    done = ttsopt("export", "--sovits", tmp_path / "s2.pth", "--pretrained", tmp_path / "nowhere", "-o", tmp_path / "out")
    assert_one_line_error(done, "--pretrained", "no such folder")
    assert not (tmp_path / "out").exists()


def test_export_says_what_each_missing_model_costs_once(tts_bert_package: Path) -> None:
    """The export's closing notes name every missing model; the front end, run on a Chinese voice transcript during
    the export, must not say the same things again in other words (no G2PWModel, no lid.176.bin given here)."""
    notes = [line for line in (tts_bert_package.parent / "export.stderr").read_text().splitlines() if line.startswith("note:")]
    assert sum("g2pW" in line for line in notes) == 1, notes
    assert sum("lite" in line for line in notes) == 1, notes
    assert any(line.startswith("note: no G2PWModel (--g2pw or --pretrained)") for line in notes), notes
