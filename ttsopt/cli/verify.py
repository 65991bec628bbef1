"""``ttsopt verify``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ttsopt.cli._common import command, fmt, out, progress
from ttsopt.errors import QualityGateError
from ttsopt.runtime.threads import share_thread_pool


@command
def verify(
    package: Annotated[Path, typer.Argument(help="Package directory.")],
    reference: Annotated[list[Path] | None, typer.Option("--reference", help="Recording(s) to resynthesise and compare with.")] = None,
    original: Annotated[Path | None, typer.Option("--original", help="The original checkpoint, to show its own error beside the package's.")] = None,
    original_config: Annotated[Path | None, typer.Option("--original-config", help="config.json of --original (default: beside it).")] = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="Spectrogram comparison PNG (default: PACKAGE-verify.png).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Measure a package against the original model's outputs and reference recordings; exit 1 if a gate fails."""
    share_thread_pool()  # runtime-only command: every session may share one pool
    from ttsopt.verify import verify_package

    plot = plot or package.with_name(f"{package.name}-verify.png")
    with progress("verifying"):
        report = verify_package(package, reference or [], original, original_config, plot)
    if as_json:
        out.print_json(json.dumps(report.to_dict() | {"plot": str(plot)}))
    else:
        _print_verify(report, plot)
    if not report.passed:
        raise QualityGateError("; ".join(g.describe() for g in report.failed))


def _print_verify(report, plot: Path) -> None:
    table = Table(title=f"{report.package}: {report.precision} on {report.target}, against the golden outputs "
                        "(the checkpoint it was exported from)")
    for column in ("item", "output", "SNR dB", "max abs err", "log-mel L1", "MR-STFT", "NaN/Inf"):
        table.add_column(column, justify="right" if column not in ("item", "output") else "left", no_wrap=column == "item")
    for row in report.golden:
        table.add_row(row["item"], row["output"], fmt(row["snr_db"]), fmt(row["max_abs_error"]),
                      fmt(row.get("logmel_l1", "—")), fmt(row.get("mrstft", "—")), str(row["nonfinite"]))
    out.print(table)
    if report.original:
        table = Table(title="golden inputs: package against the --original checkpoint's outputs")
        for column in ("item", "log-mel L1", "MR-STFT"):
            table.add_column(column, justify="left" if column == "item" else "right")
        for row in report.original:
            table.add_row(row["item"], fmt(row["logmel_l1"]), fmt(row["mrstft"]))
        out.print(table)
    if report.references and "package" in report.references[0]:
        table = Table(title="copy synthesis of reference recordings (the vocoder's own error)")
        for column in ("reference", "seconds", "package log-mel L1", "package MCD dB", "original log-mel L1", "original MCD dB"):
            table.add_column(column, justify="left" if column == "reference" else "right")
        for row in report.references:
            original = row.get("original")
            table.add_row(Path(row["reference"]).name, fmt(row["seconds"]), fmt(row["package"]["logmel_l1"]),
                          fmt(row["package"]["mcd_db"]), fmt(original["logmel_l1"]) if original else "—",
                          fmt(original["mcd_db"]) if original else "— (give --original)")
        out.print(table)
    elif report.references:
        table = Table(title="reference recordings as voices: package vs original checkpoint, golden sentence, same noise")
        for column in ("reference", "seconds", "ge SNR dB", "audio SNR dB", "log-mel L1", "MR-STFT", "NaN/Inf"):
            table.add_column(column, justify="left" if column == "reference" else "right")
        for row in report.references:
            table.add_row(Path(row["reference"]).name, fmt(row["seconds"]), fmt(row["ge_snr_db"]), fmt(row["snr_db"]),
                          fmt(row["logmel_l1"]), fmt(row["mrstft"]), str(row["nonfinite"]))
        out.print(table)
    table = Table(title="quality gates")
    for column in ("gate", "value", "limit", "result"):
        table.add_column(column)
    for gate in report.gates:
        table.add_row(gate.name, fmt(gate.value), ("≥ " if gate.bound == "min" else "≤ ") + fmt(gate.limit),
                      "[green]pass[/]" if gate.passed else "[red]FAIL[/]")
    out.print(table)
    out.print(f"spectrogram comparison: {plot}")
    out.print("[green]all gates pass[/]" if report.passed else "[red]quality gate failed[/]")
