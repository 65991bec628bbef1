"""What ``verify`` measured: rows per golden item and reference recording, and the gates they were held to."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from ttsopt.errors import QualityGateError
from ttsopt.package.manifest import json_safe


@dataclass
class Gate:
    name: str
    value: float
    limit: float
    bound: str  # "min" or "max"

    @property
    def passed(self) -> bool:
        if isinstance(self.value, float) and math.isnan(self.value):
            return False
        return self.value >= self.limit if self.bound == "min" else self.value <= self.limit

    def describe(self) -> str:
        sign = "≥" if self.bound == "min" else "≤"
        return f"{self.name} {self.value:.4g} (needs {sign} {self.limit:g})"


@dataclass
class VerifyReport:
    package: str
    target: str
    precision: str
    golden: list[dict] = field(default_factory=list)
    references: list[dict] = field(default_factory=list)
    gates: list[Gate] = field(default_factory=list)
    #: With ``--original``: the package on each golden input against that checkpoint (for a pruned package the
    #: golden outputs are the pruned model's, so this is the only comparison with the unpruned original).
    original: list[dict] = field(default_factory=list)

    @property
    def failed(self) -> list[Gate]:
        return [gate for gate in self.gates if not gate.passed]

    @property
    def passed(self) -> bool:
        return not self.failed

    def require(self, subject: str) -> None:
        """Stop a stage whose output fails its gates: ``subject`` names what failed; the stage's
        :class:`PackageWriter` then discards its scratch directory, so nothing is written."""
        if not self.passed:
            raise QualityGateError(f"{subject} ({'; '.join(g.describe() for g in self.failed)}): nothing was written")

    def to_dict(self) -> dict:
        data = asdict(self)
        for gate, row in zip(self.gates, data["gates"], strict=False):
            row["passed"] = gate.passed
        data["passed"] = self.passed
        return json_safe(data)
