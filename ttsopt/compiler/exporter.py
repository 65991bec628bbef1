"""``ttsopt export``: checkpoint → verified package, written atomically.

Pipeline: load (family spec) → golden outputs of the original model → fold → ONNX export + fidelity
check → package files and manifest → verification against the golden outputs in onnxruntime → move
into place.  A package that fails its target's gates is not written.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from pathlib import Path

import numpy as np

from ttsopt.assets import VERIFICATION, bundled_recordings
from ttsopt.audio.io import read_wav
from ttsopt.compiler.cost import count_flops
from ttsopt.compiler.onnx_export import OPSET, export_onnx
from ttsopt.compiler.passes import FP16, PassContext
from ttsopt.compiler.spec import ExportPlan, ExportSources
from ttsopt.compiler.tensorrt import engine_plan
from ttsopt.families import Family
from ttsopt.package import GraphEntry, Manifest, PackageWriter
from ttsopt.package.golden import GOLDEN_FILE, write_golden
from ttsopt.package.manifest import GraphSignature, ModelFacts, json_safe, sha256_file
from ttsopt.package.writer import check_destination
from ttsopt.targets import load_target, resolve_precision
from ttsopt.verify import verify_golden
from ttsopt.versions import tool_versions


def load_verification_speech(sample_rate: int) -> list[tuple[str, np.ndarray]]:
    """(name, waveform) of each bundled recording at ``sample_rate``."""
    return [(path.stem, read_wav(path, sample_rate)) for path in bundled_recordings(VERIFICATION)]


def export_package(family: Family, sources: ExportSources, target: str, out: Path, precision: str | None = None,
                   step: Callable[[str], None] = lambda message: None, replace: bool = False) -> Manifest:
    """Export ``sources`` to the package ``out`` (an existing package there only with ``replace``)."""
    check_destination(out, replace=replace)  # before minutes of loading and tracing
    profile = load_target(target)
    precision = resolve_precision(profile, precision)

    step("loading checkpoint")
    plan: ExportPlan = family.plan(sources, speech=load_verification_speech)
    rate = plan.audio["sample_rate"]

    with PackageWriter(out, replace=replace) as writer:
        for name, payload in plan.files.items():
            if isinstance(payload, Path):
                writer.copy_in(payload, name)
            else:
                writer.path(name).parent.mkdir(parents=True, exist_ok=True)
                writer.path(name).write_bytes(payload)
        step("running the original model on the verification set")
        write_golden(writer.path(GOLDEN_FILE), ((item.name, item.inputs, plan.original[item.graph](item.inputs))
                                                for item in plan.golden))

        graphs: dict[str, GraphEntry] = {}
        fidelity: dict[str, dict] = {}
        conversions: dict[str, dict] = {}
        metadata_props = {"ttsopt.family": plan.family, "ttsopt.task": plan.task, "ttsopt.precision": precision,
                          "ttsopt.target": target, "sample_rate": str(rate), "ttsopt.audio": plan.audio}
        for graph in plan.graphs:
            step(f"exporting graph {graph.name} to ONNX")
            file = f"{graph.name}.onnx"
            fidelity[graph.name] = export_onnx(graph, writer.path(file), metadata_props | {"ttsopt.graph": graph.name})
            if precision == "fp16":
                context = PassContext(graph=graph.name, gates=profile["gates"]["fp16"], step=step,
                                      feeds=[item.inputs for item in plan.golden if item.graph == graph.name])
                conversions[graph.name] = FP16().apply(writer.path(file), writer.path(file), context).to_dict()
            graphs[graph.name] = GraphEntry(file=file, opset=OPSET, **{f.name: getattr(graph, f.name) for f in fields(GraphSignature)})
        cost = {}
        if plan.cost_example is not None:
            module, inputs, seconds = plan.cost_example
            cost["flop_per_audio_second"] = count_flops(module, *inputs) / seconds

        facts = {f.name: getattr(plan, f.name) for f in fields(ModelFacts)}
        facts["source"] = {"checkpoints": {role: str(path.resolve()) for role, path in sources.checkpoints.items()},
                           "sha256": {role: sha256_file(path) for role, path in sources.checkpoints.items()}, **plan.source}
        manifest = Manifest(
            **facts, target=profile, precision=precision, graphs=graphs,
            golden={"file": GOLDEN_FILE, "items": [{"name": i.name, "graph": i.graph} for i in plan.golden]},
            cost=cost, tools=tool_versions(), quantization=conversions,
        )
        manifest.tensorrt = engine_plan(manifest, {graph.name for graph in plan.graphs if graph.translations is not None})
        writer.write_manifest(manifest)

        step("verifying the package against the original's outputs")

        report = verify_golden(writer.scratch)
        manifest.verification = {"export_fidelity": json_safe(fidelity), **report.to_dict()}
        report.require(f"the exported package fails its {precision} gates")
        writer.write_manifest(manifest)
        writer.commit()
    return manifest
