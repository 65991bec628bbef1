"""What every precision pass receives, and the protocol it implements."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from ttsopt.package.precision import PassRecord
    from ttsopt.runtime.package import Package
    from ttsopt.verify.report import VerifyReport

Feed = dict[str, np.ndarray]


@dataclass
class PassContext:
    """One graph of one package being converted."""

    #: The graph's name in the package.
    graph: str
    #: The quality gates the result is held to (the target's, possibly changed by ``--budget``).
    gates: dict[str, float]
    #: Inputs to measure on: calibration inputs (INT8), the golden inputs (FP16).
    feeds: Sequence[Feed] = ()
    #: The FP32 package the graph comes from (``quantize``; None at export).
    package: Package | None = None
    #: Names of the files ``feeds`` were made from, for the record.
    feed_files: Sequence[str] = ()
    #: Verifies a candidate graph inside the package being written (``quantize``): puts it in place, returns the report.
    verify: Callable[[Path], VerifyReport] | None = None
    #: Puts a candidate graph in place in the package being written (``quantize``), returns that package's directory.
    place: Callable[[Path], Path] | None = None
    step: Callable[[str], None] = field(default=lambda message: None)


class PrecisionPass(Protocol):
    #: The pass's name in records (``"static-int8"``, ``"weight-only"``, ``"fp16"``).
    name: str

    def apply(self, source: Path, destination: Path, context: PassContext) -> PassRecord:
        """Convert the graph at ``source`` into ``destination`` (or leave it absent, keeping FP32) and record it."""
        ...


def time_against_fp32(context: PassContext, candidates: dict[Hashable, Path],
                      timer: Callable[[Package], Callable[[], float]], rounds: int) -> dict[Hashable, float]:
    """Median milliseconds of the FP32 graph (key ``"fp32"``) and of each verified candidate, ``rounds`` interleaved
    rounds of ``timer``'s probes (this machine is shared).

    Each candidate is put in place and its probe made (its session reads the graph then) only here, after every
    candidate was verified: a probe made right after its own verification held its sessions through the next
    candidate's verification (with the real-size RoBERTa, quantize's peak was there: 7.89 GB)."""
    from ttsopt.runtime.package import Package

    probes = {key: timer(Package(context.place(path))) for key, path in candidates.items()}
    fp32 = timer(context.package)
    times: dict[Hashable, list[float]] = {"fp32": [], **{key: [] for key in probes}}
    for _ in range(rounds):
        for key, probe in (("fp32", fp32), *probes.items()):
            times[key].append(probe())
    return {key: statistics.median(values) for key, values in times.items()}
