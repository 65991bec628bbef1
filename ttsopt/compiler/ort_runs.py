"""Running ONNX graphs on the CPU at build time: plain runs, and runs that expose intermediate tensors
(what the INT8 search and the FP16 islands are measured with)."""

from __future__ import annotations

import contextlib
import itertools
import statistics
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

from ttsopt.runtime import session_options
from ttsopt.runtime.threads import use_shared_pool

Feed = dict[str, np.ndarray]


def session(path: Path | str, *, graph_order: bool = False):
    """A CPU session on the build machine. ``graph_order``: run the nodes in onnxruntime's priority-based order (the
    graph's node order where it can) instead of its default, which for a graph with thousands of outputs (the FP16
    range probe: three scalars a tensor) ran the whole model first and every measuring node after it, holding every
    measured tensor: 2.3 GB more per run of the released v4 DiT step, 0.05 GB in graph order."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session_options.apply(options)
    if graph_order:
        options.execution_order = ort.ExecutionOrder.PRIORITY_BASED
    use_shared_pool(options)
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_all(path: Path | str, feeds: Sequence[Feed]) -> list[dict[str, np.ndarray]]:
    """Every output of the graph at ``path`` for each feed, by name."""
    runner = session(path)
    names = [output.name for output in runner.get_outputs()]
    return [dict(zip(names, runner.run(None, feed), strict=True)) for feed in feeds]


#: :func:`median_seconds` stops after this many interleaved rounds when the ranking is settled (:func:`settled`).
SETTLED_ROUNDS = 3
#: ... and every graph's runs lie within this share of each other (max / min − 1).
SETTLED_SPREAD = 0.02


def median_seconds(paths: Sequence[Path | str], feed: Feed, seconds: float = 2.0, repeat: tuple[int, int] = (5, 100)) -> list[float]:
    """Median run time of each graph on ``feed``, the runs interleaved (build machines are shared and noisy):
    at least ``repeat[0]`` runs each, more (up to ``repeat[1]``) until each graph has run about ``seconds``; or
    :data:`SETTLED_ROUNDS` rounds once :func:`settled` says more runs cannot reorder the graphs."""
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
        if runs >= repeat[1] or (runs >= repeat[0] and min(sum(record) for record in times) >= seconds) \
                or (runs >= SETTLED_ROUNDS and settled(times)):
            return [statistics.median(record) for record in times]


def settled(times: Sequence[Sequence[float]], spread: float = SETTLED_SPREAD) -> bool:
    """Whether runs so far already rank the graphs for good: every graph's runs within ``spread`` of each other
    (max / min − 1), and the graphs' ranges of run times disjoint (every run of a faster graph beat every run of a
    slower one). Then each median is known to ``spread`` and their order is every run's order, so the INT8 search's
    decisions (the fastest prefix; whether it beats FP32 by 5 %, :data:`~ttsopt.compiler.static_int8.MIN_SPEEDUP`;
    the next fastest when the package's gate refuses one), which resolve differences of 3 to 30 % between prefixes,
    come out as more runs would make them. On a noisy machine the ranges widen or overlap and the timing runs to its
    full count (``repeat``, ``seconds``), as it did before this rule. On the real-size v2ProPlus package (quiet machine)
    the timing of four prefixes, their builds included, took 50 s for the generator (a run of 2.2 s FP32, 1.0 to 1.6 s
    INT8: five rounds and a warm-up, ≈ 43 s) and 44 s for speaker verification, 94 of the command's 625 s."""
    ranges = sorted((min(record), max(record)) for record in times)
    return (all(high <= low * (1 + spread) for low, high in ranges)
            and all(slower[0] > faster[1] for faster, slower in itertools.pairwise(ranges)))


#: Bytes of exposed tensors one run returns at most (:func:`run_in_groups`): onnxruntime holds them in its arena
#: and numpy copies them out, so a run costs about twice this. The calibration of the real-size v2ProPlus generator
#: took 8.9 GB with every convolution's tensors of a window returned by one run.
GROUP_BYTES = 2**30


def run_in_groups(runner, names: Sequence[str], feed: Feed, budget: int | None = None) -> Iterator[tuple[str, np.ndarray]]:
    """``runner.run(names, feed)`` as ``(name, value)`` pairs, a group of names per run so that one run returns
    about ``budget`` bytes (default :data:`GROUP_BYTES`): what a run returns is held at once, twice (onnxruntime's arena, numpy's copy). The
    groups follow ``names``' order (give it in graph order: a run computes only what its outputs need, so early
    groups stop early); a group's size comes from the largest tensor seen so far (the first run takes one)."""
    for name, (value,) in run_together_in_groups([runner], names, feed, budget):
        yield name, value


def run_together_in_groups(runners: Sequence, names: Sequence[str], feed: Feed, budget: int | None = None,
                           sizes: Mapping[str, int] | None = None) -> Iterator[tuple[str, tuple[np.ndarray, ...]]]:
    """:func:`run_in_groups` over several sessions that produce the same ``names`` (a graph and its FP16
    conversion): each group is run by every session, and each name comes with every session's value, so that
    two graphs' tensors are compared a group at a time. ``budget`` bounds the largest session's group; ``sizes``
    (bytes by name, when known) makes the groups exact: the largest tensor seen so far misjudges a graph whose first
    tensors are small and whose later ones are not (a transformer's attention maps)."""
    budget = GROUP_BYTES if budget is None else budget
    position, largest = 0, 0
    while position < len(names):
        if sizes is not None:
            count, total = 0, 0
            while position + count < len(names) and (count == 0 or total + sizes[names[position + count]] <= budget):
                total += sizes[names[position + count]]
                count += 1
        else:
            count = max(1, budget // largest) if largest else 1
        group = list(names[position:position + count])
        results = [runner.run(group, feed) for runner in runners]
        position += len(group)
        largest = max(largest, *(value.nbytes for values in results for value in values))
        yield from zip(group, zip(*results, strict=True), strict=True)
        del results


def run_exposing(model, tensors: Iterable[str], feeds: Sequence[Feed]) -> list[dict[str, np.ndarray]]:
    """Run ``model`` (a ModelProto, left unchanged) with ``tensors`` made graph outputs too; names the
    graph does not produce are ignored. Every feed's tensors are held at once: for many feeds of a large
    graph, :func:`iter_exposing` holds one group of one feed's."""
    return [dict(pairs) for pairs in iter_exposing(model, tensors, feeds)]


def iter_exposing(model, tensors: Iterable[str], feeds: Iterable[Feed]) -> Iterator[Iterator[tuple[str, np.ndarray]]]:
    """Per feed, its graph outputs and exposed ``tensors`` as ``(name, value)`` pairs, computed a group at a time
    (:func:`run_in_groups`, in graph order): a caller that reduces each tensor as it comes (ranges, histograms)
    holds one group's, where all of a real-size vocoder's convolution tensors of one window are gigabytes.
    Consume each feed's pairs before asking for the next feed's."""
    with exposing_session(model, tensors) as runner:
        names = [output.name for output in runner.get_outputs()]
        for feed in feeds:
            yield run_in_groups(runner, names, feed)


@contextlib.contextmanager
def exposing_session(model, tensors: Iterable[str]):
    """A session of ``model`` (a ModelProto, left unchanged, or the path of one: then it is not copied) with
    ``tensors`` made graph outputs too, in graph order after the graph's own (names the graph does not produce are
    ignored)."""
    import onnx

    if isinstance(model, str | Path):
        probe = onnx.load(str(model))
    else:
        probe = onnx.ModelProto()
        probe.CopyFrom(model)
    exposed = {output.name for output in probe.graph.output}
    wanted = set(tensors)
    order = [name for node in probe.graph.node for name in node.output if name in wanted and name not in exposed]
    for name in order:
        probe.graph.output.append(onnx.ValueInfoProto(name=name))
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "probe.onnx"
        onnx.save(probe, str(path))
        del probe
        yield session(path)
