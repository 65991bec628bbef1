"""Per-channel activation equalization for INT8 convolutions.

onnxruntime's QLinearConv takes one scale per activation tensor, but the channels of a vocoder's
activations span very different ranges (HiFi-GAN: a 40× spread between a conv output's channels), so
the per-tensor 8-bit grid is coarse for most channels. Measured on the real HiFi-GAN (stage 1 and 2
resblock convolutions in INT8): the activation grids — each conv's input *and* output, since
QLinearConv writes 8-bit outputs — cause nearly all of the error (log-mel L1 0.077; 0.015 with only
the weights in INT8). Equalizing the channels first halves it (0.041).

Before quantizing, an exact FP32 rewrite brings the channels of every quantized conv's input and output
to equal range (``σ``: the channel's 99.99th percentile of ``|x|`` on the calibration data); onnxruntime
then quantizes the rewritten graph with per-tensor scales as usual:

- ``c1 → LeakyReLU/Relu → c2`` (an activation that commutes with a positive scale): ``c1``'s output
  rows are divided by ``σ`` and ``c2``'s input columns multiplied by it; no node is added. This is
  cross-layer equalization with ``σ`` taken from the measured activations rather than the weights.
- any other input ``t`` of a quantized conv: ``t → Mul(1/σ) → Q/DQ → conv(W·σ)``;
- any other output: ``conv(W/σ) → Q/DQ → Mul(σ)``.

Once ``quantize_static`` has put its QuantizeLinear / DequantizeLinear beside them, the ``Mul`` nodes go into those
as per-channel scales (:func:`fold_into_qdq`): ``Mul(1/σ) → Q(s)`` is ``Q(s·σ, axis 1)`` and ``DQ(s) → Mul(σ)`` is
``DQ(s·σ, axis 1)``. Measured with onnxruntime 1.32 on 2 cores (one node against the pair, median of 30 runs): the
per-channel DequantizeLinear takes 0.46–0.52× the time of DequantizeLinear + Mul and the per-channel QuantizeLinear
0.40–0.80× that of Mul + QuantizeLinear, on the v2 generator's shapes ([1, 256, 2000], [1, 64, 32000] and
[1, 16, 128000]). (An earlier onnxruntime's per-axis DequantizeLinear had been slower than the pair; the Muls were
kept then.)

onnxruntime's own ``SmoothQuant`` option of ``quantize_static`` is not used: it runs through Intel Neural
Compressor (not a dependency of ttsopt) and rescales only the inputs of a layer, while the outputs' grids
cost as much here (see above). It was not measured.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from ttsopt.compiler.ort_runs import Feed, iter_exposing

#: The channel range ``σ`` is this percentile of ``|x|`` (robust to the odd spike).
PERCENTILE = 99.99
#: Activations between two convolutions that commute with a positive per-channel scale.
HOMOGENEOUS = ("LeakyRelu", "Relu")
#: Name suffix of an equalized tensor (its calibration range is looked up under this name).
SUFFIX = "_equalized"
#: Name suffixes of what :func:`equalize` adds and :func:`fold_into_qdq` finds again: the Mul nodes, their factors.
MUL, INVERSE_SIGMA, SIGMA = "_mul", "_inverse_sigma", "_sigma"


@dataclass
class Equalization:
    """Per-channel factors for the convolutions of one graph, measured once and applied to any subset."""

    convs: list[str]
    #: Tensor → σ per channel: the convs' outputs, and their inputs where no chain feeds them.
    scales: dict[str, np.ndarray]
    #: Chain head conv → the tensor its tails read (``c1 → act → c2``: the activation's output; ``c1 → c2``: c1's).
    chains: dict[str, str]


def _maps(model):
    """(tensor → the node producing it, tensor → the nodes reading it): onnxruntime's own graph indexes."""
    from onnxruntime.quantization.onnx_model import ONNXModel

    graph = ONNXModel(model)
    return graph.output_name_to_node(), graph.input_name_to_nodes()


def _initializers(model) -> dict:
    return {init.name: init for init in model.graph.initializer}


def _equalizable(node, initializers: dict) -> bool:
    """A 1-group Conv whose weight and bias are constants (what QLinearConv takes with per-channel weights)."""
    groups = next((a.i for a in node.attribute if a.name == "group"), 1)
    return (node.op_type == "Conv" and groups == 1 and len(node.input) == 3
            and node.input[1] in initializers and node.input[2] in initializers)


def _sigma(values: np.ndarray) -> np.ndarray:
    """Channel ranges → factors with geometric mean 1 (dead channels floored at 1/1000 of the median)."""
    values = np.maximum(values, 1e-3 * max(float(np.median(values)), 1e-12))
    return (values / np.exp(np.mean(np.log(values)))).astype(np.float32)


def measure(model, convs: Sequence[str], feeds: Sequence[Feed]) -> Equalization:
    """The factors for ``convs`` (node names), from their activations on ``feeds``."""
    producer, consumers = _maps(model)
    initializers = _initializers(model)
    nodes = {node.name: node for node in model.graph.node}
    chosen = [nodes[name] for name in convs if _equalizable(nodes[name], initializers)]
    names = {node.name for node in chosen}
    outputs = {output.name for output in model.graph.output}
    chains = {}
    for node in chosen:
        feeding = producer.get(node.input[0])
        if feeding is not None and feeding.op_type in HOMOGENEOUS:
            link, head = feeding.output[0], producer.get(feeding.input[0])
            if head is not None and len(consumers[head.output[0]]) > 1:
                continue
        else:
            link, head = node.input[0], feeding
        if (head is not None and head.name in names and not {link, head.output[0]} & outputs
                and all(c.name in names for c in consumers[link])):
            chains[head.name] = link
    tails = {c.name for link in chains.values() for c in consumers[link]}
    # σ is needed for every output (a chain's is folded into its head) and for every input a chain does not feed.
    tensors = {node.input[0] for node in chosen if node.name not in tails} | {node.output[0] for node in chosen}
    ranges = _channel_ranges(model, tensors, feeds)
    return Equalization(convs=[node.name for node in chosen], scales={t: _sigma(r) for t, r in ranges.items()},
                        chains=chains)


def _channel_ranges(model, tensors: Iterable[str], feeds: Sequence[Feed]) -> dict[str, np.ndarray]:
    """The :data:`PERCENTILE` of ``|x|`` per channel (axis 1) of each tensor over all feeds, exactly as
    ``np.percentile`` over the concatenated feeds gives it, with one feed's tensors in memory at a time (all of
    them at once took ~12 GB for a real-size SoVITS generator): only the largest values of each channel can be
    the percentile's neighbours, so each feed adds its largest to a running top; the count they are ranked in
    comes from the feeds' shapes: when every feed has the same shapes (fixed windows), a tensor's count is the number
    of feeds times its first feed's values per channel, read as that tensor arrives; otherwise a counting pass comes
    first. (The counting pass had run on equal feeds too: one more run of the graph with every tensor exposed, 1 of 8
    runs of the real-size v2ProPlus generator's equalization.)"""
    tensors = sorted(tensors)
    same_shapes = len({tuple((name, value.shape) for name, value in sorted(feed.items())) for feed in feeds}) == 1
    counts = {} if same_shapes else _columns(model, tensors, feeds)
    tops: dict[str, np.ndarray] = {}
    for feed, out in zip(feeds, iter_exposing(model, tensors, feeds), strict=True):
        for name, value in _pairs(feed, out, tensors):
            if name not in counts:
                counts[name] = len(feeds) * (value.size // value.shape[1])
            columns = np.abs(np.moveaxis(value, 1, 0).reshape(value.shape[1], -1))
            keep = _top_count(counts[name])
            merged = columns if name not in tops else np.concatenate((tops[name], columns), axis=1)
            tops[name] = merged if merged.shape[1] <= keep else np.partition(merged, merged.shape[1] - keep, axis=1)[:, -keep:]
            del value, columns, merged  # before the next group runs: one group's tensors in memory
    return {name: _percentile_of_top(tops[name], counts[name]) for name in tensors}


def _pairs(feed: Feed, out, tensors: Sequence[str]):
    """``(name, value)`` of each of ``tensors``: the graph's inputs from ``feed``, the rest as ``out`` computes them."""
    wanted = set(tensors)
    yield from ((name, feed[name]) for name in tensors if name in feed)
    yield from ((name, value) for name, value in out if name in wanted)


def _columns(model, tensors: Sequence[str], feeds: Sequence[Feed]) -> dict[str, int]:
    """Values per channel of each tensor over ``feeds`` (a run of the graph, nothing kept)."""
    counts = dict.fromkeys(tensors, 0)
    for feed, out in zip(feeds, iter_exposing(model, tensors, feeds), strict=True):
        for name, value in _pairs(feed, out, tensors):
            counts[name] += value.size // value.shape[1]
            del value
    return counts


def _top_count(count: int) -> int:
    """How many of the largest of ``count`` values hold both order statistics ``np.percentile`` (linear) reads."""
    low = int(np.floor(PERCENTILE / 100 * (count - 1)))
    return count - low


def _percentile_of_top(top: np.ndarray, count: int) -> np.ndarray:
    """``np.percentile`` over ``count`` values per row of which ``top`` holds the largest: the others are stood in
    for by zeros (|x| >= 0, so they sort below), which changes no order statistic the percentile reads."""
    padded = np.zeros((top.shape[0], count), dtype=top.dtype)
    padded[:, count - top.shape[1]:] = top
    return np.percentile(padded, PERCENTILE, axis=1)


def apply(model, equalization: Equalization, selected: Iterable[str]):
    """An exactly equivalent FP32 copy of ``model`` with the inputs and outputs of the ``selected`` convs
    equalized; chains are always folded (that adds no node), ``Mul`` nodes only for the selected convs, so
    a tensor has the same values and name in every subset's graph (one calibration serves them all)."""
    from onnxruntime.quantization.onnx_model import ONNXModel

    folded = fold_chains(model, equalization)
    equalize(folded, equalization, selected, chain_tails(folded, equalization))
    ONNXModel(folded).topological_sort()
    return folded


def chain_tails(model, equalization: Equalization) -> set[str]:
    """The convs that read a chain's link (their input side is folded into the chain's head, never a ``Mul``)."""
    _, consumers = _maps(model)
    return {consumer.name for link in equalization.chains.values() for consumer in consumers[link]}


def fold_chains(model, equalization: Equalization):
    """A copy of ``model`` with every chain folded (``c1`` rows ÷ σ, ``c2`` columns × σ): the same function,
    no node added; what every subset's graph shares (:func:`apply` = this, then :func:`equalize`)."""
    import onnx

    rewritten = onnx.ModelProto()
    rewritten.CopyFrom(model)
    _, consumers = _maps(rewritten)
    initializers = _initializers(rewritten)
    nodes = {node.name: node for node in rewritten.graph.node}
    for name, link in equalization.chains.items():
        head = nodes[name]
        _scale_weight(initializers, head, rows=equalization.scales[head.output[0]])
        for tail in consumers[link]:
            _scale_weight(initializers, tail, columns=equalization.scales[head.output[0]])
    return rewritten


def equalize(model, equalization: Equalization, selected: Iterable[str], tails: set[str]) -> None:
    """In place: ``Mul`` nodes around the ``selected`` convs of ``model`` (chains already folded, :func:`fold_chains`),
    their weights scaled to match. ``model`` may be any part of the folded graph that holds the selected convs and
    their weights (``tails``: :func:`chain_tails` of the whole graph); the added nodes are appended (sort after)."""
    from onnx import helper, numpy_helper

    graph = model.graph
    initializers = _initializers(model)
    nodes = {node.name: node for node in graph.node}
    selected = set(selected) & set(equalization.convs)
    scales = equalization.scales
    heads = set(equalization.chains)

    def constant(name: str, value: np.ndarray, ndim: int) -> str:
        graph.initializer.append(numpy_helper.from_array(value.reshape(1, -1, *[1] * (ndim - 2)), name))
        return name

    added = []
    for name in sorted(selected):
        conv = nodes[name]
        ndim = len(initializers[conv.input[1]].dims)
        if name not in tails:  # input side: t → Mul(1/σ) → conv(W·σ)
            source = conv.input[0]
            target = source + SUFFIX
            if target not in {out for node in added for out in node.output}:
                inverse = constant(target + INVERSE_SIGMA, 1.0 / scales[source], ndim)
                added.append(helper.make_node("Mul", [source, inverse], [target], name=target + MUL))
            _scale_weight(initializers, conv, columns=scales[source])
            conv.input[0] = target
        if name not in heads:  # output side: conv(W/σ) → Mul(σ)
            output = conv.output[0]
            raw = output + SUFFIX
            _scale_weight(initializers, conv, rows=scales[output])
            conv.output[0] = raw
            sigma = constant(raw + SIGMA, scales[output], ndim)
            added.append(helper.make_node("Mul", [raw, sigma], [output], name=raw + MUL))
    graph.node.extend(added)


def _scale_weight(initializers: dict, conv, rows: np.ndarray | None = None, columns: np.ndarray | None = None) -> None:
    """``conv``'s weight rows (and bias) ÷ ``rows``, its weight columns × ``columns``, in place."""
    from onnx import numpy_helper

    weight = numpy_helper.to_array(initializers[conv.input[1]])
    bias = numpy_helper.to_array(initializers[conv.input[2]])
    if rows is not None:
        weight, bias = weight / rows.reshape(-1, *[1] * (weight.ndim - 1)), bias / rows
    if columns is not None:
        weight = weight * columns.reshape(1, -1, *[1] * (weight.ndim - 2))
    initializers[conv.input[1]].CopyFrom(numpy_helper.from_array(weight.astype(np.float32), conv.input[1]))
    initializers[conv.input[2]].CopyFrom(numpy_helper.from_array(bias.astype(np.float32), conv.input[2]))


def fold_into_qdq(model) -> int:
    """In place, on a graph ``quantize_static`` made of an equalized one: each equalization ``Mul`` that sits beside a
    per-tensor QuantizeLinear (input side) or DequantizeLinear (output side) of its own is folded into it as
    per-channel scales on axis 1 (see the module docstring); the number folded. A ``Mul`` without such a neighbour
    (its conv left in FP32) stays."""
    from onnx import helper, numpy_helper

    graph = model.graph
    producer, consumers = _maps(model)
    initializers = _initializers(model)

    def per_channel(node, factors: np.ndarray) -> bool:
        """``node`` (Q or DQ, per-tensor) with its scale times ``factors`` per channel; False if it is not per-tensor."""
        scale, zero = (numpy_helper.to_array(initializers[name]) for name in node.input[1:3])
        if scale.ndim or zero.ndim:
            return False
        name = f"{node.name}_per_channel"
        graph.initializer.extend([numpy_helper.from_array((scale * factors).astype(np.float32), name + "_scale"),
                                  numpy_helper.from_array(np.full(factors.size, zero, zero.dtype), name + "_zero_point")])
        node.input[1], node.input[2] = name + "_scale", name + "_zero_point"
        kept = [a for a in node.attribute if a.name != "axis"]
        del node.attribute[:]
        node.attribute.extend([*kept, helper.make_attribute("axis", 1)])
        return True

    folded = []
    for mul in [node for node in graph.node if node.op_type == "Mul" and node.name.endswith(SUFFIX + MUL)]:
        data, factor = mul.input
        factors = numpy_helper.to_array(initializers[factor]).reshape(-1).astype(np.float32)
        if factor.endswith(INVERSE_SIGMA):  # t → Mul(1/σ) → Q(s)  ==  t → Q(s·σ)
            readers = consumers.get(mul.output[0], [])
            if len(readers) == 1 and readers[0].op_type == "QuantizeLinear" and per_channel(readers[0], 1.0 / factors):
                readers[0].input[0] = data
                folded.append(mul)
        else:  # DQ(s) → Mul(σ)  ==  DQ(s·σ)
            dq = producer.get(data)
            if (dq is not None and dq.op_type == "DequantizeLinear" and len(consumers[data]) == 1
                    and per_channel(dq, factors)):
                dq.output[0] = mul.output[0]
                folded.append(mul)
    for mul in folded:
        graph.node.remove(mul)
    used = {name for node in graph.node for name in node.input}
    for init in [init for init in graph.initializer if init.name not in used and init.name.endswith(SIGMA)]:
        graph.initializer.remove(init)
    return len(folded)
