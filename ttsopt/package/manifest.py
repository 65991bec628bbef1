"""``manifest.json``: what a package holds, how it was made, and how it verified.

Schema (version 1)::

    schema_version   int
    family, task     e.g. "hifigan", "vocoder"
    model_config     the family's hyper-parameters
    audio            {"sample_rate": int, "mel": MelSettings as dict}
    target           the resolved target profile (configs/<target>.yaml at export time)
    precision        "fp32", ...
    source           {"checkpoints": {role: path}, "sha256": {role: hex}, ...family extras (e.g. "config")}
    graphs           {name: GraphEntry}: file, inputs/outputs with symbolic dims, dim ranges, opset
    golden           {"file": "golden.npz", "items": [names]}: inputs and original-model outputs
    files            {relative path: sha256} for every payload file (graphs, golden data, voices, ...)
    runtime          what the family's runtime needs beyond the graphs (voices, symbol table, chunking)
    quantization     per quantized graph: method, what was quantized, measured speed-up (``ttsopt quantize``)
    cost             {"flop_per_audio_second": float}
    tools            versions of the tools that made it
    verification     the gate results measured when the package was made
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ttsopt.errors import TtsoptError

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"


@dataclass(frozen=True)
class TensorSpec:
    """A graph input or output. ``shape`` mixes fixed sizes and symbolic dim names; ``kind`` tells
    ``verify`` which metrics apply (``audio`` gets the audio metrics, anything else elementwise ones)."""

    name: str
    dtype: str
    shape: tuple[int | str, ...]
    kind: str = "tensor"

    @classmethod
    def from_dict(cls, data: dict) -> TensorSpec:
        return cls(data["name"], data["dtype"], tuple(data["shape"]), data.get("kind", "tensor"))


@dataclass(frozen=True)
class DimRange:
    """Allowed sizes of a symbolic dim: ``opt`` is the size to optimise for (TensorRT profiles)."""

    min: int
    opt: int
    max: int

    def contains(self, size: int) -> bool:
        return self.min <= size <= self.max


@dataclass(frozen=True, kw_only=True)
class GraphSignature:
    """A graph's contract: its inputs and outputs, and the sizes its symbolic dims may take. Declared once by
    the family's export spec (``GraphExport``), stored with the graph's file in the manifest (``GraphEntry``)."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    dims: dict[str, DimRange]


@dataclass(frozen=True, kw_only=True)
class GraphEntry(GraphSignature):
    file: str
    opset: int

    @classmethod
    def from_dict(cls, data: dict) -> GraphEntry:
        return cls(
            file=data["file"],
            inputs=tuple(TensorSpec.from_dict(t) for t in data["inputs"]),
            outputs=tuple(TensorSpec.from_dict(t) for t in data["outputs"]),
            dims={name: DimRange(*bounds) for name, bounds in data["dims"].items()},
            opset=int(data["opset"]),
        )

    def to_dict(self) -> dict:
        return {
            "file": self.file,
            "inputs": [asdict(t) | {"shape": list(t.shape)} for t in self.inputs],
            "outputs": [asdict(t) | {"shape": list(t.shape)} for t in self.outputs],
            "dims": {name: [r.min, r.opt, r.max] for name, r in self.dims.items()},
            "opset": self.opset,
        }


@dataclass(kw_only=True)
class ModelFacts:
    """What a family's export plan says about the model, copied as they are into the manifest."""

    family: str
    task: str
    model_config: dict[str, Any]
    audio: dict[str, Any]
    #: The family's extras about where the model came from (the manifest adds checkpoints and their hashes).
    source: dict[str, Any]
    #: What the family's runtime reads beyond the graphs (voices, chunking context, ...).
    runtime: dict[str, Any] = field(default_factory=dict)


@dataclass(kw_only=True)
class Manifest(ModelFacts):
    target: dict[str, Any]
    precision: str
    graphs: dict[str, GraphEntry]
    golden: dict[str, Any]
    files: dict[str, str] = field(default_factory=dict)
    #: Per graph, how its precision was changed and measured (INT8 search, FP16 islands); empty for FP32.
    quantization: dict[str, Any] = field(default_factory=dict)
    cost: dict[str, Any] = field(default_factory=dict)
    tools: dict[str, str] = field(default_factory=dict)
    verification: dict[str, Any] = field(default_factory=dict)
    #: GPU targets: TensorRT build settings, optimization profiles per graph, and the engines once built.
    tensorrt: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    @property
    def sample_rate(self) -> int:
        return int(self.audio["sample_rate"])

    @property
    def gates(self) -> dict[str, float]:
        return self.target["gates"][self.precision]

    def to_json(self) -> str:
        data = asdict(self)
        data["graphs"] = {name: entry.to_dict() for name, entry in self.graphs.items()}
        return json.dumps(json_safe(data), indent=2, allow_nan=False) + "\n"

    @classmethod
    def from_dict(cls, data: dict) -> Manifest:
        data = dict(data)
        data["graphs"] = {name: GraphEntry.from_dict(entry) for name, entry in data["graphs"].items()}
        return cls(**data)


def json_safe(value: Any) -> Any:
    """``value`` as plain JSON data: numpy scalars as numbers, paths as strings, and the infinities JSON
    lacks as strings (an exact match, SNR = inf, is written "inf")."""
    if hasattr(value, "item") and not isinstance(value, (dict, list, tuple)):  # numpy scalars
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return "inf" if value > 0 else "-inf" if value < 0 else "nan"
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def sha256_file(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def read_manifest(package: str | Path, check_files: bool = True) -> Manifest:
    """Read and validate ``package/manifest.json``; with ``check_files`` every payload hash is checked.

    A package that is incomplete, tampered with or from a newer ttsopt is refused here, with a message
    that names the problem, before any graph is loaded.
    """
    package = Path(package)
    if not package.is_dir():
        raise TtsoptError(f"package not found: {package} is not a directory: give a directory made by ttsopt export")
    path = package / MANIFEST_NAME
    if not path.is_file():
        raise TtsoptError(f"{package} is not a ttsopt package (no {MANIFEST_NAME}): give a directory made by ttsopt export")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TtsoptError(f"package {package} is damaged: {MANIFEST_NAME} is not valid JSON ({exc.msg}): re-export it") from None
    version = data.get("schema_version") if isinstance(data, dict) else None
    if version != SCHEMA_VERSION:
        raise TtsoptError(f"package {package} has manifest schema {version!r}; this ttsopt reads schema "
                          f"{SCHEMA_VERSION}: re-export it with this ttsopt version")
    try:
        manifest = Manifest.from_dict(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise TtsoptError(f"package {package} is damaged: {MANIFEST_NAME} is incomplete ({exc}): re-export it") from None
    if check_files:
        _check_payload(package, manifest)
    return manifest


def _check_payload(package: Path, manifest: Manifest) -> None:
    needed = {entry.file for entry in manifest.graphs.values()} | {manifest.golden["file"]}
    unlisted = needed - manifest.files.keys()
    if unlisted:
        raise TtsoptError(f"package {package} is damaged: manifest lists no hash for {sorted(unlisted)[0]}: re-export it")
    for relative, expected in manifest.files.items():
        file = package / relative
        if not file.is_file():
            raise TtsoptError(f"package {package} is incomplete: {relative} is missing: copy the whole directory or re-export it")
        if sha256_file(file) != expected:
            raise TtsoptError(f"package {package} is damaged: {relative} does not match its sha256 in "
                              f"{MANIFEST_NAME} (modified or truncated): re-export it")
