"""What a model family hands the generic exporter: its graphs, their shapes, and golden inputs.

A family's ``Family.plan(sources, speech)`` (:mod:`ttsopt.families.contract`) returns an :class:`ExportPlan`:
the graphs to export with their signatures, the golden inputs, the original model to run on them, and the
model facts the manifest records. The exporter never special-cases a family beyond that.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ttsopt.package.manifest import GraphSignature, ModelFacts


@dataclass(frozen=True)
class VoiceSource:
    """``--voice NAME=ref.wav[:prompt_tokens.npy:prompt phonemes]`` or ``NAME=ref.wav|LANG|transcript``: a reference
    recording and, for a GPT, what was said in it — its semantic tokens and phonemes, or its transcript (the
    package's HuBERT and text front end make both) — which prompts the GPT to continue in that voice."""

    recording: Path
    prompt_tokens: Path | None = None
    prompt_phonemes: str | None = None
    transcript: str | None = None
    lang: str | None = None


@dataclass(frozen=True)
class ExportSources:
    """What the user gave ``ttsopt export``: checkpoints by role, a config file, named voices, and the
    auxiliary models found in the user's checkout by role (``--pretrained``; see
    :mod:`ttsopt.families.gpt_sovits.pretrained`)."""

    checkpoints: dict[str, Path]
    config: Path | None = None
    voices: dict[str, VoiceSource] = field(default_factory=dict)
    auxiliary: dict[str, Path] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class GraphExport(GraphSignature):
    """One ONNX graph to export: the module computing it, an example input, and its contract (the signature)."""

    name: str
    module: torch.nn.Module
    example_inputs: tuple[torch.Tensor, ...]
    #: Sizes of the symbolic dims to test the exported graph on, chosen to differ from the example's.
    check_sizes: tuple[dict[str, int], ...] = ()
    #: ``(sizes, seed)`` → the module's inputs at those sizes, for graphs whose inputs must agree with each other
    #: (cache lengths, masks); ``None``: random values of each input's dtype.
    check_inputs: Callable[[dict[str, int], int], tuple[torch.Tensor, ...]] | None = None
    #: ``() -> {custom torch op: onnxscript function}``: how the exporter writes the module's custom ops.
    translations: Callable[[], dict] | None = None


@dataclass
class GoldenItem:
    """A fixed verification input of one graph; its outputs come from the original PyTorch model."""

    name: str
    graph: str
    inputs: dict[str, np.ndarray]


@dataclass(kw_only=True)
class ExportPlan(ModelFacts):
    graphs: list[GraphExport]
    golden: list[GoldenItem]
    #: The original (unfolded) model, run on the golden inputs: name of graph -> callable(inputs) -> outputs.
    original: dict[str, Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]] = field(default_factory=dict)
    #: (module, inputs, seconds of audio they make): what ``cost.count_flops`` measures per audio second.
    cost_example: tuple[torch.nn.Module, tuple[torch.Tensor, ...], float] | None = None
    #: Payload files beside the graphs (name -> bytes, or a file to copy: large user files such as g2pW's model):
    #: symbol tables, voice embeddings, ...; a name may have folders ("g2pw/g2pW.onnx").
    files: dict[str, bytes | Path] = field(default_factory=dict)
