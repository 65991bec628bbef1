"""The bench's floors count the work the model does: the prefill's FLOP against PyTorch's own counter."""

from dataclasses import asdict

import pytest
import torch

from ttsopt.compiler.cost import count_flops
from ttsopt.families.gpt_sovits.floors import kv_bytes_per_slot, prefill_flop
from ttsopt.families.gpt_sovits.gpt_model import GPTConfig, Text2SemanticDecoder


@pytest.mark.parametrize("positions", [1, 37])
def test_prefill_flop_is_what_the_model_computes(positions: int):
    config = GPTConfig(hidden_dim=64, num_heads=4, num_layers=3, ffn_dim=256)
    model = Text2SemanticDecoder(config).eval()
    heads, head_dim = config.num_heads, config.head_dim
    empty = [torch.zeros(1, heads, 0, head_dim)] * config.num_layers
    allowed = torch.ones(1, positions, positions, dtype=torch.bool)
    counted = count_flops(lambda hidden: model.forward_cached(hidden, empty, empty, allowed), torch.randn(1, positions, 64))
    assert prefill_flop(asdict(config), positions) == pytest.approx(counted, rel=1e-9)


def test_kv_bytes_per_slot_is_every_layers_k_and_v_in_fp32():
    assert kv_bytes_per_slot(asdict(GPTConfig())) == 24 * 2 * 16 * 32 * 4  # 98 KB at the released size
