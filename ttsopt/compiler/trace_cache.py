"""A content-addressed cache of traced ONNX graphs, so the same module is traced once.

``torch.onnx.export`` (torch.export + decomposition + onnxscript translation) spends tens of seconds per graph,
and a graph does not change when only the target does: exporting a checkpoint for ``cpu`` and then for ``t4``
or ``a10g`` (FP16 is a pass applied afterwards), or re-exporting with other voices, traces the same modules
again. The cache keys a traced, checked and simplified graph by everything the trace depends on:

- the code: the source file of every module class in the tree, and of the export procedure itself;
- the module tree: each submodule's class, ``extra_repr`` (strides, dilations, ...) and plain attributes;
- the weights and buffers (persistent or not), by content;
- the signature (names, shapes, dim ranges), the example inputs' shapes and the check sizes;
- the versions of torch, onnx, onnxscript and onnxslim, and the opset.

A hit is not trusted on its key alone: the exporter runs the fidelity check against the live module on every
export, and a hit must be as faithful as the graph was when it was stored, else it is dropped and traced again.

Location: ``$TTSOPT_CACHE_DIR`` (default ``$XDG_CACHE_HOME/ttsopt/traced``, i.e. ``~/.cache/ttsopt/traced``);
``TTSOPT_CACHE_DIR=off`` turns it off. Least recently used entries go beyond :data:`MAX_BYTES`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch

from ttsopt.compiler.spec import GraphExport
from ttsopt.versions import tool_versions

#: Total size the cache keeps (real-size GPT-SoVITS graphs are a few hundred MB together).
MAX_BYTES = 4 << 30
#: A hit may be this much less faithful (SNR, dB) than when it was stored: thread scheduling moves the last bits.
SNR_SLACK_DB = 3.0
_PLAIN = (bool, int, float, str, type(None))


def cache_dir() -> Path | None:
    """Where traced graphs are kept, or None when the cache is off."""
    configured = os.environ.get("TTSOPT_CACHE_DIR", "")
    if configured.lower() in {"off", "0", "false", "no"}:
        return None
    if configured:
        return Path(configured)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ttsopt" / "traced"


def _plain(value: object) -> bool:
    """Hyperparameters as modules hold them: numbers, strings, their sequences and mappings, config dataclasses."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain(dataclasses.asdict(value))
    if isinstance(value, (tuple, list)):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return isinstance(value, _PLAIN)


def _tensor_digest(digest: hashlib._Hash, name: str, tensor: torch.Tensor) -> None:
    tensor = tensor.detach().contiguous().cpu()
    digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
    digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")


def trace_key(graph: GraphExport, procedure: tuple[Path, ...]) -> str:
    """The cache key of ``graph``: a digest of everything its traced ONNX depends on (see the module docstring).

    ``procedure`` names the source files of the export procedure (a change there invalidates every entry)."""
    digest = hashlib.sha256()
    versions = tool_versions(("torch", "onnx", "onnxscript", "onnxslim"))
    digest.update(json.dumps(versions, sort_keys=True).encode())
    sources = {*procedure}
    if graph.translations is not None:  # the custom ops' definitions and their ONNX translations
        sources.add(Path(inspect.getsourcefile(graph.translations)))
    for name, module in graph.module.named_modules():
        cls = type(module)
        source = inspect.getsourcefile(cls)
        if source is not None:
            sources.add(Path(source))
        attributes = {k: repr(v) for k, v in sorted(vars(module).items()) if not k.startswith("_") and _plain(v)}
        digest.update(json.dumps([name, f"{cls.__module__}.{cls.__qualname__}", module.extra_repr(), attributes],
                                 default=repr).encode())
    for source in sorted(sources):
        digest.update(str(source.name).encode() + source.read_bytes())
    for name, tensor in (*graph.module.named_parameters(), *graph.module.named_buffers()):
        _tensor_digest(digest, name, tensor)
    # The example inputs' shapes and dtypes, not their values (often random): torch.export traces symbolically.
    examples = [(str(t.dtype), tuple(t.shape)) for t in graph.example_inputs]
    digest.update(json.dumps([examples, repr(graph.inputs), repr(graph.outputs), repr(sorted(graph.dims.items())),
                              graph.check_sizes]).encode())
    return digest.hexdigest()


class TraceCache:
    """Traced graphs by key: ``<key>.onnx`` and ``<key>.json`` (the fidelity it had when stored)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def from_environment(cls) -> TraceCache | None:
        root = cache_dir()
        return None if root is None else cls(root)

    def fetch(self, key: str, destination: Path) -> dict[str, float] | None:
        """Copy the graph stored under ``key`` to ``destination``; its stored fidelity, or None on a miss."""
        graph, record = self.root / f"{key}.onnx", self.root / f"{key}.json"
        try:
            fidelity = json.loads(record.read_text())
            shutil.copyfile(graph, destination)
        except (OSError, ValueError):
            return None
        os.utime(graph)  # recently used
        return fidelity

    def faithful(self, stored: dict[str, float], measured: dict[str, float]) -> bool:
        """A hit is kept when the live module agrees with it as well as it did with the graph first traced."""
        return measured["snr_db"] >= stored["snr_db"] - SNR_SLACK_DB

    def store(self, key: str, graph: Path, fidelity: dict[str, float]) -> None:
        """Keep ``graph`` under ``key``; a cache that cannot be written is skipped, never an error."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=self.root) as scratch:
                shutil.copyfile(graph, Path(scratch) / "graph.onnx")
                (Path(scratch) / "fidelity.json").write_text(json.dumps(fidelity))
                os.replace(Path(scratch) / "graph.onnx", self.root / f"{key}.onnx")
                os.replace(Path(scratch) / "fidelity.json", self.root / f"{key}.json")
            self._evict()
        except OSError:
            return

    def discard(self, key: str) -> None:
        for suffix in (".onnx", ".json"):
            (self.root / f"{key}{suffix}").unlink(missing_ok=True)

    def _evict(self) -> None:
        entries = sorted(self.root.glob("*.onnx"), key=lambda p: p.stat().st_mtime, reverse=True)
        kept = 0
        for entry in entries:
            kept += entry.stat().st_size
            if kept > MAX_BYTES:
                self.discard(entry.stem)
