"""``ttsopt quantize --int8``: package → INT8 package, gated by measured quality, written atomically.

What is quantized is declared by each family (:meth:`Family.quantization`: graph → precision pass, see
:mod:`ttsopt.compiler.passes`); graphs not listed stay FP32:

- :class:`~ttsopt.compiler.passes.StaticInt8` (convolution graphs: the HiFi-GAN vocoder, the SoVITS
  generator): calibrated QDQ INT8 for the convolutions that fit the log-mel budget, searched layer by layer,
  timed, and held to the package's golden gate in its loop, calibrated on recordings turned into the
  graph's inputs by the family's own front end (:meth:`Family.calibration_feeds`) or on saved inputs (``.npz``).
- :class:`~ttsopt.compiler.passes.WeightOnly` (the GPT decode graph): MatMulNBits INT8 and INT4 weights,
  each verified in the package being written and timed; the fastest that passes is kept.
- :class:`~ttsopt.compiler.passes.MatMulInt8` (RoBERTa, ``bert``; the v4 DiT step): dynamic or weight-only INT8
  MatMuls, each verified in the package being written and timed; kept only if one passes and is faster, else FP32
  (recorded why). With ``made_from`` it makes a graph of its own from one of the package's (the GPT's
  ``gpt_prefill``, dynamic INT8 of ``gpt_transformer``), added to the package only if it is kept.

The result must pass the target's ``int8`` gates, possibly changed by ``--budget``; otherwise nothing is
written and the exit status is 1. The speed-up of every quantized graph is measured and stored.
"""

from __future__ import annotations

import copy
import dataclasses
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ttsopt.assets import CALIBRATION, bundled_recordings
from ttsopt.compiler.onnx_memory import release_memory
from ttsopt.compiler.passes import PassContext, StaticInt8
from ttsopt.errors import QualityGateError, TtsoptError
from ttsopt.families import get_family
from ttsopt.package import PackageWriter
from ttsopt.package.manifest import Manifest
from ttsopt.runtime.package import Package
from ttsopt.targets import load_target
from ttsopt.verify.report import VerifyReport

#: ``--budget`` metric → the gate it sets.
BUDGET_GATES = {"logmel_l1": "logmel_l1_max", "greedy_agreement": "greedy_agreement_min",
                "logits_snr_db": "logits_snr_db_min", "snr_db": "snr_db_min", "bert_snr_db": "bert_snr_db_min"}


def parse_budget(text: str | None) -> dict[str, float]:
    if not text:
        return {}
    metric, sep, value = text.partition("=")
    if not sep or metric not in BUDGET_GATES:
        raise TtsoptError(f"--budget {text!r} must be METRIC=VALUE with METRIC one of {', '.join(BUDGET_GATES)}")
    try:
        return {BUDGET_GATES[metric]: float(value)}
    except ValueError:
        raise TtsoptError(f"--budget {text!r}: {value!r} is not a number") from None



def calibration_recordings(directory: Path | None) -> list[Path]:
    """``.wav`` recordings and ``.npz`` saved inputs of ``directory``, or the bundled calibration speech."""
    if directory is None:
        return bundled_recordings(CALIBRATION)
    if not Path(directory).is_dir():
        raise TtsoptError(f"--calib {directory} is not a directory: give a folder of .wav recordings or .npz saved inputs")
    found = sorted(p for p in Path(directory).iterdir() if p.suffix.lower() in (".wav", ".npz"))
    if not found:
        raise TtsoptError(f"--calib {directory} holds no .wav recordings or .npz saved inputs: add some (10–30 s of speech)")
    return found



def calibration_feeds(package: Package, graphs: Sequence[str], files: list[Path]) -> dict[str, list[dict[str, np.ndarray]]]:
    """Inputs of each of ``graphs`` for the calibration files: recordings through the family's front end once
    (it may run the package's other graphs), each saved input (``.npz``) to the graph whose inputs it holds."""
    from ttsopt.audio.io import read_wav

    manifest = package.manifest
    wavs = [read_wav(p, manifest.sample_rate) for p in files if p.suffix.lower() == ".wav"]
    made = get_family(manifest.family).calibration_feeds(package, wavs) if wavs else {}
    feeds = {graph: list(made.get(graph, [])) for graph in graphs}
    takes = {graph: {spec.name for spec in manifest.graphs[graph].inputs} for graph in graphs}
    for path in (p for p in files if p.suffix.lower() == ".npz"):
        with np.load(path) as saved:
            graph = next((graph for graph, names in takes.items() if set(saved.files) == names), None)
            if graph is None:
                wanted = "; ".join(f"graph {graph} takes {sorted(names)}" for graph, names in takes.items())
                raise TtsoptError(f"{path} holds {sorted(saved.files)}, {wanted}: save exactly one graph's inputs")
            feeds[graph].append({name: saved[name].astype(np.float32) for name in takes[graph]})
    return feeds


def made_from(graph: str, precision_pass) -> str:
    """The FP32 graph ``precision_pass`` converts into ``graph``: itself, or the one it is made from."""
    return getattr(precision_pass, "made_from", None) or graph


def quantize_package(source: Path, out: Path, budget: dict[str, float], calib: Path | None = None,
                     step: Callable[[str], None] = lambda message: None, replace: bool = False) -> Manifest:
    """Write the INT8 package ``out`` of the FP32 package ``source`` (an existing package there only with ``replace``)."""
    from ttsopt.package.writer import check_destination
    from ttsopt.verify import verify_golden

    check_destination(out, replace=replace)

    original = Package(source)
    manifest = copy.deepcopy(original.manifest)  # the INT8 package's; the FP32 package's stays as it is (passes time it)
    if manifest.precision != "fp32":
        raise TtsoptError(f"{source} is already {manifest.precision}: quantize the FP32 package it was made from")
    passes = {name: p for name, p in get_family(manifest.family).quantization().items()
              if made_from(name, p) in manifest.graphs}
    if not passes:
        raise TtsoptError(f"ttsopt quantize --int8 has no INT8 method for the graphs of a {manifest.family} "
                          f"{manifest.task} package: keep the FP32 package")
    profile = load_target(manifest.target["name"])
    if "int8" not in profile["gates"]:
        raise TtsoptError(f"target {profile['name']} has no int8 quality gates: add them to its profile")
    gates = {**profile["gates"]["int8"], **budget}
    calibrated = [name for name, p in passes.items() if isinstance(p, StaticInt8)]
    files = calibration_recordings(calib) if calibrated else []
    feeds = calibration_feeds(original, calibrated, files) if calibrated else {}
    original.release()  # the graphs that made the calibration inputs
    missing = [graph for graph in calibrated if not feeds[graph]]
    if missing:
        raise TtsoptError(f"the calibration files give no inputs for graph {missing[0]} (they are saved inputs of other "
                          f"graphs): add .wav recordings, or saved inputs of {missing[0]}")

    with PackageWriter(out, replace=replace) as writer:
        for relative in manifest.files:
            writer.copy_in(source / relative, relative)
        manifest.precision = "int8"
        manifest.target = {**manifest.target, "gates": {**manifest.target["gates"], "int8": gates}}
        manifest.source = {**manifest.source, "quantized_from": str(Path(source).resolve())}

        def place_in_package(graph: str) -> Callable[[Path], Path]:
            def place(candidate: Path) -> Path:
                shutil.copy2(candidate, writer.path(manifest.graphs[graph].file))
                writer.write_manifest(manifest)
                return writer.scratch
            return place

        def verify_in_package(graph: str) -> Callable[[Path], VerifyReport]:
            def verify(candidate: Path) -> VerifyReport:
                report = verify_golden(Package(place_in_package(graph)(candidate)))
                release_memory()  # the verified package's sessions are gone: give their heap back before the next candidate
                return report
            return verify

        records = {}
        # Passes that verify their candidates in the package being written go last, over the others' results.
        # A graph made from another goes after that graph's own pass (dict order), so it is verified beside its result.
        for name, precision_pass in sorted(passes.items(), key=lambda item: not isinstance(item[1], StaticInt8)):
            step(f"quantizing graph {name} ({precision_pass.name})")
            source_graph = made_from(name, precision_pass)
            if name not in manifest.graphs:  # the same contract as its source, in a file of its own
                manifest.graphs[name] = dataclasses.replace(manifest.graphs[source_graph], file=f"{name}.onnx")
            context = PassContext(graph=name, gates=gates, feeds=feeds.get(name, []), package=original, feed_files=[p.name for p in files],
                                  verify=verify_in_package(name), place=place_in_package(name), step=step)
            records[name] = precision_pass.apply(original.path / manifest.graphs[source_graph].file,
                                                 writer.path(manifest.graphs[name].file), context)
            if not writer.path(manifest.graphs[name].file).exists():  # a made graph that did not pay: left out
                del manifest.graphs[name]
            original.release()  # the FP32 sessions a pass timed against are not the next pass's
            release_memory()
        unchanged = {name: record.kept_fp32 for name, record in records.items() if record.kept_fp32}
        if len(unchanged) == len(records):
            raise QualityGateError("INT8 makes no graph of this package faster (" + "; ".join(
                f"{name}: {why}" for name, why in unchanged.items()) + "): nothing was written; keep the FP32 package")
        writer.write_manifest(manifest)

        step("verifying the INT8 package against the original's outputs")
        report = verify_golden(Package(writer.scratch))
        manifest.quantization = {name: record.to_dict() for name, record in records.items()}
        manifest.verification = report.to_dict()
        report.require("the INT8 package misses its budget")
        writer.write_manifest(manifest)
        writer.commit()
    return manifest
