"""ttsopt beside its CPU peers, genie-tts 2.0.2 and gpt-sovits-cpufast 0.1.0, on the same GPT-SoVITS v2 weights.

Every system gets identical inputs and is timed stage by stage in one process, N interleaved rounds (each round:
every stage, every system, the systems' order rotated from round to round), 2 intra-op threads everywhere. The
table gives medians and the paired ratio peer ÷ ttsopt (the median over rounds of that round's ratio; > 1 =
ttsopt faster), for the FP32 package and, when given, the INT8 one. Not a CI test: it needs the peers' packages.

Setup (the peers live in a venv of their own: gpt-sovits-cpufast installs top-level ``api``, ``config``,
``tools`` and ``webui`` modules into site-packages, and genie-tts pins onnxruntime 1.22.1)::

    python -m venv build/peers-venv
    build/peers-venv/bin/pip install --no-deps genie-tts==2.0.2 gpt-sovits-cpufast==0.1.0
    build/peers-venv/bin/pip install einops g2pM   # what their imports need beyond the project venv
    echo "$PWD/.venv/lib/python3.11/site-packages" > build/peers-venv/lib/python3.11/site-packages/ttsopt-venv.pth
    export PYTHONPATH=$PWD
    build/peers-venv/bin/python examples/bench_peers.py convert --gpt build/random-v2/s1_v2_random.ckpt \\
        --sovits build/random-v2/s2_v2_random.pth -o build/genie-v2
    build/peers-venv/bin/python examples/bench_peers.py bench --gpt build/random-v2/s1_v2_random.ckpt \\
        --sovits build/random-v2/s2_v2_random.pth --fp32 build/real-tts --int8 build/real-tts-int8 \\
        --genie build/genie-v2 --rounds 5 --json build/peers.json

(``python examples/random_gpt_sovits.py build/random-v2`` writes the real-size random-weight files; ``ttsopt export``
and ``ttsopt quantize --int8`` make the packages from them, as in BENCHMARKS.md.) The ``.pth`` line lends the peers
the project venv's torch and onnxruntime: every system then runs on the same onnxruntime build (1.32 here, not the
1.22.1 genie-tts pins), so what differs is the graphs and the code around them, not the runtime's version.

How each system is driven (its own classes and sessions; the loop that calls them is this script's):

- **ttsopt** (``ttsopt.runtime.load``): ``gpt.prefill``/``gpt.step`` under ``ttsopt.runtime.sampling.generate``,
  ``synthesize`` for SoVITS (latent + generator graphs; ``ge`` computed once per voice, as a package stores it).
- **genie-tts**: its converter (``genie_tts.Converter.v2``) writes its own graphs from the two files; its loader
  (``ModelManager.load_session_with_fp16_conversion``, graph optimisation ``ALL`` as ``load_character`` sets)
  opens them. Prefill = ``t2s_encoder`` + ``t2s_first_stage_decoder``, a decode step = ``t2s_stage_decoder``
  (fed as ``GENIE.t2s_cpu`` feeds it; top-k sampling inside the graph, the K/V cache concatenated anew each
  step), SoVITS = ``vits`` on the token ids, the phoneme ids and the 32 kHz reference waveform.
- **gpt-sovits-cpufast** (PyTorch eager): ``SynthesizerTrn`` and ``Text2SemanticLightningModule`` built as its
  ``TTS.init_vits_weights``/``init_t2s_weights`` build them (weight norm removed, inference-only T2S blocks).
  Prefill = its embeddings + ``t2s_transformer.process_prompt`` + ``ar_predict_layer``; a step =
  ``decode_next_token`` + ``ar_predict_layer`` + its ``AR.models.utils.sample``, as ``infer_panel_naive`` calls
  them; SoVITS = ``SynthesizerTrn.decode`` with the decode condition (``ge``) computed once per reference, as its
  ``TTS`` caches it.

What is the same: the weights (both peers read the same ``.ckpt``/``.pth``; the script reads them with ttsopt's
restricted unpickler and hands genie's converter and cpufast's classes the tensors, where their own loaders would
unpickle blindly), the phoneme ids (prompt transcript + text; zero BERT features), the prompt's semantic tokens
(genie derives them inside its encoder from the same HuBERT features the others' codes come from; the
agreement table checks they are equal), the token count (EOS is kept out so every system decodes exactly N
tokens: ttsopt and cpufast drop the EOS logit, genie's in-graph sampler cannot be told to, so an EOS it draws is
replaced by token 0 before SoVITS), the sampling settings (top-k 15, top-p 1, temperature 1, repetition penalty
1.35), the SoVITS tokens and phonemes, and one 2-thread pool: every onnxruntime session, ttsopt's and genie's,
shares one 2-thread pool (what ``ttsopt run``/``bench`` use; genie's own loader gives each of its sessions a
pool of its own, whose idle threads spin while another session runs, so sharing spares genie that), PyTorch
gets ``torch.set_num_threads(2)``.

What differs, by each peer's design: genie stores its weights as FP16 and widens them to FP32 at load (nothing is
lost with these files, whose weights are FP16 as the official trainer saves them), computes the prompt codes
from HuBERT features inside its prefill, re-encodes the reference waveform (STFT + reference encoder) inside
every ``vits`` call, and samples inside its graphs; cpufast runs PyTorch eager with its own sampling in torch.
(Genie's ``vits`` graph holds weight norm as 131 ReduceL2 nodes, but onnxruntime's constant folding removes them
all at load, so that costs nothing per call.)

Agreement (printed before the timings, at zero noise where noise enters): prompt codes equal, prefill logits and
the last layer's K against ttsopt FP32, ``ge``, and the SoVITS audio of the 4 s tokens (genie: its ``vits`` graph
with its one RandomNormalLike replaced by zeros, in memory, for this check only; the timed graph is untouched).
Measured with the real-size random-weight v2 files: cpufast agrees to 123.6 dB (prefill logits), 123.5 dB (last
layer's K), 130.8 dB (``ge``) and 134.1 dB (audio); genie's prompt codes (50/50) and audio (138.0 dB) agree, its
GPT does not quite: its graphs come from the upstream ``onnx_export.py`` route, whose ``SinePositionalEmbedding``
counts positions with a cumsum from 1, so genie adds the sine encoding of position p + 1 where the official model
(and ttsopt, and cpufast) adds p's, text and audio positions alike: its text embedding agrees with ttsopt's to
17 dB and the last layer's K to 26 dB, while its text embedding and its first layer's K of the prompt positions
match the official formula to 3e-6 with the positions shifted by one. The work per position is the same;
the timings compare like with like, but genie's tokens are not the official model's.

Timed stages: prefill (first token's logits over prompt transcript + text + prompt tokens), decode per token
((whole GPT − prefill) / (N − 1) over an N-token utterance), SoVITS for 4 s and 12 s of fixed tokens, and the
whole utterance (prefill + decode + SoVITS of its own N tokens).
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "ttsopt" / "assets" / "speech" / "fox_en-us.wav"
GENIE_FILES = ("t2s_encoder_fp32.onnx", "t2s_encoder_fp32.bin", "t2s_first_stage_decoder_fp32.onnx",
               "t2s_stage_decoder_fp32.onnx", "t2s_shared_fp16.bin", "vits_fp32.onnx", "vits_fp16.bin")
SAMPLING = {"top_k": 15, "top_p": 1.0, "temperature": 1.0, "repetition_penalty": 1.35}
EOS = 1024
TOKEN_RATE = 25
STAGES = ("prefill", "decode per token", "SoVITS 4 s", "SoVITS 12 s", "whole utterance")


class Refused(Exception):
    """A one-line reason the run cannot go on (printed without a traceback)."""


# ------------------------------------------------------------------------------------------------------------
# Reading the checkpoints once, safely (the peers' own loaders unpickle the .pth blindly, without weights_only)
# ------------------------------------------------------------------------------------------------------------


def read_checkpoints(gpt: Path, sovits: Path):
    from ttsopt.families.gpt_sovits.gpt_checkpoint import load_gpt_checkpoint
    from ttsopt.families.gpt_sovits.sovits_checkpoint import read_sovits_checkpoint

    s2 = read_sovits_checkpoint(sovits)
    if s2.version != "v2":
        raise Refused(f"{sovits} is a {s2.version} SoVITS file; this comparison drives the peers' v2 paths: give a v2 file")
    return load_gpt_checkpoint(gpt), s2


def _genie_data_dir() -> None:
    """genie-tts checks at import that its HuBERT folder and speaker encoder exist (and offers to download them).
    The v2 path driven here reads neither (HuBERT's output is an input, identical for every system), so an empty
    folder and an empty file in a temporary directory satisfy the check."""
    if "GENIE_DATA_DIR" not in os.environ:
        data = Path(tempfile.mkdtemp(prefix="genie-data-"))
        atexit.register(shutil.rmtree, data, True)
        (data / "chinese-hubert-base").mkdir()
        (data / "speaker_encoder.onnx").touch()
        os.environ["GENIE_DATA_DIR"] = str(data)


def convert_genie(gpt: Path, sovits: Path, out: Path) -> None:
    """genie-tts's own v2 converter, fed the tensors read by ttsopt's restricted unpickler; written to a temporary
    folder and moved into place only when every file is there (genie's converter logs errors and returns)."""
    gpt, sovits, out = gpt.resolve(), sovits.resolve(), out.resolve()
    if out.exists():
        raise Refused(f"{out} exists: give a new folder (or remove it)")
    _, s2 = read_checkpoints(gpt, sovits)
    _genie_data_dir()
    work = Path(tempfile.mkdtemp(prefix="genie-convert-", dir=out.parent if out.parent.exists() else None))
    here = Path.cwd()
    try:
        os.chdir(work)  # genie writes its cache folder under the working directory
        from genie_tts.Converter.v2 import Converter, EncoderConverter, VITSConverter

        weights = {"weight": dict(s2.weights), "config": s2.hparams}
        VITSConverter.load_sovits_model = EncoderConverter.load_sovits_model = lambda path, device="cpu": weights
        Converter.convert(str(gpt), str(sovits), str(work / "model"))
        missing = [name for name in GENIE_FILES if not (work / "model" / name).is_file()]
        if missing:
            raise Refused(f"genie-tts's converter did not write {', '.join(missing)} (its log above says why)")
        (work / "model").rename(out)
    finally:
        os.chdir(here)
        shutil.rmtree(work, ignore_errors=True)


# ------------------------------------------------------------------------------------------------------------
# The inputs every system gets
# ------------------------------------------------------------------------------------------------------------


def make_inputs(package, tokens: int) -> dict:
    """Prompt transcript (15 phonemes) + text (26) from the package's golden inputs, 50 prompt codes from 100 frames
    of its golden HuBERT features (91 prefill positions, as in issue 27), fixed SoVITS tokens for 4 s and 12 s."""
    from ttsopt.runtime.sovits import read_reference

    golden = package.golden
    text = golden.inputs("latent-speed1")["phonemes"][0].astype(np.int64)
    prompt_phonemes = golden.inputs("gpt-text")["phoneme_ids"][0, :15].astype(np.int64)
    ssl = golden.inputs("prompt-codes")["ssl"]
    ssl = np.concatenate([ssl, ssl], axis=2)[:, :, :100].astype(np.float32)
    rng = np.random.default_rng(0)
    sovits = {}
    for seconds in (4, 12):
        count = seconds * TOKEN_RATE
        sovits[f"SoVITS {seconds} s"] = (rng.integers(0, EOS, count).astype(np.int64),
                                         np.resize(text, round(count * len(text) / 40)).astype(np.int64))
    return {"text": text, "prompt_phonemes": prompt_phonemes, "ssl": ssl, "tokens": tokens, "sovits": sovits,
            "reference": read_reference(REFERENCE, package.manifest.sample_rate)}


# ------------------------------------------------------------------------------------------------------------
# The systems: each runs an utterance (prefill, N - 1 steps, SoVITS of its tokens) and a SoVITS call
# ------------------------------------------------------------------------------------------------------------


class Ttsopt:
    def __init__(self, name: str, path: Path, inputs: dict):
        import ttsopt.runtime

        self.name, self.tts = name, ttsopt.runtime.load(path)
        self.ge = self.tts.voice_embedding([inputs["reference"]])
        self.prompt = self.tts.prompt_codes(inputs["ssl"]).astype(np.int64)
        self.ids = np.concatenate([inputs["prompt_phonemes"], inputs["text"]])
        self.text = inputs["text"]

    def utterance(self, tokens: int) -> dict:
        from ttsopt.runtime.sampling import SamplingParams, generate

        params = SamplingParams(**SAMPLING, max_new_tokens=tokens, eos_suppress_steps=tokens, seed=0)
        clock = {}

        def prefill():
            start = time.perf_counter()
            logits = self.tts.gpt.prefill(self.ids, None, self.prompt)
            clock["prefill"] = time.perf_counter() - start
            return logits

        start = time.perf_counter()
        result = generate(prefill, self.tts.gpt.step, self.prompt, params)
        clock["gpt"] = time.perf_counter() - start
        self.sovits(result.tokens, self.text)
        clock["whole"] = time.perf_counter() - start
        return clock

    def sovits(self, tokens: np.ndarray, phonemes: np.ndarray, noise_scale: float = 0.5) -> np.ndarray:
        return self.tts.synthesize(tokens, phonemes, self.ge, noise_scale=noise_scale, seed=0)

    def probe(self) -> dict:
        """Prefill logits and the last layer's K of the prompt + text positions ``[positions, hidden]``."""
        logits = self.tts.gpt.prefill(self.ids, None, self.prompt)
        cache = self.tts.gpt.cache
        k = cache.keys[-1][0, :, : cache.length]  # [heads, positions, head_dim]
        return {"logits": logits, "k": k.transpose(1, 0, 2).reshape(cache.length, -1), "prompt": self.prompt, "ge": self.ge}


class Genie:
    name = "genie-tts"

    def __init__(self, folder: Path, inputs: dict, options_for: Callable[[], object]):
        from genie_tts.ModelManager import GSVModelFile, load_session_with_fp16_conversion

        missing = [name for name in GENIE_FILES if not (folder / name).is_file()]
        if missing:
            raise Refused(f"{folder} is not a genie-tts v2 model (no {', '.join(missing)}): make it with the convert command")
        providers = ["CPUExecutionProvider"]
        self.folder, self.options_for, self.load = folder, options_for, load_session_with_fp16_conversion
        self.encoder = _ort_session(folder / GSVModelFile.T2S_ENCODER_FP32, options_for())
        self.first = self.load(str(folder / GSVModelFile.T2S_FIRST_STAGE_DECODER_FP32),
                               str(folder / GSVModelFile.T2S_DECODER_WEIGHT_FP16), providers, options_for())
        self.stage = self.load(str(folder / GSVModelFile.T2S_STAGE_DECODER_FP32),
                               str(folder / GSVModelFile.T2S_DECODER_WEIGHT_FP16), providers, options_for())
        self.vits = self.load(str(folder / GSVModelFile.VITS_FP32), str(folder / GSVModelFile.VITS_WEIGHT_FP16),
                              providers, options_for())
        self.stage_inputs = [i.name for i in self.stage.get_inputs()]
        bert = lambda ids: np.zeros((ids.size, 1024), np.float32)  # noqa: E731 - genie's [phonemes, 1024] layout
        self.encoder_feed = {"ref_seq": inputs["prompt_phonemes"][None], "text_seq": inputs["text"][None],
                             "ref_bert": bert(inputs["prompt_phonemes"]), "text_bert": bert(inputs["text"]),
                             "ssl_content": inputs["ssl"]}
        self.text, self.reference = inputs["text"], inputs["reference"][None].astype(np.float32)

    def _prefill(self) -> tuple:
        x, prompts = self.encoder.run(None, self.encoder_feed)
        return prompts, self.first.run(None, {"x": x, "prompts": prompts})

    def utterance(self, tokens: int) -> dict:
        clock = {}
        start = time.perf_counter()
        prompts, (y, y_emb, *kv) = self._prefill()
        clock["prefill"] = time.perf_counter() - start
        for _ in range(tokens - 1):
            y, y_emb, _stop, *kv = self.stage.run(None, dict(zip(self.stage_inputs, [y, y_emb, *kv], strict=True)))
        clock["gpt"] = time.perf_counter() - start
        new = y[0, prompts.shape[1]:]
        self.sovits(np.where(new >= EOS, 0, new), self.text)
        clock["whole"] = time.perf_counter() - start
        return clock

    def sovits(self, tokens: np.ndarray, phonemes: np.ndarray, session=None) -> np.ndarray:
        feed = {"text_seq": phonemes[None], "pred_semantic": tokens[None, None], "ref_audio": self.reference}
        return (session or self.vits).run(None, feed)[0].reshape(-1)

    def probe(self) -> dict:
        prompts, (_y, _y_emb, *kv) = self._prefill()
        return {"prompt": prompts[0], "k": kv[-2][:, 0]}  # present_k of the last layer: [positions, hidden]

    def noiseless_sovits(self, tokens: np.ndarray, phonemes: np.ndarray) -> np.ndarray:
        """Its ``vits`` graph with the RandomNormalLike that draws the prior's noise made zeros (x − x), loaded as
        its loader loads the timed one."""
        import onnx

        model = onnx.load(str(self.folder / "vits_fp32.onnx"), load_external_data=False)
        noise = [node for node in model.graph.node if node.op_type == "RandomNormalLike"]
        if len(noise) != 1:
            raise Refused(f"genie's vits graph has {len(noise)} RandomNormalLike nodes, expected 1: another genie-tts version?")
        node = noise[0]
        replacement = onnx.helper.make_node("Sub", [node.input[0], node.input[0]], list(node.output), name=node.name)
        node.CopyFrom(replacement)
        with tempfile.TemporaryDirectory() as work:
            path = Path(work) / "vits_fp32.onnx"
            onnx.save(model, str(path))
            session = self.load(str(path), str(self.folder / "vits_fp16.bin"), ["CPUExecutionProvider"], self.options_for())
        return self.sovits(tokens, phonemes, session)


class Cpufast:
    name = "cpufast"

    def __init__(self, gpt_checkpoint, sovits_checkpoint, inputs: dict):
        import torch
        from gpt_sovits_cpufast.runtime import configure_runtime

        configure_runtime()  # its import roots (AR, module, text, ...) on sys.path, as its launchers do
        from AR.models.t2s_lightning_module import Text2SemanticLightningModule
        from AR.models.t2s_model import MAX_AR_DECODE_STEPS
        from AR.models.utils import sample
        from module.mel_processing import spectrogram_torch
        from module.models import SynthesizerTrn

        self.torch, self.sample, self.max_steps = torch, sample, MAX_AR_DECODE_STEPS
        hps = sovits_checkpoint.hparams
        model = dict(hps["model"], semantic_frame_rate="25hz", version="v2")
        vits = SynthesizerTrn(hps["data"]["filter_length"] // 2 + 1, hps["train"]["segment_size"] // hps["data"]["hop_length"],
                              n_speakers=hps["data"]["n_speakers"], **model)
        loaded = vits.load_state_dict(sovits_checkpoint.weights, strict=False)
        unexpected = [k for k in loaded.missing_keys if not k.startswith("enc_q.")] + loaded.unexpected_keys
        if unexpected:
            raise Refused(f"cpufast's SynthesizerTrn does not match the .pth ({', '.join(unexpected[:3])}, ...)")
        vits.dec.remove_weight_norm()
        self.vits = vits.eval()
        t2s = Text2SemanticLightningModule(gpt_checkpoint.raw_config, "****", is_train=False,
                                           build_t2s_transformer=False, build_h_module=False)
        t2s.load_inference_only_state_dict({f"model.{k}": v for k, v in gpt_checkpoint.state_dict.items()})
        t2s.model.release_inference_only_unused_modules()
        self.t2s = t2s.eval().model
        with torch.inference_mode():
            wav = torch.from_numpy(inputs["reference"])[None]
            data = hps["data"]
            spec = spectrogram_torch(wav, data["filter_length"], data["sampling_rate"], data["hop_length"],
                                     data["win_length"], center=False)
            self.ge, self.ge_text = self.vits.build_decode_condition(spec)
            self.prompt = self.vits.extract_latent(torch.from_numpy(inputs["ssl"]))[0]  # [1, codes]
        self.ids = torch.from_numpy(np.concatenate([inputs["prompt_phonemes"], inputs["text"]]))[None]
        self.text = inputs["text"]

    def _prefill(self):
        """Its embeddings and ``process_prompt`` over prompt transcript + text + prompt tokens; the mask is ttsopt's
        (text rows see the text, audio rows the text and the audio up to themselves), inverted to cpufast's
        "True = hidden" convention."""
        from ttsopt.runtime.gpt import prefill_mask

        torch, model = self.torch, self.t2s
        bert = torch.zeros(1, 1024, self.ids.shape[1])
        x = model.ar_text_position(model.ar_text_embedding(self.ids) + model.bert_proj(bert.transpose(1, 2)))
        y = model.ar_audio_position(model.ar_audio_embedding(self.prompt))
        xy = torch.concat([x, y], dim=1)
        hidden = ~torch.from_numpy(prefill_mask(x.shape[1], xy.shape[1]))
        mask = hidden[None, None].expand(1, model.num_head, -1, -1)
        out, k, v, length = model.t2s_transformer.process_prompt(xy, mask, self.max_steps, None, True)
        return model.ar_predict_layer(out[:, -1]), k, v, length

    def utterance(self, tokens: int) -> dict:
        torch, model = self.torch, self.t2s
        clock = {}
        with torch.inference_mode():
            start = time.perf_counter()
            logits, k, v, length = self._prefill()
            clock["prefill"] = time.perf_counter() - start
            history = self.prompt.clone()
            prompt_len = history.shape[1]
            for index in range(tokens):
                token = self.sample(logits[:, :-1], history, **SAMPLING)[0]  # EOS dropped, as its first 11 steps do
                history = torch.concat([history, token], dim=1)
                if index == tokens - 1:
                    break
                xy = (model.ar_audio_embedding(token) * model.ar_audio_position.x_scale
                      + model.ar_audio_position.alpha * model.ar_audio_position.pe[:, prompt_len + index])
                out, k, v, length = model.t2s_transformer.decode_next_token(xy, k, v, length, None, True)
                logits = model.ar_predict_layer(out[:, -1])
            clock["gpt"] = time.perf_counter() - start
            self.sovits(history[0, prompt_len:].numpy(), self.text)
            clock["whole"] = time.perf_counter() - start
        return clock

    def sovits(self, tokens: np.ndarray, phonemes: np.ndarray, noise_scale: float = 0.5) -> np.ndarray:
        torch = self.torch
        with torch.inference_mode():
            audio = self.vits.decode(torch.from_numpy(tokens)[None, None], torch.from_numpy(phonemes)[None], None,
                                     noise_scale=noise_scale, ge=self.ge, ge_text=self.ge_text)
        return audio.numpy().reshape(-1)

    def probe(self) -> dict:
        with self.torch.inference_mode():
            logits, k, _v, length = self._prefill()
        return {"logits": logits[0].numpy(), "k": k[-1][0, :length].numpy(), "prompt": self.prompt[0].numpy(),
                "ge": self.ge.numpy()}


def _ort_session(path: Path, options):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


# ------------------------------------------------------------------------------------------------------------
# Agreement and timing
# ------------------------------------------------------------------------------------------------------------


def snr_db(reference: np.ndarray, other: np.ndarray) -> float:
    reference, other = np.asarray(reference, np.float64).reshape(-1), np.asarray(other, np.float64).reshape(-1)
    n = min(reference.size, other.size)
    error = np.sum((reference[:n] - other[:n]) ** 2)
    return float("inf") if error == 0 else float(10 * np.log10(np.sum(reference[:n] ** 2) / error))


def agreement(systems: dict, inputs: dict) -> list[dict]:
    """Each system against ttsopt FP32 on the same inputs (SoVITS at zero noise)."""
    base = systems["ttsopt FP32"]
    reference = base.probe()
    tokens, phonemes = inputs["sovits"]["SoVITS 4 s"]
    audio = base.sovits(tokens, phonemes, noise_scale=0.0)
    rows = []
    for name, system in systems.items():
        if system is base:
            continue
        probe = system.probe()
        row = {"system": name, "prompt codes equal": f"{int(np.sum(probe['prompt'] == reference['prompt']))}/{reference['prompt'].size}"}
        if "logits" in probe:
            row["prefill logits SNR dB"] = snr_db(reference["logits"], probe["logits"])
        row["last layer K SNR dB"] = snr_db(reference["k"], probe["k"])
        if "ge" in probe:
            row["ge SNR dB"] = snr_db(reference["ge"], probe["ge"])
        other = system.noiseless_sovits(tokens, phonemes) if isinstance(system, Genie) else system.sovits(tokens, phonemes, noise_scale=0.0)
        row["SoVITS 4 s audio SNR dB (zero noise)"] = snr_db(audio, other)
        row["audio samples"] = f"{other.size} vs {audio.size}"
        rows.append(row)
    return rows


def measure(system, stage: str, inputs: dict) -> dict[str, float]:
    """Seconds of one stage, or of the utterance's three (prefill, decode per token, whole)."""
    if stage == "utterance":
        clock = system.utterance(inputs["tokens"])
        return {"prefill": clock["prefill"], "decode per token": (clock["gpt"] - clock["prefill"]) / (inputs["tokens"] - 1),
                "whole utterance": clock["whole"]}
    tokens, phonemes = inputs["sovits"][stage]
    start = time.perf_counter()
    system.sovits(tokens, phonemes)
    return {stage: time.perf_counter() - start}


def run_rounds(systems: dict, inputs: dict, rounds: int, say: Callable[[str], None]) -> dict[str, dict[str, list[float]]]:
    names = list(systems)
    times = {name: {stage: [] for stage in STAGES} for name in names}
    say("warm-up: one utterance and one SoVITS call per system")
    for system in systems.values():
        measure(system, "utterance", inputs)
        measure(system, "SoVITS 4 s", inputs)
    for r in range(rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        say(f"round {r + 1}/{rounds}: {', '.join(order)}")
        for stage in ("utterance", "SoVITS 4 s", "SoVITS 12 s"):
            for name in order:
                for key, seconds in measure(systems[name], stage, inputs).items():
                    times[name][key].append(seconds)
    return times


def summarise(times: dict) -> dict:
    """Medians (ms) per system and stage; paired ratios peer ÷ ttsopt: median and range over rounds."""
    medians = {name: {stage: 1e3 * statistics.median(values) for stage, values in stages.items()} for name, stages in times.items()}
    ratios = {}
    for base in (n for n in times if n.startswith("ttsopt")):
        for peer in (n for n in times if not n.startswith("ttsopt")):
            ratios[f"{peer} ÷ {base}"] = by_stage = {}
            for stage in STAGES:
                paired = [p / b for p, b in zip(times[peer][stage], times[base][stage], strict=True)]
                by_stage[stage] = {"median": statistics.median(paired), "min": min(paired), "max": max(paired)}
    return {"medians_ms": medians, "ratios": ratios}


def markdown(summary: dict, inputs: dict, rounds: int) -> str:
    names = list(summary["medians_ms"])
    positions = inputs["prompt_phonemes"].size + inputs["text"].size + 50
    label = {"prefill": f"prefill (first token, {positions} positions)", "decode per token": f"decode per token ({inputs['tokens']} tokens)",
             "whole utterance": f"whole utterance, {inputs['tokens'] / TOKEN_RATE:g} s"}
    head = ["stage", *(f"{n} ms" for n in names), *summary["ratios"]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for stage in STAGES:
        cells = [label.get(stage, stage), *(f"{summary['medians_ms'][n][stage]:.1f}" for n in names)]
        cells += [f"{r[stage]['median']:.2f} ({r[stage]['min']:.2f}–{r[stage]['max']:.2f})" for r in summary["ratios"].values()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + f"\n\nMedians of {rounds} interleaved rounds; ratios: paired, median (range), > 1 = ttsopt faster."


def bench(args) -> dict:
    import onnxruntime as ort
    import torch

    import ttsopt.runtime
    from ttsopt.bench.machine import machine_description
    from ttsopt.runtime.package import Package

    say = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    for path in (args.gpt, args.sovits, args.fp32, *([args.int8] if args.int8 else []), args.genie):
        if not path.exists():
            raise Refused(f"{path} does not exist")
    ttsopt.runtime.share_thread_pool(args.threads, 1)
    torch.set_num_threads(args.threads)

    def options():
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.use_per_session_threads = False
        opts.log_severity_level = 3
        return opts

    _genie_data_dir()
    import genie_tts.ModelManager  # noqa: F401 - imported before cpufast puts its own roots first on sys.path

    inputs = make_inputs(Package(args.fp32), args.tokens)
    say("reading the checkpoints and building the systems")
    gpt, s2 = read_checkpoints(args.gpt, args.sovits)
    systems = {"ttsopt FP32": Ttsopt("ttsopt FP32", args.fp32, inputs)}
    if args.int8:
        systems["ttsopt INT8"] = Ttsopt("ttsopt INT8", args.int8, inputs)
    systems["genie-tts"] = Genie(args.genie, inputs, options)
    systems["cpufast"] = Cpufast(gpt, s2, inputs)
    del gpt, s2
    say("checking that every system computes the same model")
    agree = agreement(systems, inputs)
    times = run_rounds(systems, inputs, args.rounds, say)
    summary = summarise(times)
    return {"machine": machine_description(), "threads": args.threads, "rounds": args.rounds,
            "inputs": {"prompt_phonemes": int(inputs["prompt_phonemes"].size), "text_phonemes": int(inputs["text"].size),
                       "prompt_tokens": 50, "utterance_tokens": args.tokens,
                       "sovits": {k: {"tokens": int(t.size), "phonemes": int(p.size)} for k, (t, p) in inputs["sovits"].items()}},
            "agreement": agree, **summary, "seconds": times, "table": markdown(summary, inputs, args.rounds),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    convert = commands.add_parser("convert", help="genie-tts's converter on the two files")
    run = commands.add_parser("bench", help="every system, every stage, interleaved")
    for sub in (convert, run):
        sub.add_argument("--gpt", type=Path, required=True, help="s1 .ckpt (v2)")
        sub.add_argument("--sovits", type=Path, required=True, help="s2 .pth (v2)")
    convert.add_argument("-o", "--out", type=Path, required=True, help="new folder for genie's model")
    run.add_argument("--fp32", type=Path, required=True, help="ttsopt FP32 package exported from the two files")
    run.add_argument("--int8", type=Path, help="ttsopt INT8 package (ttsopt quantize --int8 of the FP32 one)")
    run.add_argument("--genie", type=Path, required=True, help="genie's model folder (the convert command's)")
    run.add_argument("--rounds", type=int, default=5)
    run.add_argument("--tokens", type=int, default=100, help="tokens of the whole utterance (25 per second)")
    run.add_argument("--threads", type=int, default=2, help="intra-op threads of every system")
    run.add_argument("--json", type=Path, help="also write every figure here")
    args = parser.parse_args()
    from ttsopt.errors import TtsoptError

    try:
        if args.command == "convert":
            convert_genie(args.gpt, args.sovits, args.out)
            print(f"wrote {args.out}")
            return 0
        if args.rounds < 1 or args.tokens < 2 or args.threads < 1:
            raise Refused("--rounds and --threads must be at least 1, --tokens at least 2")
        report = bench(args)
    except ModuleNotFoundError as exc:
        print(f"error: {exc}: run this in the peers' venv with PYTHONPATH at the ttsopt checkout (setup: the docstring)",
              file=sys.stderr)
        return 2
    except (Refused, TtsoptError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{report['machine']['cpu']}, {report['machine']['cores']} cores, {report['threads']} threads per system; "
          f"peak RSS {report['peak_rss_mb']:.0f} MB\n\nAgreement with ttsopt FP32 (same inputs):\n")
    for row in report["agreement"]:
        print("- " + "; ".join(f"{k}: {v:.1f}" if isinstance(v, float) else f"{k}: {v}" for k, v in row.items()))
    print("\n" + report["table"])
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
