"""Running ONNX graphs on the CPU at build time: plain runs, and runs that expose intermediate tensors
(what the INT8 search and the FP16 islands are measured with)."""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from ttsopt.runtime.threads import use_shared_pool

Feed = dict[str, np.ndarray]


def session(path: Path | str):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    use_shared_pool(options)
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_all(path: Path | str, feeds: Sequence[Feed]) -> list[dict[str, np.ndarray]]:
    """Every output of the graph at ``path`` for each feed, by name."""
    runner = session(path)
    names = [output.name for output in runner.get_outputs()]
    return [dict(zip(names, runner.run(None, feed), strict=True)) for feed in feeds]


def median_seconds(paths: Sequence[Path | str], feed: Feed, seconds: float = 2.0, repeat: tuple[int, int] = (5, 100)) -> list[float]:
    """Median run time of each graph on ``feed``, the runs interleaved (build machines are shared and noisy):
    at least ``repeat[0]`` runs each, more (up to ``repeat[1]``) until each graph has run about ``seconds``."""
    runners = [session(path) for path in paths]
    times: list[list[float]] = [[] for _ in runners]
    for runner in runners:
        runner.run(None, feed)
    while True:
        for runner, record in zip(runners, times, strict=True):
            start = time.perf_counter()
            runner.run(None, feed)
            record.append(time.perf_counter() - start)
        runs = len(times[0])
        if runs >= repeat[1] or (runs >= repeat[0] and min(sum(record) for record in times) >= seconds):
            return [statistics.median(record) for record in times]


def run_exposing(model, tensors: Iterable[str], feeds: Sequence[Feed]) -> list[dict[str, np.ndarray]]:
    """Run ``model`` (a ModelProto, left unchanged) with ``tensors`` made graph outputs too; names the
    graph does not produce are ignored. Every feed's tensors are held at once: for many feeds of a large
    graph, :func:`iter_exposing` holds one feed's."""
    return list(iter_exposing(model, tensors, feeds))


def iter_exposing(model, tensors: Iterable[str], feeds: Iterable[Feed]) -> Iterator[dict[str, np.ndarray]]:
    """:func:`run_exposing` one feed at a time: the exposed tensors of a real-size vocoder are ~1.5 GB per
    calibration window, so a caller that reduces them (ranges, histograms) keeps memory to one window's."""
    import onnx

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    exposed = {output.name for output in probe.graph.output}
    produced = {name for node in probe.graph.node for name in node.output}
    for name in sorted((set(tensors) & produced) - exposed):
        probe.graph.output.append(onnx.ValueInfoProto(name=name))
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "probe.onnx"
        onnx.save(probe, str(path))
        del probe
        runner = session(path)
        names = [output.name for output in runner.get_outputs()]
        for feed in feeds:
            yield dict(zip(names, runner.run(None, feed), strict=True))
