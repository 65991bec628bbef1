"""The command line as a user meets it: the happy path, the gates, and every bad input."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import soundfile

from tests.conftest import ORACLE, SPEECH, V2, assert_one_line_error, save_jik876, ttsopt
from ttsopt.package.manifest import MANIFEST_NAME, sha256_file


def test_verify_passes_with_reference_and_original(package: Path, universal: Path, tmp_path: Path):
    plot = tmp_path / "compare.png"
    done = ttsopt("verify", package, "--reference", SPEECH, "--original", universal, "--plot", plot, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["passed"] and report["precision"] == "fp32"
    assert min(row["snr_db"] if row["snr_db"] != "inf" else 1e9 for row in report["golden"]) >= 60
    reference = report["references"][0]
    assert 0.1 < reference["package"]["logmel_l1"] < 0.4
    assert reference["original"]["logmel_l1"] == pytest.approx(reference["package"]["logmel_l1"], abs=1e-3)
    assert reference["package"]["mcd_db"] > 0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert {g["name"] for g in report["gates"]} >= {"golden SNR dB (worst)", "reference log-mel L1 excess over original"}


def _corrupt_weights(source: Path, destination: Path, scale: float) -> None:
    """A package whose graph computes something else but whose manifest is consistent (a bad optimisation)."""
    shutil.copytree(source, destination)
    model = onnx.load(str(destination / "vocoder.onnx"))
    conv_weights = [t for t in model.graph.initializer if len(t.dims) == 3]
    weights = onnx.numpy_helper.to_array(conv_weights[10]) * scale
    conv_weights[10].CopyFrom(onnx.numpy_helper.from_array(weights.astype(np.float32), conv_weights[10].name))
    onnx.save(model, str(destination / "vocoder.onnx"))
    manifest = json.loads((destination / MANIFEST_NAME).read_text())
    manifest["files"]["vocoder.onnx"] = sha256_file(destination / "vocoder.onnx")
    (destination / MANIFEST_NAME).write_text(json.dumps(manifest))


def test_verify_fails_a_corrupted_package_with_exit_1(package: Path, tmp_path: Path):
    _corrupt_weights(package, tmp_path / "bad", scale=1.05)
    done = ttsopt("verify", tmp_path / "bad", "--plot", tmp_path / "bad.png")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "FAIL" in done.stdout and "golden SNR dB" in done.stderr


def test_tampered_or_incomplete_package_is_refused(package: Path, tmp_path: Path):
    tampered = tmp_path / "tampered"
    shutil.copytree(package, tampered)
    with open(tampered / "vocoder.onnx", "r+b") as handle:
        handle.seek(1000)
        handle.write(b"\x00\x01\x02")
    assert_one_line_error(ttsopt("run", tampered, "--wav", SPEECH, "-o", tmp_path / "x.wav"),
                          "is damaged", "vocoder.onnx does not match its sha256")
    assert not (tmp_path / "x.wav").exists()
    incomplete = tmp_path / "incomplete"
    shutil.copytree(package, incomplete)
    (incomplete / "golden.npz").unlink()
    assert_one_line_error(ttsopt("verify", incomplete), "is incomplete", "golden.npz is missing")
    (incomplete / MANIFEST_NAME).write_text("{not json")
    assert_one_line_error(ttsopt("inspect", incomplete), "manifest.json is not valid JSON")
    assert_one_line_error(ttsopt("bench", tmp_path), "is not a ttsopt package")


def test_run_wav_and_mel(package: Path, tmp_path: Path):
    out = tmp_path / "out.wav"
    done = ttsopt("run", package, "--wav", SPEECH, "-o", out)
    assert done.returncode == 0, done.stderr
    audio, rate = soundfile.read(out)
    assert rate == 22050 and abs(len(audio) - soundfile.info(SPEECH).frames) < 256 and np.abs(audio).max() > 0.1
    mel = np.load(package / "golden.npz")["fox_en-us/in/mel"][0]
    np.save(tmp_path / "mel.npy", mel)
    assert ttsopt("run", package, "--mel", tmp_path / "mel.npy", "-o", tmp_path / "a.wav").returncode == 0
    np.save(tmp_path / "melT.npy", mel.T)  # [frames, n_mels] is accepted too
    assert ttsopt("run", package, "--mel", tmp_path / "melT.npy", "-o", tmp_path / "b.wav").returncode == 0
    np.testing.assert_array_equal(soundfile.read(tmp_path / "a.wav")[0], soundfile.read(tmp_path / "b.wav")[0])


def test_run_bad_inputs(package: Path, tmp_path: Path):
    np.save(tmp_path / "mel100.npy", np.zeros((100, 50), dtype=np.float32))
    assert_one_line_error(ttsopt("run", package, "--mel", tmp_path / "mel100.npy", "-o", tmp_path / "o.wav"),
                          "has 100 bins", "takes 80")
    empty = tmp_path / "empty.wav"
    soundfile.write(empty, np.zeros(0, dtype=np.float32), 22050)
    assert_one_line_error(ttsopt("run", package, "--wav", empty, "-o", tmp_path / "o.wav"), "has no samples")
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"definitely not audio" * 10)
    assert_one_line_error(ttsopt("run", package, "--wav", garbage, "-o", tmp_path / "o.wav"), "cannot read audio")
    assert_one_line_error(ttsopt("run", package, "--wav", tmp_path / "missing.wav", "-o", tmp_path / "o.wav"),
                          "audio file not found")
    assert_one_line_error(ttsopt("run", package, "-o", tmp_path / "o.wav"), "exactly one of --wav or --mel")
    (tmp_path / "notes.npy").write_text("not an array")
    assert_one_line_error(ttsopt("run", package, "--mel", tmp_path / "notes.npy", "-o", tmp_path / "o.wav"), "is not a .npy file")
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    assert_one_line_error(ttsopt("run", package, "--mel", tmp_path / "objects.npy", "-o", tmp_path / "o.wav"),
                          "holds Python objects")
    assert not (tmp_path / "o.wav").exists()


def test_wrong_sample_rate_is_resampled_and_said(package: Path, tmp_path: Path):
    audio, rate = soundfile.read(SPEECH)
    from ttsopt.audio.io import resample

    low = tmp_path / "speech16k.wav"
    soundfile.write(low, resample(audio.astype(np.float32), rate, 16000), 16000)
    done = ttsopt("run", package, "--wav", low, "-o", tmp_path / "o.wav")
    assert done.returncode == 0 and "resampled to the model's 22050 Hz" in done.stderr
    assert soundfile.info(tmp_path / "o.wav").samplerate == 22050


def test_export_bad_inputs_leave_nothing_behind(tmp_path: Path, universal: Path, hifigan_dir: Path):
    out = tmp_path / "pkg"
    assert_one_line_error(ttsopt("export", universal, "--target", "tpu", "-o", out), "unknown target 'tpu'", "cpu")
    assert_one_line_error(ttsopt("export", universal, "--target", "t4", "--precision", "bf16", "-o", out),
                          "bf16 for target t4 is not implemented", "buildable for t4: fp16")
    v2 = save_jik876(tmp_path / "v2", V2)
    assert_one_line_error(ttsopt("export", v2, "--config", hifigan_dir / "config.json", "-o", out),
                          "does not match checkpoint", "upsample_initial_channel")
    truncated = tmp_path / "truncated.pth.tar"
    truncated.write_bytes(universal.read_bytes()[:1_000_000])
    assert_one_line_error(ttsopt("export", truncated, "--config", hifigan_dir / "config.json", "-o", out),
                          "truncated or corrupt")
    assert_one_line_error(ttsopt("export", tmp_path / "none.pth", "-o", out), "checkpoint not found")
    if ORACLE.is_dir():
        assert_one_line_error(ttsopt("export", ORACLE / "sovits_tiny.pth", "--config", hifigan_dir / "config.json",
                                     "-o", out), "GPT-SoVITS SoVITS")
    assert not out.exists()
    assert list(tmp_path.glob(".pkg*")) == []  # no scratch directory left over


def test_export_replaces_an_existing_package_only_with_force(tmp_path: Path):
    checkpoint = save_jik876(tmp_path / "v2", V2, seed=1)
    out = tmp_path / "pkg"
    done = ttsopt("export", checkpoint, "-o", out, check=True)
    # stderr is a pipe here, as in a log: the steps are lines (a spinner would show nothing)
    assert "loading checkpoint" in done.stderr and "exporting graph vocoder to ONNX" in done.stderr, done.stderr
    first = (out / MANIFEST_NAME).read_text()
    refused = ttsopt("export", checkpoint, "-o", out)
    assert_one_line_error(refused, "already holds a ttsopt package", "--force")
    assert "loading checkpoint" not in refused.stderr and (out / MANIFEST_NAME).read_text() == first
    ttsopt("export", checkpoint, "-o", out, "--force", check=True)  # re-export over it
    assert (out / MANIFEST_NAME).read_text() != first  # new package (new verification figures/timestamps)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pkg", "v2"]
    assert_one_line_error(ttsopt("quantize", out, "--int8", "-o", out), "already holds a ttsopt package", "--force")
    (tmp_path / "not-a-package").mkdir()
    (tmp_path / "not-a-package" / "notes.txt").write_text("mine")
    for args in (("export", checkpoint), ("quantize", out, "--int8")):
        done = ttsopt(*args, "-o", tmp_path / "not-a-package", "--force")
        assert_one_line_error(done, "is not a ttsopt package")
        assert "loading checkpoint" not in done.stderr  # refused before loading and planning
    assert (tmp_path / "not-a-package" / "notes.txt").read_text() == "mine"


def test_sigterm_during_export_removes_the_scratch_directory(tmp_path: Path):
    import signal
    import subprocess
    import sys
    import time

    checkpoint = save_jik876(tmp_path / "v2", V2, seed=2)
    out = tmp_path / "out" / "pkg"
    process = subprocess.Popen([sys.executable, "-m", "ttsopt", "export", checkpoint, "-o", out], cwd=Path(__file__).parents[1],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not list(out.parent.glob(".pkg.ttsopt-*")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process.poll() is None, "the export ended before its scratch directory was seen"
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 128 + signal.SIGTERM and "terminated" in stderr and "Traceback" not in stderr, stderr
    assert list(out.parent.iterdir()) == []


def test_inspect(package: Path):
    done = ttsopt("inspect", package)
    assert done.returncode == 0 and "vocoder.onnx" in done.stdout and "frames: 1/256/8192" in done.stdout
    manifest = json.loads(ttsopt("inspect", package, "--json").stdout)
    assert manifest["family"] == "hifigan"


def test_bench_reports_package_eager_and_floor(package: Path):
    done = ttsopt("bench", package, "--seconds", "0.5,1", "--repeat", "1", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert [row["seconds"] for row in report["rows"]] == [0.5, 1.0]
    for row in report["rows"]:
        assert row["package (onnxruntime)"]["rtf"] > 0 and row["PyTorch eager FP32"]["rtf"] > 0
        assert row["speedup_vs_eager"] > 0 and 0 < row["percent_of_floor"]
    assert report["peak_gflops"] > 0 and set(report["memory_mb"]) == {"package (onnxruntime)", "PyTorch eager FP32"}
    assert_one_line_error(ttsopt("bench", package, "--seconds", "abc"), "--seconds must be numbers")


def _unwritable_places(tmp_path: Path) -> list[Path]:
    """Directories nothing can be written under: below a regular file, in /proc (even for root), and a read-only
    directory where the tests do not run as root (root writes there anyway)."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    places = [blocker]
    if Path("/proc/self").is_dir():
        places.append(Path("/proc"))
    if os.geteuid() != 0:
        locked = tmp_path / "read-only"
        locked.mkdir()
        locked.chmod(0o555)
        places.append(locked)
    return places


def test_unwritable_output_is_refused_before_any_work(package: Path, universal: Path, tmp_path: Path):
    for place in _unwritable_places(tmp_path):
        for args in (("export", universal, "-o", place / "pkg"), ("quantize", package, "--int8", "-o", place / "pkg"),
                     ("prune", universal, "-o", place / "pruned"), ("run", package, "--wav", SPEECH, "-o", place / "x.wav")):
            done = ttsopt(*args)
            assert_one_line_error(done, "cannot write", "choose another -o")
            assert "loading checkpoint" not in done.stderr and "quantizing" not in done.stderr, done.stderr


def test_run_writes_the_formats_soundfile_writes_and_checks_the_name_first(package: Path, tmp_path: Path):
    suffixes = [".flac", ".ogg"] + ([".mp3"] if "MP3" in soundfile.available_formats() else [])
    for suffix in suffixes:
        out = tmp_path / f"out{suffix}"
        done = ttsopt("run", package, "--wav", SPEECH, "-o", out)
        assert done.returncode == 0, done.stderr
        audio, rate = soundfile.read(out)
        assert rate == 22050 and abs(len(audio) - soundfile.info(SPEECH).frames) < 2048 and np.abs(audio).max() > 0.1
    for name, fragments in (("out", ("no extension", ".wav")), ("out.xyz", ("extension .xyz", ".flac")),
                            ("out.opus", ("Opus", "22050 Hz", "choose another format"))):
        assert_one_line_error(ttsopt("run", package, "--wav", SPEECH, "-o", tmp_path / name), *fragments)
        assert not (tmp_path / name).exists()
    (tmp_path / "adir").mkdir()
    assert_one_line_error(ttsopt("run", package, "--wav", SPEECH, "-o", tmp_path / "adir"), "no extension")


def test_help_keeps_bracketed_words():
    assert "[n_mels, frames]" in " ".join(ttsopt("run", "--help").stdout.split())
    assert "ttsopt[cluster]" in " ".join(ttsopt("serve", "--help").stdout.split())


def test_tables_are_not_cut_when_stdout_is_a_log(package: Path):
    done = ttsopt("inspect", package, env={"COLUMNS": ""})  # no COLUMNS: what a log or CI sees
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()  # every cell whole, on one line: rich would cut the table at 80 columns
    assert any("dim ranges (min/opt/max)" in line for line in lines), done.stdout
    assert any("mel float32 ['batch', 80, 'frames']" in line and "audio float32" in line for line in lines), done.stdout


def test_scratch_of_dead_processes_is_removed_and_live_ones_kept(tmp_path: Path):
    import subprocess
    import sys

    from ttsopt.package.writer import scratch_directory

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = tmp_path / f".pkg.ttsopt-{int(gone.stdout)}-abcd1234"
    (dead / "graph.onnx").parent.mkdir()
    (dead / "graph.onnx").write_bytes(b"\0" * 1000)
    old = tmp_path / f".other.ttsopt-{int(gone.stdout)}-old"  # a replaced package whose removal was cut short
    old.mkdir()
    live = tmp_path / f".pkg.ttsopt-{os.getppid()}-efgh5678"  # pytest's parent: alive
    live.mkdir()
    mine = tmp_path / ".pkg.tmp-keep"  # not ttsopt's name: never touched
    mine.mkdir()
    scratch = scratch_directory(tmp_path / "pkg")
    assert not dead.exists() and not old.exists() and live.is_dir() and mine.is_dir() and scratch.is_dir()
    assert scratch.name.startswith(f".pkg.ttsopt-{os.getpid()}-")
