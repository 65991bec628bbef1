"""Precision and targets: static INT8 for the vocoder, FP16 for GPU targets, TensorRT build inputs and fallbacks."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from tests.conftest import V3, assert_one_line_error, save_jik876, ttsopt
from ttsopt.audio.metrics import snr_db
from ttsopt.compiler import fp16, static_int8
from ttsopt.compiler.ort_runs import run_all
from ttsopt.compiler.quantize import calibration_recordings
from ttsopt.compiler.tensorrt import optimization_profiles, tensorrt_available
from ttsopt.hardware import FLAGS, cpu_flags, describe_cpu
from ttsopt.package.manifest import read_manifest
from ttsopt.runtime.engines import engine_problem, profile_for
from ttsopt.runtime.package import Package


@pytest.fixture(scope="module")
def small_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """HiFi-GAN V3 (random weights, 20 convolutions): the search runs in a minute on it, and its convolutions
    are wide enough for INT8 to be measurably faster (narrower ones are not, and stay FP32)."""
    root = tmp_path_factory.mktemp("small")
    checkpoint = save_jik876(root / "ckpt", V3, seed=3)
    out = root / "pkg"
    ttsopt("export", checkpoint, "-o", out, check=True)
    return out


def test_static_int8_search_meets_budget_and_records_it(small_package: Path, tmp_path: Path):
    out = tmp_path / "int8"
    # A budget that not every layer INT8 fits (all of them score ~0.016 on this graph), so the per-layer sweep runs.
    done = ttsopt("quantize", small_package, "--int8", "--budget", "logmel_l1=0.008", "-o", out, "--json")
    assert done.returncode == 0, done.stderr
    manifest = read_manifest(out)
    record = manifest.quantization["vocoder"]
    convs = [n for n in onnx.load(str(small_package / "vocoder.onnx")).graph.node if n.op_type == "Conv"]
    # Every convolution was measured alone; the chosen ones plus the FP32 ones are all of them.
    assert record["budget"]["all_layers_logmel_l1"] > record["budget"]["search_target"]
    assert len(record["sensitivity"]) == len(convs)
    assert sorted(record["quantized_layers"] + record["fp32_layers"]) == sorted(record["sensitivity"])
    assert record["quantized_layers"] and record["budget"]["search_logmel_l1"] <= 0.008
    assert record["calibration"]["chosen"] in record["calibration"]["all_layers_logmel_l1"]
    assert set(record["calibration"]["all_layers_logmel_l1"]) == {"minmax", "percentile-99.99", "percentile-99.999"}
    assert 0 < record["int8_flops_share"] <= 1
    # The kept graph is the timed one the package's gate did not refuse (a refused prefix drops every longer one) that
    # the prefix rule picks (the fastest, or fewer layers within the margin of it), and it beat FP32 by the margin.
    timed = {t["layers"]: t["seconds"] for t in record["seconds"]["timed_int8_layers"]}
    refused = [r["layers"] for r in record["budget"]["package_gate_rejected"]]
    allowed = {layers: seconds for layers, seconds in timed.items() if all(layers < r for r in refused)}
    kept = static_int8.fastest_prefix(record["seconds"]["fp32"], allowed)
    assert record["budget"]["fitting_layers"] in timed and len(record["quantized_layers"]) == kept
    assert record["speedup"] == pytest.approx(record["seconds"]["fp32"] / timed[len(record["quantized_layers"])])
    assert record["speedup"] >= static_int8.MIN_SPEEDUP
    # The graph carries Q/DQ exactly around the chosen layers' weights.
    graph = onnx.load(str(out / "vocoder.onnx")).graph
    dequantized = {n.input[0].removesuffix("_quantized") for n in graph.node if n.op_type == "DequantizeLinear"}
    for layer in record["quantized_layers"]:
        assert f"{layer}.weight" in dequantized
    for layer in record["fp32_layers"]:
        assert f"{layer}.weight" not in dequantized
    gates = {g["name"]: g for g in manifest.verification["gates"]}
    assert gates["golden log-mel L1 (worst)"]["limit"] == 0.008 and all(g["passed"] for g in gates.values())
    assert ttsopt("verify", out).returncode == 0
    shown = ttsopt("inspect", out)
    assert shown.returncode == 0 and f"INT8 {len(record['quantized_layers'])} of {len(convs)} convolutions" in shown.stdout
    wav = tmp_path / "o.wav"
    assert ttsopt("run", out, "--wav", str(Path(__file__).parents[1] / "examples" / "speech.wav"), "-o", wav).returncode == 0


def test_package_gate_backs_off_to_a_shorter_prefix_that_is_still_faster():
    """Step 5 of the INT8 search: a prefix the package's gate refuses drops every longer one; below the shortest
    timed prefix the search halves; what is kept passes the gate and beats FP32 by the margin, else FP32."""
    timed = {40: 0.50, 30: 0.55, 20: 0.60, 10: 0.80}

    def never_timed(layers: int):
        raise AssertionError(f"{layers} layers should not need timing")

    asked: list[int] = []
    size, _ = static_int8.gated_prefix(1.0, dict(timed), lambda n: asked.append(n) or n <= 20, never_timed)
    assert size == 20 and asked == [40, 30, 20]
    asked.clear()
    grown = dict(timed)
    size, fp32 = static_int8.gated_prefix(1.0, grown, lambda n: asked.append(n) or n <= 3, lambda n: (0.98, 0.9))
    assert size == 2 and asked == [40, 30, 20, 10, 5, 2] and grown[2] == 0.9 and fp32 == 0.98
    assert static_int8.gated_prefix(1.0, dict(timed), lambda n: n <= 3, lambda n: (1.0, 0.99))[0] == 0  # passes, not faster
    assert static_int8.gated_prefix(1.0, dict(timed), lambda n: False, lambda n: (1.0, 0.5))[0] == 0   # nothing passes
    assert static_int8.gated_prefix(1.0, {8: 1.2}, never_timed, never_timed)[0] == 0  # INT8 slower: the gate is not asked


def test_fastest_prefix_keeps_fp32_unless_int8_is_clearly_faster():
    assert static_int8.fastest_prefix(1.0, {20: 0.7, 15: 0.6, 10: 0.8}) == 15
    assert static_int8.fastest_prefix(1.0, {20: 1.3, 10: 0.99}) == 0  # within the timing noise: FP32
    assert static_int8.fastest_prefix(1.0, {20: 1.0 / static_int8.MIN_SPEEDUP}) == 20
    assert static_int8.fastest_prefix(0.0, {}) == 0
    # Fewer INT8 layers within the margin of the fastest are kept: the v2ProPlus generator's measured timings.
    assert static_int8.fastest_prefix(1.860, {90: 0.829, 68: 0.844, 45: 1.030, 22: 1.4}) == 68
    assert static_int8.fastest_prefix(1.0, {90: 0.70, 68: 0.80}) == 90


@pytest.mark.parametrize(("costs", "rounds"), [
    ({"fp32": [2.2], "a": [1.0], "b": [1.04]}, 3),  # steady, 4 % apart: settled after 3 rounds
    ({"fp32": [2.2], "a": [1.0, 1.05], "b": [1.04]}, 5),  # a's runs 5 % apart, overlapping b's: the full count
    ({"fp32": [2.2, 2.3], "a": [1.0]}, 5),  # fp32's runs spread over 4.5 %: the full count
])
def test_prefix_timing_stops_once_the_ranking_is_settled(monkeypatch: pytest.MonkeyPatch, costs: dict[str, list[float]],
                                                         rounds: int):
    """The search's timings stop after 3 interleaved rounds when every graph's runs lie within 2 % and no two graphs'
    runs overlap (the order and each median are then known); otherwise at least 5 rounds and 2 s each, as before.
    A fake clock: each graph's runs take its costs in turn (the first, a warm-up, discarded)."""
    from types import SimpleNamespace

    from ttsopt.compiler import ort_runs

    clock = SimpleNamespace(now=0.0)
    runs = dict.fromkeys(costs, 0)

    def session(name: str):
        def run(outputs, feed):
            clock.now += costs[name][runs[name] % len(costs[name])]
            runs[name] += 1
        return SimpleNamespace(run=run)

    monkeypatch.setattr(ort_runs, "session", session)
    monkeypatch.setattr(ort_runs, "time", SimpleNamespace(perf_counter=lambda: clock.now))
    medians = ort_runs.median_seconds(list(costs), {})
    assert set(runs.values()) == {1 + rounds}
    if rounds == 3:
        assert medians == pytest.approx([2.2, 1.0, 1.04])


def test_static_int8_unmeetable_budget_exits_1_and_writes_nothing(small_package: Path, tmp_path: Path):
    out = tmp_path / "int8"
    assert_one_line_error(ttsopt("quantize", small_package, "--int8", "--budget", "logmel_l1=1e-9", "-o", out),
                          "fits the budget", "nothing was written", code=1)
    assert not out.exists()


def test_all_layer_int8_fails_the_default_budget_on_the_real_vocoder(package: Path, tmp_path: Path):
    """The gate catches a deliberately bad setting: every convolution of the real HiFi-GAN in INT8."""
    from ttsopt.compiler.passes.static_int8 import window_axes as _window_axes
    from ttsopt.compiler.quantize import calibration_feeds as _calibration_feeds
    from ttsopt.verify import verify_golden

    manifest = read_manifest(package)
    entry = manifest.graphs["vocoder"]
    feeds = _calibration_feeds(Package(package), ["vocoder"], calibration_recordings(None))["vocoder"]
    axes, _ = _window_axes(entry)
    bad = tmp_path / "all-int8"
    shutil.copytree(package, bad)
    every = [n.name for n in onnx.load(str(package / "vocoder.onnx")).graph.node if n.op_type == "Conv"]
    caches = static_int8.calibrate(package / "vocoder.onnx", static_int8.fixed_windows(feeds, axes, 256), tmp_path, ["minmax"])
    static_int8.quantize_nodes(package / "vocoder.onnx", bad / "vocoder.onnx", every, "minmax", caches["minmax"])
    data = json.loads((bad / "manifest.json").read_text())
    data["precision"] = "int8"
    (bad / "manifest.json").write_text(json.dumps(data))
    report = verify_golden(read_manifest_unchecked(bad))
    failed = {g.name: g.value for g in report.failed}
    assert failed.keys() == {"golden log-mel L1 (worst)"} and failed["golden log-mel L1 (worst)"] > 0.2


def test_equalization_is_exact_in_fp32_and_halves_the_int8_error_of_the_real_vocoder(package: Path, tmp_path: Path):
    """Channel equalization before quantizing, on the real HiFi-GAN's stage 1–2 resblock convolutions
    (63 % of its FLOPs): the same FP32 function, and a much smaller INT8 error for the same layers."""
    from ttsopt.audio.mel import MelSettings
    from ttsopt.audio.metrics import logmel_l1
    from ttsopt.compiler import equalization
    from ttsopt.compiler.passes.static_int8 import window_axes as _window_axes
    from ttsopt.compiler.quantize import calibration_feeds as _calibration_feeds

    manifest = read_manifest(package)
    mel = MelSettings(**manifest.audio["mel"])
    source = package / "vocoder.onnx"
    model = onnx.load(str(source))
    convs = {n.name: n.input[1] for n in model.graph.node if n.op_type == "Conv"}
    stages_1_2 = [name for name, weight in convs.items() if weight.startswith("resblocks.") and int(weight.split(".")[1]) < 6]
    feeds = _calibration_feeds(Package(package), ["vocoder"], calibration_recordings(None))["vocoder"]
    windows = static_int8.fixed_windows(feeds, _window_axes(manifest.graphs["vocoder"])[0], 256)[::2]  # 4 of 8: faster
    with np.load(package / "golden.npz") as golden:
        items = [{"mel": golden[key]} for key in sorted(golden.files) if key.endswith("mel")]
    assert items

    plan = equalization.measure(model, list(convs), windows)
    assert len(plan.chains) == 36  # every conv1 → LeakyReLU → conv2 pair: 4 stages × 3 resblocks × 3
    rewritten = equalization.apply(model, plan, stages_1_2)
    onnx.save(rewritten, str(tmp_path / "equalized.onnx"))
    want = run_all(source, items)
    for before, after in zip(want, run_all(tmp_path / "equalized.onnx", items), strict=True):
        np.testing.assert_allclose(after["audio"], before["audio"], atol=2e-5)

    def int8_error(fp32: Path) -> float:
        caches = static_int8.calibrate(fp32, windows, tmp_path, ["minmax"])  # MinMax: the range equalization narrows
        quantized = tmp_path / "int8.onnx"
        static_int8.quantize_nodes(fp32, quantized, stages_1_2, "minmax", caches["minmax"])
        return max(logmel_l1(w["audio"].reshape(-1), g["audio"].reshape(-1), mel)
                   for w, g in zip(want, run_all(quantized, items), strict=True))

    plain, equalized = int8_error(source), int8_error(tmp_path / "equalized.onnx")
    # Measured with MinMax ranges: 0.096 → 0.045 on a CPU without VNNI (AVX2 only). (With 99.99th-percentile
    # ranges the figures were 0.077 → 0.041 with VNNI, 0.075 → 0.050 without: onnxruntime's U8S8 kernels
    # round differently there; histogram calibration also costs twice the time.)
    assert plain > 0.06 and equalized < 0.055 and equalized < 0.6 * plain, (plain, equalized)


def read_manifest_unchecked(path: Path):
    """A package whose graph was swapped on purpose (its hash no longer matches), opened for verify."""
    from ttsopt.runtime.package import Package

    package = Package.__new__(Package)
    package.path, package.manifest, package._sessions = path, read_manifest(path, check_files=False), {}
    return package


def test_fixed_windows_crop_and_pad():
    feeds = [{"mel": np.arange(2 * 10, dtype=np.float32).reshape(1, 2, 10), "ge": np.ones((1, 3, 1), np.float32)}]
    windows = static_int8.fixed_windows(feeds, {"mel": 2}, 4)
    assert [w["mel"].shape for w in windows] == [(1, 2, 4)] * 3
    assert np.array_equal(windows[2]["mel"][0, 0], [8, 9, 9, 9])  # last piece edge-padded
    assert all(w["ge"] is feeds[0]["ge"] for w in windows)


def test_calibration_inputs_are_checked(tmp_path: Path, small_package: Path):
    assert [p.suffix for p in calibration_recordings(None)] == [".wav"] * 4
    assert_one_line_error(ttsopt("quantize", small_package, "--int8", "--calib", tmp_path, "-o", tmp_path / "o"),
                          "holds no .wav recordings or .npz saved inputs")
    np.savez(tmp_path / "bad.npz", audio=np.zeros(3))
    assert_one_line_error(ttsopt("quantize", small_package, "--int8", "--calib", tmp_path, "-o", tmp_path / "o"),
                          "bad.npz holds ['audio']", "graph vocoder takes ['mel']", "save exactly one graph's inputs")
    assert not (tmp_path / "o").exists()


# --- FP16 -----------------------------------------------------------------------------------------------------------

def _overflowing_graph(path: Path) -> None:
    """y = (x · 3e4) / 3e4 + x: the product overflows FP16 (> 65504) on inputs above 2."""
    nodes = [helper.make_node("Mul", ["x", "big"], ["scaled"], name="scale_up"),
             helper.make_node("Div", ["scaled", "big"], ["back"], name="scale_down"),
             helper.make_node("Add", ["back", "x"], ["y"], name="add")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n"])],
                              [helper.make_tensor("big", TensorProto.FLOAT, [], [3e4])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))


def test_fp16_islands_are_found_by_measured_range(tmp_path: Path):
    source, mixed = tmp_path / "g.onnx", tmp_path / "g16.onnx"
    _overflowing_graph(source)
    feeds = [{"x": np.linspace(-3, 3, 64, dtype=np.float32)}]
    record = fp16.convert(source, mixed, feeds, snr_db_min=35.0)
    # The over-range tensor keeps its producer and its reader in FP32; the rest is FP16.
    assert set(record["fp32_islands"]) == {"scale_up", "scale_down"}
    assert "range" in record["fp32_islands"]["scale_up"] and record["fp16_nodes"] == 1
    (y,) = run_all(mixed, feeds)[0].values()
    assert np.all(np.isfinite(y)) and np.allclose(y, 2 * feeds[0]["x"], atol=1e-2)
    model = onnx.load(str(mixed))
    assert model.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT  # the runtime's contract holds
    # The over-range tensor goes from Mul straight into Div, in FP32: no FP16 round trip between the islands.
    mul = next(n for n in model.graph.node if n.op_type == "Mul")
    div = next(n for n in model.graph.node if n.op_type == "Div")
    assert div.input[0] == mul.output[0] and _types(model)[mul.output[0]] == TensorProto.FLOAT
    # Converted without measurement, the product is an FP16 tensor: 9e4 does not exist in FP16. (onnxruntime's
    # CPU provider would hide it by computing Mul in FP32; a GPU would not.)
    from onnxruntime.transformers.float16 import convert_float_to_float16

    naive = convert_float_to_float16(onnx.load(str(source)), keep_io_types=True)
    product = next(n for n in naive.graph.node if n.op_type == "Mul").output[0]
    assert _types(naive)[product] == TensorProto.FLOAT16 and np.isinf(np.float16(9e4))


def _cancelling_graph(path: Path) -> None:
    """y = relu(x) − 1000 on inputs near 1000: FP16 stores 1000 ± 1 in steps of 0.5, which swamps the signal.
    (Relu runs in FP16 on onnxruntime's CPU provider; Sub, like most ops there, runs through FP32 kernels with the
    Casts around it removed, so only a node with an FP16 kernel shows FP16's rounding on this provider.)"""
    nodes = [helper.make_node("Relu", ["x"], ["positive"], name="rectify"),
             helper.make_node("Sub", ["positive", "offset"], ["y"], name="centre")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n"])],
                              [helper.make_tensor("offset", TensorProto.FLOAT, [], [1000.0])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))


def test_fp16_islands_are_found_by_measured_error(tmp_path: Path):
    """No tensor is out of range, yet the output misses the SNR gate in FP16: the error search moves the node that
    loses the most to FP32 (here the one reading the input: the input's own rounding is charged to it), and the
    output then passes."""
    source, mixed = tmp_path / "g.onnx", tmp_path / "g16.onnx"
    _cancelling_graph(source)
    feeds = [{"x": 1000 + np.linspace(-1, 1, 64, dtype=np.float32)}, {"x": 1000 + np.linspace(0, 0.5, 32, dtype=np.float32)}]
    from onnxruntime.transformers.float16 import convert_float_to_float16

    naive = tmp_path / "naive.onnx"
    onnx.save(convert_float_to_float16(onnx.load(str(source)), keep_io_types=True), str(naive))
    want = feeds[0]["x"] - 1000
    assert snr_db(want, run_all(naive, feeds[:1])[0]["y"]) < 35.0  # FP16 alone fails the gate
    record = fp16.convert(source, mixed, feeds, snr_db_min=35.0)
    assert list(record["fp32_islands"]) == ["rectify"] and record["fp32_islands"]["rectify"].startswith("error")
    assert record["fp16_nodes"] == 1 and record["output_snr_db"] >= 35.0
    for feed, run in zip(feeds, run_all(mixed, feeds), strict=True):
        assert snr_db(feed["x"] - 1000, run["y"]) >= 35.0

def _types(model) -> dict[str, int]:
    inferred = onnx.shape_inference.infer_shapes(model)
    return {info.name: info.type.tensor_type.elem_type for info in (*inferred.graph.value_info, *inferred.graph.output)}


def test_t4_export_is_fp16_verified_and_ready_for_tensorrt(package: Path, universal: Path, tmp_path: Path):
    out = tmp_path / "t4"
    done = ttsopt("export", universal, "--target", "t4", "-o", out)
    assert done.returncode == 0, done.stderr
    assert "TensorRT engines not built" in done.stdout and f"ttsopt build {out}" in done.stdout.replace("\n", "")
    manifest = read_manifest(out)
    assert manifest.precision == "fp16" and manifest.target["name"] == "t4"
    gates = {g["name"]: g for g in manifest.verification["gates"]}
    assert gates["golden SNR dB (worst)"]["value"] >= 35 and gates["NaN/Inf samples"]["value"] == 0
    model = onnx.load(str(out / "vocoder.onnx"))
    assert {i.type.tensor_type.elem_type for i in (*model.graph.input, *model.graph.output)} == {TensorProto.FLOAT}
    halves = sum(init.data_type == TensorProto.FLOAT16 for init in model.graph.initializer)
    assert halves >= 70  # the convolution weights are FP16
    record = manifest.quantization["vocoder"]
    assert record["output_snr_db"] >= 35 and "fp32_islands" in record
    # What `ttsopt build` needs: settings and profiles for every graph, within the declared ranges.
    plan = manifest.tensorrt
    assert plan["settings"]["builder_optimization_level"] == 3 and plan["engines"] == {}
    assert [p["name"] for p in plan["profiles"]["vocoder"]] == ["short", "typical", "long"]
    for profile in plan["profiles"]["vocoder"]:
        low, opt, high = profile["shapes"]["mel"]
        assert low[1] == opt[1] == high[1] == 80 and 1 <= low[2] <= opt[2] <= high[2] <= 8192
    shown = ttsopt("inspect", out)
    assert shown.returncode == 0 and "FP32 islands" in shown.stdout and "3 optimization profiles" in shown.stdout
    # Without engines (and here without CUDA) the package runs on onnxruntime's CPU provider, and says so.
    wav = tmp_path / "o.wav"
    ran = ttsopt("run", out, "--wav", str(Path(__file__).parents[1] / "examples" / "speech.wav"), "-o", wav)
    assert ran.returncode == 0 and "CUDAExecutionProvider" in ran.stderr and "running on ['CPUExecutionProvider']" in ran.stderr


# --- TensorRT inputs and the runtime's choice ----------------------------------------------------------------------

def test_optimization_profiles_split_lengths_and_keep_batch(package: Path):
    entry = read_manifest(package).graphs["vocoder"]
    profiles = optimization_profiles(entry)
    frames = entry.dims["frames"]
    by_name = {p["name"]: p["shapes"]["mel"] for p in profiles}
    assert by_name["short"][2][2] == frames.opt and by_name["long"][0][2] == frames.opt
    assert by_name["long"][2][2] == frames.max and by_name["short"][0][2] == frames.min
    batch = entry.dims["batch"]
    assert by_name["short"][2][0] == by_name["typical"][2][0] == batch.max and by_name["long"][2][0] == batch.opt
    assert profile_for(profiles, {"mel": (1, 80, 40)}) == 0
    assert profile_for(profiles, {"mel": (1, 80, 1000)}) == 1
    assert profile_for(profiles, {"mel": (1, 80, 5000)}) == 2
    assert profile_for(profiles, {"mel": (1, 80, 9000)}) is None


def test_engines_are_used_only_where_they_were_built():
    record = {"engines": {"vocoder": {"file": "engines/vocoder.engine"}}, "tensorrt_version": "11.4.0",
              "gpu": {"name": "Tesla T4", "compute_capability": [7, 5]}, "settings": {"hardware_compatibility": "none"}}
    t4 = {"name": "Tesla T4", "compute_capability": [7, 5]}
    a10g = {"name": "NVIDIA A10G", "compute_capability": [8, 6]}
    assert engine_problem(record, "vocoder", t4, "11.4.0") is None
    assert "TensorRT 11.4.0" in engine_problem(record, "vocoder", t4, "10.13.0")
    assert "sm_75" in engine_problem(record, "vocoder", a10g, "11.4.0")
    assert "not installed" in engine_problem(record, "vocoder", t4, None)
    assert "no NVIDIA GPU" in engine_problem(record, "vocoder", None, "11.4.0")
    assert "no TensorRT engine" in engine_problem(record, "latent", t4, "11.4.0")
    portable = record | {"gpu": a10g, "settings": {"hardware_compatibility": "ampere_plus"}}
    assert engine_problem(portable, "vocoder", {"name": "H100", "compute_capability": [9, 0]}, "11.4.0") is None
    assert "Ampere and later" in engine_problem(portable, "vocoder", t4, "11.4.0")


@pytest.mark.skipif(tensorrt_available() is not None, reason=f"TensorRT engines cannot be built here: {tensorrt_available()}")
def test_build_engines_and_verify_them_on_the_gpu(universal: Path, tmp_path: Path):
    out = tmp_path / "t4"
    ttsopt("export", universal, "--target", "t4", "-o", out, check=True)
    manifest = read_manifest(out)
    assert manifest.tensorrt["engines"] and manifest.tensorrt["gpu"]["compute_capability"]
    assert all(g["passed"] for g in manifest.verification["tensorrt"]["gates"])
    assert (out / "engines" / "timing.cache").is_file()


def test_build_without_tensorrt_says_what_is_missing(package: Path, tmp_path: Path, universal: Path):
    if tensorrt_available() is None:
        pytest.skip("TensorRT is present here: the refusal cannot be observed")
    assert_one_line_error(ttsopt("build", package), "target cpu", "no TensorRT settings")
    t4 = tmp_path / "t4"
    shutil.copytree(package, t4)  # the cheapest GPU package: relabel the CPU one's target, then rebuild its manifest
    data = json.loads((t4 / "manifest.json").read_text())
    data["tensorrt"] = {"settings": {}, "profiles": {}, "engines": {}, "status": "not built"}
    (t4 / "manifest.json").write_text(json.dumps(data))
    assert_one_line_error(ttsopt("build", t4, "-o", tmp_path / "built"), "cannot build TensorRT engines here",
                          "tensorrt is not installed")
    assert not (tmp_path / "built").exists()


def test_cpu_features_are_read_from_the_kernel():
    assert cpu_flags() <= FLAGS.keys()
    described = describe_cpu()
    assert described["int8_dot_product"] in (True, False) and set(described["features"]) <= set(FLAGS.values())


def _conv_graph(path: Path) -> list[str]:
    """x [1, 4, T] → Conv → LeakyRelu → Conv → Conv: a small vocoder-like chain; returns the conv node names."""
    rng = np.random.default_rng(0)
    shapes = {"w1": (8, 4, 3), "w2": (8, 8, 3), "w3": (2, 8, 1)}
    weights = [helper.make_tensor(name, TensorProto.FLOAT, shape, rng.standard_normal(shape).astype(np.float32).ravel())
               for name, shape in shapes.items()]
    biases = [helper.make_tensor(f"b{i}", TensorProto.FLOAT, [shape[0]], rng.standard_normal(shape[0]).astype(np.float32))
              for i, shape in enumerate(shapes.values(), 1)]
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1]),
             helper.make_node("LeakyRelu", ["c1"], ["a1"], name="act", alpha=0.1),
             helper.make_node("Conv", ["a1", "w2", "b2"], ["c2"], name="conv2", pads=[2, 2], dilations=[2]),
             helper.make_node("Conv", ["c2", "w3", "b3"], ["y"], name="conv3")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, "t"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, "t"])], weights + biases)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    return ["conv1", "conv2", "conv3"]


def test_equalization_muls_go_into_the_quantizers_as_per_channel_scales(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The equalization's ``Mul`` beside a QuantizeLinear / DequantizeLinear that ``quantize_static`` added becomes that
    node's per-channel scale (axis 1): no ``Mul`` is left, and the INT8 graph computes what it computed with them, up to
    the odd value rounded to the neighbouring step of an 8-bit grid."""
    from ttsopt.compiler import equalization

    path = tmp_path / "g.onnx"
    convs = _conv_graph(path)  # x → Mul(1/σ) → conv1 → act → conv2 → conv3 → Mul(σ) → y once equalized (chains folded)
    rng = np.random.default_rng(3)
    spread = np.array([0.1, 1.0, 5.0, 20.0], np.float32).reshape(1, 4, 1)
    windows = [{"x": rng.standard_normal((1, 4, 300)).astype(np.float32) * spread} for _ in range(4)]
    model = onnx.load(str(path))
    equalized = tmp_path / "equalized.onnx"
    onnx.save(equalization.apply(model, equalization.measure(model, convs, windows), convs), str(equalized))
    cache = static_int8.calibrate(equalized, windows, tmp_path, ["minmax"])["minmax"]
    folded, kept = tmp_path / "folded.onnx", tmp_path / "kept.onnx"
    static_int8.quantize_nodes(equalized, folded, convs, "minmax", cache)
    monkeypatch.setattr(equalization, "fold_into_qdq", lambda model: 0)
    static_int8.quantize_nodes(equalized, kept, convs, "minmax", cache)

    def activation_axes(graph_path: Path) -> dict[str, int]:
        """Op type → how many Mul, or Q/DQ nodes with per-channel scales on axis 1 (the weights' are on axis 0)."""
        nodes = onnx.load(str(graph_path)).graph.node
        return {"Mul": sum(n.op_type == "Mul" for n in nodes),
                **{op: sum(n.op_type == op and any(a.name == "axis" and a.i == 1 for a in n.attribute) for n in nodes)
                   for op in ("QuantizeLinear", "DequantizeLinear")}}

    assert activation_axes(kept) == {"Mul": 2, "QuantizeLinear": 0, "DequantizeLinear": 0}
    assert activation_axes(folded) == {"Mul": 0, "QuantizeLinear": 1, "DequantizeLinear": 1}
    for with_muls, without in zip(run_all(kept, windows), run_all(folded, windows), strict=True):
        assert snr_db(with_muls["y"], without["y"]) > 40


@pytest.mark.parametrize("group_bytes", [None, 1], ids=["default groups", "a run per tensor"])
def test_streamed_calibration_statistics_equal_the_all_at_once_ones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    group_bytes: int | None):
    """The channel ranges (equalization) and the percentile histograms (onnxruntime's calibrator) are gathered one
    window at a time, a group of tensors per run (quantize's memory); they must be what the whole set at once gives,
    to the bit, however the tensors are grouped."""
    from onnxruntime.quantization import CalibrationMethod, create_calibrator, save_tensors_data

    from ttsopt.compiler import equalization, ort_runs
    from ttsopt.compiler.ort_runs import run_exposing

    if group_bytes is not None:
        monkeypatch.setattr(ort_runs, "GROUP_BYTES", group_bytes)

    path = tmp_path / "g.onnx"
    _conv_graph(path)
    model = onnx.load(str(path))
    rng = np.random.default_rng(1)
    windows = [{"x": (rng.standard_normal((1, 4, 300)) * scale).astype(np.float32)} for scale in (0.5, 3.0, 1.0, 8.0, 0.1)]
    uneven = [{"x": window["x"][:, :, : 300 - 37 * i]} for i, window in enumerate(windows)]
    tensors = ["x", "c1", "a1", "c2", "y"]
    for feeds in (windows, uneven):
        outputs = run_exposing(model, tensors, feeds)
        got = equalization._channel_ranges(model, tensors, feeds)
        for name in tensors:
            pieces = [feed[name] if name in feed else out[name] for feed, out in zip(feeds, outputs, strict=True)]
            channels = np.concatenate([np.moveaxis(p, 1, 0).reshape(p.shape[1], -1) for p in pieces], axis=1)
            np.testing.assert_array_equal(got[name], np.percentile(np.abs(channels), equalization.PERCENTILE, axis=1))
    caches = static_int8.calibrate(path, windows, tmp_path)
    for name in ("percentile-99.99", "percentile-99.999", "minmax"):
        method, percentile = static_int8.CALIBRATIONS[name]
        whole = create_calibrator(path, ["Conv"], augmented_model_path=str(tmp_path / "whole.onnx"),
                                  calibrate_method=getattr(CalibrationMethod, method))
        whole.collect_data(_reader(windows))  # onnxruntime's own, every window at once
        if percentile is not None:
            whole.collector.percentile = percentile
        save_tensors_data(whole.compute_data(), tmp_path / "whole.json")
        assert _bits(json.loads((tmp_path / "whole.json").read_text())) == _bits(json.loads(caches[name].read_text())), name


def test_channel_ranges_of_equal_windows_run_the_graph_once_per_window(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Fixed windows (what equalization measures on) all have the same shapes: each tensor's value count comes from the
    first window's tensor as it arrives, not from a counting run of its own (one more exposed run of the whole graph);
    windows of different lengths still need that counting run. The values: the test above."""
    from ttsopt.compiler import equalization

    path = tmp_path / "g.onnx"
    _conv_graph(path)
    model = onnx.load(str(path))
    rng = np.random.default_rng(3)
    windows = [{"x": rng.standard_normal((1, 4, 200)).astype(np.float32)} for _ in range(3)]
    runs: list[int] = []
    iter_exposing = equalization.iter_exposing

    def counted(model, tensors, feeds):
        for pairs in iter_exposing(model, tensors, feeds):
            runs.append(1)
            yield pairs

    monkeypatch.setattr(equalization, "iter_exposing", counted)
    equalization._channel_ranges(model, ["x", "c1", "y"], windows)
    assert len(runs) == len(windows)
    runs.clear()
    equalization._channel_ranges(model, ["x", "c1", "y"], [windows[0], {"x": windows[1]["x"][:, :, :150]}])
    assert len(runs) == 4


def _reader(feeds: list[dict[str, np.ndarray]]):
    """onnxruntime's :class:`CalibrationDataReader` over a list of feeds."""
    from onnxruntime.quantization import CalibrationDataReader

    class FeedReader(CalibrationDataReader):
        def __init__(self) -> None:
            self._feeds = iter(feeds)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._feeds, None)

    return FeedReader()


def _bits(value):
    """A parsed calibration cache with each float replaced by its IEEE bits: ``==`` on two is equality to the bit
    (-0.0 against 0.0, NaN against NaN), tensor by tensor."""
    if isinstance(value, dict):
        return {key: _bits(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_bits(item) for item in value]
    return struct.pack("<d", value) if isinstance(value, float) else value


def _onnxruntime_minmax_cache(path: Path, windows: list[dict[str, np.ndarray]], cache: Path) -> Path:
    """What ``calibrate`` made with onnxruntime's MinMax calibrator, its own pass over ``windows``."""
    from onnxruntime.quantization import CalibrationMethod, create_calibrator, save_tensors_data

    calibrator = create_calibrator(path, ["Conv"], augmented_model_path=str(cache.with_suffix(".onnx")),
                                   calibrate_method=CalibrationMethod.MinMax)
    calibrator.collect_data(_reader(windows))
    save_tensors_data(calibrator.compute_data(), cache)
    return cache


def test_minmax_cache_from_the_histogram_pass_is_onnxruntimes_to_the_bit(tmp_path: Path):
    """The MinMax cache is made from the histogram pass's own minima and maxima, without onnxruntime's MinMax
    calibrator (a pass of its own): every tensor, every value, dtype and field must be that calibrator's, so that
    ``quantize_static`` writes the same INT8 graph and the search chooses as it did. Here on a graph whose
    convolutions read a ReLU (minima exactly 0) and a LeakyReLU; then the candidates' fate on windows too narrow
    for onnxruntime's histograms (MinMax kept, the percentiles left out, as before) and on no windows (none)."""
    rng = np.random.default_rng(4)
    shapes = {"w1": (8, 4, 3), "w2": (8, 8, 3), "w3": (8, 8, 1), "w4": (2, 8, 3)}
    weights = [helper.make_tensor(name, TensorProto.FLOAT, shape, rng.standard_normal(shape).astype(np.float32).ravel())
               for name, shape in shapes.items()]
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], name="conv1", pads=[1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu"),
             helper.make_node("Conv", ["r1", "w2"], ["c2"], name="conv2", pads=[1, 1]),
             helper.make_node("LeakyRelu", ["c2"], ["a2"], name="leaky", alpha=0.1),
             helper.make_node("Conv", ["a2", "w3"], ["c3"], name="conv3"),
             helper.make_node("Add", ["c3", "c2"], ["s3"], name="residual"),
             helper.make_node("Conv", ["s3", "w4"], ["y"], name="conv4", pads=[1, 1])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, "t"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, "t"])], weights)
    path = tmp_path / "g.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    windows = [{"x": (rng.standard_normal((1, 4, 200)) * scale).astype(np.float32)} for scale in (1.0, 6.0, 0.2)]
    for scratch in ("ours", "narrow", "none"):
        (tmp_path / scratch).mkdir()

    ours = static_int8.calibrate(path, windows, tmp_path / "ours")
    assert list(ours) == list(static_int8.CALIBRATIONS)
    theirs = _onnxruntime_minmax_cache(path, windows, tmp_path / "onnxruntime.json")
    parsed = json.loads(theirs.read_text())
    assert set(parsed["data"]) == {"x", "c1", "r1", "c2", "a2", "c3", "s3", "y"}
    assert parsed["data"]["r1"]["lowest"]["data"] == [0.0]  # not widened, kept at the ReLU's 0
    assert _bits(json.loads(ours["minmax"].read_text())) == _bits(parsed)
    convs = [node.name for node in nodes if node.op_type == "Conv"]
    for name, cache in (("ours", ours["minmax"]), ("theirs", theirs)):
        static_int8.quantize_nodes(path, tmp_path / f"{name}.onnx", convs, "minmax", cache)
    assert (tmp_path / "ours.onnx").read_bytes() == (tmp_path / "theirs.onnx").read_bytes()

    # |x| within a few float32 steps of 1: onnxruntime's histograms cannot make their 2048 bins of that range.
    narrow = [{"x": (1 + rng.integers(0, 4, (1, 4, 200)) * np.float32(2**-23)).astype(np.float32)}]
    caches = static_int8.calibrate(path, narrow, tmp_path / "narrow")
    assert list(caches) == ["minmax"]
    theirs = _onnxruntime_minmax_cache(path, narrow, tmp_path / "narrow-onnxruntime.json")
    assert _bits(json.loads(caches["minmax"].read_text())) == _bits(json.loads(theirs.read_text()))
    assert static_int8.calibrate(path, [], tmp_path / "none") == {}


def test_no_per_layer_sweep_when_every_layer_fits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """When every convolution INT8 already fits the budget, no layer is measured alone (the sweep is one graph run
    per layer: 13 of 29 minutes on the real-size v2ProPlus speaker-verification graph); the timed prefixes take
    the layers by FLOPs, the biggest first, and the record still names every layer."""
    path = tmp_path / "g.onnx"
    nodes = _conv_graph(path)
    rng = np.random.default_rng(2)
    feeds = [{"x": rng.standard_normal((1, 4, 256)).astype(np.float32)} for _ in range(3)]
    scored: list[int] = []

    def score(outputs: list[dict[str, np.ndarray]]) -> float:
        scored.append(len(outputs))
        return 0.0

    built: list[list[str]] = []
    quantize_nodes = static_int8.quantize_nodes
    monkeypatch.setattr(static_int8, "quantize_nodes", lambda src, dst, nodes, *rest: built.append(list(nodes))
                        or quantize_nodes(src, dst, nodes, *rest))
    steps: list[str] = []
    result = static_int8.search(path, tmp_path / "int8.onnx", feeds, feeds[:2], score, 0.05, feeds[0], step=steps.append)
    assert len(scored) == len(result.calibration_scores) and not any(s.startswith("sensitivity") for s in steps)
    assert result.sensitivity == {} and result.layers == ["w1", "w2", "w3"] and result.fitting_layers == len(nodes)
    costs = static_int8.conv_costs(onnx.load(str(path)), feeds[1])
    by_flops = [cost.node for cost in sorted(costs, key=lambda cost: -cost.flops)]
    # Built: every layer once per calibration, then the timed prefixes (3, 2, 1 layers), biggest FLOPs first; the
    # 3-layer prefix is the chosen calibration's all-layer graph, already built: not built again.
    assert built[len(result.calibration_scores):] == [by_flops[:2], by_flops[:1]]


def test_sweep_on_parts_scores_each_layer_as_the_whole_trial_graph(small_package: Path, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch):
    """Step 2 runs only the part of the graph a layer changes, on the FP32 graph's tensors at its edge
    (:class:`static_int8.Sweep`): each layer's score must be the whole trial graph's (equalized for that layer, quantized,
    run whole: what the sweep did before), to float rounding, so the search orders and chooses the same layers, however
    the layers are grouped per FP32 run. HiFi-GAN V3's resblocks are parallel branches summed, with residual adds and
    chains; the parts are smaller."""
    from ttsopt.compiler import equalization
    from ttsopt.compiler.passes.static_int8 import StaticInt8
    from ttsopt.compiler.quantize import calibration_feeds

    package = Package(small_package)
    feeds = calibration_feeds(package, ["vocoder"], calibration_recordings(None))["vocoder"]
    inputs = StaticInt8().search_inputs(package, "vocoder", feeds)
    model = onnx.load(str(small_package / "vocoder.onnx"))
    costs = static_int8.conv_costs(model, inputs.search_feeds[0])
    every = [cost.node for cost in costs]
    windows = inputs.windows[::2]
    plan = equalization.measure(model, every, windows)
    equalized = tmp_path / "equalized.onnx"
    onnx.save(equalization.apply(model, plan, every), str(equalized))
    cache = static_int8.calibrate(equalized, windows, tmp_path, ["percentile-99.99"])["percentile-99.99"]

    def whole(node: str) -> float:
        onnx.save(equalization.apply(model, plan, [node]), str(tmp_path / "subset.onnx"))
        static_int8.quantize_nodes(tmp_path / "subset.onnx", tmp_path / "trial.onnx", [node], "percentile-99.99", cache)
        return inputs.score(run_all(tmp_path / "trial.onnx", inputs.search_feeds))

    def sweep() -> static_int8.Sweep:
        return static_int8.Sweep(model, plan, "percentile-99.99", cache, inputs.search_feeds, inputs.score, tmp_path)

    parts = dict(sweep().scores(every))
    assert list(parts) == every
    before = {node: whole(node) for node in every}
    assert all(value > 0 for value in before.values())  # every layer INT8 alone changes the audio
    np.testing.assert_allclose([parts[node] for node in every], [before[node] for node in every], rtol=1e-4)
    by_ratio = [sorted(costs, key=lambda cost: scores[cost.node] / cost.flops) for scores in (before, parts)]
    assert [cost.node for cost in by_ratio[0]] == [cost.node for cost in by_ratio[1]]
    monkeypatch.setattr(static_int8, "SWEEP_CACHE_BYTES", 1)  # a run of the FP32 graph per layer
    np.testing.assert_allclose([value for _, value in sweep().scores(every[-4:])], [parts[node] for node in every[-4:]],
                               rtol=1e-6)
    sizes = [len(sweep().part(node).nodes) for node in every]
    assert min(sizes) < len(model.graph.node) / 4  # the last layers' parts are a few nodes
