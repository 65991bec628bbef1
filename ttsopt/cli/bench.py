"""``ttsopt bench``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ttsopt.cli._common import command, out, spinner
from ttsopt.errors import TtsoptError
from ttsopt.runtime.threads import share_thread_pool


@command
def bench(
    package: Annotated[Path, typer.Argument(help="Package directory.")],
    seconds: Annotated[str, typer.Option("--seconds", help="Audio lengths to time, comma-separated.")] = "1,5,20",
    repeat: Annotated[int, typer.Option("--repeat", help="Interleaved repetitions per length (medians reported).")] = 5,
    original: Annotated[Path | None, typer.Option("--original", help="Original checkpoint (default: the one the package was exported from).")] = None,
    original_config: Annotated[Path | None, typer.Option("--original-config", help="config.json of --original.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Real-time factor of the package vs PyTorch eager and vs this machine's floor, measured in one run."""
    share_thread_pool()  # runtime-only command: every session may share one pool
    from ttsopt.bench import BenchOptions, run_bench
    from ttsopt.bench.rtf import BenchReport

    try:
        lengths = tuple(float(s) for s in seconds.split(",") if s.strip())
    except ValueError:
        raise TtsoptError(f"--seconds must be numbers separated by commas, got {seconds!r}") from None
    if not lengths or min(lengths) <= 0:
        raise TtsoptError("--seconds needs positive lengths")
    options = BenchOptions(lengths, repeat, original, original_config)
    with spinner("benchmarking") as status:
        report = run_bench(package, options, step=lambda m: status.update(m))
    if as_json:
        out.print_json(json.dumps(report.to_dict()))
    elif isinstance(report, BenchReport):
        _print_rtf_bench(report)
    else:
        _print_stage_bench(report)


def _print_rtf_bench(report) -> None:
    from ttsopt.bench.variants import EAGER, FP32_PACKAGE, PACKAGE

    machine = report.machine
    int8 = report.int8_peak_gops is not None
    table = Table(title=f"RTF (median of {report.repeat}, interleaved) on {machine['cpu']}, {machine['cores']} cores")
    columns = ["audio", PACKAGE, EAGER, "speed-up vs eager", "floor RTF", "% of floor"]
    if int8:
        columns[3:3] = [FP32_PACKAGE, "speed-up vs FP32 package"]
        columns += ["INT8 floor RTF", "% of INT8 floor"]
    for column in columns:
        table.add_column(column, justify="right")
    for row in report.rows:
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
    out.print(table)
    flop = report.flop_per_audio_second
    out.print(f"floor = {flop / 1e9:.1f} GFLOP per audio second / measured FP32 peak {report.peak_gflops:.0f} GFLOP/s"
              if flop else f"measured FP32 peak {report.peak_gflops:.0f} GFLOP/s (the package records no FLOP count)")
    if int8 and flop:
        out.print(f"INT8 floor = the same arithmetic / measured INT8 convolution peak {report.int8_peak_gops:.0f} GOP/s")
    out.print("CPU features: " + (", ".join(machine["features"]) or "none detected"))
    out.print("peak memory (fresh process, longest length): " +
              ", ".join(f"{name} {mb:.0f} MB" for name, mb in report.memory_mb.items()))
    for note in report.notes:
        out.print(f"[yellow]note:[/] {escape(note)}")


def _print_stage_bench(report) -> None:
    from ttsopt.bench.variants import EAGER, FP32_PACKAGE, PACKAGE

    machine = report.machine
    table = Table(title=f"text to speech (medians of {report.repeat}, interleaved) on {machine['cpu']}, {machine['cores']} cores")
    for column in ("sentence", "variant", "prefill ms", "decode tokens/s", "SoVITS RTF", "first audio s", "whole RTF",
                   "package speed-up vs this"):
        table.add_column(column, justify="left" if column in ("sentence", "variant") else "right")
    for row in report.rows:
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
    out.print(table)
    for note in report.notes:
        out.print(f"[yellow]note:[/] {escape(note)}")
