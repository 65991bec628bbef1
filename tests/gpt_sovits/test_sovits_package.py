"""SoVITS packages end to end: the official oracle through ttsopt's exported graphs (onnxruntime), voices,
chunked vocoding, the CLI (export / run / verify / inspect / bench), bad input, a real-size model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile

from tests.conftest import ORACLE, SPEECH, assert_one_line_error, ttsopt
from ttsopt.audio.metrics import snr_db
from ttsopt.runtime import Synthesizer, load

SOVITS_PTH = ORACLE / "sovits_tiny.pth"
FOX = Path(__file__).resolve().parents[2] / "ttsopt/assets/speech/fox_en-us.wav"
ATOL = 1e-4
PHONEMES = "n i2 h ao3 , w o3 sh i4 b ai2 y e4 ."

pytestmark = pytest.mark.skipif(not SOVITS_PTH.is_file(), reason=f"GPT-SoVITS oracle not found under {ORACLE}")


@pytest.fixture(scope="module")
def sovits_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The official tiny v2 SoVITS exported once through the CLI, with one stored voice."""
    out = tmp_path_factory.mktemp("sovits") / "sovits-cpu"
    ttsopt("export", "--sovits", SOVITS_PTH, "--voice", f"fox={FOX}", "--target", "cpu", "-o", out, check=True)
    return out


@pytest.fixture(scope="module")
def synth(sovits_package: Path) -> Synthesizer:
    return load(sovits_package)


@pytest.fixture(scope="module")
def oracle() -> dict[str, np.ndarray]:
    with np.load(ORACLE / "sovits_tiny.npz") as data:
        return {key: data[key] for key in data.files}


def assert_close(actual: np.ndarray, expected: np.ndarray, name: str) -> None:
    assert actual.shape == expected.shape, (name, actual.shape, expected.shape)
    diff = float(np.max(np.abs(actual - expected)))
    assert diff <= ATOL, f"{name}: max abs diff {diff:.3e} > {ATOL}"


@pytest.fixture(scope="module")
def tokens(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("inputs") / "tokens.npy"
    np.save(path, np.random.default_rng(0).integers(0, 1024, 60))
    return path


# --------------------------------------------------------------------------------------------------
# The oracle through the exported graphs
# --------------------------------------------------------------------------------------------------


def test_oracle_through_exported_graphs(synth: Synthesizer, oracle):
    """Reference wav → ge (numpy spectrogram + reference_encoder graph), then latent + generator graphs."""
    ge = synth.voice_embedding([oracle["ref_wav_32k"][0]])
    assert_close(ge, oracle["ge"], "ge")
    assert_close(synth.voice_embedding([oracle["ref_wav2_32k"][0]]), oracle["ge_ref2"], "ge_ref2")
    ge_mean = synth.voice_embedding([oracle["ref_wav_32k"][0], oracle["ref_wav2_32k"][0]])
    assert_close(ge_mean, oracle["ge_2refs_mean"], "ge_2refs_mean")

    codes, text = oracle["codes"][0, 0], oracle["text"][0]
    z, _ = synth.latent(codes, text, ge, noise_scale=0.0)
    assert_close(z, oracle["z"], "z")
    z, _ = synth.latent(codes, text, ge, noise_scale=0.5, noise=oracle["noise"])
    assert_close(z, oracle["z_noise05"], "z_noise05")
    cases = {"audio_ns0": (ge, {"noise_scale": 0.0}), "audio_noise05": (ge, {"noise_scale": 0.5, "noise": oracle["noise"]}),
             "audio_speed125": (ge, {"noise_scale": 0.0, "speed": 1.25}), "audio_2refs": (ge_mean, {"noise_scale": 0.0})}
    for name, (voice, kwargs) in cases.items():
        assert_close(synth.synthesize(codes, text, voice, **kwargs), oracle[name].reshape(-1), name)
    assert np.array_equal(synth.prompt_codes(oracle["ssl_content"]), oracle["extract_latent_codes"][0, 0])


def test_phoneme_strings_map_through_the_official_table(synth: Synthesizer):
    # fact sheet: "n i2 h ao3 , w o3 sh i4 b ai2 y e4" → 227 167 158 119 1 316 232 251 169 122 103 318 133
    assert synth.phoneme_ids("n i2 h ao3 , w o3 sh i4 b ai2 y e4").tolist() == [
        227, 167, 158, 119, 1, 316, 232, 251, 169, 122, 103, 318, 133]


# --------------------------------------------------------------------------------------------------
# Chunked vocoding and voices
# --------------------------------------------------------------------------------------------------


def test_chunked_generator_equals_whole_with_the_measured_context(synth: Synthesizer):
    z, ge = synth.latent(np.arange(100) % 1024, PHONEMES, "fox", seed=3)
    whole = synth.vocode(z, ge)
    assert synth.context_frames >= 2
    for chunk in (1, 7, 25, 64):
        chunked = synth.vocode(z, ge, chunk_frames=chunk)
        assert chunked.shape == whole.shape
        assert snr_db(whole, chunked) >= 90.0, chunk
    # Too little context is audibly wrong, so the context is what makes chunks exact.
    measured = synth.context_frames
    synth.context_frames = 2
    try:
        assert snr_db(whole, synth.vocode(z, ge, chunk_frames=7)) < 60.0
    finally:
        synth.context_frames = measured


def test_stored_voice_equals_encoding_the_recording(synth: Synthesizer):
    """Speaker folding: the stored ge is what the reference encoder graph gives for the same recording."""
    from ttsopt.audio.io import read_wav

    stored = synth.voice("fox")
    live = synth.voice_embedding([read_wav(FOX, synth.sample_rate)])
    assert stored.shape == (1, 512, 1) and snr_db(stored, live) > 80.0
    a = synth.synthesize(np.arange(30), PHONEMES, "fox", seed=1)
    b = synth.synthesize(np.arange(30), PHONEMES, live, seed=1)
    assert snr_db(a, b) > 80.0


# --------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------


def test_run_synthesises_reproducibly(sovits_package: Path, tokens: Path, tmp_path: Path):
    def run(name: str, *extra: str) -> np.ndarray:
        ttsopt("run", sovits_package, "--tokens", tokens, "--phonemes", PHONEMES, "--voice", "fox", *extra,
               "-o", tmp_path / name, check=True)
        audio, rate = soundfile.read(tmp_path / name, dtype="float32")
        assert rate == 32000
        return audio

    first, again, other = run("a.wav", "--seed", "1"), run("b.wav", "--seed", "1"), run("c.wav", "--seed", "2")
    assert first.size == 60 * 1280 and np.abs(first).max() > 0.01
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    fast = run("fast.wav", "--speed", "1.25", "--noise-scale", "0")
    assert fast.size == (int(120 / 1.25) + 1) * 640
    quiet_a, quiet_b = run("q1.wav", "--noise-scale", "0", "--seed", "1"), run("q2.wav", "--noise-scale", "0", "--seed", "2")
    assert np.array_equal(quiet_a, quiet_b)  # noise scale 0: the seed does not matter
    ttsopt("run", sovits_package, "--tokens", tokens, "--phonemes", PHONEMES, "--reference", SPEECH, "-o", tmp_path / "r.wav",
           check=True)
    assert soundfile.info(tmp_path / "r.wav").frames == 60 * 1280


def test_run_bad_inputs(sovits_package: Path, tokens: Path, tmp_path: Path):
    out = tmp_path / "out.wav"

    def fails(*args: str, fragments: tuple[str, ...]) -> None:
        assert_one_line_error(ttsopt("run", sovits_package, *args, "-o", out), *fragments)
        assert not out.exists()

    base = ("--tokens", str(tokens), "--voice", "fox")
    fails(*base, "--phonemes", "n i2 hx ao3", fragments=("unknown phoneme 'hx'", "v2 symbol table"))
    fails(*base, "--phonemes", "  ", fragments=("no phonemes given",))
    fails(*base, "--phonemes", " ".join(["a"] * 1100), fragments=("1100 phonemes", "at most 1024"))
    fails("--tokens", str(tokens), "--phonemes", PHONEMES, "--voice", "bob", fragments=("voice 'bob' is not in this package", "fox"))
    fails(*base, "--phonemes", PHONEMES, "--speed", "9", fragments=("speed 9 is outside",))
    fails("--wav", str(SPEECH), fragments=("--wav/--mel are for vocoder packages",))
    fails(*base, fragments=("needs --tokens", "--phonemes"))
    eos = tmp_path / "eos.npy"
    np.save(eos, np.array([5, 1024, 7]))
    fails("--tokens", str(eos), "--phonemes", PHONEMES, fragments=("semantic token 1024 is outside 0..1023", "EOS"))
    long = tmp_path / "long.npy"
    np.save(long, np.zeros(1501, dtype=np.int64))
    fails("--tokens", str(long), "--phonemes", PHONEMES, fragments=("1501 tokens", "at most 1500", "split"))
    floats = tmp_path / "floats.npy"
    np.save(floats, np.zeros(10, dtype=np.float32))
    fails("--tokens", str(floats), "--phonemes", PHONEMES, fragments=("must be integers",))
    text = tmp_path / "tokens.txt"
    text.write_text("1 2 3")
    fails("--tokens", str(text), "--phonemes", PHONEMES, fragments=("not a .npy file",))


def test_export_bad_inputs_leave_nothing_behind(tmp_path: Path, universal: Path):
    out = tmp_path / "pkg"
    cases = [
        (("--sovits", universal), ("give a GPT-SoVITS SoVITS (s2) .pth",)),
        ((universal, "--sovits", SOVITS_PTH), ("not both or neither",)),
        (("--sovits", SOVITS_PTH, "--voice", "fox"), ("must be NAME=recording.wav",)),
        (("--sovits", SOVITS_PTH, "--voice", f"bad name={FOX}"), ("voice name 'bad name' is not usable",)),
        (("--sovits", SOVITS_PTH, "--voice", f"x={tmp_path / 'missing.wav'}"), ("missing.wav",)),
        ((universal, "--voice", f"x={FOX}"), ("--voice applies to GPT-SoVITS packages",)),
        (("--sovits", SOVITS_PTH, "--config", tmp_path / "config.json"), ("embed their config",)),
    ]
    for args, fragments in cases:
        assert_one_line_error(ttsopt("export", *args, "-o", out), *fragments)
        assert not out.exists() and not any(p.name.startswith(".pkg") for p in tmp_path.iterdir())


def test_verify_with_a_new_voice_inspect_and_json(sovits_package: Path, tmp_path: Path):
    done = ttsopt("verify", sovits_package, "--reference", SPEECH, "--plot", tmp_path / "v.png", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["passed"] and (tmp_path / "v.png").stat().st_size > 10_000
    assert {row["graph"] for row in report["golden"]} == {"reference_encoder", "latent", "generator", "prompt_codes"}
    voice = report["references"][0]
    assert voice["snr_db"] > 60 and voice["ge_snr_db"] > 60 and voice["nonfinite"] == 0
    done = ttsopt("inspect", sovits_package)
    assert done.returncode == 0 and "latent.onnx" in done.stdout and "tokens: 1/250/1500" in done.stdout
    manifest = json.loads((sovits_package / "manifest.json").read_text())
    assert manifest["runtime"]["voices"].keys() == {"fox"} and manifest["runtime"]["generator_context_frames"] >= 2
    assert manifest["cost"]["flop_per_audio_second"] > 0


def test_bench_times_package_and_eager(sovits_package: Path):
    done = ttsopt("bench", sovits_package, "--seconds", "1", "--repeat", "1", "--json")
    assert done.returncode == 0, done.stderr
    row = json.loads(done.stdout)["rows"][0]
    assert row["audio_seconds"] == pytest.approx(50 * 640 / 32000)
    assert row["speedup_vs_eager"] > 0 and row["package (onnxruntime)"]["rtf"] > 0


# --------------------------------------------------------------------------------------------------
# Real size (released s2.json v2), random weights, through the official format
# --------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_real_size_v2_exports_and_synthesises(tmp_path: Path):
    from examples.random_gpt_sovits import write_random_sovits

    checkpoint = write_random_sovits(tmp_path / "s2_v2_random.pth")
    out = tmp_path / "real"
    ttsopt("export", "--sovits", checkpoint, "--voice", f"fox={FOX}", "-o", out, check=True)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["model_config"]["parameters"] > 38_000_000 and manifest["verification"]["passed"]
    synth = load(out)
    audio = synth.synthesize(np.arange(50), PHONEMES, "fox", seed=0)
    assert audio.size == 50 * 1280 and np.isfinite(audio).all()
    z, ge = synth.latent(np.arange(50), PHONEMES, "fox", seed=0)
    assert snr_db(synth.vocode(z, ge), synth.vocode(z, ge, chunk_frames=10)) >= 90.0


def test_package_runs_without_torch(sovits_package: Path, tokens: Path, tmp_path: Path):
    from tests.test_runtime_without_torch import _run_without_torch

    for args in (["run", str(sovits_package), "--tokens", str(tokens), "--phonemes", PHONEMES, "--voice", "fox",
                  "-o", str(tmp_path / "o.wav")],
                 ["run", str(sovits_package), "--tokens", str(tokens), "--phonemes", PHONEMES, "--reference", str(SPEECH),
                  "-o", str(tmp_path / "r.wav")],
                 ["verify", str(sovits_package), "--plot", str(tmp_path / "v.png")],
                 ["inspect", str(sovits_package)]):
        done = _run_without_torch(f"from ttsopt.cli import app; app({args!r})")
        assert done.returncode == 0, (args, done.stderr)
    assert soundfile.info(tmp_path / "o.wav").frames == 60 * 1280
    # A new voice compared against the original checkpoint needs torch, and says so in one line.
    done = _run_without_torch(f"from ttsopt.cli import app; app({['verify', str(sovits_package), '--reference', str(SPEECH)]!r})")
    assert done.returncode == 2 and "Traceback" not in done.stderr and "ttsopt[build]" in done.stderr, done.stderr
