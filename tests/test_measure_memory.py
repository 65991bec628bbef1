"""examples/measure_memory.py: the peak memory BENCHMARKS.md's table reports counts a command's whole process tree."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

SCRIPT = Path(__file__).parents[1] / "examples" / "measure_memory.py"
spec = importlib.util.spec_from_file_location("measure_memory", SCRIPT)
measure_memory = importlib.util.module_from_spec(spec)
spec.loader.exec_module(measure_memory)

#: Holds MB of touched memory for 1.5 s (long enough for several 0.2 s samples on a loaded machine).
HOLD = "import numpy, time; held = numpy.ones({mb} * 2**20 // 8); time.sleep(1.5)"


def test_the_peak_counts_every_process_of_the_tree(tmp_path: Path):
    parent = (f"import subprocess, sys; child = subprocess.Popen([sys.executable, '-c', {HOLD.format(mb=150)!r}]); "
              + HOLD.format(mb=100) + "; child.wait()")
    result = measure_memory.measure([sys.executable, "-c", parent], tmp_path / "timeline.log", quiet=True)
    assert result["rc"] == 0 and result["processes"] >= 2
    assert result["peak_tree_mb"] >= 250, result  # parent and child at once
    assert 150 <= result["peak_process_mb"] < result["peak_tree_mb"], result
    assert result["cpu_s"] > 0 and result["wall_s"] >= 1.5
    assert " rss " in (tmp_path / "timeline.log").read_text()


def test_a_command_above_the_limit_is_stopped():
    result = measure_memory.measure([sys.executable, "-c", HOLD.format(mb=400)], None, limit_mb=150, quiet=True)
    assert result["killed_above_mb"] == 150 and result["rc"] != 0
