"""``ttsopt inspect``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ttsopt.cli._common import command, fmt, out


@command
def inspect(
    package: Annotated[Path, typer.Argument(help="Package directory.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the manifest as JSON.")] = False,
) -> None:
    """Show what a package holds: model, audio settings, graphs and their shapes, tools, verification."""
    from ttsopt.package import read_manifest
    from ttsopt.package.precision import record_from_dict

    manifest = read_manifest(package, check_files=True)
    if as_json:
        out.print_json(manifest.to_json())
        return
    mel = manifest.audio.get("mel", {})
    out.print(f"[bold]{package}[/]: {manifest.family} {manifest.task}, target {manifest.target['name']}, "
              f"{manifest.precision}, schema {manifest.schema_version}; all {len(manifest.files)} files match their sha256")
    out.print(f"audio: {manifest.sample_rate} Hz; mel: " + ", ".join(f"{k} {v}" for k, v in mel.items()))
    for role, path in manifest.source["checkpoints"].items():
        out.print(f"source {role}: {path} (sha256 {manifest.source['sha256'][role][:12]}…)")
    table = Table(title="graphs")
    for column in ("graph", "file", "size MB", "inputs", "outputs", "dim ranges (min/opt/max)"):
        table.add_column(column)
    for name, entry in manifest.graphs.items():
        size = (package / entry.file).stat().st_size / 1e6
        table.add_row(name, entry.file, f"{size:.1f}", _describe_tensors(entry.inputs), _describe_tensors(entry.outputs),
                      "\n".join(f"{d}: {r.min}/{r.opt}/{r.max}" for d, r in entry.dims.items()))
    out.print(table)
    voices = manifest.runtime.get("voices")
    if voices is not None:
        out.print("voices: " + (", ".join(f"{name} ({'with' if v.get('prompt') else 'no'} GPT prompt; from {Path(v['source']).name})"
                                          for name, v in voices.items()) or "none (synthesise with --reference ref.wav)"))
    auxiliary = manifest.runtime.get("auxiliary")
    if auxiliary is not None:
        from ttsopt.families.gpt_sovits.pretrained import package_notes

        held = [f"{role} ({Path(facts.get('source', role)).name}"
                + (f", {facts['parameters'] / 1e6:.1f} M parameters" if "parameters" in facts else "")
                + (", not the official file: mixed-language text may split differently" if facts.get("official") is False
                   else "") + ")"
                for role, facts in auxiliary.items() if facts]
        out.print("auxiliary models: " + (", ".join(held) or "none"))
        for note in package_notes(manifest.runtime):
            out.print(f"note: {escape(note)}", highlight=False)
    gates = manifest.verification.get("gates", [])
    if gates:
        out.print("verified at export: " + "; ".join(
            f"{g['name']} {fmt(g['value'])} ({'pass' if g['passed'] else 'FAIL'})" for g in gates))
    if "flop_per_audio_second" in manifest.cost:
        out.print(f"cost: {manifest.cost['flop_per_audio_second'] / 1e9:.1f} GFLOP per audio second")
    for name, record in manifest.quantization.items():
        out.print(f"precision of {name}: {record_from_dict(record).describe()}")
    if manifest.tensorrt:
        profiles = sum(len(p) for p in manifest.tensorrt["profiles"].values())
        out.print(f"TensorRT: {escape(manifest.tensorrt['status'])} ({profiles} optimization profiles over "
                  f"{len(manifest.tensorrt['profiles'])} graphs)")
    out.print("made with " + ", ".join(f"{k} {v}" for k, v in manifest.tools.items()))


def _describe_tensors(specs) -> str:
    """One line per tensor; per-layer KV-cache tensors are summarised as one line."""
    lines = [f"{t.name} {t.dtype} {list(t.shape)}" for t in specs if t.kind != "cache"]
    caches = [t for t in specs if t.kind == "cache"]
    if caches:
        first = caches[0]
        lines.append(f"{first.name} … {caches[-1].name} ({len(caches)}) {first.dtype} {list(first.shape)}")
    return "\n".join(lines)
