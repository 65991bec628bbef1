"""Attention over a caller-owned KV cache that the op writes in place: ``ttsopt::cached_attention``.

One op per layer of the exported ``gpt_transformer``: it takes the layer's packed Q/K/V projection of ``S`` new
positions, writes their K/V into each row's cache after its ``seqlens_k[b] + 1 - S`` filled slots, and attends over
the filled slots under an additive bias. In the ONNX graph it is onnxruntime's ``com.microsoft.GroupQueryAttention``
(``kv_num_heads == num_heads``, ``causal=0``, packed QKV, BNSH caches): when the runtime binds each ``past_*`` input
and its ``present_*`` output to the same buffer (IOBinding), the kernel appends the new K/V there and reads only
the filled slots of each row, so a decode step neither copies the cache nor reads its empty capacity.

Why (real-size v2 GPT, 2 cores, onnxruntime 1.32, interleaved, BENCHMARKS.md): the attention written as plain
MatMul/Softmax over the cache was about 20 nodes per layer and half of an INT8 decode step; as this one kernel a step
at 150 filled of 256 slots took 0.78x the time (INT8; FP32 0.87x; 8 rows 0.75x), and the prefill's logits agree to
1e-6. ``causal=0`` with the bias is what keeps one graph for both uses: the prefill's text rows see every text
position (bidirectional), which a causal kernel cannot express.

Here in PyTorch the op is its functional definition (new cache tensors returned), which is what the exporter's
fidelity check and the golden outputs compare the graph with; :func:`onnx_translation` is what the exporter emits.
"""

import math

import torch


@torch.library.custom_op("ttsopt::cached_attention", mutates_args=())
def cached_attention(qkv: torch.Tensor, past_key: torch.Tensor, past_value: torch.Tensor, seqlens_k: torch.Tensor,
                     total_sequence_length: torch.Tensor, attention_bias: torch.Tensor,
                     num_heads: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``qkv`` [B, S, 3·D] (Q, K, V); caches [B, heads, slots, head_dim]; ``seqlens_k`` [B] int32 = each row's filled
    length after this call minus one; ``attention_bias`` [B or 1, 1, S, T] added to the scores of key positions
    ``0 .. T-1``. Returns (context [B, S, D], present_key, present_value): each row's filled slots, the new K/V
    after them, zeros after that (what onnxruntime's kernel returns in a plain run; bound in place, the slots after
    a row's length keep whatever they held, which nothing reads)."""
    batch, new, width = qkv.shape
    head_dim = width // (3 * num_heads)
    q, k, v = (part.reshape(batch, new, num_heads, head_dim).transpose(1, 2) for part in qkv.chunk(3, dim=-1))
    present_key, present_value = torch.zeros_like(past_key), torch.zeros_like(past_value)
    contexts = []
    for row in range(batch):
        end = int(seqlens_k[row]) + 1
        present_key[row, :, : end - new] = past_key[row, :, : end - new]
        present_value[row, :, : end - new] = past_value[row, :, : end - new]
        present_key[row, :, end - new: end] = k[row]
        present_value[row, :, end - new: end] = v[row]
        bias = attention_bias[row if attention_bias.shape[0] > 1 else 0, :, :, :end]
        scores = torch.matmul(q[row], present_key[row, :, :end].transpose(-1, -2)) / math.sqrt(head_dim) + bias
        contexts.append(torch.matmul(torch.softmax(scores, dim=-1), present_value[row, :, :end]))
    context = torch.stack(contexts).transpose(1, 2).reshape(batch, new, num_heads * head_dim)
    return context, present_key, present_value


@cached_attention.register_fake
def _(qkv, past_key, past_value, seqlens_k, total_sequence_length, attention_bias, num_heads):
    batch, new, width = qkv.shape
    return qkv.new_empty(batch, new, width // 3), torch.empty_like(past_key), torch.empty_like(past_value)


def onnx_translation():
    """``{op: onnxscript function}`` for ``torch.onnx.export(custom_translation_table=…)``."""
    import onnxscript

    kernel = onnxscript.values.Op(onnxscript.values.Opset("com.microsoft", 1), "GroupQueryAttention", _schema())

    def group_query_attention(qkv, past_key, past_value, seqlens_k, total_sequence_length, attention_bias,
                              num_heads: int):
        return kernel(qkv, None, None, past_key, past_value, seqlens_k, total_sequence_length, None, None, None,
                      attention_bias, num_heads=num_heads, kv_num_heads=num_heads, causal=0, _outputs=3)

    return {torch.ops.ttsopt.cached_attention.default: group_query_attention}


def _schema():
    """The part of onnxruntime's ``GroupQueryAttention`` schema this graph uses (onnx itself has no schemas of
    onnxruntime's contrib ops, and the exporter needs one to place inputs and attributes)."""
    from onnx.defs import OpSchema

    optional = OpSchema.FormalParameterOption.Optional
    inputs = [OpSchema.FormalParameter(name, kind, param_option=optional if name in _OPTIONAL_INPUTS else
                                       OpSchema.FormalParameterOption.Single)
              for name, kind in _INPUTS]
    outputs = [OpSchema.FormalParameter(name, "T") for name in ("output", "present_key", "present_value")]
    types = [("T", ["tensor(float)", "tensor(float16)"], ""), ("M", ["tensor(int32)"], ""), ("P", ["tensor(int64)"], "")]
    attributes = [OpSchema.Attribute(name, OpSchema.AttrType.INT, "") for name in ("num_heads", "kv_num_heads", "causal")]
    return OpSchema("GroupQueryAttention", "com.microsoft", 1, inputs=inputs, outputs=outputs, type_constraints=types,
                    attributes=attributes)


_INPUTS = (("query", "T"), ("key", "T"), ("value", "T"), ("past_key", "T"), ("past_value", "T"), ("seqlens_k", "M"),
           ("total_sequence_length", "M"), ("cos_cache", "T"), ("sin_cache", "T"), ("position_ids", "P"),
           ("attention_bias", "T"))
_OPTIONAL_INPUTS = {"key", "value", "past_key", "past_value", "cos_cache", "sin_cache", "position_ids", "attention_bias"}
