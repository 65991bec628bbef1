"""What every precision pass receives, and the protocol it implements."""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
    step: Callable[[str], None] = field(default=lambda message: None)


class PrecisionPass(Protocol):
    #: The pass's name in records (``"static-int8"``, ``"weight-only"``, ``"fp16"``).
    name: str

    def apply(self, source: Path, destination: Path, context: PassContext) -> PassRecord:
        """Convert the graph at ``source`` into ``destination`` (or leave it absent, keeping FP32) and record it."""
        ...
