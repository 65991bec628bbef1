"""``ttsopt bench``: how fast a package is, against PyTorch eager and against this machine's floor.

Everything is measured in one run, because these machines are shared and noisy: the variants
(:mod:`.variants`) are interleaved for every input, each repeated, and medians are reported. The family
chooses the benchmark (:meth:`Family.benchmark`): by default the real-time factor over audio lengths
(:mod:`.rtf`); text-to-speech packages time their stages. :mod:`.machine` measures the floors'
denominators, :mod:`.memory` the peak memory of each variant in a fresh process.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ttsopt.errors import TtsoptError
from ttsopt.families import get_family
from ttsopt.families.contract import BenchOptions
from ttsopt.package import read_manifest


def run_bench(path: str | Path, options: BenchOptions | None = None,
              step: Callable[[str], None] = lambda message: None) -> Any:
    """The package's benchmark report (``to_dict()`` for JSON)."""
    options = options or BenchOptions()
    if options.repeat < 1:
        raise TtsoptError("--repeat must be at least 1")
    manifest = read_manifest(path, check_files=False)
    return get_family(manifest.family).benchmark(Path(path), options, step)


__all__ = ["BenchOptions", "run_bench"]
