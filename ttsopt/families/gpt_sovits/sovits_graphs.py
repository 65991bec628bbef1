"""The SoVITS model cut into the graphs a package ships, each a tensor-only ``nn.Module`` for export.

Where the cuts are, and why:

- ``reference_encoder``: reference spectrogram (v2Pro/v2ProPlus: and its speaker-verification embedding
  ``sv``) → ``ge``. A voice's ``ge`` is computed once (at export, ``--voice``) and stored, so synthesis with a
  known voice never runs it ("speaker folding"); for the Pro models that folds ``sv_emb`` and the PReLU
  into the stored vector too, and the speaker-verification network never runs for a stored voice.
- ``speaker_verification`` (v2Pro/v2ProPlus only): Kaldi fbank → ``sv`` (ERes2NetV2, a separate checkpoint).
  Its own graph because it is its own model (53.5 M parameters, the biggest graph of the package) that only
  new voices need; the fbank is numpy (:mod:`ttsopt.audio.kaldi`).
- ``latent``: semantic tokens + phoneme ids + ``ge`` + noise → ``z`` (codebook, text encoder with MRTE,
  prior sampling, reverse flow; v2Pro/v2ProPlus: ``ge_to512`` of the stored ``ge`` for MRTE, a 0.5 MFLOP
  projection kept here so a voice stays one vector). The noise is an input, so outputs are deterministic and verifiable;
  its length is the output length, which is how ``speed`` reaches the graph (``F = int(2T / speed) + 1``,
  or ``2T`` at speed 1) without a data-dependent shape.
- ``generator``: ``z`` + ``ge`` → 32 kHz waveform. Separate from ``latent`` so that a runtime can vocode
  latent frames in chunks (its receptive field is measured by :func:`generator_receptive_field`).
- ``prompt_codes``: HuBERT features → semantic codes (``extract_latent``), for prompt tokens.
"""

from __future__ import annotations

import torch
from torch import nn

from ttsopt.families.gpt_sovits.sovits_model import SoVITSModel, stretch
from ttsopt.families.gpt_sovits.sv_model import ERes2NetV2


class ReferenceEncoderGraph(nn.Module):
    """``spectrogram [B, reference_bins, T]`` → ``ge [B, gin, 1]`` (v1/v2)."""

    def __init__(self, model: SoVITSModel):
        super().__init__()
        self.ref_enc = model.ref_enc

    def forward(self, spectrogram: torch.Tensor) -> torch.Tensor:
        return self.ref_enc(spectrogram)


class ProReferenceEncoderGraph(nn.Module):
    """``spectrogram [B, reference_bins, T]``, ``sv [B, sv_dim]`` → ``ge [B, gin, 1]`` (v2Pro/v2ProPlus:
    ``PReLU(ref_enc(spectrogram) + sv_emb(sv))``). A class of its own: the exporter needs a fixed signature."""

    def __init__(self, model: SoVITSModel):
        super().__init__()
        self.model = model

    def forward(self, spectrogram: torch.Tensor, sv: torch.Tensor) -> torch.Tensor:
        return self.model.speaker_embedding(spectrogram, sv)


class SpeakerVerificationGraph(nn.Module):
    """``fbank [B, T, 80]`` → ``sv [B, sv_dim]`` (ERes2NetV2 ``forward3``)."""

    def __init__(self, model: ERes2NetV2):
        super().__init__()
        self.model = model

    def forward(self, fbank: torch.Tensor) -> torch.Tensor:
        return self.model(fbank)


class LatentGraph(nn.Module):
    """``tokens [B, T]``, ``phonemes [B, N]``, ``ge [B, gin, 1]``, ``noise [B, inter, F]``, ``noise_scale [1]`` → ``z [B, inter, F]``."""

    def __init__(self, model: SoVITSModel):
        super().__init__()
        self.model = model

    def forward(self, tokens: torch.Tensor, phonemes: torch.Tensor, ge: torch.Tensor, noise: torch.Tensor,
                noise_scale: torch.Tensor) -> torch.Tensor:
        model = self.model
        hidden = model.enc_p.encode(model.dequantize(tokens.unsqueeze(0)), phonemes, model.text_ge(ge))
        m_p, logs_p = model.enc_p.project(stretch(hidden, noise.shape[-1]))
        z_p = model.sample_prior(m_p, logs_p, noise_scale, noise=noise)
        return model.flow(z_p, ge)


class GeneratorGraph(nn.Module):
    """``z [B, inter, F]`` + ``ge [B, gin, 1]`` → ``audio [B, 1, F · hop]``."""

    def __init__(self, model: SoVITSModel):
        super().__init__()
        self.dec = model.dec

    def forward(self, z: torch.Tensor, ge: torch.Tensor) -> torch.Tensor:
        return self.dec(z, ge)


class PromptCodesGraph(nn.Module):
    """``ssl [B, ssl_dim, S]`` (HuBERT, 50 Hz) → ``codes [B, S // 2]`` (25 Hz semantic tokens)."""

    def __init__(self, model: SoVITSModel):
        super().__init__()
        self.model = model

    def forward(self, ssl: torch.Tensor) -> torch.Tensor:
        return self.model.extract_latent(ssl)[:, 0]


@torch.no_grad()
def generator_receptive_field(model: SoVITSModel, frames: int = 96) -> int:
    """Latent frames on each side that influence one output sample, measured, not derived.

    Feeds a random latent, perturbs one frame in the middle and finds how far (in whole frames of
    ``hop`` samples) the output changes. Every layer is local (convolutions, upsampling, pointwise
    nonlinearities), so that distance is the generator's context; chunks decoded with at least this
    much context on both sides equal whole-utterance decoding.
    """
    config = model.config
    generator = torch.Generator().manual_seed(0)
    z = torch.randn(1, config.inter_channels, frames, generator=generator)
    ge = torch.randn(1, config.gin_channels, 1, generator=generator)
    base = model.dec(z, ge)[0, 0]
    centre = frames // 2
    z[:, :, centre] += torch.randn(config.inter_channels, generator=generator)
    changed = torch.nonzero((model.dec(z, ge)[0, 0] - base).abs() > 0).flatten()
    hop = config.hop_length
    first, last = int(changed.min()) // hop, int(changed.max()) // hop
    reach = max(centre - first, last - centre)
    if reach >= centre - 1:
        raise RuntimeError(f"the generator's receptive field reaches the edge of a {frames}-frame probe: use a longer one")
    return reach
