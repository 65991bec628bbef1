"""The exported package: ONNX fidelity on unseen lengths, metadata, manifest, golden data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from ttsopt.audio.metrics import snr_db
from ttsopt.families.hifigan.checkpoint import load_hifigan
from ttsopt.package import read_manifest
from ttsopt.runtime import load


def test_graph_is_folded_simplified_and_self_describing(package: Path):
    model = onnx.load(str(package / "vocoder.onnx"))
    onnx.checker.check_model(model, full_check=True)
    ops = {node.op_type for node in model.graph.node}
    assert ops <= {"Conv", "ConvTranspose", "LeakyRelu", "Add", "Div", "Tanh"}, ops  # no ReduceL2: weight norm folded
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["sample_rate"] == "22050" and meta["ttsopt.family"] == "hifigan"
    assert json.loads(meta["ttsopt.audio"])["mel"]["n_mels"] == 80
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 80, "frames"]


def test_manifest_records_everything(package: Path, universal: Path):
    manifest = read_manifest(package)
    assert manifest.schema_version == 1 and manifest.precision == "fp32" and manifest.target["name"] == "cpu"
    assert manifest.audio["mel"] == {"sample_rate": 22050, "n_fft": 1024, "hop_length": 256, "win_length": 1024,
                                     "n_mels": 80, "fmin": 0.0, "fmax": 8000.0}
    assert set(manifest.files) == {"vocoder.onnx", "golden.npz"}
    assert manifest.graphs["vocoder"].dims["frames"].max == 8192
    assert Path(manifest.source["checkpoints"]["generator"]) == universal.resolve()
    assert {"torch", "onnx", "onnxruntime", "onnxslim"} <= set(manifest.tools)
    assert all(g["passed"] for g in manifest.verification["gates"])
    # 52.9 GFLOP per second of 22.05 kHz audio for V1 (convolutions, 2 FLOP per MAC).
    assert manifest.cost["flop_per_audio_second"] / 1e9 == pytest.approx(52.9, abs=0.2)


@pytest.mark.parametrize("frames, batch", [(1, 1), (2, 1), (173, 1), (401, 2)])
def test_onnx_matches_pytorch_on_lengths_never_exported(package: Path, universal: Path, frames: int, batch: int):
    # The export used 2 × 64 frames; these sizes were never traced.
    model = load_hifigan(universal).model
    mel = (torch.randn(batch, 80, frames, generator=torch.Generator().manual_seed(frames)) - 5.0)
    with torch.inference_mode():
        expected = model(mel).numpy()
    got = load(package).package.run("vocoder", {"mel": mel.numpy()})["audio"]
    assert got.shape == expected.shape == (batch, 1, frames * 256)
    assert snr_db(expected, got) > 70.0
    assert np.abs(expected - got).max() < 1e-4


def test_golden_outputs_are_the_original_on_real_speech(package: Path):
    with np.load(package / "golden.npz") as golden:
        keys = sorted(golden.files)
        assert keys == ["fox_en-us/in/mel", "fox_en-us/out/audio", "shells_en-gb-f3/in/mel", "shells_en-gb-f3/out/audio"]
        mel = golden["fox_en-us/in/mel"]
        audio = golden["fox_en-us/out/audio"]
    assert mel.shape[:2] == (1, 80) and mel.shape[2] > 200  # ≈ 3 s of espeak-ng speech
    assert audio.shape == (1, 1, mel.shape[2] * 256) and np.abs(audio).max() > 0.1


def test_copy_synthesis_reproduces_speech(package: Path):
    """Real weights on real speech: the resynthesis is close to the input (random weights give ≈ 2.4)."""
    from tests.conftest import SPEECH
    from ttsopt.audio.io import read_wav
    from ttsopt.audio.metrics import logmel_l1

    vocoder = load(package)
    recording = read_wav(SPEECH, vocoder.sample_rate)
    assert logmel_l1(recording, vocoder.resynthesize(SPEECH), vocoder.mel_settings) < 0.4


def _conv_graph(dilation: int, seed: int = 0):
    from ttsopt.compiler.spec import GraphExport
    from ttsopt.package.manifest import DimRange, TensorSpec

    torch.manual_seed(seed)
    module = torch.nn.Sequential(torch.nn.Conv1d(4, 4, 3, padding=dilation, dilation=dilation), torch.nn.Tanh()).eval()
    return GraphExport(name="g", module=module, example_inputs=(torch.randn(2, 4, 16),),
                       inputs=(TensorSpec("x", "float32", ("batch", 4, "frames")),),
                       outputs=(TensorSpec("y", "float32", ("batch", 4, "frames")),),
                       dims={"batch": DimRange(1, 1, 4), "frames": DimRange(1, 16, 64)},
                       check_sizes=({"batch": 1, "frames": 5}, {"batch": 3, "frames": 33}))


def test_trace_cache_traces_a_module_once_and_never_trusts_a_hit_blindly(tmp_path: Path, monkeypatch):
    from ttsopt.compiler import onnx_export
    from ttsopt.compiler.trace_cache import trace_key

    cache = tmp_path / "cache"
    monkeypatch.setenv("TTSOPT_CACHE_DIR", str(cache))
    graph = _conv_graph(dilation=1)
    assert onnx_export.export_onnx(graph, tmp_path / "a.onnx", {"ttsopt.graph": "a"})["traced"] == "now"
    traced = torch.onnx.export

    def no_tracing(*args, **kwargs):
        raise AssertionError("traced again")

    monkeypatch.setattr(torch.onnx, "export", no_tracing)
    hit = onnx_export.export_onnx(_conv_graph(dilation=1), tmp_path / "b.onnx", {"ttsopt.graph": "b"})
    assert hit["traced"] == "cache" and hit["snr_db"] > 90
    assert {p.key: p.value for p in onnx.load(str(tmp_path / "b.onnx")).metadata_props} == {"ttsopt.graph": "b"}
    # What the trace depends on is in the key: a hyperparameter that no weight shape shows, and the weights.
    keys = {trace_key(g, onnx_export._PROCEDURE) for g in (graph, _conv_graph(dilation=2), _conv_graph(1, seed=1))}
    assert len(keys) == 3
    # A stored graph that no longer computes the module (here: another module's, under this key) is dropped
    # by the fidelity check every export runs, and the module is traced afresh.
    monkeypatch.setattr(torch.onnx, "export", traced)
    key = trace_key(graph, onnx_export._PROCEDURE)
    other = _conv_graph(dilation=2)
    onnx_export.export_onnx(other, cache / f"{key}.onnx", {})
    again = onnx_export.export_onnx(graph, tmp_path / "c.onnx", {})
    assert again["traced"] == "now" and again["snr_db"] > 90
    monkeypatch.setenv("TTSOPT_CACHE_DIR", "off")
    assert onnx_export.export_onnx(graph, tmp_path / "d.onnx", {})["traced"] == "now"
