"""ERes2NetV2, the speaker-verification network GPT-SoVITS v2Pro/v2ProPlus condition on (inference only).

Fbank ``[B, T, 80]`` → ``sv [B, C·F]`` with the ``forward3`` head the official code uses (the fusion of layer 4
and a strided projection of layer 3, flattened channel-major over (channel, frequency), averaged over time;
no pooling statistics, no ``seg_1`` projection). Real size (``pretrained_eres2netv2w24s4ep4.ckpt``):
m_channels 64, blocks [3, 4, 6, 3], base width 24, scale 4, expansion 4 → 20480-d, 53.5 M parameters.

Written from the fact sheet (``shared/facts/gpt-sovits-pro-v4.md`` §4.2), not from the official source.
Module names follow the official state dict, so a checkpoint loads without renames; the sizes are read
from the checkpoint's tensors (:func:`config_from_state_dict`), never assumed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

#: Blocks' activation: ``ReLU`` in the official code is ``Hardtanh(0, 20)`` (it clips at 20).
CLIP = 20.0
FEAT_DIM = 80


@dataclass(frozen=True)
class SVConfig:
    m_channels: int = 64
    num_blocks: tuple[int, int, int, int] = (3, 4, 6, 3)
    base_width: int = 24
    scale: int = 4
    expansion: int = 4
    embedding_size: int = 192  # seg_1's output: in the file, unused by forward3
    feat_dim: int = FEAT_DIM

    @property
    def output_dim(self) -> int:
        """Width of the embedding: channels of layer 4 × frequency rows left after three halvings."""
        return self.m_channels * 8 * self.expansion * math.ceil(self.feat_dim / 8)


def _act(x: torch.Tensor) -> torch.Tensor:
    return torch.clamp(x, 0.0, CLIP)


class AFF(nn.Module):
    """Attentional feature fusion: ``w = 1 + tanh(att(cat(x, y)))``, ``out = x·w + y·(2 − w)``."""

    def __init__(self, channels: int, r: int = 4):
        super().__init__()
        inter = channels // r
        self.local_att = nn.Sequential(nn.Conv2d(2 * channels, inter, 1), nn.BatchNorm2d(inter), nn.SiLU(),
                                       nn.Conv2d(inter, channels, 1), nn.BatchNorm2d(channels))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        w = 1.0 + torch.tanh(self.local_att(torch.cat((x, y), dim=1)))
        return x * w + y * (2.0 - w)


class Block(nn.Module):
    """The ERes2NetV2 bottleneck: 1×1 → ``scale`` groups of 3×3 with hierarchical residual (add or AFF) → 1×1."""

    def __init__(self, in_planes: int, planes: int, stride: int, config: SVConfig, fuse: bool):
        super().__init__()
        width = planes * config.base_width // 64
        self.width, self.scale = width, config.scale
        out = planes * config.expansion
        self.conv1 = nn.Conv2d(in_planes, width * config.scale, 1, stride=stride, bias=False)
        self.bn1 = nn.BatchNorm2d(width * config.scale)
        self.convs = nn.ModuleList(nn.Conv2d(width, width, 3, padding=1, bias=False) for _ in range(config.scale))
        self.bns = nn.ModuleList(nn.BatchNorm2d(width) for _ in range(config.scale))
        self.fuse_models = nn.ModuleList(AFF(width) for _ in range(config.scale - 1)) if fuse else None
        self.conv3 = nn.Conv2d(width * config.scale, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.shortcut = (nn.Sequential(nn.Conv2d(in_planes, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out))
                         if stride != 1 or in_planes != out else nn.Sequential())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        groups = torch.split(_act(self.bn1(self.conv1(x))), self.width, dim=1)
        outputs = []
        sp = groups[0]
        for i in range(self.scale):
            if i > 0:
                sp = self.fuse_models[i - 1](sp, groups[i]) if self.fuse_models is not None else sp + groups[i]
            sp = _act(self.bns[i](self.convs[i](sp)))
            outputs.append(sp)
        out = self.bn3(self.conv3(torch.cat(outputs, dim=1)))
        return _act(out + self.shortcut(x))


class ERes2NetV2(nn.Module):
    def __init__(self, config: SVConfig):
        super().__init__()
        self.config = config
        m, e = config.m_channels, config.expansion
        self.conv1 = nn.Conv2d(1, m, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(m)
        in_planes = m
        layers = []
        for index, (planes, blocks) in enumerate(zip((m, 2 * m, 4 * m, 8 * m), config.num_blocks, strict=True)):
            stride = 1 if index == 0 else 2
            fuse = index >= 2
            layer = []
            for b in range(blocks):
                layer.append(Block(in_planes, planes, stride if b == 0 else 1, config, fuse))
                in_planes = planes * e
            layers.append(nn.Sequential(*layer))
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.layer3_ds = nn.Conv2d(4 * m * e, 8 * m * e, 3, stride=2, padding=1, bias=False)
        self.fuse34 = AFF(8 * m * e)
        # In the file but not used by forward3 (the TSTP pooling head): kept so loading stays strict.
        self.seg_1 = nn.Linear(8 * m * e * math.ceil(config.feat_dim / 8) * 2, config.embedding_size)

    def forward(self, fbank: torch.Tensor) -> torch.Tensor:
        """``fbank [B, T, 80]`` → ``sv [B, output_dim]`` (official ``forward3``)."""
        x = fbank.transpose(1, 2).unsqueeze(1)
        out = torch.relu(self.bn1(self.conv1(x)))
        out3 = self.layer3(self.layer2(self.layer1(out)))
        fused = self.fuse34(self.layer4(out3), self.layer3_ds(out3))
        return fused.flatten(1, 2).mean(dim=-1)


def config_from_state_dict(state: Mapping[str, torch.Tensor]) -> SVConfig:
    """The sizes of an ERes2NetV2 state dict, from its tensors (``KeyError``/``ValueError`` when it is not one)."""
    m = state["conv1.weight"].shape[0]
    blocks = tuple(len({k.split(".")[1] for k in state if k.startswith(f"layer{i}.")}) for i in range(1, 5))
    width = state["layer1.0.convs.0.weight"].shape[0]
    scale = len({k.split(".")[3] for k in state if k.startswith("layer1.0.convs.")})
    expansion = state["layer1.0.conv3.weight"].shape[0] // m
    base_width = width * 64 // m
    config = SVConfig(m_channels=m, num_blocks=blocks, base_width=base_width, scale=scale, expansion=expansion,
                      embedding_size=state["seg_1.weight"].shape[0])
    if any(b == 0 for b in blocks) or config.m_channels * config.base_width // 64 != width:
        raise ValueError("the block layout is not ERes2NetV2's")
    return config


def fold_batch_norm(model: ERes2NetV2) -> ERes2NetV2:
    """Fold every eval-mode batch norm into the convolution before it, in place (``model`` must be in eval mode).

    Every BatchNorm2d of ERes2NetV2 directly follows a convolution, so the network then has only convolutions,
    clips and the fusions' elementwise ops: about 300 fewer nodes for the exporter to trace and decompose.
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    def fuse(owner: nn.Module, conv_name: str, bn_name: str) -> None:
        conv, bn = getattr(owner, conv_name), getattr(owner, bn_name)
        setattr(owner, conv_name, fuse_conv_bn_eval(conv, bn))
        setattr(owner, bn_name, nn.Identity())

    def fuse_sequential(seq: nn.Sequential, conv_index: int) -> None:
        seq[conv_index] = fuse_conv_bn_eval(seq[conv_index], seq[conv_index + 1])
        seq[conv_index + 1] = nn.Identity()

    def fuse_aff(aff: AFF) -> None:
        fuse_sequential(aff.local_att, 0)
        fuse_sequential(aff.local_att, 3)

    if model.training:
        raise ValueError("fold batch norm of an eval-mode model only")
    fuse(model, "conv1", "bn1")
    for layer in (model.layer1, model.layer2, model.layer3, model.layer4):
        for block in layer:
            fuse(block, "conv1", "bn1")
            fuse(block, "conv3", "bn3")
            for i in range(block.scale):
                block.convs[i] = fuse_conv_bn_eval(block.convs[i], block.bns[i])
                block.bns[i] = nn.Identity()
            if len(block.shortcut):
                fuse_sequential(block.shortcut, 0)
            for aff in block.fuse_models or ():
                fuse_aff(aff)
    fuse_aff(model.fuse34)
    return model
