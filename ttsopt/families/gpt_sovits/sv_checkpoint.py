"""Read the ERes2NetV2 speaker-verification checkpoint v2Pro/v2ProPlus need (``pretrained_models/sv/*.ckpt``).

The official file is a bare state dict (``torch.save(model.state_dict())``: tensors only), so it is read
with ``torch.load(weights_only=True)`` and nothing in it can run. Its sizes are read from the tensors
(:func:`~ttsopt.families.gpt_sovits.sv_model.config_from_state_dict`); the key set must be exactly the
model's, so a different network (or a SoVITS / GPT file given as ``--sv``) is refused in one line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from ttsopt.compiler.checkpoint import describe_checkpoint, load_checkpoint
from ttsopt.errors import TtsoptError
from ttsopt.families.gpt_sovits.sv_model import ERes2NetV2, SVConfig, config_from_state_dict

EXPECTED = ("the ERes2NetV2 speaker-verification checkpoint of GPT-SoVITS "
            "(GPT_SoVITS/pretrained_models/sv/pretrained_eres2netv2w24s4ep4.ckpt)")
#: BatchNorm's step counter: training state, not read at inference.
_COUNTER = ".num_batches_tracked"


@dataclass(frozen=True)
class LoadedSV:
    model: ERes2NetV2
    config: SVConfig
    path: Path


def load_sv_checkpoint(path: str | Path) -> LoadedSV:
    """The speaker-verification model of ``path`` in float32 eval mode on CPU, or a one-line :class:`TtsoptError`."""
    path = Path(path)
    state = load_checkpoint(path, EXPECTED)
    if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]
    is_tensors = isinstance(state, Mapping) and state and all(isinstance(v, torch.Tensor) for v in state.values())
    if not is_tensors or "conv1.weight" not in state or "fuse34.local_att.0.weight" not in state:
        raise TtsoptError(f"{path} is {describe_checkpoint(state)}, not {EXPECTED}: pass that file as --sv")
    try:
        config = config_from_state_dict(state)
        model = ERes2NetV2(config)
    except (KeyError, ValueError, IndexError, RuntimeError) as exc:
        raise TtsoptError(f"{path} is not an ERes2NetV2 state dict ({exc}): pass {EXPECTED} as --sv") from None
    expected = model.state_dict()
    missing = sorted(k for k in expected if k not in state and not k.endswith(_COUNTER))
    unexpected = sorted(k for k in state if k not in expected)
    wrong = sorted(k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape))
    problem = (f"lacks {missing[0]}" if missing else f"has {unexpected[0]}, which ERes2NetV2 does not" if unexpected
               else f"tensor {wrong[0]} is {list(state[wrong[0]].shape)}, not {list(expected[wrong[0]].shape)}" if wrong else None)
    if problem:
        raise TtsoptError(f"{path} {problem}: it is not {EXPECTED} (or it is damaged)")
    model.load_state_dict({k: state.get(k, v).to(v.dtype) for k, v in expected.items()}, strict=True)
    return LoadedSV(model.eval(), config, path)
