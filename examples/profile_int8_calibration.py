"""The static INT8 search's calibration phase alone, on a real-size package's graph: its seconds and peak memory, and
its MinMax cache against onnxruntime's own MinMax calibrator's.

``python examples/profile_int8_calibration.py PACKAGE prepare|calibrate|onnxruntime-minmax|compare [--graph generator] [--work build/calibration]``

- ``prepare``: the graph's calibration windows as ``quantize --int8`` makes them (the bundled calibration recordings
  through the family's front end, :class:`~ttsopt.compiler.passes.static_int8.StaticInt8`'s windows) and its equalized
  graph (what :func:`ttsopt.compiler.static_int8.search` calibrates), saved under ``--work``;
- ``calibrate``: :func:`ttsopt.compiler.static_int8.calibrate` with every candidate, its caches kept under
  ``--work/calibrate`` (run it with ``PYTHONPATH`` at another checkout to measure that one's);
- ``onnxruntime-minmax``: onnxruntime's MinMax calibrator over the same windows (``create_calibrator`` +
  ``collect_data``), its cache under ``--work/onnxruntime-minmax``;
- ``compare``: the two MinMax caches, tensor by tensor, to the bit.

Each measuring mode prints its seconds and the process's peak RSS (run each in its own process: the peak is the
process's).
"""

from __future__ import annotations

import argparse
import json
import resource
import struct
import tempfile
import time
from pathlib import Path

import numpy as np


def peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def cpu_seconds() -> float:
    """The process's CPU seconds (user + system, every thread): less at the mercy of a shared machine than its wall time."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def prepare(package_dir: Path, graph: str, work: Path) -> None:
    import onnx

    from ttsopt.compiler import equalization, static_int8
    from ttsopt.compiler.passes.static_int8 import StaticInt8
    from ttsopt.compiler.quantize import calibration_feeds, calibration_recordings
    from ttsopt.families import get_family
    from ttsopt.runtime.package import Package

    package = Package(package_dir)
    precision_pass = get_family(package.manifest.family).quantization()[graph]
    assert isinstance(precision_pass, StaticInt8)
    work.mkdir(parents=True, exist_ok=True)
    feeds = calibration_feeds(package, [graph], calibration_recordings(None))[graph]
    inputs = precision_pass.search_inputs(package, graph, feeds)
    np.savez(work / "windows.npz", **{f"{i}/{name}": value for i, window in enumerate(inputs.windows)
                                      for name, value in window.items()})
    model = onnx.load(str(package.path / package.manifest.graphs[graph].file))
    every = [cost.node for cost in static_int8.conv_costs(model, inputs.search_feeds[0])]
    plan = equalization.measure(model, every, inputs.windows)
    onnx.save(equalization.apply(model, plan, every), str(work / "equalized.onnx"))
    print(f"{len(inputs.windows)} windows, {len(every)} convolutions; peak {peak_gb():.2f} GB")


def load_windows(work: Path) -> list[dict[str, np.ndarray]]:
    with np.load(work / "windows.npz") as saved:
        count = 1 + max(int(key.split("/")[0]) for key in saved.files)
        return [{key.split("/")[1]: saved[key] for key in saved.files if key.startswith(f"{i}/")} for i in range(count)]


def calibrate(work: Path) -> None:
    from ttsopt.compiler import static_int8

    windows = load_windows(work)
    out = work / "calibrate"
    out.mkdir(exist_ok=True)
    start, cpu = time.perf_counter(), cpu_seconds()
    caches = static_int8.calibrate(work / "equalized.onnx", windows, out)
    print(f"calibrate ({', '.join(caches)}): {time.perf_counter() - start:.1f} s, {cpu_seconds() - cpu:.1f} CPU s, "
          f"peak {peak_gb():.2f} GB "
          f"({static_int8.__file__})")


def onnxruntime_minmax(work: Path) -> None:
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, create_calibrator, save_tensors_data

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.windows = iter(windows)

        def get_next(self):
            return next(self.windows, None)

    windows = load_windows(work)
    out = work / "onnxruntime-minmax"
    out.mkdir(exist_ok=True)
    start, cpu = time.perf_counter(), cpu_seconds()
    with tempfile.TemporaryDirectory() as scratch:
        calibrator = create_calibrator(work / "equalized.onnx", ["Conv"], augmented_model_path=f"{scratch}/augmented.onnx",
                                       calibrate_method=CalibrationMethod.MinMax)
        calibrator.collect_data(Reader())
        save_tensors_data(calibrator.compute_data(), out / "calibration-minmax.json")
    print(f"onnxruntime's MinMax calibrator: {time.perf_counter() - start:.1f} s, {cpu_seconds() - cpu:.1f} CPU s, "
          f"peak {peak_gb():.2f} GB")


def bits(value: float) -> bytes:
    return struct.pack("<d", value)


def compare(work: Path) -> None:
    ours = json.loads((work / "calibrate" / "calibration-minmax.json").read_text())
    theirs = json.loads((work / "onnxruntime-minmax" / "calibration-minmax.json").read_text())
    assert ours.keys() == theirs.keys() and ours["data"].keys() == theirs["data"].keys()
    differ = [(name, key) for name, data in theirs["data"].items() for key in ("lowest", "highest")
              if data[key]["dtype"] != ours["data"][name][key]["dtype"]
              or [bits(v) for v in data[key]["data"]] != [bits(v) for v in ours["data"][name][key]["data"]]]
    same_rest = {k: v for k, v in ours.items() if k != "data"} == {k: v for k, v in theirs.items() if k != "data"}
    print(f"{len(theirs['data'])} tensors; values differing in a bit: {differ or 'none'}; the rest equal: {same_rest}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("package", type=Path)
    parser.add_argument("mode", choices=["prepare", "calibrate", "onnxruntime-minmax", "compare"])
    parser.add_argument("--graph", default="generator")
    parser.add_argument("--work", type=Path, default=Path("build/calibration"))
    args = parser.parse_args()
    if args.mode == "prepare":
        prepare(args.package, args.graph, args.work)
    elif args.mode == "calibrate":
        calibrate(args.work)
    elif args.mode == "onnxruntime-minmax":
        onnxruntime_minmax(args.work)
    else:
        compare(args.work)


if __name__ == "__main__":
    main()
