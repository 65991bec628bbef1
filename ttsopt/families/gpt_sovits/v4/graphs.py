"""The SoVITS v4 model cut into the graphs a v4 package ships, with their signatures.

::

    reference_encoder  spectrogram [batch, 704, ref_frames]                      → ge [batch, gin, 1]
    latent             tokens [batch, tokens], phonemes [batch, phonemes], ge,
                       mask [batch, 1, frames]                                   → fea [batch, C, frames]
    dit_condition      fea [batch, length, C]                                    → text_embed [batch, length, C]
    dit_step           x, prompt [batch, mel, length], text_embed, t [batch], d [batch] → v [batch, mel, length]
    vocoder            mel [batch, 100, mel_frames]                              → audio [batch, 1, samples]
    prompt_codes       ssl [batch, 768, ssl_frames]                              → codes [batch, codes]

Why these cuts: the Euler loop is the runtime's (:mod:`ttsopt.runtime.cfm`), so the DiT is one graph called
once per step (``dit_step``) and its step-invariant part, the cond features' ConvNeXt stack, a graph run once per
chunk (``dit_condition``; the official code caches it after step 0). ``latent`` is the official ``decode_encp``
without the reference: run for the prompt tokens (the prompt's cond features) and for the target. Its ``mask``
carries both the length (``2 × the enc_p length``, even; speed enters through it as in v2) and the official
valid length of ``wns1`` (:func:`ttsopt.runtime.sovits_v4.latent_frames_v4`). The vocoder reads the *denormalised* log-mel.
"""

from __future__ import annotations

import torch
from torch import nn

from ttsopt.compiler.spec import GraphExport
from ttsopt.families.gpt_sovits.sovits_graphs import PromptCodesGraph, ReferenceEncoderGraph
from ttsopt.families.gpt_sovits.v4.dit import DiT
from ttsopt.families.gpt_sovits.v4.model import SoVITSV4
from ttsopt.families.gpt_sovits.v4.vocoder import Vocoder
from ttsopt.package.manifest import DimRange, TensorSpec

BATCH = DimRange(1, 1, 8)
TOKENS = DimRange(1, 250, 1500)
PHONEMES = DimRange(1, 120, 1024)
#: 100 Hz cond frames of one latent call: 4 per token at speed 1, up to 1500 tokens at speed 0.25.
FRAMES = DimRange(2, 1000, 24002)
#: Frames of one CFM call (prompt + chunk): at most the official 1000.
LENGTH = DimRange(2, 1000, 1000)
#: Mel frames the vocoder takes at once (an utterance, or a streaming piece).
MEL_FRAMES = DimRange(1, 1000, 24002)
REF_FRAMES = DimRange(1, 300, 3000)
SSL_FRAMES = DimRange(2, 300, 3000)


class LatentGraph(nn.Module):
    """``tokens, phonemes, ge, mask`` → ``fea`` (:meth:`SoVITSV4.features`)."""

    def __init__(self, model: SoVITSV4):
        super().__init__()
        self.model = model

    def forward(self, tokens: torch.Tensor, phonemes: torch.Tensor, ge: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.model.features(tokens, phonemes, ge, mask)


class ConditionGraph(nn.Module):
    """``fea [B, L, C]`` → ``text_embed [B, L, C]`` (:meth:`DiT.condition`)."""

    def __init__(self, dit: DiT):
        super().__init__()
        self.dit = dit

    def forward(self, fea: torch.Tensor) -> torch.Tensor:
        return self.dit.condition(fea)


class StepGraph(nn.Module):
    """One velocity of the Euler loop (:meth:`DiT.forward`)."""

    def __init__(self, dit: DiT):
        super().__init__()
        self.dit = dit

    def forward(self, x: torch.Tensor, prompt: torch.Tensor, text_embed: torch.Tensor, t: torch.Tensor,
                d: torch.Tensor) -> torch.Tensor:
        return self.dit(x, prompt, text_embed, t, d)


class VocoderGraph(nn.Module):
    def __init__(self, vocoder: Vocoder):
        super().__init__()
        self.vocoder = vocoder

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.vocoder(mel)



def graph_modules(model: SoVITSV4, vocoder: Vocoder) -> dict[str, nn.Module]:
    """Every graph's module over ``model``/``vocoder`` (also how the original models are run on golden inputs)."""
    return {"reference_encoder": ReferenceEncoderGraph(model).eval(), "latent": LatentGraph(model).eval(),
            "dit_condition": ConditionGraph(model.estimator).eval(), "dit_step": StepGraph(model.estimator).eval(),
            "vocoder": VocoderGraph(vocoder).eval(), "prompt_codes": PromptCodesGraph(model).eval()}


def graphs(model: SoVITSV4, vocoder: Vocoder) -> list[GraphExport]:
    """The graphs to export, with example inputs (batch 2, lengths > 1: dynamo specialises 0 and 1)."""
    sizes, text = model.sizes, model.sizes.text
    modules = graph_modules(model, vocoder)
    c, mel, gin = sizes.fea_channels, sizes.dit.mel_dim, text.gin_channels
    rng = torch.Generator().manual_seed(0)
    ge = TensorSpec("ge", "float32", ("batch", gin, 1), kind="embedding")
    fea_t = TensorSpec("fea", "float32", ("batch", "length", c), kind="features")
    text_embed = TensorSpec("text_embed", "float32", ("batch", "length", c), kind="features")
    mel_spec = TensorSpec("x", "float32", ("batch", mel, "length"), kind="mel")
    return [
        GraphExport(
            name="reference_encoder", module=modules["reference_encoder"],
            example_inputs=(torch.rand(2, text.reference_bins, 100, generator=rng),),
            inputs=(TensorSpec("spectrogram", "float32", ("batch", text.reference_bins, "ref_frames"), kind="spectrogram"),),
            outputs=(ge,), dims={"batch": BATCH, "ref_frames": REF_FRAMES},
            check_sizes=({"batch": 1, "ref_frames": 1}, {"batch": 1, "ref_frames": 173}, {"batch": 3, "ref_frames": 40}),
        ),
        GraphExport(
            name="latent", module=modules["latent"],
            example_inputs=(torch.randint(0, text.codebook_size, (2, 20), generator=rng),
                            torch.randint(0, text.n_symbols, (2, 15), generator=rng),
                            torch.randn(2, gin, 1, generator=rng), torch.ones(2, 1, 66)),
            inputs=(TensorSpec("tokens", "int64", ("batch", "tokens"), kind="tokens"),
                    TensorSpec("phonemes", "int64", ("batch", "phonemes"), kind="tokens"),
                    ge, TensorSpec("mask", "float32", ("batch", 1, "frames"), kind="mask")),
            outputs=(TensorSpec("fea", "float32", ("batch", c, "frames"), kind="features"),),
            dims={"batch": BATCH, "tokens": TOKENS, "phonemes": PHONEMES, "frames": FRAMES},
            check_sizes=({"batch": 1, "tokens": 1, "phonemes": 1, "frames": 4},
                         {"batch": 1, "tokens": 37, "phonemes": 11, "frames": 148},
                         {"batch": 2, "tokens": 50, "phonemes": 30, "frames": 162}),
        ),
        GraphExport(
            name="dit_condition", module=modules["dit_condition"],
            example_inputs=(torch.randn(2, 70, c, generator=rng),), inputs=(fea_t,), outputs=(text_embed,),
            dims={"batch": BATCH, "length": LENGTH},
            check_sizes=({"batch": 1, "length": 2}, {"batch": 1, "length": 333}, {"batch": 2, "length": 41}),
        ),
        GraphExport(
            name="dit_step", module=modules["dit_step"],
            example_inputs=(torch.randn(2, mel, 70, generator=rng), torch.randn(2, mel, 70, generator=rng),
                            torch.randn(2, 70, c, generator=rng), torch.rand(2, generator=rng), torch.full((2,), 0.125)),
            inputs=(mel_spec, TensorSpec("prompt", "float32", ("batch", mel, "length"), kind="mel"), text_embed,
                    TensorSpec("t", "float32", ("batch",), kind="scalar"), TensorSpec("d", "float32", ("batch",), kind="scalar")),
            outputs=(TensorSpec("v", "float32", ("batch", mel, "length"), kind="mel"),),
            dims={"batch": BATCH, "length": LENGTH},
            check_sizes=({"batch": 1, "length": 2}, {"batch": 1, "length": 333}, {"batch": 2, "length": 41}),
        ),
        GraphExport(
            name="vocoder", module=modules["vocoder"],
            example_inputs=(torch.randn(2, vocoder.sizes.mel_bins, 30, generator=rng) - 5,),
            inputs=(TensorSpec("mel", "float32", ("batch", vocoder.sizes.mel_bins, "mel_frames"), kind="mel"),),
            outputs=(TensorSpec("audio", "float32", ("batch", 1, "samples"), kind="audio"),),
            dims={"batch": BATCH, "mel_frames": MEL_FRAMES},
            check_sizes=({"batch": 1, "mel_frames": 1}, {"batch": 1, "mel_frames": 57}, {"batch": 2, "mel_frames": 23}),
        ),
        GraphExport(
            name="prompt_codes", module=modules["prompt_codes"],
            example_inputs=(torch.randn(2, text.ssl_dim, 41, generator=rng),),
            inputs=(TensorSpec("ssl", "float32", ("batch", text.ssl_dim, "ssl_frames"), kind="features"),),
            outputs=(TensorSpec("codes", "int64", ("batch", "codes"), kind="tokens"),),
            dims={"batch": BATCH, "ssl_frames": SSL_FRAMES},
            check_sizes=({"batch": 1, "ssl_frames": 2}, {"batch": 2, "ssl_frames": 81}),
        ),
    ]
