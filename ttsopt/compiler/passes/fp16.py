"""FP16 for GPU targets, with FP32 islands found by measurement (:mod:`ttsopt.compiler.fp16`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ttsopt.compiler import fp16
from ttsopt.compiler.passes.base import PassContext
from ttsopt.package.precision import FP16Record


@dataclass(frozen=True)
class FP16:
    name: str = "fp16"

    def apply(self, source: Path, destination: Path, context: PassContext) -> FP16Record:
        """Needs ``context.feeds`` (the golden inputs) and the ``snr_db_min`` gate of the fp16 precision."""
        context.step(f"graph {context.graph}: FP16 with FP32 islands measured on {len(context.feeds)} inputs")
        return FP16Record(**fp16.convert(source, destination, context.feeds, context.gates["snr_db_min"], context.step))
