"""Weight-norm folding: both torch APIs, numerically equivalent, and gone from the exported graph."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ttsopt.compiler.folding import remove_weight_norm
from ttsopt.families.hifigan.checkpoint import load_hifigan


def _net(api) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(api(nn.Conv1d(8, 16, 5, padding=2)), nn.LeakyReLU(0.1),
                         api(nn.ConvTranspose1d(16, 4, 8, 4, padding=2)), nn.Tanh()).eval()


def test_both_weight_norm_apis_fold_exactly():
    x = torch.randn(2, 8, 50)
    for api in (torch.nn.utils.weight_norm, torch.nn.utils.parametrizations.weight_norm):
        net = _net(api)
        with torch.no_grad():
            for module in net.modules():  # make g matter: not just ‖v‖
                for name, parameter in module.named_parameters(recurse=False):
                    if name in ("weight_g", "original0"):
                        parameter.mul_(1.5)
            before = net(x)
        assert remove_weight_norm(net) == 2
        names = {name for name, _ in net.named_parameters()}
        assert not any("weight_g" in n or "original" in n for n in names), names
        with torch.no_grad():
            torch.testing.assert_close(net(x), before, rtol=0, atol=1e-6)


def test_real_generator_folds_to_the_same_audio(universal: Path):
    original = load_hifigan(universal).model
    folded = load_hifigan(universal).model  # a second instance: deep copies share parametrized classes
    assert remove_weight_norm(folded) == 78
    mel = torch.randn(1, 80, 40) - 5.0
    with torch.inference_mode():
        torch.testing.assert_close(folded(mel), original(mel), rtol=0, atol=1e-5)
