"""``ttsopt bench``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from ttsopt.cli._common import command, out, progress
from ttsopt.errors import TtsoptError
from ttsopt.runtime.threads import share_thread_pool


@command
def bench(
    package: Annotated[Path, typer.Argument(help="Package directory.")],
    seconds: Annotated[str, typer.Option("--seconds", help="Audio lengths to time, comma-separated.")] = "1,5,20",
    repeat: Annotated[int, typer.Option("--repeat", help="Interleaved repetitions per length (medians reported).")] = 5,
    original: Annotated[Path | None, typer.Option("--original", help="Original checkpoint (default: the one the package was exported from).")] = None,
    original_config: Annotated[Path | None, typer.Option("--original-config", help="config.json of --original.")] = None,
    compare: Annotated[list[Path] | None, typer.Option(
        "--compare", help="Another package of the same model to time in the same run (repeatable), e.g. unpruned FP32/INT8.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Real-time factor of the package vs PyTorch eager and vs this machine's floor, measured in one run."""
    share_thread_pool()  # runtime-only command: every session may share one pool
    from ttsopt.bench import BenchOptions, run_bench

    try:
        lengths = tuple(float(s) for s in seconds.split(",") if s.strip())
    except ValueError:
        raise TtsoptError(f"--seconds must be numbers separated by commas, got {seconds!r}") from None
    if not lengths or min(lengths) <= 0:
        raise TtsoptError("--seconds needs positive lengths")
    for other in compare or []:
        if not (other / "manifest.json").is_file():
            raise TtsoptError(f"--compare {other} is not a ttsopt package: give a package directory")
    options = BenchOptions(lengths, repeat, original, original_config, tuple(compare or ()))
    with progress("benchmarking") as status:
        report = run_bench(package, options, step=lambda m: status.update(m))
    if as_json:
        out.print_json(json.dumps(report.to_dict()))
    else:
        for shown in report.render():
            out.print(shown)
        for note in report.notes:
            out.print(f"[yellow]note:[/] {escape(note)}")
