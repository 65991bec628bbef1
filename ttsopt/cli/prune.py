"""``ttsopt prune``."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ttsopt.cli._common import command, err, fmt, out, progress
from ttsopt.errors import TtsoptError


def _source(path: Path, config: Path | None) -> tuple[Path, Path | None]:
    """A checkpoint as given, or the checkpoint a package was exported from."""
    if path.is_dir():
        from ttsopt.package.manifest import read_manifest

        if not (path / "manifest.json").is_file():
            raise TtsoptError(f"{path} is a directory but not a ttsopt package: give a checkpoint or a package")
        manifest = read_manifest(path, check_files=False)
        if manifest.family != "hifigan":
            raise TtsoptError(f"ttsopt prune does not support {manifest.family} packages yet (HiFi-GAN V1–V3 only)")
        checkpoint = Path(manifest.source["checkpoints"]["generator"])
        if not checkpoint.is_file():
            raise TtsoptError(f"package {path} was exported from {checkpoint}, which is gone: give the checkpoint itself")
        return checkpoint, config or Path(manifest.source["config"])
    if not path.exists():
        raise TtsoptError(f"{path} does not exist: give a HiFi-GAN checkpoint (generator.pth.tar) or a package made from one")
    return path, config


@command
def prune(
    source: Annotated[Path, typer.Argument(help="HiFi-GAN generator checkpoint (jik876), or a package exported from one.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Directory for the pruned generator.pth.tar + config.json.")],
    ratio: Annotated[str, typer.Option("--ratio", help="Share of channels to remove: 0.25, or per stage: stage1=0.25,stage2=0.3.")] = "0.25",
    scope: Annotated[str, typer.Option("--scope", help="hidden: resblock inner channels only (V1/V2); all: the residual streams too.")] = "hidden",
    budget: Annotated[str | None, typer.Option(
        "--budget", help="Override the target's pruned gates: logmel_l1=VALUE and/or reference_excess=VALUE (comma-separated).")] = None,
    minutes: Annotated[float, typer.Option("--minutes", help="Distil for up to this long after the refit (0: refit only).")] = 0.0,
    data: Annotated[Path | None, typer.Option("--data", help="Folder of .wav speech added to the bundled calibration speech.")] = None,
    target: Annotated[str | None, typer.Option("--target", help="Also export a package (OUT/package) for this target.")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="The checkpoint's config.json (default: beside it).")] = None,
    importance: Annotated[str, typer.Option("--importance", help="auto (measure both, keep the better), magnitude, taylor.")] = "auto",
    lr: Annotated[float | None, typer.Option("--lr", help="Distillation learning rate (default 5e-5).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing prune output at -o.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the pruning record as JSON.")] = False,
) -> None:
    """Structured channel pruning (torch-pruning) with a least-squares refit and optional distillation; written
    only if the pruned model meets the target's 'pruned' gates against the original on held-out speech."""
    from ttsopt.compiler.prune.quality import parse_budget
    from ttsopt.families.hifigan.pruning import PACKAGE_NAME, prune_checkpoint

    checkpoint, config = _source(source, config)
    limits = parse_budget(budget)
    with _progress_bar() as (step, fraction):
        record = prune_checkpoint(
            checkpoint, config, ratio, output, scope=scope, budget=limits, minutes=minutes, data=data, target=target or "cpu",
            export=target is not None, importance=importance, lr=lr, step=step, progress=fraction, replace=force)
    if as_json:
        out.print_json(json.dumps(record))
        return
    _print(record, output, target is not None and output / PACKAGE_NAME)


@contextlib.contextmanager
def _progress_bar() -> Iterator[tuple[Callable[[str], None], Callable[[float, str], None]]]:
    """(step, fraction) callbacks: a bar on a terminal; in a log, a line per step and per minute of distillation."""
    if err.is_terminal:
        with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=err, transient=True) as bar:
            task = bar.add_task("pruning", total=None)
            yield (lambda message: bar.update(task, description=message, total=None),
                   lambda done, text: bar.update(task, description=text, total=1.0, completed=done))
        return
    with progress("pruning") as status:
        last = time.monotonic()

        def fraction(done: float, text: str) -> None:
            nonlocal last
            if time.monotonic() - last >= 60 or done >= 1.0:
                last = time.monotonic()
                status.update(f"{100 * done:.0f} %: {text}")

        yield status.update, fraction


def _print(record: dict, output: Path, package: Path | bool) -> None:
    table = Table(title=f"{output}: pruned ({record['scope']}, importance {record['importance']['chosen']})")
    for column in ("", "original", "pruned", "reduction"):
        table.add_column(column, justify="right")
    flop, params = record["flop_per_audio_second"], record["parameters"]
    table.add_row("GFLOP / audio s", f"{flop['original'] / 1e9:.1f}", f"{flop['pruned'] / 1e9:.1f}", f"{100 * flop['reduction']:.1f} %")
    table.add_row("parameters", f"{params['original'] / 1e6:.2f} M", f"{params['pruned'] / 1e6:.2f} M", f"{100 * params['reduction']:.1f} %")
    for stage, channels in record["output_channels"].items():
        table.add_row(f"{stage} channels ({record['ratios'][stage]:g})", str(channels["before"]), str(channels["after"]),
                      f"{100 * (1 - channels['after'] / channels['before']):.1f} %")
    out.print(table)
    refit = record["refit"]
    out.print(f"refit: {refit['layers']} convs in {refit['seconds']:.0f} s; calibration log-mel L1 {refit['calibration_logmel_l1']:.3f} "
              f"(after pruning: " + ", ".join(f"{k} {v:.3f}" for k, v in record["importance"]["logmel_l1_after_pruning"].items()) + ")")
    if record["distillation"]:
        d = record["distillation"]
        out.print(f"distillation: {d['steps']} steps, {d['minutes']:.1f} min on {d['device']} (best step {d['best_step']}); "
                  f"held-out crops log-mel L1 {d['heldout_logmel_l1_before']:.3f} → {d['heldout_logmel_l1_best']:.3f}")
    quality = Table(title="against the original on held-out speech")
    for column in ("recording", "log-mel L1 vs original", "MR-STFT vs original", "resynthesis log-mel L1 (pruned / original)"):
        quality.add_column(column, justify="right")
    for golden, ref in zip(record["quality"]["golden"], record["quality"]["references"], strict=True):
        quality.add_row(golden["item"], f"{golden['logmel_l1']:.3f}", f"{golden['mrstft']:.3f}",
                        f"{ref['package']['logmel_l1']:.3f} / {ref['original']['logmel_l1']:.3f}")
    out.print(quality)
    out.print("gates: " + "; ".join(f"{g['name']} {fmt(g['value'])} ≤ {g['limit']:g} (pass)" for g in record["quality"]["gates"]))
    out.print(f"[green]wrote[/] {output}" + (f" and package {package}" if package else ""))
