"""The v4 benchmark: each stage of one request (GPT, ``latent``, the DiT's condition, every Euler step, the vocoder)
for a short and a long utterance at the default 8 steps, the real-time factor by steps (4/8/16/32), and the peak
memory of each variant; the package, the FP32 package it was quantized from and the original in PyTorch eager
(the same files, the same torch-free loop :func:`ttsopt.runtime.cfm.generate`), interleaved in one run.

Why per stage: v4's cost is the DiT, called ``steps`` times per chunk of up to 1000 frames (prompt included), so
the DiT step's share of the whole and the RTF by steps are what say where time goes and what a user can trade.
The SoVITS part runs on seeded tokens of the requested length (25 per second of audio); the GPT generates as
many tokens, EOS held off, from the first stored voice's prompt.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from rich.table import Table

from ttsopt.bench.machine import machine_description
from ttsopt.bench.memory import child_peak_rss_mb
from ttsopt.bench.variants import EAGER, FP32_PACKAGE, PACKAGE, fp32_package, load_eager
from ttsopt.runtime import cfm, load
from ttsopt.runtime.sampling import SamplingParams, generate

#: Audio lengths timed at the default steps when the user gives none (the issue's 4 s and 12 s).
SECONDS = (4.0, 12.0)
#: Phonemes per second of the synthetic utterance (the golden sentence repeated): about read Chinese speech.
PHONEMES_PER_SECOND = 12


@dataclass
class V4Functions:
    """One variant as the stages the benchmark times (``gpt`` None for a SoVITS-only package)."""

    gpt: object | None
    features: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
    condition: cfm.Condition
    step: cfm.Step
    vocode: Callable[[np.ndarray], np.ndarray]


def package_functions(tts) -> V4Functions:
    return V4Functions(getattr(tts, "gpt", None), lambda tokens, ids, ge: tts.features(tokens, ids, ge, 1.0),
                       tts._condition, tts._step, tts.vocode)


def eager_functions(eager) -> V4Functions:
    """:class:`ttsopt.families.gpt_sovits.v4.spec.EagerV4` (and its GPT) as the same stages."""
    import torch

    def features(tokens, ids, ge):
        with torch.inference_mode():
            return eager.model.decode_encp(torch.from_numpy(tokens[None, None]), torch.from_numpy(ids[None]),
                                           torch.from_numpy(ge)).numpy()

    def vocode(mel):
        with torch.inference_mode():
            return eager.vocoder(torch.from_numpy(mel)).numpy().reshape(-1)

    return V4Functions(getattr(eager, "gpt", None), features, eager.condition, eager.step, vocode)


@dataclass
class V4BenchReport:
    package: str
    machine: dict
    repeat: int
    steps: int
    rows: list[dict] = field(default_factory=list)
    by_steps: list[dict] = field(default_factory=list)
    memory_mb: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def render(self) -> list:
        machine = self.machine
        stages = Table(title=f"v4 per stage at {self.steps} steps (medians of {self.repeat}, interleaved) on "
                             f"{machine['cpu']}, {machine['cores']} cores")
        for column in ("audio", "variant", "GPT s", "latent ms", "DiT condition ms", "DiT step ms", "DiT steps",
                       "DiT share", "vocoder s", "whole s", "RTF", "speed-up of the package"):
            stages.add_column(column, justify="left" if column in ("audio", "variant") else "right")
        for row in self.rows:
            for name in (PACKAGE, FP32_PACKAGE, EAGER):
                if name not in row:
                    continue
                r = row[name]
                key = f"speedup_vs_{'eager' if name == EAGER else 'fp32_package'}"
                stages.add_row(f"{row['audio_seconds']:.2f} s ({row['tokens']} tokens, {row['chunks']} chunk(s))" if name == PACKAGE else "",
                               name, "—" if r["gpt_s"] is None else f"{r['gpt_s']:.2f}", f"{r['latent_ms']:.0f}",
                               f"{r['condition_ms']:.0f}", f"{r['dit_step_ms']:.0f}", str(r["dit_steps"]),
                               f"{r['dit_share']:.0%}", f"{r['vocoder_s']:.2f}", f"{r['whole_s']:.2f}", f"{r['rtf']:.2f}",
                               f"{row[key]:.2f}×" if key in row else "")
        shown: list = [stages]
        if self.by_steps:
            steps = Table(title=f"v4 RTF by steps ({PACKAGE}, {self.by_steps[0]['audio_seconds']:.2f} s of audio)")
            for column in ("steps", "DiT s", "SoVITS RTF (no GPT)", "whole RTF", "DiT share"):
                steps.add_column(column, justify="right")
            for row in self.by_steps:
                steps.add_row(str(row["steps"]), f"{row['dit_s']:.2f}", f"{row['sovits_rtf']:.2f}", f"{row['rtf']:.2f}",
                              f"{row['dit_share']:.0%}")
            shown.append(steps)
        if self.memory_mb:
            shown.append("peak memory (fresh process, one synthesis of the longest length, no GPT): " + ", ".join(
                f"{name} {mb:.0f} MB" for name, mb in self.memory_mb.items()))
        return shown


def _request(tts, seconds: float) -> dict:
    """Seeded tokens and phonemes of ``seconds`` of audio, the first stored voice and its GPT prompt (a package that
    stores none: the golden voice, and the GPT without a prompt)."""
    golden = tts.package.golden.inputs(tts.package.golden.first("latent"))
    tokens = max(1, round(seconds * int(tts.settings["token_rate_hz"])))
    phonemes = np.resize(golden["phonemes"][0], max(1, min(tts.max_phonemes, round(seconds * PHONEMES_PER_SECOND))))
    name, voice = tts.bench_voice()
    prompt_tokens, prompt_ids = tts.prompt(name) if hasattr(tts, "gpt") and name else (None, np.zeros(0, np.int64))
    rng = np.random.default_rng(0)
    return {"tokens": rng.integers(0, tts.codebook_size, tokens, dtype=np.int64), "phonemes": phonemes,
            "voice": voice, "gpt_ids": np.concatenate((prompt_ids, phonemes)), "gpt_prompt": prompt_tokens,
            "params": SamplingParams(max_new_tokens=tokens, eos_suppress_steps=tokens, seed=0),
            "mel_bins": tts.mel_bins, "sample_rate": tts.sample_rate, "hop": tts.hop}


def _time_request(fns: V4Functions, request: dict, steps: int, gpt: bool = True) -> dict:
    """One request through ``fns``: seconds of each stage (every DiT step timed)."""
    clock = {"gpt": None, "condition": 0.0, "dit": []}
    if gpt and fns.gpt is not None:
        params = request["params"]
        start = time.perf_counter()
        generate(lambda: fns.gpt.prefill(request["gpt_ids"], None, request["gpt_prompt"], params.max_new_tokens),
                 fns.gpt.step, request["gpt_prompt"], params)
        clock["gpt"] = time.perf_counter() - start
    voice = request["voice"]
    start = time.perf_counter()
    fea = fns.features(request["tokens"], request["phonemes"], voice.ge)
    clock["latent"] = time.perf_counter() - start

    def condition(x):
        begin = time.perf_counter()
        out = fns.condition(x)
        clock["condition"] += time.perf_counter() - begin
        return out

    def step(*arrays):
        begin = time.perf_counter()
        out = fns.step(*arrays)
        clock["dit"].append(time.perf_counter() - begin)
        return out

    rng = np.random.default_rng(1)
    pieces = list(cfm.generate(condition, step, voice.prompt, fea, steps,
                               lambda index, length: rng.standard_normal((1, request["mel_bins"], length), dtype=np.float32)))
    clock["chunks"] = len(pieces)
    start = time.perf_counter()
    audio = fns.vocode(cfm.denormalize(np.concatenate(pieces, axis=2)))
    clock["vocoder"] = time.perf_counter() - start
    clock["audio_seconds"] = audio.size / request["sample_rate"]
    return clock


def _summary(runs: list[dict]) -> dict:
    """Medians of each stage over ``runs``; RTF and the DiT's share of the whole."""
    def med(key):
        return statistics.median(run[key] for run in runs)

    gpt = None if runs[0]["gpt"] is None else med("gpt")
    dit = statistics.median(sum(run["dit"]) for run in runs)
    whole = (gpt or 0.0) + med("latent") + med("condition") + dit + med("vocoder")
    audio = runs[0]["audio_seconds"]
    return {"gpt_s": gpt, "latent_ms": 1000 * med("latent"), "condition_ms": 1000 * med("condition"),
            "dit_step_ms": 1000 * statistics.median(t for run in runs for t in run["dit"]), "dit_steps": len(runs[0]["dit"]),
            "dit_s": dit, "dit_share": dit / whole, "vocoder_s": med("vocoder"), "whole_s": whole,
            "sovits_rtf": (whole - (gpt or 0.0)) / audio, "rtf": whole / audio}


def run_v4_bench(path: str | Path, seconds: tuple[float, ...] | None, repeat: int, original: Path | None,
                 step: Callable[[str], None] = lambda message: None) -> V4BenchReport:
    """Per-stage times at the default steps for each of ``seconds`` (default :data:`SECONDS`), all variants
    interleaved; then the RTF by steps of the package on the shortest length; then peak memory."""
    seconds = seconds or SECONDS
    tts = load(path)
    notes: list[str] = []
    variants = {PACKAGE: package_functions(tts)}
    fp32 = fp32_package(tts.manifest, notes)
    if fp32 is not None:
        variants[FP32_PACKAGE] = package_functions(load(fp32))
    step("loading the original checkpoints for PyTorch eager")
    eager = load_eager(tts.manifest, original, None, notes)
    if eager is not None:
        variants[EAGER] = eager_functions(eager)
    default = tts.default_steps
    requests = {s: _request(tts, s) for s in seconds}
    for fns in variants.values():  # warm-up: sessions, first-call allocations
        _time_request(fns, requests[min(seconds)], cfm.STEP_CHOICES[0])
    clocks: dict[tuple[str, float], list[dict]] = {(v, s): [] for v in variants for s in seconds}
    for r in range(repeat):
        for s, request in requests.items():
            for name, fns in variants.items():
                step(f"timing {s:g} s, {name}, repetition {r + 1}/{repeat}")
                clocks[(name, s)].append(_time_request(fns, request, default))
    report = V4BenchReport(str(path), machine_description(), repeat, default, notes=notes)
    for s, request in requests.items():
        first = clocks[(PACKAGE, s)][0]
        row = {"seconds": s, "audio_seconds": first["audio_seconds"], "tokens": int(request["tokens"].size),
               "chunks": first["chunks"], **{name: _summary(clocks[(name, s)]) for name in variants}}
        for name, key in ((EAGER, "eager"), (FP32_PACKAGE, "fp32_package")):
            if name in variants:
                row[f"speedup_vs_{key}"] = row[name]["whole_s"] / row[PACKAGE]["whole_s"]
        report.rows.append(row)
    shortest = requests[min(seconds)]
    gpt_s = report.rows[0][PACKAGE]["gpt_s"] or 0.0
    by_steps: dict[int, list[dict]] = {n: [] for n in cfm.STEP_CHOICES}
    for r in range(repeat):
        for n in cfm.STEP_CHOICES:
            step(f"timing {n} steps, repetition {r + 1}/{repeat}")
            by_steps[n].append(_time_request(variants[PACKAGE], shortest, n, gpt=False))
    for n, runs in by_steps.items():
        summary = _summary(runs)
        whole = summary["whole_s"] + gpt_s
        report.by_steps.append({"steps": n, "audio_seconds": runs[0]["audio_seconds"], "dit_s": summary["dit_s"],
                                "sovits_rtf": summary["sovits_rtf"], "rtf": whole / runs[0]["audio_seconds"],
                                "dit_share": summary["dit_s"] / whole})
    for name in variants:
        if name == FP32_PACKAGE:
            continue
        step(f"peak memory of {name}")
        report.memory_mb[name] = child_peak_rss_mb(name, Path(path), max(seconds), original, None)
    if fp32 is not None:
        report.memory_mb[FP32_PACKAGE] = child_peak_rss_mb(PACKAGE, fp32, max(seconds), None, None)
    return report
