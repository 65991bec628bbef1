"""Verification against the golden outputs stored at export: every graph's outputs on its golden inputs,
in audio terms for audio outputs (SNR, log-mel L1, MR-STFT) and elementwise for the rest, then the checks
the package's family adds (:meth:`Family.golden_checks`). This is what ``export``, ``quantize`` and
``build`` run before they commit a package."""

from __future__ import annotations

from pathlib import Path

from ttsopt.audio.mel import MelSettings
from ttsopt.audio.metrics import golden_metrics, tensor_metrics
from ttsopt.families import get_family
from ttsopt.runtime.package import Package
from ttsopt.verify.report import Gate, VerifyReport


def item_rows(package: Package, item: str, graph_name: str) -> list[dict]:
    """Rows of golden item ``item`` run through ``graph_name`` (its own graph, or one with the same contract that a
    family runs in its place, as the GPT's ``gpt_prefill``): one per output, one for all K/V caches (the worst)."""
    manifest = package.manifest
    mel = MelSettings(**manifest.audio["mel"]) if "mel" in manifest.audio else None
    graph = manifest.graphs[graph_name]
    want = package.golden.outputs(item)
    outputs = package.run(graph_name, package.golden.inputs(item))
    caches = [t.name for t in graph.outputs if t.kind == "cache"]
    rows = []
    for spec in graph.outputs:
        if spec.kind == "cache":
            continue
        metrics = (golden_metrics(want[spec.name], outputs[spec.name], mel) if spec.kind == "audio" and mel is not None
                   else tensor_metrics(want[spec.name], outputs[spec.name]))
        rows.append({"item": item, "graph": graph_name, "output": spec.name, **metrics})
    if caches:
        per_cache = [tensor_metrics(want[name], outputs[name]) for name in caches]
        rows.append({"item": item, "graph": graph_name, "output": f"K/V × {len(caches)}",
                     "snr_db": min(m["snr_db"] for m in per_cache), "max_abs_error": max(m["max_abs_error"] for m in per_cache),
                     "nonfinite": sum(m["nonfinite"] for m in per_cache)})
    return rows


def _check_graphs(package: Package) -> list[dict]:
    golden = package.golden
    rows = []
    last_use = {item["graph"]: index for index, item in enumerate(golden.items)}
    for index, item in enumerate(golden.items):
        rows += item_rows(package, item["name"], item["graph"])
        if last_use[item["graph"]] == index:  # one graph's session at a time (the family's checks make theirs again)
            package.release(item["graph"])
    return rows


def _golden_gates(rows: list[dict], gates: dict[str, float]) -> list[Gate]:
    result = []
    if "snr_db_min" in gates:
        result.append(Gate("golden SNR dB (worst)", min(r["snr_db"] for r in rows), gates["snr_db_min"], "min"))
    audio_rows = [r for r in rows if "logmel_l1" in r]
    if "logmel_l1_max" in gates and audio_rows:
        result.append(Gate("golden log-mel L1 (worst)", max(r["logmel_l1"] for r in audio_rows), gates["logmel_l1_max"], "max"))
    if "nonfinite_max" in gates:
        result.append(Gate("NaN/Inf samples", sum(r["nonfinite"] for r in rows), gates["nonfinite_max"], "max"))
    return result


def verify_golden(package: str | Path | Package) -> VerifyReport:
    """Check a package against its stored golden outputs only (what ``export`` runs before committing)."""
    package = package if isinstance(package, Package) else Package(package)
    rows = _check_graphs(package)
    report = VerifyReport(str(package.path), package.manifest.target["name"], package.manifest.precision,
                          golden=rows, gates=_golden_gates(rows, package.manifest.gates))
    get_family(package.manifest.family).golden_checks(package, report)
    return report
