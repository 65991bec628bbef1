"""``ttsopt quantize``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ttsopt.cli._common import command, fmt, out, progress
from ttsopt.errors import TtsoptError


@command
def quantize(
    package: Annotated[Path, typer.Argument(help="FP32 package directory (from ttsopt export).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="INT8 package directory to write.")],
    int8: Annotated[bool, typer.Option(
        "--int8", help="Quantize to INT8 (the GPT decode step's weights go to INT4 where that passes and is faster).")] = False,
    calib: Annotated[Path | None, typer.Option(
        "--calib", help="Folder of .wav recordings or .npz saved inputs to calibrate on (default: bundled speech).")] = None,
    budget: Annotated[str | None, typer.Option(
        "--budget", help="METRIC=VALUE quality budget: logmel_l1 (default 0.05), greedy_agreement, logits_snr_db, snr_db, bert_snr_db.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing package at -o.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print what was quantized and the quality as JSON.")] = False,
) -> None:
    """INT8 where it fits a quality budget and is faster (convolutions: searched layer by layer, then timed;
    GPT decode: weight-only INT8 or INT4); the package is written only if it passes."""
    from ttsopt.compiler.quantize import parse_budget, quantize_package
    from ttsopt.package.manifest import json_safe
    from ttsopt.package.precision import StaticInt8Record, record_from_dict
    from ttsopt.package.writer import check_destination

    if not int8:
        raise TtsoptError("say which precision: ttsopt quantize PKG --int8 -o OUT")
    limits = parse_budget(budget)
    check_destination(output, replace=force)  # before minutes of calibration
    with progress("quantizing") as status:
        manifest = quantize_package(package, output, limits, calib, step=status.update, replace=force)
    if as_json:
        out.print_json(json.dumps(json_safe({"package": str(output), "quantization": manifest.quantization,
                                             "verification": manifest.verification})))
        return
    records = {name: record_from_dict(data) for name, data in manifest.quantization.items()}
    for name, record in records.items():
        if isinstance(record, StaticInt8Record):
            _print_sensitivity(name, record)
    table = Table(title=f"{output}: INT8 graphs")
    for column in ("graph", "method", "INT8 / FP32 layers", "MB (FP32 → INT8)", "time (FP32 → INT8)", "speed-up"):
        table.add_column(column)
    for name, record in records.items():
        table.add_row(*record.table_row(name))
    out.print(table)
    out.print("gates: " + "; ".join(f"{g['name']} {fmt(g['value'])} ({'pass' if g['passed'] else 'FAIL'})"
                                    for g in manifest.verification["gates"]))


def _print_sensitivity(graph: str, record) -> None:
    """The static INT8 search of one graph: calibration choice, per-layer sensitivity, budget, timing, the gate."""
    calibration = record.calibration
    out.print(f"{graph}: calibration {calibration['chosen']} (all layers INT8, log-mel L1: "
              + ", ".join(f"{k} {v:.3f}" for k, v in calibration["all_layers_logmel_l1"].items()) + ")")
    if record.sensitivity:
        table = Table(title=f"{graph}: sensitivity (log-mel L1 with one layer INT8), most sensitive first")
        for column in ("layer", "log-mel L1", "precision"):
            table.add_column(column)
        for layer, value in sorted(record.sensitivity.items(), key=lambda item: -item[1]):
            table.add_row(layer, f"{value:.4f}", "INT8" if layer in record.quantized_layers else "FP32")
        out.print(table)
    else:
        out.print(f"{graph}: every convolution INT8 fits the budget, so no layer was measured alone")
    budget = record.budget
    out.print(f"search: {budget['fitting_layers']} layers INT8 fit log-mel L1 ≤ {budget['logmel_l1_max']:g} "
              f"(all layers: {budget['all_layers_logmel_l1']:.3f}); timed against FP32 "
              f"({record.seconds['fp32']:.3f} s): "
              + ", ".join(f"{t['layers']} layers {t['seconds']:.3f} s" for t in record.seconds["timed_int8_layers"]))
    for rejected in budget.get("package_gate_rejected", []):
        out.print(f"{graph}: {rejected['layers']} layers INT8 refused by the package's golden gate "
                  f"(log-mel L1 {rejected['value']:.4f} > {budget['logmel_l1_max']:g})")
    if record.kept_fp32:
        out.print(f"{graph} stays FP32: {record.kept_fp32}")
    else:
        out.print(f"{graph}: {len(record.quantized_layers)} layers INT8, search log-mel L1 {budget['search_logmel_l1']:.4f}")
