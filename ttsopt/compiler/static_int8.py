"""Static INT8 (QDQ) for convolution graphs, searched against a quality budget.

Quantizing every convolution of a GAN vocoder ruins it (HiFi-GAN: log-mel L1 ≈ 0.5 against a budget
of 0.05), and the damage is very uneven between layers. So the set of INT8 layers is searched:

0. **Equalize** (:mod:`ttsopt.compiler.equalization`): the channels of every convolution's input and output
   are brought to equal range by an exact FP32 rewrite, so that onnxruntime's per-tensor activation
   grids fit every channel (on HiFi-GAN this halves the INT8 error of the same layers).
1. **Calibrate** once per candidate method on fixed-length windows of the calibration inputs
   (onnxruntime's calibrators fail or silently degrade on variable lengths): MinMax and
   percentile clipping at 99.99 / 99.999, from one session and two passes over the windows: the first's
   minima and maxima are the MinMax cache (onnxruntime's MinMax calibrator's, to the bit, without its own
   pass) and the histograms' range, the second's histograms serve both percentiles (on the real-size v2ProPlus
   generator the MinMax calibrator's pass alone took 42 CPU s and peaked at 4.30 GB: the phase's peak fell from
   4.31 to 3.43 GB, the caches the same to the bit, BENCHMARKS.md). The method is *chosen
   by measurement*: the one whose all-layer INT8 graph scores best on the search inputs.
2. **Sensitivity**: each convolution quantized alone, scored (e.g. log-mel L1 of the audio against
   the FP32 graph's) on the search inputs, which are whole utterances distinct from the package's
   verification set. Skipped when every layer INT8 already fits the budget: quality then decides
   nothing, and the layers are ordered by FLOPs (what each can save) for step 4 (on the real-size v2ProPlus
   speaker-verification graph, 158 convolutions all INT8 scoring 0.001 against a 0.045 target, the sweep had
   taken 13 of the command's 29 minutes). Each layer is run on the part of the graph it changes only
   (:class:`Sweep`: upstream and parallel branches come from one FP32 run per group of layers), the same
   scores: on the real-size v2ProPlus generator (93 convolutions) a whole-graph measure took 6.1 s, 70 % of
   it the runs, and the sweep 93 × 6.1 s ≈ 9.5 min; on parts it takes 193 s (the runs of the parts are 83 %
   of it: what is left is the compute downstream of each layer; a part holds 45 % of the graph's nodes on average).
3. **Selection**: layers ordered by sensitivity per FLOP (what a layer costs in quality for the time
   it can save); the longest prefix of that order that stays inside the budget is found by
   bisection on measured scores.
4. **Speed**: INT8 FLOPs are not always time saved (each QLinearConv adds quantize/dequantize glue,
   which small convolutions cannot pay back), so that prefix and shorter ones (¾, ½, ¼ of it) are
   timed against the FP32 graph, interleaved, and the fastest is kept, unless fewer INT8 layers (or FP32)
   come within 5 % of it (:func:`fastest_prefix`: more INT8 layers must pay for their error; closer timings
   are the machine's noise); when the FP32 graph is kept, nothing is quantized. The timing stops after three
   rounds when the runs already rank the graphs for good (:func:`~ttsopt.compiler.ort_runs.settled`), and each
   graph is built once (a timed prefix the bisection scored, or the all-layer graph when every layer fits, is
   not built again).
5. **The package's gate in the loop**: the search scores on the calibration recordings, which may be the
   user's own (one held-out English recording: a prefix inside the budget there scored 0.056 on the
   package's golden set against 0.05). So the chosen prefix must also pass ``gate`` (the package's
   golden check); a prefix that fails it is dropped for the next fastest, and below the shortest timed
   prefix the search backs off by halving, until a prefix passes both and is faster than FP32, or
   nothing is quantized.

Everything quantizing goes through onnxruntime's own tools (``create_calibrator``,
``quantize_static`` with a calibration cache, QDQ format, U8 activations / S8 per-channel weights),
which the CPU execution provider fuses into QLinearConv. ConvTranspose stays FP32 (onnxruntime does
not fuse DQ → ConvTranspose → Q).
"""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ttsopt.compiler import equalization, ort_runs
from ttsopt.compiler.ort_runs import Feed, median_seconds, run_all, run_exposing, run_in_groups

#: Scores a graph's outputs on the search inputs against the FP32 graph's: lower is better.
Score = Callable[[list[dict[str, np.ndarray]]], float]
#: Holds a candidate INT8 graph (its path) to the package's gate: (passed, the gated value).
Gate = Callable[[Path], tuple[bool, float]]

#: Calibration candidates: name → (onnxruntime method, percentile or None).
CALIBRATIONS = {"minmax": ("MinMax", None), "percentile-99.99": ("Percentile", 99.99),
                "percentile-99.999": ("Percentile", 99.999)}
#: Shares of the longest prefix inside the budget that are timed (step 4).
TIMED_SHARES = (1.0, 0.75, 0.5, 0.25)
#: An INT8 graph must beat the FP32 one by this factor to be kept: smaller gains are within the timing
#: noise of a shared machine, and not worth the quality spent.
MIN_SPEEDUP = 1.05


@dataclass
class LayerCost:
    """One quantizable convolution: its graph node, its weight's name (the layer's readable name), its FLOPs."""

    node: str
    layer: str
    flops: float


@dataclass
class SearchResult:
    calibration: str
    calibration_scores: dict[str, float]
    #: Score of each layer INT8 alone; empty when every layer fits the budget (no sweep).
    sensitivity: dict[str, float]
    #: Every quantizable convolution, in graph order.
    layers: list[str]
    quantized: list[str]
    score: float
    all_layers_score: float
    flops_share: float
    #: What the equalization did: channel-range percentile, conv pairs folded, tensors with per-channel scales.
    equalization: dict = field(default_factory=dict)
    probes: list[dict] = field(default_factory=list)
    #: Step 4: median seconds of the FP32 graph and of each timed prefix (``layers`` INT8).
    fp32_seconds: float = 0.0
    timings: list[dict] = field(default_factory=list)
    #: Layers of the longest prefix inside the budget (``quantized`` is shorter, or empty, when that was faster).
    fitting_layers: int = 0
    #: Step 5: prefixes the package's gate refused (``layers``, the gated ``value``), in the order tried.
    gate_rejected: list[dict] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        """Median seconds of the chosen graph (the FP32 graph's when nothing is quantized)."""
        return next((t["seconds"] for t in self.timings if t["layers"] == len(self.quantized)), self.fp32_seconds)


def conv_costs(model, feed: Feed) -> list[LayerCost]:
    """Every Conv with a constant weight of ``model`` (a ModelProto) and its FLOPs on ``feed``, measured by
    running the graph with the convolutions' outputs exposed (their lengths depend on upsampling the graph does)."""
    weights = {init.name: init.dims for init in model.graph.initializer}
    convs = [node for node in model.graph.node if node.op_type == "Conv" and node.input[1] in weights]
    outputs = run_exposing(model, [node.output[0] for node in convs], [feed])[0]
    costs = []
    for node in convs:
        out_channels, in_per_group, *kernel = weights[node.input[1]]
        shape = outputs[node.output[0]].shape
        costs.append(LayerCost(node.name, node.input[1].removesuffix(".weight"),
                               2.0 * float(np.prod(shape)) * in_per_group * float(np.prod(kernel))))
    return costs


def calibrate(model_path: Path, windows: Sequence[Feed], scratch: Path,
              candidates: Sequence[str] = tuple(CALIBRATIONS)) -> dict[str, Path]:
    """One calibration cache per candidate (default: all of :data:`CALIBRATIONS`; onnxruntime's JSON format), from
    one session of onnxruntime's percentile calibrator and two passes over the windows: the first finds each tensor's
    minimum and maximum (:func:`tensor_extremes`: the MinMax cache is made of them, :func:`minmax_ranges`, and the
    histograms' range), the second adds up the histograms that serve every percentile (:func:`collect_histograms`).
    A method whose statistics cannot be formed on these windows is left out of the candidates: no windows leave out
    every method; onnxruntime's histograms refuse a tensor whose range is too narrow for their bins (seen with a
    single short recording), which leaves out the percentiles only, MinMax having its extremes from the first pass.

    MinMax had a pass of its own, onnxruntime's MinMax calibrator (an augmented graph with ReduceMin/Max on every
    convolution tensor; its cache is the same, :func:`minmax_ranges`), whose session's arena held 3.9 GB on the
    real-size v2ProPlus generator (its ReduceMin/Max nodes run after the whole graph, so every convolution tensor of a
    window is alive at once)."""
    from onnxruntime.quantization import CalibrationMethod, create_calibrator, save_tensors_data

    calibrator = create_calibrator(model_path, ["Conv"], augmented_model_path=str(scratch / "augmented.onnx"),
                                   calibrate_method=CalibrationMethod.Percentile)
    try:
        extremes = tensor_extremes(calibrator, windows)
    except ValueError:
        return {}
    caches = {}
    if "minmax" in candidates:
        caches["minmax"] = scratch / "calibration-minmax.json"
        save_tensors_data(minmax_ranges(extremes), caches["minmax"])
    percentiles = [name for name in candidates if CALIBRATIONS[name][0] == "Percentile"]
    if percentiles:
        try:
            collect_histograms(calibrator, windows, extremes)
        except ValueError:
            percentiles = []
    for name in percentiles:
        calibrator.collector.percentile = CALIBRATIONS[name][1]
        with contextlib.redirect_stdout(io.StringIO()):
            ranges = calibrator.compute_data()
        caches[name] = scratch / f"calibration-{name}.json"
        save_tensors_data(ranges, caches[name])
    return {name: caches[name] for name in candidates if name in caches}


@dataclass
class Extremes:
    """Each calibrated tensor's minimum and maximum over every window (NaN left out), and those of its magnitude."""

    low: dict[str, np.ndarray] = field(default_factory=dict)
    high: dict[str, np.ndarray] = field(default_factory=dict)
    absolute_low: dict[str, np.ndarray] = field(default_factory=dict)
    absolute_high: dict[str, np.ndarray] = field(default_factory=dict)


def _activations(calibrator, windows: Sequence[Feed]) -> Iterator[tuple[str, np.ndarray]]:
    """Each window's calibrated tensors, flat, in graph order (a group's run stops after the last node it needs), a group
    of them per run of the calibrator's session (:func:`~ttsopt.compiler.ort_runs.run_in_groups`): one group's in memory
    (a loop variable would keep the last one alive through the next run: ``del``)."""
    calibrated = set(calibrator.tensors_to_calibrate)
    produced = [*(value.name for value in calibrator.model.graph.input), *(name for node in calibrator.model.graph.node
                                                                           for name in node.output)]
    wanted = [name for name in dict.fromkeys(produced) if name in calibrated]
    for window in windows:
        for name, value in run_in_groups(calibrator.infer_session, wanted, window):
            yield name, value.reshape(-1)
            del value


def tensor_extremes(calibrator, windows: Sequence[Feed]) -> Extremes:
    """Pass 1 over the windows with the session of ``calibrator`` (onnxruntime's percentile calibrator, whose augmented
    graph exposes every tensor it calibrates, the tensors the MinMax calibrator reduces): :class:`Extremes`."""
    if not windows:
        raise ValueError("No data is collected.")
    extremes = Extremes()
    for name, value in _activations(calibrator, windows):
        magnitude = np.absolute(value)
        pairs = ((extremes.low, np.nanmin(value), min), (extremes.high, np.nanmax(value), max),
                 (extremes.absolute_low, magnitude.min(), min), (extremes.absolute_high, magnitude.max(), max))
        for record, new, pick in pairs:
            record[name] = new if name not in record else pick(record[name], new)
        del magnitude, value
    return extremes


def minmax_ranges(extremes: Extremes):
    """The ranges onnxruntime's MinMax calibrator computes, as ``create_calibrator`` makes it for MinMax (neither
    symmetric, nor a moving average, nor per channel): per tensor its ``lowest`` and ``highest``, each a 1-element
    array of the tensor's dtype (a window's ReduceMin/Max reshaped to ``[-1]``, then ``np.nanmin`` / ``np.nanmax`` over
    the windows), not widened to include 0 (``quantize_static`` does that). Every value is onnxruntime's own to the bit
    (``tests/test_precision.py``), except where one window's ReduceMin/Max and ``np.nanmin`` differ on ties and NaN:
    a tensor whose extreme is a zero of both signs (either sign comes out of onnxruntime's vectorized reduction, and
    neither changes a scale or zero point) or a window's tensor holding NaN (onnxruntime's reduction returns it or not
    depending on where it lies)."""
    from onnxruntime.quantization import CalibrationMethod
    from onnxruntime.quantization.calibrate import TensorsData

    return TensorsData(CalibrationMethod.MinMax, {name: (np.asarray(extremes.low[name]).reshape(1),
                                                         np.asarray(extremes.high[name]).reshape(1))
                                                  for name in extremes.low})


def collect_histograms(calibrator, windows: Sequence[Feed], extremes: Extremes) -> None:
    """What ``calibrator.collect_data`` does for onnxruntime's (symmetric) percentile calibrator given every window
    at once, the same histograms to the count, with one group of one window's tensors in memory instead of all of them
    (onnxruntime stacks every window's conv activations, then copies them twice: 13 GB for a real-size SoVITS
    generator). Its one-shot histogram of ``|x|`` spans the data's own range, found by the first pass over the windows
    (``extremes``, :func:`tensor_extremes`, with the min / max it also keeps), so this second pass adds up each window's
    histogram on it. Raises ``ValueError`` where onnxruntime's would: no tensors, or a range too narrow for the bins."""
    from onnxruntime.quantization.calibrate import HistogramCollector

    if not calibrator.symmetric:
        raise ValueError("only the symmetric percentile calibrator is streamed")
    if not extremes.low:
        raise ValueError("No data is collected.")
    histograms, edges = {}, {}
    for name, value in _activations(calibrator, windows):
        counts, edges[name] = np.histogram(np.absolute(value), bins=calibrator.num_bins,
                                           range=(extremes.absolute_low[name], extremes.absolute_high[name]))
        histograms[name] = counts if name not in histograms else histograms[name] + counts
        del value
    collector = HistogramCollector(method=calibrator.method, symmetric=True, num_bins=calibrator.num_bins,
                                   num_quantized_bins=calibrator.num_quantized_bins, percentile=calibrator.percentile,
                                   scenario=calibrator.scenario)
    collector.histogram_dict = {name: (histograms[name], edges[name].astype(extremes.low[name].dtype),
                                       extremes.low[name], extremes.high[name]) for name in histograms}
    calibrator.collector = collector


def quantize_nodes(source: Path, destination: Path, nodes: Sequence[str], calibration: str, cache: Path,
                   reduce_range: bool = False) -> None:
    """QDQ INT8 for ``nodes`` (U8 activations, per-channel S8 weights) with ranges from ``cache``; the equalization's
    ``Mul`` nodes beside the new QuantizeLinear / DequantizeLinear go into them (:func:`equalization.fold_into_qdq`)."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    with _root_logger_quiet():  # quantize_static warns about pre-processing on the root logger, every call
        quantize_static(str(source), str(destination), calibration_data_reader=None, quant_format=QuantFormat.QDQ,
                        op_types_to_quantize=["Conv"], nodes_to_quantize=list(nodes), per_channel=True,
                        reduce_range=reduce_range, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=getattr(CalibrationMethod, CALIBRATIONS[calibration][0]),
                        calibration_cache_path=str(cache))
    model = onnx.load(str(destination))
    if equalization.fold_into_qdq(model):
        onnx.save(model, str(destination))


@contextlib.contextmanager
def _root_logger_quiet():
    """The root logger at ERROR for the block only: the caller's logging is theirs, not ours to change."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


#: Bytes of FP32 tensors the sweep holds at once (:class:`Sweep`): the layers are measured a group at a time, each
#: group's boundary tensors from one run of the FP32 graph. The real-size v2ProPlus generator's parts read 138 tensors,
#: 3.0 GiB over its two search feeds: one group. Measured with 1 GiB (shared machine): the groups' FP32 runs took 73 of
#: the sweep's 247 s, against 4.3 of 193 s for one group, whose sweep phase held 5.2 GB (the command's peak, calibration,
#: is 5.56 GB).
SWEEP_CACHE_BYTES = 7 * 2**29  # 3.5 GiB


@dataclass
class Part:
    """What quantizing one convolution changes: ``nodes`` (graph order) are the conv, every node that reads its input
    unless that input is equalized (onnxruntime's Q/DQ rewires every reader of a tensor) and everything downstream;
    the rest computes as the FP32 graph does."""

    nodes: list
    #: Tensors the part reads from outside it (from the FP32 graph's run, or the feed).
    inputs: list[str]
    #: The graph's outputs the part computes (the others are the FP32 graph's).
    outputs: list[str]


class Sweep:
    """Step 2, each convolution quantized alone and scored, running only the part of the graph that it changes.

    The measure of a layer was the whole graph equalized for it, saved, quantized by ``quantize_static`` (a walk and
    shape inference of the whole graph), a session and runs of the whole graph: 6 s per layer on the real-size
    v2ProPlus generator, 93 layers. Everything upstream of a layer (and beside it: the generator's resblocks are parallel
    branches that are summed) computes what the FP32 graph with its chains folded computes, whichever layer is INT8.
    So the graph with the chains folded runs once per group of layers, exposing the tensors that cross into each
    layer's :class:`Part`; each layer's part alone is equalized (:func:`equalization.equalize`, the same rewrite
    :func:`equalization.apply` makes), quantized by the same ``quantize_static`` call with the same calibration cache,
    and run on those tensors. The score is the whole graph's (the part's outputs with the FP32 graph's other outputs):
    the same as the whole trial graph's up to onnxruntime's fusions at the part's edge (float rounding;
    ``tests/test_precision.py`` holds the two to each other)."""

    def __init__(self, model, plan: equalization.Equalization, calibration: str, cache: Path,
                 search_feeds: Sequence[Feed], score: Score, scratch: Path, reduce_range: bool = False) -> None:
        self.folded = equalization.fold_chains(model, plan)
        self.tails = equalization.chain_tails(self.folded, plan)
        self.plan, self.calibration, self.cache = plan, calibration, cache
        self.feeds, self.score, self.scratch, self.reduce_range = list(search_feeds), score, scratch, reduce_range
        graph = self.folded.graph
        self.order = {node.name: index for index, node in enumerate(graph.node)}
        self.nodes = {node.name: node for node in graph.node}
        self.consumers: dict[str, list] = {}
        for node in graph.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
        self.outputs = [output.name for output in graph.output]
        self.constants = {init.name for init in graph.initializer}
        #: Seconds spent in each phase, over every layer measured, and the FP32 runs' groups of layers
        #: (``examples/profile_int8_sweep.py``).
        self.seconds: dict[str, float] = {}
        self.groups = 0

    def part(self, node: str) -> Part:
        conv = self.nodes[node]
        # An equalized input is read through the conv's own Mul; any other, onnxruntime's Q/DQ rewires every reader of.
        own_input = node in self.plan.convs and node not in self.tails
        seeds = [conv] if own_input else [conv, *self.consumers.get(conv.input[0], [])]
        reached, stack = {}, seeds
        while stack:
            current = stack.pop()
            if current.name in reached:
                continue
            reached[current.name] = current
            stack.extend(consumer for name in current.output for consumer in self.consumers.get(name, []))
        nodes = sorted(reached.values(), key=lambda n: self.order[n.name])
        produced = {name for n in nodes for name in n.output}
        if conv.input[0] in self.outputs:  # quantize_static would rename its producer's output: not this part's
            raise ValueError(f"the input of {node} is a graph output")
        inputs = list(dict.fromkeys(name for n in nodes for name in n.input
                                    if name and name not in produced and name not in self.constants))
        return Part(nodes, inputs, [name for name in self.outputs if name in produced])

    def scores(self, nodes: Sequence[str]) -> Iterator[tuple[str, float]]:
        """``(node, score)`` for each of ``nodes`` quantized alone, in graph order, a group of layers per run of the FP32
        graph: the tensors a group's parts read, on every search feed, at most :data:`SWEEP_CACHE_BYTES` (sized by a
        first run that keeps nothing; a layer whose tensors alone exceed it is a group of its own)."""
        parts = {node: self.part(node) for node in sorted(nodes, key=self.order.get)}
        needed = {node: [*part.inputs, *(name for name in self.outputs if name not in part.outputs)]
                  for node, part in parts.items()}
        graph_inputs = {value.name for value in self.folded.graph.input}
        every = {name for names in needed.values() for name in names} - graph_inputs
        with contextlib.ExitStack() as stack:
            with self._timed("FP32 session"):
                runner = stack.enter_context(ort_runs.exposing_session(self.folded, every))
            names = [output.name for output in runner.get_outputs() if output.name in every]
            with self._timed("FP32 runs"):  # the tensors' sizes, nothing kept
                sizes = dict.fromkeys(names, 0)
                for feed in self.feeds:
                    for name, value in ort_runs.run_in_groups(runner, names, feed):
                        sizes[name] += value.nbytes
                        del value
            pending = list(parts)
            while pending:
                group, tensors = [], set()
                for node in pending:
                    wanted = tensors | (set(needed[node]) - graph_inputs)
                    if group and sum(sizes[name] for name in wanted) > SWEEP_CACHE_BYTES:
                        break
                    group.append(node)
                    tensors = wanted
                pending = pending[len(group):]
                self.groups += 1
                with self._timed("FP32 runs"):
                    wanted = [name for name in names if name in tensors]
                    cached = [dict(ort_runs.run_in_groups(runner, wanted, feed)) | feed for feed in self.feeds]
                for node in group:
                    yield node, self._measure(node, parts[node], cached)
                del cached

    def _measure(self, node: str, part: Part, cached: list[Feed]) -> float:
        import onnx
        from onnx import helper
        from onnxruntime.quantization.onnx_model import ONNXModel

        with self._timed("part"):
            graph = self.folded.graph
            used = {name for n in part.nodes for name in n.input}
            first = cached[0]
            piece = helper.make_model(
                helper.make_graph([_copy(n) for n in part.nodes], "part",
                                  [helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(first[name].dtype),
                                                                 [f"{name}_{axis}" for axis in range(first[name].ndim)])
                                   for name in part.inputs],
                                  [next(o for o in graph.output if o.name == name) for name in part.outputs],
                                  [init for init in graph.initializer if init.name in used]),
                opset_imports=self.folded.opset_import, ir_version=self.folded.ir_version)
            equalization.equalize(piece, self.plan, [node], self.tails)
            ONNXModel(piece).topological_sort()
            onnx.save(piece, str(self.scratch / "part.onnx"))
            del piece
        with self._timed("quantize_static"):
            quantize_nodes(self.scratch / "part.onnx", self.scratch / "part-int8.onnx", [node], self.calibration,
                           self.cache, self.reduce_range)
        with self._timed("session"):
            runner = ort_runs.session(self.scratch / "part-int8.onnx")
        with self._timed("runs"):
            outputs = []
            for values in cached:
                computed = dict(zip(part.outputs, runner.run(part.outputs, {name: values[name] for name in part.inputs}),
                                    strict=True))
                outputs.append({name: computed[name] if name in computed else values[name] for name in self.outputs})
        with self._timed("score"):
            return self.score(outputs)

    @contextlib.contextmanager
    def _timed(self, phase: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[phase] = self.seconds.get(phase, 0.0) + time.perf_counter() - start


def _copy(node):
    """A copy of a NodeProto (the part's own: equalization rewrites its conv's input and output)."""
    import onnx

    copied = onnx.NodeProto()
    copied.CopyFrom(node)
    return copied


def fastest_prefix(fp32_seconds: float, timings: dict[int, float]) -> int:
    """The number of INT8 layers to keep among the timed graphs (0: FP32). Only graphs that beat FP32 by
    :data:`MIN_SPEEDUP` count; of those the fastest, unless one with fewer INT8 layers comes within the same margin of
    it. More INT8 layers add error, so they must pay for it, as INT8 must against FP32; and timings closer than that
    are decided by the machine's noise: the real-size v2ProPlus generator's 90 and 68 layers, 1.8 to 4.7 % apart,
    swapped between runs (golden log-mel L1 0.046 or 0.014)."""
    paying = {layers: seconds for layers, seconds in timings.items() if fp32_seconds / seconds >= MIN_SPEEDUP}
    if not paying:
        return 0
    best = min(paying.values())
    return min(layers for layers, seconds in paying.items() if seconds / best < MIN_SPEEDUP or seconds == best)


def gated_prefix(fp32_seconds: float, timed: dict[int, float], passes: Callable[[int], bool],
                 time_prefix: Callable[[int], tuple[float, float]]) -> tuple[int, float]:
    """Step 5: how many INT8 layers to keep, and the FP32 time they were measured against.

    The fastest timed prefix that beats FP32 (:func:`fastest_prefix`) and ``passes(layers)`` the package's gate.
    A refused prefix drops every longer one too (prefixes nest); when every fast timed prefix is refused, the
    search backs off below the shortest by halving, and the first that passes is timed (``time_prefix`` →
    (FP32 s, INT8 s), added to ``timed``) and kept only if it still beats FP32. 0: keep FP32.
    """
    remaining, refused = dict(timed), False
    size = fastest_prefix(fp32_seconds, remaining)
    while size and not passes(size):
        refused = True
        remaining = {layers: seconds for layers, seconds in remaining.items() if layers < size}
        size = fastest_prefix(fp32_seconds, remaining)
    if size or not refused:
        return size, fp32_seconds
    size = min(timed) // 2
    while size:
        if passes(size):
            fp32_seconds, timed[size] = time_prefix(size)
            return fastest_prefix(fp32_seconds, {size: timed[size]}), fp32_seconds  # shorter ones save even less
        size //= 2
    return 0, fp32_seconds


def search(source: Path, destination: Path, windows: Sequence[Feed], search_feeds: Sequence[Feed], score: Score,
           budget: float, timing_feed: Feed, reduce_range: bool = False,
           step: Callable[[str], None] = lambda message: None, gate: Gate | None = None) -> SearchResult:
    """Quantize the convolutions of ``source`` that fit ``budget`` (see the module docstring) into ``destination``."""
    import onnx

    with tempfile.TemporaryDirectory(prefix="ttsopt-int8-") as scratch_dir:
        scratch = Path(scratch_dir)
        original = onnx.load(str(source))
        costs = conv_costs(original, search_feeds[0])
        every = [cost.node for cost in costs]
        step(f"equalizing the channels of {len(every)} convolutions")
        plan = equalization.measure(original, every, windows)
        equalized = scratch / "equalized.onnx"
        onnx.save(equalization.apply(original, plan, every), str(equalized))
        step(f"calibrating {len(every)} convolutions on {len(windows)} windows")
        caches = calibrate(equalized, windows, scratch)

        built: dict[tuple[frozenset[str], str], Path] = {}

        def build(nodes: Sequence[str], calibration: str) -> Path:
            """The graph with ``nodes`` in INT8, their inputs and outputs equalized. Every subset's graph names and
            computes its tensors as the calibrated graph does, so one calibration serves all. Each graph is built
            once and kept in ``scratch``: the graph depends on the set of ``nodes`` only (the equalization and
            ``quantize_static`` read it as a set), and the search asks for some twice: a prefix the bisection
            scored and then times (the real-size v2ProPlus generator's 90 layers), every layer scored with the
            chosen calibration and then timed when every layer fits (its speaker verification's 158)."""
            key = (frozenset(nodes), calibration)
            if key not in built:
                subset = scratch / "equalized-subset.onnx"
                onnx.save(equalization.apply(original, plan, nodes), str(subset))
                built[key] = scratch / f"int8-{len(built)}.onnx"
                quantize_nodes(subset, built[key], nodes, calibration, caches[calibration], reduce_range)
            return built[key]

        def measure(nodes: Sequence[str], calibration: str) -> float:
            return score(run_all(build(nodes, calibration), search_feeds))

        calibration_scores = {}
        for name in caches:
            step(f"all {len(every)} convolutions INT8 with {name} calibration")
            calibration_scores[name] = measure(every, name)
        calibration = min(calibration_scores, key=calibration_scores.get)
        every_layer_fits = calibration_scores[calibration] <= budget

        sensitivity = {}
        if every_layer_fits:  # no layer's quality decides anything: the biggest savings first
            step(f"all {len(every)} convolutions INT8 fit the budget: no per-layer sweep")
            order = sorted(costs, key=lambda cost: -cost.flops)
        else:
            sweep = Sweep(original, plan, calibration, caches[calibration], search_feeds, score, scratch, reduce_range)
            layers = {cost.node: cost.layer for cost in costs}
            measured = {}
            for index, (node, value) in enumerate(sweep.scores(every), 1):
                step(f"sensitivity {index}/{len(costs)}: {layers[node]} {value:.4g}")
                measured[node] = value
            sensitivity = {cost.layer: measured[cost.node] for cost in costs}
            order = sorted(costs, key=lambda cost: sensitivity[cost.layer] / cost.flops)
        total = sum(cost.flops for cost in costs)

        probes = []
        # Invariant: the prefix of `low` layers fits (the empty one does), the prefix of `high` does not.
        if every_layer_fits:
            low, high, best_score = len(order), len(order) + 1, calibration_scores[calibration]
        else:
            low, high, best_score = 0, len(order), 0.0
        while high - low > 1:
            middle = (low + high) // 2
            step(f"searching: {middle} of {len(order)} convolutions INT8")
            value = measure([cost.node for cost in order[:middle]], calibration)
            probes.append({"layers": middle, "score": value})
            if value <= budget:
                low, best_score = middle, value
            else:
                high = middle
        fp32_seconds, timed, paths = 0.0, {}, {}
        if low:
            sizes = sorted({max(1, round(share * low)) for share in TIMED_SHARES}, reverse=True)
            step(f"timing FP32 against {', '.join(map(str, sizes))} INT8 layers")
            paths = {size: build([cost.node for cost in order[:size]], calibration) for size in sizes}
            fp32_seconds, *seconds = median_seconds([source, *paths.values()], timing_feed)
            timed = dict(zip(paths, seconds, strict=True))
        gate = gate or (lambda path: (True, 0.0))
        rejected: list[dict] = []

        def passes(size: int) -> bool:
            if size not in paths:
                paths[size] = build([cost.node for cost in order[:size]], calibration)
            step(f"checking {size} INT8 layers against the package's gate")
            passed, value = gate(paths[size])
            if not passed:
                rejected.append({"layers": size, "value": value})
            return passed

        def time_prefix(size: int) -> tuple[float, float]:
            return tuple(median_seconds([source, paths[size]], timing_feed))

        size, fp32_seconds = gated_prefix(fp32_seconds, timed, passes, time_prefix)
        chosen = order[:size]
        if len(chosen) != low and chosen:
            best_score = measure([cost.node for cost in chosen], calibration)
        if chosen:
            shutil.move(paths[size], destination)
        return SearchResult(calibration=calibration, calibration_scores=calibration_scores, sensitivity=sensitivity,
                            layers=[cost.layer for cost in costs],
                            quantized=[cost.layer for cost in chosen], score=best_score if chosen else 0.0,
                            all_layers_score=calibration_scores[calibration],
                            flops_share=sum(cost.flops for cost in chosen) / total, probes=probes,
                            equalization={"channel_range_percentile": equalization.PERCENTILE,
                                          "conv_pairs_folded": len(plan.chains), "tensors": len(plan.scales)},
                            fp32_seconds=fp32_seconds, fitting_layers=low, gate_rejected=rejected,
                            timings=[{"layers": size, "seconds": value} for size, value in timed.items()])


def feed_length(feed: Feed, axes: dict[str, int]) -> int:
    """Length of a feed along its time axis (``axes``: input → axis)."""
    return next(feed[name].shape[axis] for name, axis in axes.items())


def fixed_windows(feeds: Sequence[Feed], axes: dict[str, int], size: int) -> list[Feed]:
    """Crop (and edge-pad the last piece of) each feed into windows of ``size`` along ``axes`` (input → axis),
    so calibration sees equal shapes; inputs not in ``axes`` are repeated as they are."""
    windows = []
    for feed in feeds:
        length = feed_length(feed, axes)
        for start in range(0, max(length, 1), size):
            window = {}
            for name, value in feed.items():
                if name not in axes:
                    window[name] = value
                    continue
                axis = axes[name]
                piece = np.take(value, range(start, min(start + size, length)), axis=axis)
                pad = [(0, 0)] * value.ndim
                pad[axis] = (0, size - piece.shape[axis])
                window[name] = np.pad(piece, pad, mode="edge")
            windows.append(window)
    return windows
