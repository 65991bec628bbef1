"""The text-to-speech benchmark: latency of each stage (prefill, decode, SoVITS, time to first audio, whole
RTF) for a short and a long sentence, the package against the original checkpoints (PyTorch eager, same
KV-cache algorithm) and against its FP32 package, interleaved in one run; and each of the package's stages
against its floor (:mod:`.floors`: FLOP or bytes over this machine's rates, measured in the same run)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from rich.table import Table

from ttsopt.bench.machine import int8_peak_gops_or_note, machine_description, measure_peak_gflops, measure_weight_stream_gbs
from ttsopt.bench.variants import EAGER, FP32_PACKAGE, PACKAGE, fp32_package, load_eager
from ttsopt.families.gpt_sovits import floors
from ttsopt.runtime import load
from ttsopt.runtime.bert import BERT_GRAPH
from ttsopt.runtime.sampling import SamplingParams, generate

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
    #: This machine's rates measured in the run (best before/after the timings): FP32 SGEMM GFLOP/s and the
    #: GB/s at which onnxruntime streams a matrix from memory (None where it could not be measured).
    peak_gflops: float | None = None
    stream_gbs: float | None = None
    #: An INT8 package's: the INT8 convolution peak (GOP/s) its SoVITS stage is also held to (None otherwise).
    int8_peak_gops: float | None = None
    #: Packages with a ``bert`` graph: the Chinese text stages (:mod:`.bench_chinese`), one row per stage and variant.
    chinese: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def render(self) -> list:
        """What ``ttsopt bench`` prints: rich tables and lines (notes are printed by the CLI)."""
        shown: list = []
        machine = self.machine
        table = Table(title=f"text to speech (medians of {self.repeat}, interleaved) on {machine['cpu']}, {machine['cores']} cores")
        for column in ("sentence", "variant", "prefill ms", "decode tokens/s", "SoVITS RTF", "first audio s", "whole RTF",
                       "package speed-up vs this"):
            table.add_column(column, justify="left" if column in ("sentence", "variant") else "right")
        for row in self.rows:
            label = f"{row['sentence']}: {row['phonemes']} phonemes, {row['tokens']} tokens ({row['tokens'] / 25:g} s)"
            for name in (PACKAGE, FP32_PACKAGE, EAGER):
                if name not in row:
                    continue
                r = row[name]
                key = {FP32_PACKAGE: "fp32_package", EAGER: "eager"}.get(name)
                speedup = (f"decode {row[f'decode_speedup_vs_{key}']:.2f}×, SoVITS {row[f'sovits_speedup_vs_{key}']:.2f}×, "
                           f"RTF {row[f'rtf_speedup_vs_{key}']:.2f}×" if key else "")
                table.add_row(label if name == PACKAGE else "", name, f"{r['prefill_ms']:.0f}", f"{r['decode_tokens_per_s']:.1f}",
                              f"{r['sovits_rtf']:.3f}", f"{r['time_to_first_audio_s']:.2f}", f"{r['rtf']:.3f}", speedup)
        shown.append(table)
        if any("floors" in row for row in self.rows):
            shown.append(self._floor_table())
        if self.chinese:
            table = Table(title="Chinese text: BERT, front end, first audio (text → first streamed piece)")
            for column in ("stage", "variant", "runs", "p50 ms", "p95 ms", "peak RSS MB"):
                table.add_column(column, justify="left" if column in ("stage", "variant") else "right")
            for row in self.chinese:
                table.add_row(row["stage"], row["variant"], str(row.get("runs", "—")),
                              f"{row['p50_ms']:.0f}" if "p50_ms" in row else "—", f"{row['p95_ms']:.0f}" if "p95_ms" in row else "—",
                              f"{row['peak_rss_mb']:.0f}" if "peak_rss_mb" in row else "—")
            shown.append(table)
        return shown

    def _floor_table(self) -> Table:
        rates = ([f"FP32 peak {self.peak_gflops:.0f} GFLOP/s"]
                 + ([f"INT8 convolution peak {self.int8_peak_gops:.0f} GOP/s"] if self.int8_peak_gops else [])
                 + ([f"weight stream {self.stream_gbs:.1f} GB/s"] if self.stream_gbs else []))
        table = Table(title=f"the package's stages against their floors ({', '.join(rates)}, measured in this run)")
        for column in ("sentence", "stage", "work", "floor", "package", "% of floor"):
            table.add_column(column, justify="left" if column in ("sentence", "stage") else "right")
        for row in self.rows:
            for index, (stage, floor) in enumerate(row.get("floors", {}).items()):
                table.add_row(row["sentence"] if index == 0 else "", stage, floor["work"], f"{floor['floor']:.3g} {floor['unit']}",
                              f"{floor['package']:.3g} {floor['unit']}", f"{floor['percent']:.0f} %")
        return table


def _tts_request(tts, repeats: int, tokens: int) -> dict:
    """A fixed request: the golden sentence ``repeats`` times, the first voice, ``tokens`` tokens (EOS held off)."""
    golden = tts.package.golden.inputs(tts.package.golden.first("latent"))
    phonemes, ge = golden["phonemes"][0], golden["ge"]
    voice = next((name for name in tts.voices if f"{name}/prompt_tokens" in tts.voice_data), None)
    prompt_tokens, prompt_ids = tts.prompt(voice)
    text = np.tile(phonemes, repeats)
    return {"ids": np.concatenate((prompt_ids, text)), "text": text, "context_frames": tts.context_frames, "prompt": prompt_tokens,
            "sample_rate": tts.sample_rate,
            "ge": tts.voices[voice] if voice else ge,
            "params": SamplingParams(top_k=tts.gpt.default_top_k, max_new_tokens=tokens, eos_suppress_steps=tokens, seed=0)}


def _time_tts(gpt, latent, vocode, request: dict, inter: int) -> dict:
    """One request through (gpt, latent, vocode); seconds of each stage."""
    params = request["params"]
    clock = {}

    def prefill():
        start = time.perf_counter()
        logits = gpt.prefill(request["ids"], None, request["prompt"])  # no reserve: the cache grows, as in `run`
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
    vocode(z[:, :, : FIRST_CHUNK_FRAMES + request["context_frames"]], request["ge"])
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
    tts = load(path)
    inter = tts.inter_channels
    variants = {PACKAGE: _tts_functions(tts)}
    notes = []
    step("loading the original checkpoints for PyTorch eager")
    eager = load_eager(tts.manifest, original, None, notes)
    if eager is not None:
        variants[EAGER] = (eager.gpt, eager.latent, eager.vocode)
    fp32 = fp32_package(tts.manifest, notes)
    fp32_tts = load(fp32) if fp32 is not None else None
    if fp32_tts is not None:
        variants[FP32_PACKAGE] = _tts_functions(fp32_tts)
    requests = {name: _tts_request(tts, repeats, tokens) for name, repeats, tokens in SENTENCES}
    clocks: dict[tuple[str, str], list[dict]] = {(v, s): [] for v in variants for s in requests}
    step("measuring this machine's FP32 peak and memory stream rate")
    peak, stream = measure_peak_gflops(), _stream_gbs(notes)
    for fns in variants.values():  # warm-up
        _time_tts(*fns, requests["short"], inter)
    for r in range(repeat):
        step(f"timing, repetition {r + 1}/{repeat}")
        for sentence, request in requests.items():
            for name, fns in variants.items():
                clocks[(name, sentence)].append(_time_tts(*fns, request, inter))
    peak = max(peak, measure_peak_gflops())  # once more after, in case the machine was busy before
    stream = None if stream is None else max(stream, _stream_gbs(notes))
    int8_peak = int8_peak_gops_or_note(notes) if tts.manifest.precision == "int8" else None
    report = TTSBenchReport(str(path), machine_description(), repeat, notes=notes, peak_gflops=peak, stream_gbs=stream,
                            int8_peak_gops=int8_peak)
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
        row["floors"] = _floors(tts, request, row[PACKAGE], peak, stream, int8_peak)
        report.rows.append(row)
    if BERT_GRAPH in tts.manifest.graphs:
        from ttsopt.families.gpt_sovits.bench_chinese import run_chinese_bench

        report.chinese = run_chinese_bench(tts, fp32_tts, repeat, step)
    return report


def _stream_gbs(notes: list[str]) -> float | None:
    try:
        return measure_weight_stream_gbs()
    except ImportError:  # the probe graph is built with onnx, a build-side dependency
        if not any("decode floor" in note for note in notes):
            notes.append("decode floor not measured: onnx is not installed (pip install 'ttsopt[build]')")
        return None


def _floors(tts, request: dict, measured: dict, peak: float, stream: float | None, int8_peak: float | None = None) -> dict:
    """The package's prefill, decode step and SoVITS against their floors (:mod:`.floors`) at ``peak`` GFLOP/s and
    ``stream`` GB/s. The decode step's K/V bytes are those of the mean filled length over the generation. An INT8
    package's SoVITS stage is also held to ``int8_peak`` GOP/s, all of its arithmetic counted at that rate: its
    generator's convolutions run INT8 and beat the FP32 floor (121-135 % of it on a Zen 5 EPYC), while `latent`
    stays FP32, so this floor is the lower of the two bounds."""
    config = tts.manifest.model_config["gpt"]
    positions = request["ids"].size + (0 if request["prompt"] is None else request["prompt"].size)
    tokens = request["params"].max_new_tokens
    prefill = floors.prefill_flop(config, positions)
    result = {"prefill": {"work": f"{prefill / 1e9:.1f} GFLOP ({positions} positions)", "unit": "ms",
                          "floor": 1e3 * prefill / (peak * 1e9), "package": measured["prefill_ms"]}}
    if stream:
        filled = positions + tokens / 2
        step = floors.step_bytes(tts.package.path / tts.manifest.graphs["gpt_transformer"].file, config, filled)
        result["decode step"] = {"work": f"{step / 1e6:.0f} MB (weights + K/V of {filled:.0f} slots)", "unit": "ms",
                                 "floor": 1e3 * step / (stream * 1e9), "package": 1e3 / measured["decode_tokens_per_s"]}
    flop = tts.manifest.cost.get("flop_per_audio_second")
    if flop:
        result["SoVITS (latent + generator)"] = {"work": f"{flop / 1e9:.1f} GFLOP per audio s", "unit": "RTF",
                                                 "floor": flop / (peak * 1e9), "package": measured["sovits_rtf"]}
        if int8_peak:
            result["SoVITS at the INT8 peak"] = {"work": f"{flop / 1e9:.1f} GOP per audio s", "unit": "RTF",
                                                 "floor": flop / (int8_peak * 1e9), "package": measured["sovits_rtf"]}
    for floor in result.values():
        floor["percent"] = 100.0 * floor["floor"] / floor["package"]
    return result


def _tts_functions(tts) -> tuple:
    """A text-to-speech package as the (gpt, latent, vocode) that :func:`_time_tts` runs."""
    return (tts.gpt, lambda inputs: tts.package.run("latent", inputs)["z"],
            lambda z, ge: tts.package.run("generator", {"z": z, "ge": ge})["audio"].reshape(-1))
