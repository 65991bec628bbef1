"""Export spec of a GPT-SoVITS v4 package: the v4 graphs (:mod:`.graphs`), voices and golden data.

Inputs: ``--sovits`` (a v4 LoRA file, merged into ``--sovits-base`` s2Gv4.pth, or a full v4 file), ``--vocoder``
(gsv-v4-pretrained/vocoder.pth), both also found by ``--pretrained``; with ``--gpt`` a text-to-speech package.

Voices (``--voice NAME=ref.wav:prompt_tokens.npy:"prompt phonemes"``, or ``NAME=ref.wav|LANG|transcript`` with
HuBERT; v4 has no reference-free mode, so the prompt is required) are folded at export by the original model:
``ge``, the prompt window's normalised mel and cond features (``NAME/prompt_mel``, ``NAME/prompt_fea``) and the GPT
prompt (:mod:`ttsopt.families.gpt_sovits.voice_prompts`, shared with v2: a Chinese transcript's ``prompt_bert`` too)
go into ``voices.npz``. A package may store none: its voices are then made at run time.

With ``--hubert`` (or ``--pretrained``) the package also runs HuBERT (the ``ssl`` graph, padded as the official
v4 prompt path pads: 0.3 × 32 kHz), so a voice can be made at run time from a recording and its transcript
(``ttsopt voice``, :meth:`ttsopt.runtime.voice.Voice.from_recording`) instead of only at export. With ``--bert`` (or
``--pretrained``) and a GPT, the ``bert`` graph of v2 (:func:`ttsopt.families.gpt_sovits.bert.add_bert_to_plan`):
the official v4 inference reads Chinese with RoBERTa features exactly as v2 does (same GPT).

Golden data: every graph on fixed inputs (the bundled speech for the reference encoder and the vocoder's
mel), and the whole v4 chain (latent → chunked CFM loop → vocoder) of a golden voice with stored noise, spoken
by the original PyTorch model through the same loop (``v4_reference.npz``; ``verify`` speaks it through the
package, :func:`ttsopt.families.gpt_sovits.v4.verification.check_v4_chain`).
"""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ttsopt.audio.io import read_wav
from ttsopt.audio.mel import MelSettings
from ttsopt.compiler.checkpoint import checkpoint_head
from ttsopt.compiler.spec import ExportPlan, ExportSources, GoldenItem
from ttsopt.errors import TtsoptError
from ttsopt.families.gpt_sovits import gpt_spec
from ttsopt.families.gpt_sovits.bert import add_bert_to_plan, plan_gpt_bert
from ttsopt.families.gpt_sovits.g2pw_payload import g2pw_payload
from ttsopt.families.gpt_sovits.gpt_checkpoint import load_gpt_checkpoint
from ttsopt.families.gpt_sovits.v4.checkpoint import BASE_HINT, VOCODER_HINT, LoadedV4, load_v4_sovits, load_vocoder
from ttsopt.families.gpt_sovits.v4.graphs import StepGraph, graph_modules, graphs
from ttsopt.families.gpt_sovits.v4.model import SoVITSV4
from ttsopt.families.gpt_sovits.v4.vocoder import Vocoder, receptive_field
from ttsopt.families.gpt_sovits.voice_prompts import VoicePrompts, check_voice_name, voices_runtime
from ttsopt.package.manifest import sha256_file
from ttsopt.runtime import cfm
from ttsopt.runtime.phonemes import PhonemeTable
from ttsopt.runtime.sovits import SYMBOLS_FILE, VOICES_FILE, reference_spectrogram
from ttsopt.runtime.sovits_v4 import REFERENCE_RATE

FAMILY = "gpt_sovits"
SOVITS_BASE, VOCODER = "sovits_base", "vocoder"
REFERENCE_FILE = "v4_reference.npz"
GPT_REFERENCE_FILE = "gpt_reference.npz"
GOLDEN_PHONEMES = "j in1 t ian1 t ian1 q i4 h en3 h ao3 , w o3 m en5 q v4 g ong1 y van2 b a5 ."
GOLDEN_TOKENS = 40
#: The verification mel of 48 kHz audio: the model's own analysis (40 ms window, 10 ms hop, 100 mels) at 48 kHz.
VERIFY_MEL = MelSettings(sample_rate=48000, n_fft=1920, hop_length=480, win_length=1920, n_mels=100)


def _torch_runner(module: torch.nn.Module, names: tuple[str, ...], outputs: tuple[str, ...]):
    def run(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with torch.inference_mode():
            result = module(*(torch.from_numpy(np.ascontiguousarray(inputs[n])) for n in names))
        result = result if isinstance(result, tuple) else (result,)
        return {name: r.numpy() for name, r in zip(outputs, result, strict=True)}
    return run


class EagerV4:
    """The original model's whole chain in PyTorch, through the same torch-free loop the runtime uses."""

    def __init__(self, model: SoVITSV4, vocoder: Vocoder):
        self.model, self.vocoder = model, vocoder
        self.step_module = StepGraph(model.estimator).eval()

    def condition(self, fea: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return self.model.estimator.condition(torch.from_numpy(np.ascontiguousarray(fea))).numpy()

    def step(self, *arrays: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return self.step_module(*(torch.from_numpy(np.ascontiguousarray(a)) for a in arrays)).numpy()

    def voice(self, wav_32k: np.ndarray, prompt_tokens: np.ndarray, prompt_ids: np.ndarray) -> dict[str, np.ndarray]:
        """``ge``, ``prompt_mel``, ``prompt_fea`` of a recording and what was said in it."""
        with torch.inference_mode():
            spec = torch.from_numpy(reference_spectrogram(wav_32k, 2048, 640, 2048, self.model.sizes.text.reference_bins))
            ge = self.model.reference_embedding(spec)
            fea = self.model.decode_encp(torch.from_numpy(prompt_tokens.reshape(1, 1, -1)), torch.from_numpy(prompt_ids[None]), ge)
        prompt = cfm.prompt_window(cfm.normalize(cfm.reference_mel(wav_32k)), fea.numpy())
        return {"ge": ge.numpy(), "prompt_mel": prompt.mel, "prompt_fea": prompt.fea}

    def __call__(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """The chain on ``tokens, phonemes, ge, prompt_mel, prompt_fea, noise, steps`` (as the runtime's ``decode``)."""
        with torch.inference_mode():
            fea = self.model.decode_encp(torch.from_numpy(inputs["tokens"][None]), torch.from_numpy(inputs["phonemes"]),
                                         torch.from_numpy(inputs["ge"])).numpy()
        noise, used = inputs["noise"], [0]

        def start(index: int, length: int) -> np.ndarray:
            used[0] += length
            return noise[..., used[0] - length:used[0]]

        prompt = cfm.Prompt(inputs["prompt_mel"], inputs["prompt_fea"])
        mel = np.concatenate(list(cfm.generate(self.condition, self.step, prompt, fea, int(inputs["steps"][0]), start)), 2)
        with torch.inference_mode():
            return self.vocoder(torch.from_numpy(cfm.denormalize(mel))).numpy().reshape(-1)


def _sources(sources: ExportSources) -> tuple[Path, Path | None, Path]:
    sovits = sources.checkpoints["sovits"]
    if "sv" in sources.checkpoints:
        raise TtsoptError("--sv is for v2Pro/v2ProPlus SoVITS models; a v4 model takes no speaker-verification embedding: drop --sv")
    lora = checkpoint_head(sovits, "SoVITS checkpoint")[:2] == b"04"
    base = sources.auxiliary.get(SOVITS_BASE)
    if lora and base is None:
        raise TtsoptError(f"{sovits} is a v4 LoRA file (header tag 04): it only holds the changes to the v4 base model, "
                          f"which you must give too: {BASE_HINT}")
    vocoder = sources.auxiliary.get(VOCODER)
    if vocoder is None:
        raise TtsoptError(f"{sovits} is a GPT-SoVITS v4 model, which speaks through its own 48 kHz vocoder: give {VOCODER_HINT}")
    return sovits, base if lora else None, vocoder


def _npz(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _voices(sources: ExportSources, eager: EagerV4, prompts: VoicePrompts) -> dict[str, np.ndarray]:
    """Each voice's GPT prompt (:class:`VoicePrompts`: given, or made from its transcript, with a Chinese transcript's
    BERT features), then what the original model makes of the recording and that prompt: ``ge`` and the window."""
    arrays = {}
    for name, voice in sources.voices.items():
        check_voice_name(name)
        if voice.prompt_tokens is None and voice.transcript is None:
            raise TtsoptError(f"voice {name}: a v4 model continues the reference's speech and needs what was said in it "
                              f"(the official v4 has no reference-free mode): give --voice \"{name}=ref.wav|LANG|transcript\" "
                              f"(with --hubert) or --voice {name}=ref.wav:prompt_tokens.npy:\"prompt phonemes\"")
        prompt = prompts(name, voice)
        tokens, ids = prompt[f"{name}/prompt_tokens"], prompt[f"{name}/prompt_phonemes"]
        stored = eager.voice(read_wav(voice.recording, REFERENCE_RATE), tokens, ids)
        arrays[name] = stored.pop("ge")
        arrays |= {f"{name}/{k}": v for k, v in stored.items()} | prompt
    return arrays


def plan(sources: ExportSources, speech: Callable[[int], list[tuple[str, np.ndarray]]]) -> ExportPlan:
    """Load the v4 SoVITS (LoRA merged), its vocoder and the GPT, and describe the export."""
    from ttsopt.families.gpt_sovits.spec import HUBERT_ROLE, LANGDETECT_ROLE, langdetect_payload, symbol_table_bytes

    if sources.config is not None:
        raise TtsoptError("--config is for HiFi-GAN checkpoints; GPT-SoVITS checkpoints embed their config")
    sovits_path, base_path, vocoder_path = _sources(sources)
    loaded: LoadedV4 = load_v4_sovits(sovits_path, base_path)
    vocoder = load_vocoder(vocoder_path)
    if vocoder.sizes.mel_bins != loaded.sizes.dit.mel_dim:
        raise TtsoptError(f"{vocoder_path} reads {vocoder.sizes.mel_bins}-bin mels but the model writes {loaded.sizes.dit.mel_dim}: "
                          f"give the v4 vocoder ({VOCODER_HINT})")
    gpt = load_gpt_checkpoint(sources.checkpoints["gpt"]) if "gpt" in sources.checkpoints else None
    if gpt is not None and gpt.config.symbol_version != "v2":
        raise TtsoptError(f"the GPT uses the {gpt.config.symbol_version} phoneme table but v4 SoVITS models use v2: "
                          f"give the GPT trained for v4 (s1v3.ckpt or your own)")
    roberta = plan_gpt_bert(sources.auxiliary, None if gpt is None else gpt.config.bert_dim)  # checked before the slow work
    g2pw_files, g2pw_facts, g2pw = g2pw_payload(sources.auxiliary, "v2")  # v4 reads Chinese as v2 does
    model, sizes, text = loaded.model, loaded.sizes, loaded.sizes.text
    exported = graphs(model, vocoder)
    modules = graph_modules(model, vocoder)
    originals = {g.name: _torch_runner(modules[g.name], tuple(t.name for t in g.inputs), tuple(t.name for t in g.outputs))
                 for g in exported}
    eager = EagerV4(model, vocoder)
    symbols = symbol_table_bytes("v2")
    table = PhonemeTable(json.loads(symbols), "v2")

    rng = np.random.default_rng(0)
    golden: list[GoldenItem] = []
    recordings = speech(REFERENCE_RATE)
    for name, wav in recordings:
        golden.append(GoldenItem(f"reference-{name}", "reference_encoder",
                                 {"spectrogram": reference_spectrogram(wav, 2048, 640, 2048, text.reference_bins)}))
    tokens = rng.integers(0, text.codebook_size, GOLDEN_TOKENS, dtype=np.int64)
    phonemes = table.ids(GOLDEN_PHONEMES)
    prompt_tokens = rng.integers(0, text.codebook_size, 60, dtype=np.int64)
    voice = eager.voice(recordings[0][1], prompt_tokens, phonemes[:14])
    for speed, (frames, valid) in ((1.0, (4 * GOLDEN_TOKENS, 4 * GOLDEN_TOKENS)), (1.25, (130, 129))):
        golden.append(GoldenItem(f"latent-speed{speed:g}", "latent", {
            "tokens": tokens[None], "phonemes": phonemes[None], "ge": voice["ge"],
            "mask": (np.arange(frames) < valid).astype(np.float32)[None, None]}))
    fea_todo = originals["latent"](golden[-2].inputs)["fea"]
    fea = np.concatenate([voice["prompt_fea"], fea_todo], axis=2).transpose(0, 2, 1)
    golden.append(GoldenItem("dit-condition", "dit_condition", {"fea": np.ascontiguousarray(fea)}))
    text_embed = originals["dit_condition"](golden[-1].inputs)["text_embed"]
    length, frames = fea.shape[1], voice["prompt_mel"].shape[-1]
    prompt = np.zeros((1, sizes.dit.mel_dim, length), np.float32)
    prompt[..., :frames] = voice["prompt_mel"]
    for t in (0.0, 0.5):
        x = rng.standard_normal((1, sizes.dit.mel_dim, length), dtype=np.float32)
        x[..., :frames] = 0
        golden.append(GoldenItem(f"dit-step-t{t:g}", "dit_step", {
            "x": x, "prompt": prompt, "text_embed": text_embed, "t": np.array([t], np.float32),
            "d": np.array([1 / cfm.DEFAULT_STEPS], np.float32)}))
    golden.append(GoldenItem("vocoder", "vocoder", {"mel": cfm.reference_mel(recordings[-1][1])}))
    golden.append(GoldenItem("prompt-codes", "prompt_codes", {"ssl": rng.standard_normal((1, text.ssl_dim, 81), dtype=np.float32)}))
    auxiliary: dict[str, dict | None] = {"g2pw": g2pw_facts, HUBERT_ROLE: None}
    codes = None
    if HUBERT_ROLE in sources.auxiliary:  # voices from a recording + transcript, at export and at run time (as v2)
        from ttsopt.families.gpt_sovits.hubert import official_prompt, plan_ssl

        ssl = plan_ssl(sources.auxiliary[HUBERT_ROLE], speech, REFERENCE_RATE)
        exported.append(ssl.graph)
        originals[ssl.graph.name] = ssl.original
        golden += ssl.golden
        auxiliary[HUBERT_ROLE] = ssl.facts
        codes = official_prompt(ssl.loaded, modules["prompt_codes"], REFERENCE_RATE)

    chain = {"tokens": tokens[None], "phonemes": phonemes[None], **voice,
             "steps": np.array([cfm.DEFAULT_STEPS], np.int64)}
    chain["noise"] = rng.standard_normal((1, sizes.dit.mel_dim, frames + 4 * GOLDEN_TOKENS), dtype=np.float32)
    reference = {f"chain/{k}": v for k, v in chain.items()} | {"chain/audio": eager(chain)}

    prompts = VoicePrompts(table, text.codebook_size, codes, g2pw, None if roberta is None else roberta.matrix,
                           sources.auxiliary.get(LANGDETECT_ROLE))
    files = {SYMBOLS_FILE: symbols, VOICES_FILE: _npz(_voices(sources, eager, prompts)), REFERENCE_FILE: _npz(reference), **g2pw_files}
    runtime = {
        "symbols": SYMBOLS_FILE, "voices_file": VOICES_FILE, "v4_reference": REFERENCE_FILE, "voices": voices_runtime(sources),
        "token_rate_hz": 25, "vocoder_context_frames": receptive_field(vocoder), "auxiliary": auxiliary,
        "cfm": {"steps": cfm.DEFAULT_STEPS, "step_choices": list(cfm.STEP_CHOICES), "t_ref": cfm.T_REF, "t_chunk": cfm.T_CHUNK,
                "cfg_rate": 0.0},
    }
    model_config = {"version": "v4", "symbol_version": "v2", "text": dataclasses.asdict(text) | {"version": "v4"},
                    "sizes": sizes.as_dict(), "vocoder": vocoder.sizes.as_dict() | {"hop": vocoder.sizes.hop},
                    "lora": {"rank": loaded.lora_rank, "base": str(base_path.resolve())} if base_path else None,
                    "loaded": loaded.describe(),
                    "parameters": sum(p.numel() for p in model.parameters()),
                    "vocoder_parameters": sum(p.numel() for p in vocoder.parameters())}
    source = {"info": loaded.info, "vocoder": str(vocoder_path.resolve()), "vocoder_sha256": sha256_file(vocoder_path)}
    if base_path is not None:
        source |= {"sovits_base": str(base_path.resolve()), "sovits_base_sha256": sha256_file(base_path)}
    task = "sovits"
    if gpt is not None:
        task = "tts"
        gpt_model = gpt.build_model()
        gpt_graphs = gpt_spec.graphs(gpt_model)
        originals |= {g.name: _torch_runner(g.module, tuple(t.name for t in g.inputs), tuple(t.name for t in g.outputs))
                      for g in gpt_graphs}
        exported += gpt_graphs
        ids = np.concatenate((phonemes[:12], phonemes))[None]
        bert = (0.5 * rng.standard_normal((1, gpt_model.config.bert_dim, ids.shape[1]))).astype(np.float32)
        gpt_prompt = rng.integers(0, text.codebook_size, (1, 20), dtype=np.int64)
        golden += gpt_spec.golden(gpt_model, originals, ids, bert, gpt_prompt)
        gpt_reference = gpt_spec.reference_generation(gpt_model, ids, bert, gpt_prompt)
        gpt_chain = {"tokens": gpt_reference["tokens"][None], "phonemes": ids[:, 12:], **voice,
                     "steps": np.array([cfm.DEFAULT_STEPS], np.int64)}
        gpt_chain["noise"] = rng.standard_normal((1, sizes.dit.mel_dim, frames + 4 * len(gpt_reference["tokens"]) + 2 * cfm.T_CHUNK),
                                                 dtype=np.float32)
        gpt_reference |= {f"chain/{k}": v for k, v in gpt_chain.items()} | {"chain/audio": eager(gpt_chain)}
        files[GPT_REFERENCE_FILE] = _npz(gpt_reference)
        langdetect_files, auxiliary[LANGDETECT_ROLE] = langdetect_payload(sources.auxiliary)  # as v2
        files |= langdetect_files
        runtime["gpt"] = {"reference": GPT_REFERENCE_FILE, "reference_params": dataclasses.asdict(gpt_spec.reference_params())}
        model_config["gpt"] = {**gpt_model.config.__dict__, "parameters": sum(p.numel() for p in gpt_model.parameters())}
        source["gpt_info"] = gpt.info
    return add_bert_to_plan(ExportPlan(
        family=FAMILY, task=task, model_config=model_config,
        audio={"sample_rate": vocoder.sizes.hop * 100, "mel": VERIFY_MEL.to_dict()},
        source=source, graphs=exported, golden=golden, original=originals, files=files, runtime=runtime,
    ), roberta)  # Chinese RoBERTa features for the GPT's text input, as v2


def load_eager(manifest, checkpoint: Path | None = None) -> EagerV4:
    """The original v4 model (default: the files exported; a LoRA merged into the base it was exported with), its
    vocoder and, for a text-to-speech package, its GPT, in PyTorch eager: what ``bench`` times the package against."""
    source = manifest.source
    sovits = Path(checkpoint or source["checkpoints"]["sovits"])
    lora = checkpoint_head(sovits, "SoVITS checkpoint")[:2] == b"04"
    if lora and "sovits_base" not in source:
        raise TtsoptError(f"{sovits} is a v4 LoRA file but this package was exported from a full v4 model: give that "
                          f"model as --original")
    loaded = load_v4_sovits(sovits, source["sovits_base"] if lora else None)
    if loaded.sizes.as_dict() != manifest.model_config["sizes"]:
        raise TtsoptError(f"original checkpoint {sovits} is not the model this package was exported from (other sizes): "
                          f"give the right --original")
    eager = EagerV4(loaded.model, load_vocoder(source["vocoder"]))
    if "gpt" in source["checkpoints"]:
        eager.gpt = gpt_spec.EagerGPT(load_gpt_checkpoint(source["checkpoints"]["gpt"]).build_model())
    return eager
