"""A package's golden data (``golden.npz``): fixed inputs of its graphs and the original model's outputs.

The one owner of the file's key scheme, ``"{item}/in/{tensor}"`` and ``"{item}/out/{tensor}"``: the exporter
writes it through :func:`write_golden`, ``verify``, ``quantize`` and ``bench`` read it through :class:`Golden`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

GOLDEN_FILE = "golden.npz"
Arrays = dict[str, np.ndarray]


def _key(item: str, direction: str, tensor: str) -> str:
    return f"{item}/{direction}/{tensor}"


def write_golden(path: Path, items: Iterable[tuple[str, Mapping[str, np.ndarray], Mapping[str, np.ndarray]]]) -> None:
    """``items``: (item name, its inputs, the original model's outputs for them)."""
    arrays = {}
    for name, inputs, outputs in items:
        arrays |= {_key(name, "in", k): v for k, v in inputs.items()} | {_key(name, "out", k): v for k, v in outputs.items()}
    np.savez(path, **arrays)


class Golden:
    """The golden items of a package (``manifest.golden["items"]``: name and graph of each), loaded at once."""

    def __init__(self, package_path: Path, record: Mapping):
        with np.load(Path(package_path) / record["file"]) as data:
            self._arrays = {key: data[key] for key in data.files}
        self.items: list[dict] = list(record["items"])

    def inputs(self, item: str) -> Arrays:
        return self._tensors(item, "in")

    def outputs(self, item: str) -> Arrays:
        return self._tensors(item, "out")

    def first(self, graph: str) -> str:
        """The name of the first item of ``graph``."""
        return next(i["name"] for i in self.items if i["graph"] == graph)

    def _tensors(self, item: str, direction: str) -> Arrays:
        prefix = _key(item, direction, "")
        return {key[len(prefix):]: value for key, value in self._arrays.items() if key.startswith(prefix)}
