"""Typed records of what a precision pass did and measured, as stored in ``manifest.quantization[graph]``

Each describes itself (one line for ``inspect``, a row for ``quantize``'s table); :func:`record_from_dict`
reads one back from a manifest by its ``pass`` key.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar


@dataclass
class PassRecord:
    """Base: ``to_dict`` drops unset optional fields, so records read like the manifest's JSON."""

    pass_name: ClassVar[str] = ""
    method: str
    #: Set when the pass ran but the graph stayed FP32 (INT8 failed its gates or was not faster): says why, measured.
    kept_fp32: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"pass": self.pass_name, **{k: v for k, v in asdict(self).items() if v is not None}}

    def describe(self) -> str:
        """One line for ``inspect``."""
        return f"FP32 ({self.kept_fp32})" if self.kept_fp32 else self.describe_converted()

    def describe_converted(self) -> str:
        raise NotImplementedError

    def table_row(self, graph: str) -> tuple[str, ...]:
        """(graph, method, layers, MB, time, speed-up) for ``quantize``'s table."""
        return (graph, self.method, "—", "—", "—", "—")


@dataclass
class FP16Record(PassRecord):
    pass_name: ClassVar[str] = "fp16"
    headroom: float = 0.0
    fp32_islands: dict[str, str] = field(default_factory=dict)
    fp16_nodes: int = 0
    peak_abs: float = 0.0
    output_snr_db: float = 0.0

    def describe_converted(self) -> str:
        return (f"FP16, {len(self.fp32_islands)} FP32 islands ({', '.join(self.fp32_islands) or 'none needed'}), "
                f"output SNR {float(self.output_snr_db):.1f} dB vs FP32")


@dataclass
class StaticInt8Record(PassRecord):
    pass_name: ClassVar[str] = "static-int8"
    calibration: dict = field(default_factory=dict)
    budget: dict = field(default_factory=dict)
    equalization: dict = field(default_factory=dict)
    sensitivity: dict[str, float] = field(default_factory=dict)
    quantized_layers: list[str] = field(default_factory=list)
    fp32_layers: list[str] = field(default_factory=list)
    int8_flops_share: float = 0.0
    seconds: dict = field(default_factory=dict)
    speedup: float = 1.0

    def describe_converted(self) -> str:
        return (f"INT8 {len(self.quantized_layers)} of {len(self.quantized_layers) + len(self.fp32_layers)} convolutions "
                f"({self.int8_flops_share:.0%} of FLOPs, {self.calibration['chosen']} calibration), "
                f"{self.speedup:.2f}× measured at quantization")

    def table_row(self, graph: str) -> tuple[str, ...]:
        if self.kept_fp32:
            return (graph, "FP32 kept (INT8 not faster)", f"0 / {len(self.fp32_layers)}", "—", f"{self.seconds['fp32']:.2f} s", "—")
        layers = f"{len(self.quantized_layers)} / {len(self.fp32_layers)} ({self.int8_flops_share:.0%} of FLOPs INT8)"
        timing = f"{self.seconds['fp32']:.2f} → {self.seconds['int8']:.2f} s"
        return (graph, self.method, layers, "—", timing, f"{self.speedup:.2f}×")


@dataclass
class WeightOnlyRecord(PassRecord):
    pass_name: ClassVar[str] = "weight-only"
    bits: int = 8
    quantized_matmuls: int = 0
    fp32_weight_matmuls: int = 0
    bytes: dict = field(default_factory=dict)
    gates: dict[str, float] = field(default_factory=dict)
    passed: bool = False
    #: Milliseconds of the timed step: "fp32" and "int<bits>" of every candidate.
    decode_step_ms: dict[str, float] = field(default_factory=dict)
    speedup: float = 1.0
    candidates: dict[str, dict] = field(default_factory=dict)

    def describe_converted(self) -> str:
        return f"{self.method}, {self.speedup:.2f}× decode step measured at quantization"

    def table_row(self, graph: str) -> tuple[str, ...]:
        layers = f"{self.quantized_matmuls} / {self.fp32_weight_matmuls} MatMuls INT{self.bits}"
        size = f"{self.bytes['fp32'] / 1e6:.1f} → {self.bytes['quantized'] / 1e6:.1f}"
        steps, chosen = self.decode_step_ms, f"int{self.bits}"
        timing = f"{steps['fp32']:.2f} → {steps[chosen]:.2f} ms/step (" + ", ".join(
            f"{key} {value:.2f}" for key, value in steps.items() if key != "fp32") + ")"
        return (graph, self.method, layers, size, timing, f"{self.speedup:.2f}×")


@dataclass
class MatMulInt8Record(PassRecord):
    """INT8 MatMuls (dynamic or weight-only) where they pass the graph's gates and are faster, else FP32."""

    pass_name: ClassVar[str] = "matmul-int8"
    #: The candidate kept ("dynamic", "weight-only"), None when the graph stays FP32.
    chosen: str | None = None
    #: Milliseconds of the timed call: "fp32" and every candidate, medians of interleaved rounds.
    ms: dict[str, float] = field(default_factory=dict)
    speedup: float = 1.0
    min_speedup: float = 1.05
    #: Per candidate: method, MatMuls, bytes, gate values, failed gates, speed-up.
    candidates: dict[str, dict] = field(default_factory=dict)

    def describe_converted(self) -> str:
        return f"{self.method}, {self.speedup:.2f}× measured at quantization"

    def table_row(self, graph: str) -> tuple[str, ...]:
        timing = f"FP32 {self.ms['fp32']:.1f} ms; " + ", ".join(f"{k} {v:.1f}" for k, v in self.ms.items() if k != "fp32")
        if self.kept_fp32:
            return (graph, f"FP32 kept: {self.kept_fp32}", "—", "—", timing, "—")
        chosen = self.candidates[self.chosen]
        size = f"{chosen['bytes']['fp32'] / 1e6:.1f} → {chosen['bytes']['quantized'] / 1e6:.1f}"
        return (graph, self.method, f"{chosen['quantized_matmuls']} MatMuls INT8", size, timing, f"{self.speedup:.2f}×")


_RECORDS = {cls.pass_name: cls for cls in (FP16Record, StaticInt8Record, WeightOnlyRecord, MatMulInt8Record)}


def record_from_dict(data: dict[str, Any]) -> PassRecord:
    """A manifest's record as its typed form (by its ``pass`` key)."""
    kind = data.get("pass") or ("fp16" if "fp32_islands" in data else "static-int8" if "sensitivity" in data else "weight-only")
    cls = _RECORDS[kind]
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})
