"""Static INT8 for convolution graphs: the layer search of :mod:`ttsopt.compiler.static_int8`, scored in
log-mel terms on the calibration recordings and held to the package's golden gate in its loop. A graph whose
outputs are not audio (a speaker embedding) is scored by the speech its outputs make (the family's ``speech``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ttsopt.audio.mel import MelSettings
from ttsopt.audio.metrics import LogMelReference
from ttsopt.compiler.passes.base import PassContext
from ttsopt.errors import QualityGateError, TtsoptError
from ttsopt.package.precision import StaticInt8Record

if TYPE_CHECKING:
    from ttsopt.runtime.package import Package

#: A graph's outputs → the waveforms they are scored by.
Speech = Callable[[dict[str, np.ndarray]], list[np.ndarray]]

#: How many calibration recordings score the layer search, and their length cap (frames of the time dim).
SEARCH_UTTERANCES = 2
SEARCH_FRAMES = 256
#: The search aims this far inside the budget, so that the verification set (other sentences and voices
#: than the search's) lands inside it too; the package's gate in the loop catches what the margin misses.
SEARCH_MARGIN = 0.9


def window_axes(entry) -> tuple[dict[str, int], str]:
    """The inputs' time axis: the one symbolic dim besides ``batch`` that they share."""
    axes, dims = {}, set()
    for spec in entry.inputs:
        for axis, dim in enumerate(spec.shape):
            if isinstance(dim, str) and dim != "batch":
                axes[spec.name] = axis
                dims.add(dim)
    if len(dims) != 1:
        raise TtsoptError(f"static INT8 needs one time dim shared by the inputs, found {sorted(dims)}")
    return axes, dims.pop()


def audio_outputs(graph: str, entry) -> Speech:
    """The graph's own audio outputs (a vocoder, a generator)."""
    names = [spec.name for spec in entry.outputs if spec.kind == "audio"]
    if not names:
        raise TtsoptError(f"static INT8 is scored in log-mel terms, but graph {graph} has no audio output "
                          "and its family gives no speech for it")
    return lambda outputs: [outputs[name] for name in names]


def references(speeches: list[list[np.ndarray]], mel: MelSettings) -> list[list[LogMelReference]]:
    """Each waveform of each feed's speech as a scoring reference, its log-mel computed once."""
    return [[LogMelReference(wave.reshape(-1), mel) for wave in waves] for waves in speeches]


@dataclass(frozen=True)
class SearchInputs:
    """What the layer search of one graph runs on (:meth:`StaticInt8.search_inputs`)."""

    windows: list[dict[str, np.ndarray]]
    search_feeds: list[dict[str, np.ndarray]]
    score: Callable[..., float]
    speech: Speech
    #: The inputs' time dim and the windows' length along it.
    dim: str
    window: int
    mel: MelSettings


@dataclass(frozen=True)
class StaticInt8:
    #: ``speech(package)`` → turns the graph's outputs into the waveforms to score (default: its audio outputs).
    speech: Callable[[Package], Speech] | None = None
    name: str = "static-int8"

    def search_inputs(self, package: Package, graph: str, feeds: list[dict[str, np.ndarray]],
                      source: Path | None = None) -> SearchInputs:
        """What the search of ``graph`` runs on, from its calibration ``feeds``: fixed-length windows (calibration,
        equalization), the first :data:`SEARCH_UTTERANCES` feeds cropped to :data:`SEARCH_FRAMES` (scoring), and the
        log-mel score against the FP32 graph's speech on them (the graph at ``source``, default the package's)."""
        from ttsopt.audio.mel import MelSettings
        from ttsopt.compiler import static_int8
        from ttsopt.compiler.ort_runs import run_all

        manifest = package.manifest
        entry = manifest.graphs[graph]
        if "mel" not in manifest.audio:
            raise TtsoptError(f"static INT8 of graph {graph} is scored in log-mel terms, but the package has no mel settings")
        mel = MelSettings(**manifest.audio["mel"])
        axes, dim = window_axes(entry)
        window = min(entry.dims[dim].opt, *(static_int8.feed_length(feed, axes) for feed in feeds))
        windows = static_int8.fixed_windows(feeds, axes, window)
        # Whole utterances, their first SEARCH_FRAMES only (cropped, never padded).
        search_feeds = [static_int8.fixed_windows([feed], axes, min(SEARCH_FRAMES, static_int8.feed_length(feed, axes)))[0]
                        for feed in feeds[:SEARCH_UTTERANCES]]
        speech = self.speech(package) if self.speech else audio_outputs(graph, entry)
        reference = references([speech(outputs) for outputs in run_all(source or package.path / entry.file, search_feeds)],
                               mel)

        def score(outputs: list[dict[str, np.ndarray]], against: list[list[LogMelReference]] = reference) -> float:
            """The worst log-mel L1 of ``outputs``' speech against ``against`` (:func:`references`; default the FP32
            graph's on the search feeds)."""
            return max(want.l1(got.reshape(-1)) for wanted, given in zip(against, outputs, strict=True)
                       for want, got in zip(wanted, speech(given), strict=True))

        return SearchInputs(windows, search_feeds, score, speech, dim, window, mel)

    def apply(self, source: Path, destination: Path, context: PassContext) -> StaticInt8Record:
        """Needs ``context.package`` (the FP32 package: mel settings, golden items) and ``context.feeds``
        (calibration inputs of this graph); the budget is ``context.gates["logmel_l1_max"]``."""
        from ttsopt.compiler import static_int8
        from ttsopt.compiler.ort_runs import run_all
        from ttsopt.hardware import has_int8_dot_product

        package, graph, feeds = context.package, context.graph, list(context.feeds)
        budget = context.gates["logmel_l1_max"]
        inputs = self.search_inputs(package, graph, feeds, source)
        score, windows, search_feeds, dim, window = inputs.score, inputs.windows, inputs.search_feeds, inputs.dim, inputs.window
        golden = package.golden
        items = [item["name"] for item in golden.items if item["graph"] == graph]
        golden_in = [golden.inputs(i) for i in items]
        golden_out = references([inputs.speech(golden.outputs(i)) for i in items], inputs.mel)

        def package_gate(candidate: Path) -> tuple[bool, float]:
            """The package's own gate: log-mel L1 of the candidate on this graph's golden items."""
            value = score(run_all(candidate, golden_in), golden_out) if items else 0.0
            return value <= budget, value

        reduce_range = not has_int8_dot_product()
        result = static_int8.search(source, destination, windows, search_feeds, score, SEARCH_MARGIN * budget,
                                    feeds[0], reduce_range, context.step, gate=package_gate)
        if not result.fitting_layers:
            least = min(result.sensitivity.values())
            raise QualityGateError(f"no convolution of graph {graph} fits the budget log-mel L1 ≤ {budget:g} (the least "
                                   f"sensitive one alone scores {least:.3g}): nothing was written; keep the FP32 package")
        record = StaticInt8Record(
            method="static INT8 (QDQ): onnxruntime quantize_static, U8 activations (channels equalized), per-channel S8 weights"
                   + (", reduced range (no VNNI)" if reduce_range else ""),
            calibration={"chosen": result.calibration, "all_layers_logmel_l1": result.calibration_scores,
                         "not_computable": sorted(set(static_int8.CALIBRATIONS) - set(result.calibration_scores)),
                         "files": list(context.feed_files), "windows": len(windows), "window": {dim: window}},
            budget={"logmel_l1_max": budget, "search_target": SEARCH_MARGIN * budget, "search_logmel_l1": result.score,
                    "all_layers_logmel_l1": result.all_layers_score, "probes": result.probes,
                    "fitting_layers": result.fitting_layers, "package_gate_rejected": result.gate_rejected},
            equalization=result.equalization, sensitivity=result.sensitivity, quantized_layers=result.quantized,
            fp32_layers=[layer for layer in result.layers if layer not in result.quantized],
            int8_flops_share=result.flops_share,
            seconds={"fp32": result.fp32_seconds, "int8": result.seconds, "input": f"{next(iter(feeds[0].values())).shape}",
                     "timed_int8_layers": result.timings},
            speedup=result.fp32_seconds / result.seconds)
        if not result.quantized:
            fastest = min(result.timings, key=lambda timing: timing["seconds"])
            why = "INT8 is not faster here" if not result.gate_rejected else "no INT8 set both passes the package's gate and is faster"
            record.kept_fp32 = (f"{why}: the fastest INT8 variant ({fastest['layers']} layers) ran at "
                                f"{result.fp32_seconds / fastest['seconds']:.3f}x the FP32 graph's speed "
                                f"(needs {static_int8.MIN_SPEEDUP:g}x)")
        return record
