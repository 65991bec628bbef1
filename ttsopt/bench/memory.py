"""Peak memory of one benchmark variant, measured in a fresh process so variants do not share allocators.

``python -m ttsopt.bench.memory VARIANT PACKAGE SECONDS ORIGINAL ORIGINAL_CONFIG`` loads the variant, synthesises
``SECONDS`` of audio once and prints its peak RSS in KiB.
"""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

from ttsopt.bench.variants import PACKAGE
from ttsopt.errors import TtsoptError
from ttsopt.families import get_family
from ttsopt.runtime import load


def child_peak_rss_mb(variant: str, package: Path, seconds: float, original: Path | None,
                       original_config: Path | None) -> float:
    args = [sys.executable, "-m", "ttsopt.bench.memory", variant, str(package), str(seconds),
            str(original or ""), str(original_config or "")]
    done = subprocess.run(args, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise TtsoptError(f"memory measurement of {variant} failed: {done.stderr.strip().splitlines()[-1:]}")
    return float(done.stdout.strip()) / 1024.0


def _child_main(variant: str, package: str, seconds: str, original: str, original_config: str) -> None:
    """Entry of the memory-measuring child: load one variant, synthesise once, print max RSS (KiB)."""
    model = load(package)
    family = get_family(model.manifest.family)
    workload, fn = family.workload(model, float(seconds))
    if variant != PACKAGE:
        fn = family.load_eager(model.manifest, Path(original) if original else None,
                               Path(original_config) if original_config else None)
    fn(workload.inputs)
    print(_peak_rss_kib())


def _peak_rss_kib() -> int:
    """This process's own peak RSS. Linux's ``ru_maxrss`` carries the parent's peak across fork/exec,
    so the per-address-space high-water mark (``VmHWM``) is read where it exists."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


if __name__ == "__main__":
    _child_main(*sys.argv[1:6])
