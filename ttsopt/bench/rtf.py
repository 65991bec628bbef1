"""The default benchmark: real-time factor over audio lengths, against eager, the FP32 package and the floors.

The floor is the package's arithmetic (FLOP per audio second, counted at export) divided by this machine's
FP32 peak measured now; "% of floor" = floor RTF / RTF. An INT8 package is also timed against the FP32
package it was quantized from (same run), and against an INT8 floor: the same arithmetic at this machine's
INT8 convolution peak.
"""

from __future__ import annotations

import functools
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rich.table import Table

from ttsopt.bench.machine import int8_peak_gops_or_note, machine_description, measure_peak_gflops, timed
from ttsopt.bench.memory import child_peak_rss_mb
from ttsopt.bench.variants import EAGER, FP32_PACKAGE, PACKAGE, fp32_package, load_eager
from ttsopt.families.contract import DEFAULT_SECONDS, BenchOptions, Family
from ttsopt.runtime import load


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
    compared: list[str] = field(default_factory=list)
    #: FLOP per audio second of each ``--compare`` package (its manifest's count; None where it records none).
    compared_flop: dict[str, float | None] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    def render(self) -> list:
        """What ``ttsopt bench`` prints: rich tables and lines (notes are printed by the CLI)."""
        shown: list = []
        machine = self.machine
        int8 = self.int8_peak_gops is not None
        table = Table(title=f"RTF (median of {self.repeat}, interleaved) on {machine['cpu']}, {machine['cores']} cores")
        columns = ["audio", PACKAGE, EAGER, "speed-up vs eager", "floor RTF", "% of floor"]
        if int8:
            columns[3:3] = [FP32_PACKAGE, "speed-up vs FP32 package"]
            columns += ["INT8 floor RTF", "% of INT8 floor"]
        for column in columns:
            table.add_column(column, justify="right")
        for row in self.rows:
            eager = row.get(EAGER)
            cells = [f"{row['seconds']:g} s", f"{row[PACKAGE]['rtf']:.3f}", f"{eager['rtf']:.3f}" if eager else "—",
                     f"{row['speedup_vs_eager']:.2f}×" if eager else "—",
                     f"{row['floor_rtf']:.3f}" if "floor_rtf" in row else "—",
                     f"{row['percent_of_floor']:.0f} %" if "percent_of_floor" in row else "—"]
            if int8:
                fp32 = row.get(FP32_PACKAGE)
                cells[3:3] = [f"{fp32['rtf']:.3f}" if fp32 else "—",
                              f"{row['speedup_vs_fp32_package']:.2f}×" if fp32 else "—"]
                cells += [f"{row['int8_floor_rtf']:.3f}" if "int8_floor_rtf" in row else "—",
                          f"{row['percent_of_int8_floor']:.0f} %" if "percent_of_int8_floor" in row else "—"]
            table.add_row(*cells)
        shown.append(table)
        if self.compared:
            other = Table(title="the same run: this package against the --compare packages (RTF; in brackets, its time "
                                "as a multiple of this package's: below 1× it is faster)")
            for column in ("audio", PACKAGE, *self.compared):
                other.add_column(column, justify="right")
            for row in self.rows:
                other.add_row(f"{row['seconds']:g} s", f"{row[PACKAGE]['rtf']:.3f}",
                              *(f"{row[name]['rtf']:.3f} ({row[name]['rtf'] / row[PACKAGE]['rtf']:.2f}×)" for name in self.compared))
            other.add_row("GFLOP / audio s", *(_gflop(flop) for flop in (self.flop_per_audio_second,
                                                                         *(self.compared_flop.get(n) for n in self.compared))))
            shown.append(other)
        flop = self.flop_per_audio_second
        shown.append(f"floor = {flop / 1e9:.1f} GFLOP per audio second / measured FP32 peak {self.peak_gflops:.0f} GFLOP/s"
                  if flop else f"measured FP32 peak {self.peak_gflops:.0f} GFLOP/s (the package records no FLOP count)")
        if int8 and flop:
            shown.append(f"INT8 floor = the same arithmetic / measured INT8 convolution peak {self.int8_peak_gops:.0f} GOP/s")
        shown.append("CPU features: " + (", ".join(machine["features"]) or "none detected"))
        shown.append("peak memory (fresh process, longest length): " +
                  ", ".join(f"{name} {mb:.0f} MB" for name, mb in self.memory_mb.items()))
        return shown


def _gflop(flop: float | None) -> str:
    """GFLOP per audio second as the compare table shows it ("—": a package that records no count)."""
    return f"{flop / 1e9:.1f}" if flop else "—"


def run_rtf_bench(family: Family, path: Path, options: BenchOptions,
                  step: Callable[[str], None] = lambda message: None) -> BenchReport:
    """RTF of the package, the eager original and (for a quantized package) its FP32 package at each of
    ``options.seconds``, interleaved, medians of ``options.repeat``; floors and peak memory beside them."""
    seconds, repeat, original, original_config = (options.seconds or DEFAULT_SECONDS, options.repeat, options.original,
                                                  options.original_config)
    model = load(path)
    manifest = model.manifest
    workloads = {}
    for s in seconds:
        workloads[s], package_fn = family.workload(model, s)
    variants: dict[str, Callable] = {PACKAGE: package_fn}
    notes: list[str] = []
    step("loading the original checkpoint for PyTorch eager")
    eager = load_eager(manifest, original, original_config, notes)
    if eager is not None:
        variants[EAGER] = eager
    fp32 = fp32_package(manifest, notes)
    if fp32 is not None:
        variants[FP32_PACKAGE] = family.workload(load(fp32), seconds[0])[1]
    compared, compared_flop = [], {}
    for other in options.compare:
        name = f"compare: {other}"
        loaded = load(other)
        variants[name] = family.workload(loaded, seconds[0])[1]
        compared.append(name)
        compared_flop[name] = loaded.manifest.cost.get("flop_per_audio_second")

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
                times[(name, s)].append(timed(functools.partial(fn, inputs[s])))
    peak = max(peak, measure_peak_gflops())  # once more after, in case the machine was busy before
    int8_peak = int8_peak_gops_or_note(notes) if manifest.precision == "int8" else None

    report = BenchReport(str(path), machine_description(), peak, flop, repeat, notes=notes, int8_peak_gops=int8_peak,
                         compared=compared, compared_flop=compared_flop)
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
    for name in (v for v in variants if v != FP32_PACKAGE and v not in compared):
        report.memory_mb[name] = child_peak_rss_mb(name, Path(path), max(seconds), original, original_config)
    return report
