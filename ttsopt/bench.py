"""``ttsopt bench``: real-time factor of a package against PyTorch eager and against the machine's floor.

Everything is measured in one run, because these machines are shared and noisy: the variants are
interleaved (package, eager, package, eager, …) for every length, each repeated, and medians are
reported.  The floor is the package's arithmetic (FLOP per audio second, counted at export) divided
by this machine's FP32 peak measured now with a large SGEMM; "% of floor" = floor RTF / RTF. An INT8
package is also timed against the FP32 package it was quantized from (same run), and against an INT8
floor: the same arithmetic at this machine's INT8 convolution peak (onnxruntime QLinearConv, measured now).
Peak memory is the maximum RSS of a fresh process that loads the variant and synthesises the longest
length once, so variants do not share allocators.
"""

from __future__ import annotations

import functools
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np

from ttsopt.errors import TtsoptError
from ttsopt.hardware import describe_cpu
from ttsopt.runtime import load
from ttsopt.runtime.threads import use_shared_pool

PACKAGE = "package (onnxruntime)"
EAGER = "PyTorch eager FP32"
FP32_PACKAGE = "FP32 package"


@dataclass
class BenchReport:
    package: str
    machine: dict
    peak_gflops: float
    flop_per_audio_second: float | None
    repeat: int
    rows: list[dict] = field(default_factory=list)
    memory_mb: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    int8_peak_gops: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def machine_description() -> dict:
    cpu = describe_cpu()
    versions = {}
    for tool in ("onnxruntime", "torch", "numpy"):
        try:
            versions[tool] = metadata.version(tool)
        except metadata.PackageNotFoundError:
            pass
    return {"cpu": cpu["processor"], "cores": os.cpu_count(), "python": platform.python_version(),
            "features": cpu["features"], **versions}


def measure_peak_int8_gops(channels: int = 256, kernel: int = 7, length: int = 16384, repeat: int = 5) -> float:
    """Best INT8 convolution rate of this machine right now: one large onnxruntime QLinearConv (U8 × S8)."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weight = rng.integers(-127, 128, (channels, channels, kernel), dtype=np.int8)
    scalars = [numpy_helper.from_array(np.array(v, dtype=t), n) for n, v, t in (
        ("xs", 0.02, np.float32), ("xz", 128, np.uint8), ("ws", 0.01, np.float32), ("wz", 0, np.int8),
        ("ys", 0.5, np.float32), ("yz", 128, np.uint8))]
    node = helper.make_node("QLinearConv", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"], ["y"], pads=[kernel // 2] * 2)
    graph = helper.make_graph([node], "int8_peak", [helper.make_tensor_value_info("x", TensorProto.UINT8, [1, channels, length])],
                              [helper.make_tensor_value_info("y", TensorProto.UINT8, [1, channels, length])],
                              [numpy_helper.from_array(weight, "w"), *scalars])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    options = ort.SessionOptions()
    use_shared_pool(options)
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    x = rng.integers(0, 256, (1, channels, length), dtype=np.uint8)
    session.run(None, {"x": x})
    best = min(_timed(lambda: session.run(None, {"x": x})) for _ in range(repeat))
    return 2.0 * channels * channels * kernel * length / best / 1e9


def measure_peak_gflops(size: int = 2048, repeat: int = 5) -> float:
    """Best FP32 SGEMM rate of this machine right now (numpy's BLAS, all cores)."""
    a = np.random.default_rng(0).standard_normal((size, size), dtype=np.float32)
    b = np.random.default_rng(1).standard_normal((size, size), dtype=np.float32)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeat))
    return 2.0 * size**3 / best / 1e9


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


@dataclass
class Workload:
    """What one benchmark length feeds: the input, the audio seconds it makes, and the package's callable
    (the eager variant from the family's ``load_eager`` takes the same input)."""

    inputs: object
    audio_seconds: float


def _speech_mel(vocoder) -> np.ndarray:
    """A real speech mel ``[n_mels, frames]``: the package's first golden input."""
    item = vocoder.manifest.golden["items"][0]["name"]
    with np.load(vocoder.package.path / vocoder.manifest.golden["file"]) as data:
        return data[f"{item}/in/mel"][0]


def _vocoder_workload(vocoder, seconds: float) -> Workload:
    """Real speech: the first golden mel tiled to ``seconds``."""
    hop = vocoder.manifest.audio["mel"]["hop_length"]
    frames = max(1, round(seconds * vocoder.sample_rate / hop))
    mel = _speech_mel(vocoder)
    reps = -(-frames // mel.shape[1])
    return Workload(np.ascontiguousarray(np.tile(mel, (1, reps))[:, :frames][None]), frames * hop / vocoder.sample_rate)


def _sovits_workload(synth, seconds: float) -> Workload:
    """``seconds`` of speech at 25 tokens per second with about 12 phonemes per second (the golden sentence
    repeated), the first golden voice, seeded noise, noise scale 0.5: the decode the runtime does per request."""
    tokens = max(1, round(seconds * int(synth.settings["token_rate_hz"])))
    with np.load(synth.package.path / synth.manifest.golden["file"]) as data:
        item = next(i["name"] for i in synth.manifest.golden["items"] if i["graph"] == "latent")
        phonemes, ge = data[f"{item}/in/phonemes"][0], data[f"{item}/in/ge"]
    count = max(1, min(synth.max_phonemes, round(seconds * 12)))
    rng = np.random.default_rng(0)
    inputs = {"tokens": rng.integers(0, synth.codebook_size, (1, tokens), dtype=np.int64),
              "phonemes": np.resize(phonemes, count)[None], "ge": ge,
              "noise": rng.standard_normal((1, synth.inter_channels, 2 * tokens), dtype=np.float32),
              "noise_scale": np.array([0.5], dtype=np.float32)}
    return Workload(inputs, 2 * tokens * synth.hop / synth.sample_rate)


_WORKLOADS = {"vocoder": (_vocoder_workload, "vocode"), "sovits": (_sovits_workload, "decode")}


def _workload(model, seconds: float) -> tuple[Workload, Callable]:
    make, method = _WORKLOADS[model.manifest.task]
    return make(model, seconds), getattr(model, method)


def run_bench(path: str | Path, seconds: tuple[float, ...] = (1.0, 5.0, 20.0), repeat: int = 5,
              original: Path | None = None, original_config: Path | None = None,
              step: Callable[[str], None] = lambda message: None) -> BenchReport:
    if repeat < 1:
        raise TtsoptError("--repeat must be at least 1")
    model = load(path)
    manifest = model.manifest
    workloads = {}
    for s in seconds:
        workloads[s], package_fn = _workload(model, s)
    variants: dict[str, Callable] = {PACKAGE: package_fn}
    notes = []
    step("loading the original checkpoint for PyTorch eager")
    eager = _load_eager(manifest, original, original_config, notes)
    if eager is not None:
        variants[EAGER] = eager
    fp32_source = manifest.source.get("quantized_from")
    if fp32_source and Path(fp32_source).is_dir():
        variants[FP32_PACKAGE] = _workload(load(fp32_source), seconds[0])[1]
    elif fp32_source:
        notes.append(f"the FP32 package this was quantized from ({fp32_source}) is gone: INT8 vs FP32 not measured")

    step("measuring this machine's FP32 peak")
    peak = measure_peak_gflops()
    flop = manifest.cost.get("flop_per_audio_second")
    inputs = {s: w.inputs for s, w in workloads.items()}
    times: dict[tuple[str, float], list[float]] = {(v, s): [] for v in variants for s in seconds}
    for fn in variants.values():  # warm-up: first calls allocate and plan
        for s in seconds:
            fn(inputs[s])
    for r in range(repeat):
        step(f"timing, repetition {r + 1}/{repeat}")
        for s in seconds:
            for name, fn in variants.items():
                times[(name, s)].append(_timed(functools.partial(fn, inputs[s])))
    peak = max(peak, measure_peak_gflops())  # once more after, in case the machine was busy before
    int8_peak = None
    if manifest.precision == "int8":
        try:
            int8_peak = max(measure_peak_int8_gops(), measure_peak_int8_gops())
        except ImportError:  # the probe graph is built with onnx, a build-side dependency
            notes.append("INT8 floor not measured: onnx is not installed (pip install 'ttsopt[build]')")

    report = BenchReport(str(path), machine_description(), peak, flop, repeat, notes=notes, int8_peak_gops=int8_peak)
    for s in seconds:
        audio_seconds = workloads[s].audio_seconds
        row = {"seconds": s, "audio_seconds": audio_seconds}
        for name in variants:
            row[name] = {"rtf": statistics.median(times[(name, s)]) / audio_seconds,
                         "rtf_all": [t / audio_seconds for t in times[(name, s)]]}
        if EAGER in variants:
            row["speedup_vs_eager"] = row[EAGER]["rtf"] / row[PACKAGE]["rtf"]
        if FP32_PACKAGE in variants:
            row["speedup_vs_fp32_package"] = row[FP32_PACKAGE]["rtf"] / row[PACKAGE]["rtf"]
        if flop:
            row["floor_rtf"] = flop / (peak * 1e9)
            row["percent_of_floor"] = 100.0 * row["floor_rtf"] / row[PACKAGE]["rtf"]
            if int8_peak:
                row["int8_floor_rtf"] = flop / (int8_peak * 1e9)
                row["percent_of_int8_floor"] = 100.0 * row["int8_floor_rtf"] / row[PACKAGE]["rtf"]
        report.rows.append(row)

    step("measuring peak memory in fresh processes")
    for name in (v for v in variants if v != FP32_PACKAGE):
        report.memory_mb[name] = _child_peak_rss_mb(name, Path(path), max(seconds), original, original_config)
    return report


def _load_eager(manifest, original: Path | None, original_config: Path | None, notes: list[str]):
    """The original checkpoint in PyTorch eager, or None with a note saying why it is not measured."""
    try:
        from ttsopt.families import spec_module

        return spec_module(manifest.family).load_eager(manifest, original, original_config)
    except ImportError:
        notes.append("PyTorch eager not measured: torch is not installed (pip install 'ttsopt[build]')")
    except TtsoptError as exc:
        if original is not None:
            raise
        notes.append(f"PyTorch eager not measured: {exc} (pass --original CHECKPOINT)")
    return None


def _child_peak_rss_mb(variant: str, package: Path, seconds: float, original: Path | None,
                       original_config: Path | None) -> float:
    args = [sys.executable, "-m", "ttsopt.bench", variant, str(package), str(seconds),
            str(original or ""), str(original_config or "")]
    done = subprocess.run(args, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise TtsoptError(f"memory measurement of {variant} failed: {done.stderr.strip().splitlines()[-1:]}")
    return float(done.stdout.strip()) / 1024.0


def _child_main(variant: str, package: str, seconds: str, original: str, original_config: str) -> None:
    """Entry of the memory-measuring child: load one variant, synthesise once, print max RSS (KiB)."""
    model = load(package)
    workload, fn = _workload(model, float(seconds))
    if variant != PACKAGE:
        from ttsopt.families import spec_module

        fn = spec_module(model.manifest.family).load_eager(model.manifest, Path(original) if original else None,
                                                         Path(original_config) if original_config else None)
    fn(workload.inputs)
    print(_peak_rss_kib())


def _peak_rss_kib() -> int:
    """This process's own peak RSS. Linux's ``ru_maxrss`` carries the parent's peak across fork/exec,
    so the per-address-space high-water mark (``VmHWM``) is read where it exists."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


if __name__ == "__main__":
    _child_main(*sys.argv[1:6])


# ------------------------------------------------------------------------------------------------------
# Text-to-speech packages (GPT + SoVITS): latency of each stage, package vs eager, same run
# ------------------------------------------------------------------------------------------------------

#: (name, times the golden sentence is repeated, semantic tokens to generate: 25 per second of speech).
SENTENCES = (("short", 1, 100), ("long", 4, 500))
#: Latent frames of the first vocoded chunk (0.5 s): what "time to first audio" waits for.
FIRST_CHUNK_FRAMES = 25


@dataclass
class TTSBenchReport:
    package: str
    machine: dict
    repeat: int
    rows: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _tts_request(tts, repeats: int, tokens: int) -> dict:
    """A fixed request: the golden sentence ``repeats`` times, the first voice, ``tokens`` tokens (EOS held off)."""
    from ttsopt.runtime.sampling import SamplingParams

    with np.load(tts.package.path / tts.manifest.golden["file"]) as data:
        item = next(i["name"] for i in tts.manifest.golden["items"] if i["graph"] == "latent")
        phonemes, ge = data[f"{item}/in/phonemes"][0], data[f"{item}/in/ge"]
    voice = next((name for name in tts.voices if f"{name}/prompt_tokens" in tts.voice_data), None)
    prompt_tokens, prompt_ids = tts.prompt(voice)
    text = np.tile(phonemes, repeats)
    return {"ids": np.concatenate((prompt_ids, text)), "text": text, "prompt": prompt_tokens, "sample_rate": tts.sample_rate,
            "ge": tts.voices[voice] if voice else ge,
            "params": SamplingParams(top_k=tts.gpt.default_top_k, max_new_tokens=tokens, eos_suppress_steps=tokens, seed=0)}


def _time_tts(gpt, latent, vocode, request: dict, inter: int) -> dict:
    """One request through (gpt, latent, vocode); seconds of each stage."""
    from ttsopt.runtime.sampling import generate

    params = request["params"]
    clock = {}

    def prefill():
        start = time.perf_counter()
        logits = gpt.prefill(request["ids"], None, request["prompt"], params.max_new_tokens)
        clock["prefill"] = time.perf_counter() - start
        return logits

    start = time.perf_counter()
    result = generate(prefill, gpt.step, request["prompt"], params)
    clock["gpt"] = time.perf_counter() - start
    tokens = result.tokens[None]
    inputs = {"tokens": tokens, "phonemes": request["text"][None], "ge": request["ge"],
              "noise": np.random.default_rng(0).standard_normal((1, inter, 2 * tokens.shape[1]), dtype=np.float32),
              "noise_scale": np.array([0.5], np.float32)}
    start = time.perf_counter()
    z = latent(inputs)
    clock["latent"] = time.perf_counter() - start
    start = time.perf_counter()
    vocode(z[:, :, : FIRST_CHUNK_FRAMES + 11], request["ge"])
    clock["first_chunk"] = time.perf_counter() - start
    start = time.perf_counter()
    audio = vocode(z, request["ge"])
    clock["generator"] = time.perf_counter() - start
    clock["tokens"] = tokens.shape[1]
    clock["audio_seconds"] = audio.size / request["sample_rate"]
    return clock


def run_tts_bench(path: str | Path, repeat: int = 3, original: Path | None = None,
                  step: Callable[[str], None] = lambda message: None) -> TTSBenchReport:
    """Prefill latency, decode tokens/s, SoVITS RTF, time to first audio and whole RTF for a short and a
    long sentence, the package (onnxruntime) and the original checkpoints (PyTorch eager, same KV-cache
    algorithm) interleaved in one run; medians of ``repeat``."""
    if repeat < 1:
        raise TtsoptError("--repeat must be at least 1")
    tts = load(path)
    inter = tts.inter_channels
    variants = {PACKAGE: _tts_functions(tts)}
    notes = []
    step("loading the original checkpoints for PyTorch eager")
    eager = _load_eager(tts.manifest, original, None, notes)
    if eager is not None:
        variants[EAGER] = (eager.gpt, eager.latent, eager.vocode)
    fp32_source = tts.manifest.source.get("quantized_from")
    if fp32_source and Path(fp32_source).is_dir():
        variants[FP32_PACKAGE] = _tts_functions(load(fp32_source))
    elif fp32_source:
        notes.append(f"the FP32 package this was quantized from ({fp32_source}) is gone: INT8 vs FP32 not measured")
    requests = {name: _tts_request(tts, repeats, tokens) for name, repeats, tokens in SENTENCES}
    clocks: dict[tuple[str, str], list[dict]] = {(v, s): [] for v in variants for s in requests}
    for fns in variants.values():  # warm-up
        _time_tts(*fns, requests["short"], inter)
    for r in range(repeat):
        step(f"timing, repetition {r + 1}/{repeat}")
        for sentence, request in requests.items():
            for name, fns in variants.items():
                clocks[(name, sentence)].append(_time_tts(*fns, request, inter))
    report = TTSBenchReport(str(path), machine_description(), repeat, notes=notes)
    for sentence, request in requests.items():
        prompt = request["prompt"]
        row = {"sentence": sentence, "phonemes": int(request["text"].size), "prompt_tokens": 0 if prompt is None else int(prompt.size),
               "tokens": request["params"].max_new_tokens}
        for name in variants:
            runs = clocks[(name, sentence)]
            med = {key: statistics.median(run[key] for run in runs)
                   for key in ("prefill", "gpt", "latent", "first_chunk", "generator", "audio_seconds")}
            decode = med["gpt"] - med["prefill"]
            row[name] = {"prefill_ms": 1000 * med["prefill"], "decode_tokens_per_s": (row["tokens"] - 1) / decode,
                         "sovits_rtf": (med["latent"] + med["generator"]) / med["audio_seconds"],
                         "time_to_first_audio_s": med["gpt"] + med["latent"] + med["first_chunk"],
                         "rtf": (med["gpt"] + med["latent"] + med["generator"]) / med["audio_seconds"],
                         "audio_seconds": med["audio_seconds"]}
        for name, key in ((EAGER, "eager"), (FP32_PACKAGE, "fp32_package")):
            if name in variants:
                row[f"decode_speedup_vs_{key}"] = row[PACKAGE]["decode_tokens_per_s"] / row[name]["decode_tokens_per_s"]
                row[f"sovits_speedup_vs_{key}"] = row[name]["sovits_rtf"] / row[PACKAGE]["sovits_rtf"]
                row[f"rtf_speedup_vs_{key}"] = row[name]["rtf"] / row[PACKAGE]["rtf"]
        report.rows.append(row)
    return report


def _tts_functions(tts) -> tuple:
    """A text-to-speech package as the (gpt, latent, vocode) that :func:`_time_tts` runs."""
    return (tts.gpt, lambda inputs: tts.package.run("latent", inputs)["z"],
            lambda z, ge: tts.package.run("generator", {"z": z, "ge": ge})["audio"].reshape(-1))
