"""The contract between a model family and the generic stages (export, verify, quantize, bench, the CLI).

A family is a folder ``ttsopt/families/<name>/`` (its model, checkpoint loader, export spec, and the checks and
benchmark workloads that only it knows) plus one line in :data:`ttsopt.families.FAMILIES`. Everything a stage
needs from it goes through :class:`Family`; no stage names a family, a task or a graph. This is the split of
HuggingFace optimum's per-model ONNX configs, extended to verification, quantization and benchmarks.

This module is torch-free: the runtime side (``verify`` without ``--original``, ``bench`` of a package)
imports it, so a family imports its torch-side modules inside the methods that need them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ttsopt.compiler.passes import PrecisionPass
    from ttsopt.compiler.spec import ExportPlan, ExportSources
    from ttsopt.package.manifest import Manifest
    from ttsopt.runtime.package import Package
    from ttsopt.verify.report import VerifyReport

Feed = dict[str, np.ndarray]
#: ``speech(sample_rate)`` → (name, waveform) of each verification recording.
Speech = Callable[[int], list[tuple[str, np.ndarray]]]


@dataclass
class Workload:
    """One benchmark input: what the package's callable (and the eager original's) takes, and the audio
    seconds it makes."""

    inputs: Any
    audio_seconds: float


class Family(ABC):
    """What a model family provides. Methods marked *build side* may import torch; the others run on the
    torch-free runtime (they may call the build side only for the eager original, which needs torch anyway)."""

    #: The family's name in manifests (``manifest.family``) and in :data:`ttsopt.families.FAMILIES`.
    name: str
    #: Checkpoint roles ``ttsopt export`` passes (``ExportSources.checkpoints`` keys); the CLI picks the family
    #: by which roles the user gave.
    roles: tuple[str, ...]
    #: How a user names this family's inputs on the command line, for "give X or Y" errors.
    usage: str

    # -- recognizing files (torch-free) --------------------------------------------------------------

    def recognize_header(self, head: bytes) -> str | None:
        """What this family calls a checkpoint file starting with ``head`` (e.g. a format tag), or None."""
        return None

    def recognize_state(self, state: Any) -> str | None:
        """What this family calls a loaded checkpoint object (by its keys), or None: for "this is X, not Y" errors."""
        return None

    # -- export (build side) --------------------------------------------------------------------------

    def check_roles(self, roles: set[str]) -> None:
        """Refuse a combination of checkpoint roles this family cannot export (``TtsoptError``)."""
        return None

    @abstractmethod
    def plan(self, sources: ExportSources, speech: Speech) -> ExportPlan:
        """Load the checkpoints and describe the export: graphs, golden inputs, payload files, runtime facts."""

    @abstractmethod
    def load_eager(self, manifest: Manifest, checkpoint: Path | None = None, config: Path | None = None) -> Any:
        """The original checkpoint (default: the one exported) in PyTorch eager FP32, called like the package's
        benchmark callable: for ``bench`` and ``verify --original``."""

    # -- quantize -------------------------------------------------------------------------------------

    def quantization(self) -> Mapping[str, PrecisionPass]:
        """Graph → the pass ``ttsopt quantize --int8`` applies to it (graphs not listed stay FP32)."""
        return {}

    def calibration_feeds(self, package: Package, recordings: Sequence[np.ndarray]) -> dict[str, list[Feed]]:
        """Calibration recordings as inputs of the quantized graphs (graph → feeds), made by the family's own
        front end (which may run the package's other graphs)."""
        return {}

    # -- verify ---------------------------------------------------------------------------------------

    def golden_checks(self, package: Package, report: VerifyReport) -> None:
        """Checks beyond the graphs' golden outputs (e.g. a generation loop replayed), added to ``report``."""
        return None

    @abstractmethod
    def reference_checks(self, model: Any, report: VerifyReport, references: Sequence[Path], original: Path | None,
                         original_config: Path | None) -> tuple[np.ndarray, np.ndarray, str] | None:
        """``verify --reference``: measure the package on the user's recordings, beside the eager original
        (:func:`ttsopt.verify.original.load_original`) where that applies; return (expected, got, label) audio
        to plot, or None."""

    # -- bench ----------------------------------------------------------------------------------------

    def workload(self, model: Any, seconds: float) -> tuple[Workload, Callable[[Any], Any]]:
        """The benchmark input for ``seconds`` of audio and the package callable that takes it (the eager
        original from :meth:`load_eager` takes the same input)."""
        raise NotImplementedError(f"{self.name} packages have no audio-length workload")

    def benchmark(self, path: Path, options: BenchOptions, step: Callable[[str], None]) -> Any:
        """``ttsopt bench``: a report with ``to_dict()``, ``render()`` (rich tables and lines) and ``notes``; by
        default the real-time factor over audio lengths (:meth:`workload`) against the
        eager original and the machine's floor; a family whose packages have stages of their own overrides it."""
        from ttsopt.bench.rtf import run_rtf_bench

        return run_rtf_bench(self, path, options, step)


#: Audio lengths ``ttsopt bench`` times by default.
DEFAULT_SECONDS = (1.0, 5.0, 20.0)


@dataclass(frozen=True)
class BenchOptions:
    """What the user asked ``ttsopt bench`` for."""

    #: Audio lengths to time; None: the family's default (:data:`DEFAULT_SECONDS`; GPT-SoVITS v4: 4 and 12 s).
    seconds: tuple[float, ...] | None = None
    repeat: int = 5
    original: Path | None = None
    original_config: Path | None = None
    #: Other packages of the same model timed in the same run (``--compare``): e.g. a pruned package against the
    #: unpruned FP32 and INT8 ones.
    compare: tuple[Path, ...] = ()
