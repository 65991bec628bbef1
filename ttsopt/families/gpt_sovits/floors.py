"""The work each text-to-speech stage must do, for ``ttsopt bench``'s floors: FLOP for the compute-bound stages
(the prefill, SoVITS), bytes for the memory-bound one (a decode step reads every GPT weight and the filled K/V).

A floor is that work divided by this machine's measured rate (:mod:`ttsopt.bench.machine`): FP32 SGEMM GFLOP/s
for FLOP, the rate onnxruntime streams a matrix from memory for bytes. A stage at 100 % of its floor does only
the work it must, at the best rate the machine showed in the same run.
"""

from __future__ import annotations

from pathlib import Path

FLOAT_BYTES = 4


def prefill_flop(gpt: dict, positions: int) -> float:
    """FLOP of one prefill over ``positions`` (prompt + text): every layer's Q/K/V projections for every position;
    the attention products, output projection and FFN for every position in all layers but the last, and for the
    last position only in the last (nothing else of it reaches the outputs); the logits of the last position."""
    d, f, layers, t = gpt["hidden_dim"], gpt["ffn_dim"], gpt["num_layers"], positions
    qkv, rest = 2.0 * 3 * d * d, 2.0 * (d * d + 2 * d * f)  # per position
    attention = 2.0 * 2 * t * d  # per query position, over t keys
    return layers * t * qkv + (layers - 1) * t * (rest + attention) + rest + attention + 2.0 * d * gpt["vocab_size"]


def kv_bytes_per_slot(gpt: dict) -> int:
    """Bytes of K and V one cache slot holds over all layers (FP32): what every decode step reads per filled slot."""
    return gpt["num_layers"] * 2 * gpt["hidden_dim"] * FLOAT_BYTES


def step_bytes(transformer_file: Path, gpt: dict, filled: float) -> float:
    """Bytes one decode step must read: the transformer graph's weights (its file: weights are nearly all of it,
    INT8 or FP32) and the K/V of ``filled`` slots."""
    return transformer_file.stat().st_size + filled * kv_bytes_per_slot(gpt)
