"""The GPT-SoVITS family: SoVITS packages (semantic tokens + phonemes + voice → speech) and text-to-speech
packages (with the GPT). Verified by voices and the GPT's replayed generation, benchmarked per stage."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ttsopt.errors import TtsoptError
from ttsopt.families.contract import Family, Feed, Workload
from ttsopt.families.gpt_sovits import formats
from ttsopt.runtime.bert import BERT_GRAPH
from ttsopt.runtime.sovits import SPEAKER_VERIFICATION

SOVITS, GPT, SV = "sovits", "gpt", "sv"
#: The gates that verify the GPT decode graph (what its weight-only candidates are held to).
GPT_GATES = ("GPT greedy agreement (teacher-forced)", "GPT logits SNR dB (teacher-forced)")
#: The gate that holds a v4 DiT step: the golden voice's whole chain (8 Euler steps, then the vocoder) in speech terms.
V4_DIT_GATES = ("v4 chain log-mel L1",)


class GPTSoVITS(Family):
    name = "gpt_sovits"
    roles = (SOVITS, GPT, SV)
    usage = "--sovits s2.pth"

    def recognize_header(self, head: bytes) -> str | None:
        return formats.recognize_header(head)

    def recognize_state(self, state: Any) -> str | None:
        return formats.recognize_state(state)

    def check_roles(self, roles: set[str]) -> None:
        if GPT in roles and SOVITS not in roles:
            raise TtsoptError("--gpt needs --sovits too: a GPT-SoVITS package holds the GPT and the SoVITS model that speaks its tokens")
        if SV in roles and SOVITS not in roles:
            raise TtsoptError("--sv needs --sovits too: the speaker-verification model embeds references for a v2Pro/v2ProPlus SoVITS model")

    def plan(self, sources, speech):
        from ttsopt.families.gpt_sovits import spec

        return spec.plan(sources, speech)

    def load_eager(self, manifest, checkpoint=None, config=None):
        from ttsopt.families.gpt_sovits import spec

        return spec.load_eager(manifest, checkpoint, config)

    def quantization(self):
        """The generator is a HiFi-GAN-style convolution stack (most of the SoVITS FLOPs) and v2Pro's speaker
        verification an ERes2NetV2 convolution stack (scored by what its embedding's error does to speech); the GPT
        decode step is memory-bound MatMuls, so narrow weights are what makes it faster; its prefill multiplies the
        same weights by ~100 rows (compute-bound), so it gets a graph of its own, dynamic INT8 (onnxruntime's integer
        GEMM, VNNI/AMX), where that passes the GPT's gates and is measured faster. RoBERTa runs once per
        Chinese sentence, compute-bound MatMuls: INT8 only where it passes its gates and is measured faster. v4: its
        48 kHz vocoder is the generators' convolution stack; its DiT step is compute-bound MatMuls (22 blocks ×
        1024² over hundreds of frames, 8 calls per chunk), INT8 only where the golden voice's whole chain passes in
        speech terms and it is measured faster."""
        from ttsopt.compiler.passes import MatMulInt8, StaticInt8, WeightOnly
        from ttsopt.families.gpt_sovits.bert_verification import BERT_GATES
        from ttsopt.families.gpt_sovits.timing import bert_timer, decode_step_timer, dit_step_timer, prefill_timer
        from ttsopt.families.gpt_sovits.verification import speaker_verification_speech
        from ttsopt.runtime.gpt import PREFILL, TRANSFORMER

        return {"generator": StaticInt8(), SPEAKER_VERIFICATION: StaticInt8(speech=speaker_verification_speech),
                TRANSFORMER: WeightOnly(gates=GPT_GATES, timer=decode_step_timer),
                PREFILL: MatMulInt8(gates=GPT_GATES, timer=prefill_timer, methods=("dynamic",), made_from=TRANSFORMER),
                BERT_GRAPH: MatMulInt8(gates=BERT_GATES, timer=bert_timer),
                "vocoder": StaticInt8(), "dit_step": MatMulInt8(gates=V4_DIT_GATES, timer=dit_step_timer)}

    def calibration_feeds(self, package, recordings: Sequence[np.ndarray]) -> dict[str, list[Feed]]:
        if package.manifest.model_config.get("version") == "v4":
            from ttsopt.families.gpt_sovits.calibration import vocoder_v4_feeds

            return {"vocoder": vocoder_v4_feeds(package, recordings)}
        from ttsopt.families.gpt_sovits.calibration import generator_feeds, speaker_verification_feeds

        feeds = {"generator": generator_feeds(package, recordings)}
        if SPEAKER_VERIFICATION in package.manifest.graphs:
            feeds[SPEAKER_VERIFICATION] = speaker_verification_feeds(package, recordings)
        return feeds

    def golden_checks(self, package, report) -> None:
        if package.manifest.model_config.get("version") == "v4":
            from ttsopt.families.gpt_sovits.v4.verification import check_v4_chain

            check_v4_chain(package, report)
        if SPEAKER_VERIFICATION in package.manifest.graphs:
            from ttsopt.families.gpt_sovits.verification import check_speaker_verification

            check_speaker_verification(package, report)
        if "ssl" in package.manifest.graphs:
            from ttsopt.families.gpt_sovits.verification import check_prompt_codes

            check_prompt_codes(package, report)
        if package.manifest.task == "tts":
            from ttsopt.families.gpt_sovits.verification import check_gpt

            check_gpt(package, report)
        if BERT_GRAPH in package.manifest.graphs:
            from ttsopt.families.gpt_sovits.bert_verification import check_bert

            check_bert(package, report)

    def reference_checks(self, model, report, references, original, original_config):
        from ttsopt.families.gpt_sovits.verification import check_voices

        return check_voices(model, report, references, original, original_config)

    def workload(self, model: Any, seconds: float) -> tuple[Workload, Callable[[Any], Any]]:
        """``seconds`` of speech at 25 tokens per second with about 12 phonemes per second (the golden sentence
        repeated), the first golden voice, seeded noise, noise scale 0.5: the decode the runtime does per request."""
        tokens = max(1, round(seconds * int(model.settings["token_rate_hz"])))
        golden = model.package.golden.inputs(model.package.golden.first("latent"))
        if model.manifest.model_config.get("version") == "v4":
            return _v4_workload(model, tokens, golden), model.decode
        count = max(1, min(model.max_phonemes, round(seconds * 12)))
        rng = np.random.default_rng(0)
        inputs = {"tokens": rng.integers(0, model.codebook_size, (1, tokens), dtype=np.int64),
                  "phonemes": np.resize(golden["phonemes"][0], count)[None], "ge": golden["ge"],
                  "noise": rng.standard_normal((1, model.inter_channels, 2 * tokens), dtype=np.float32),
                  "noise_scale": np.array([0.5], dtype=np.float32)}
        return Workload(inputs, 2 * tokens * model.hop / model.sample_rate), model.decode

    def benchmark(self, path, options, step):
        """Text-to-speech packages: per stage (:mod:`.bench`); SoVITS packages: RTF over audio lengths."""
        from ttsopt.package import read_manifest

        manifest = read_manifest(path, check_files=False)
        if options.original_config is not None:
            raise TtsoptError("--original-config is for HiFi-GAN packages")
        if manifest.model_config.get("version") == "v4":
            from ttsopt.families.gpt_sovits.v4.bench import run_v4_bench

            return run_v4_bench(path, options.seconds, options.repeat, options.original, step)
        if manifest.task != "tts":
            return super().benchmark(path, options, step)
        from ttsopt.families.gpt_sovits.bench import run_tts_bench

        return run_tts_bench(path, options.repeat, options.original, step)


def _v4_workload(model: Any, tokens: int, golden: dict[str, np.ndarray]) -> Workload:
    """``tokens`` seeded tokens with the golden phonemes, the first stored voice, the default steps, seeded noise:
    the inputs of :meth:`V4Synthesizer.decode` (and of the original's :class:`EagerV4`); a package that stores no
    voice: its golden voice."""
    voice = model.bench_voice()[1]
    rng = np.random.default_rng(0)
    count = max(1, min(model.max_phonemes, round(tokens / 25 * 12)))
    inputs = {"tokens": rng.integers(0, model.codebook_size, (1, tokens), dtype=np.int64),
              "phonemes": np.resize(golden["phonemes"][0], count)[None], "ge": voice.ge, "prompt_mel": voice.prompt.mel,
              "prompt_fea": voice.prompt.fea, "steps": np.array([model.default_steps], np.int64)}
    inputs["noise"] = rng.standard_normal((1, model.mel_bins, model.noise_frames(tokens, voice)), dtype=np.float32)
    return Workload(inputs, 4 * tokens * model.hop / model.sample_rate)


FAMILY = GPTSoVITS()
