"""``ttsopt build``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ttsopt.cli._common import command, fmt, out, progress


@command
def build(
    package: Annotated[Path, typer.Argument(help="Package exported for a GPU target (--target t4 / a10g).")],
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Package to write (default: PACKAGE, replaced atomically).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing package at -o.")] = False,
) -> None:
    """Build TensorRT engines for a GPU package on this machine's GPU, verify them against the golden outputs,
    and record GPU, compute capability and TensorRT version."""
    from ttsopt.compiler.tensorrt import build_engines

    with progress("building TensorRT engines") as status:
        manifest = build_engines(package, output or package, step=status.update, replace=force)
    record = manifest.tensorrt
    out.print(f"[green]built[/] {output or package}: {len(record['engines'])} engines, {record['status']}, "
              f"TensorRT {record['tensorrt_version']}; gates: "
              + "; ".join(f"{g['name']} {fmt(g['value'])}" for g in manifest.verification["tensorrt"]["gates"]))
