"""GPT-SoVITS checks beyond the graphs' golden outputs (torch-free, except the original for voices).

- :func:`check_gpt` (text-to-speech packages): the original GPT's greedy run replayed teacher-forced through
  the package (logits, greedy choices), then generated free-running and spoken (the whole chain).
- :func:`check_speaker_verification` (v2Pro/v2ProPlus): the speaker-verification graph's golden embeddings in
  speech terms (an embedding has no audio gate of its own, and INT8/FP16 gates hold no tensor SNR).
- :func:`check_prompt_codes` (packages with HuBERT, ``ssl``): its golden features in speech terms — the prompt
  codes they make (features have no audio gate, and a code is a nearest-codebook choice).
- :func:`check_voices` (``verify --reference``): each recording as a new voice, package against original.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from ttsopt.audio.io import read_wav
from ttsopt.audio.mel import MelSettings
from ttsopt.audio.metrics import golden_metrics, snr_db, tensor_metrics
from ttsopt.runtime.gpt import PREFILL, TRANSFORMER
from ttsopt.runtime.package import Package
from ttsopt.runtime.sampling import SamplingParams, sample_next_token
from ttsopt.runtime.sovits import SPEAKER_VERIFICATION, Synthesizer
from ttsopt.runtime.tts import TextToSpeech
from ttsopt.verify.golden import item_rows
from ttsopt.verify.original import load_original
from ttsopt.verify.report import Gate, VerifyReport

#: The gate of the ``ssl`` graph (what a precision pass for it is held to).
PROMPT_CODES_GATE = "HuBERT → prompt codes agreement (golden references)"


def check_prompt_codes(package: Package, report: VerifyReport) -> None:
    """Each golden reference's prompt codes from the package's ``ssl`` features against those from the original's
    (both through ``prompt_codes``): the share that agree. A code whose two nearest codebook rows are nearly tied
    can flip on a 1e-5 difference in the features, so the FP32 limit allows about one flip per 100 codes."""
    golden = package.golden
    agree = total = 0
    for item in golden.items:
        if item["graph"] != "ssl":
            continue
        want = package.run("prompt_codes", {"ssl": golden.outputs(item["name"])["ssl"]})["codes"]
        got = package.run("prompt_codes", {"ssl": package.run("ssl", golden.inputs(item["name"]))["ssl"]})["codes"]
        agree, total = agree + int(np.sum(want == got)), total + want.size
    if total:
        report.gates.append(Gate(PROMPT_CODES_GATE, agree / total, package.manifest.gates.get("prompt_codes_agreement_min", 0.99), "min"))


def check_gpt(package: Package, report: VerifyReport) -> None:
    """The original model's greedy run, replayed teacher-forced through the package (logits, greedy choices),
    then generated free-running and spoken with the stored noise (the whole chain against the original's audio)."""
    tts = TextToSpeech(package) if package.manifest.model_config.get("version") != "v4" else _v4_tts(package)
    with np.load(package.path / package.manifest.runtime["gpt"]["reference"]) as data:
        ref = {key: data[key] for key in data.files}
    params = _reference_params(package.manifest)
    ids, bert, prompt, tokens = ref["phoneme_ids"][0], ref["bert_features"], ref["prompt_tokens"], ref["tokens"]
    logits = [tts.gpt.prefill(ids, bert, prompt, reserve=len(tokens) + 1)]
    for j, token in enumerate(tokens[: len(ref["logits"]) - 1]):
        logits.append(tts.gpt.step(int(token), prompt.shape[1] + j))
    logits = np.stack(logits)
    history = np.concatenate((prompt[0], tokens))
    agree = 0
    for k, row in enumerate(logits):
        decision = sample_next_token(row, history[: prompt.shape[1] + k], k, params, None)
        expected = int(tokens[k]) if k < len(tokens) else params.eos_token
        agree += decision.token == expected or (decision.is_eos and expected == params.eos_token)
    generated = tts.gpt.generate(ids, bert, prompt[0], params).tokens
    chain = {key[6:]: value for key, value in ref.items() if key.startswith("chain/") and key != "chain/audio"}
    if np.array_equal(generated, chain["tokens"][0]):
        audio = tts.decode(chain)
    else:  # different tokens make different speech; compare what there is, the gate will fail
        audio = np.zeros_like(ref["chain/audio"])
    if PREFILL in package.manifest.graphs:  # the golden prefill through the graph the prefill runs
        report.golden += [row | {"item": f"gpt-prefill ({PREFILL})"} for row in item_rows(package, "gpt-prefill", PREFILL)]
    graphs = f"{PREFILL} (prefill), {TRANSFORMER}" if PREFILL in package.manifest.graphs else TRANSFORMER
    report.golden.append({"item": "gpt-reference (teacher-forced)", "graph": graphs, "output": "logits",
                          **tensor_metrics(ref["logits"], logits)})
    chain_row = golden_metrics(ref["chain/audio"], audio, MelSettings(**package.manifest.audio["mel"]))
    v4 = package.manifest.model_config.get("version") == "v4"
    speech_graphs = "latent → dit_condition → dit_step × steps → vocoder" if v4 else "latent → generator"
    report.golden.append({"item": "whole chain (GPT tokens → speech)", "graph": f"gpt → {speech_graphs}",
                          "output": "audio", **chain_row})
    gates = package.manifest.gates
    report.gates += [
        Gate("GPT greedy agreement (teacher-forced)", agree / len(logits), gates.get("greedy_agreement_min", 1.0), "min"),
        Gate("GPT logits SNR dB (teacher-forced)", report.golden[-2]["snr_db"],
             gates.get("logits_snr_db_min", gates.get("snr_db_min")), "min"),
    ]
    if "chain_snr_db_min" in gates:  # exact precisions only: one flipped greedy choice changes all later speech
        report.gates.append(Gate("whole chain SNR dB (GPT tokens → speech)", chain_row["snr_db"], gates["chain_snr_db_min"], "min"))


def _v4_tts(package: Package) -> TextToSpeech:
    from ttsopt.runtime.tts_v4 import V4TextToSpeech

    return V4TextToSpeech(package)


def _reference_params(manifest) -> SamplingParams:
    """The sampling settings of the stored reference generation (greedy, official repetition penalty)."""
    return SamplingParams(**manifest.runtime["gpt"]["reference_params"])



def speaker_verification_speech(package: Package) -> Callable[[dict[str, np.ndarray]], list[np.ndarray]]:
    """``speaker_verification`` outputs → the golden sentence spoken with them, by the package's own graphs: the
    first golden reference's spectrogram with that ``sv`` → ``ge`` → the first golden decode (its tokens and
    noise). What an embedding's error does to speech, so that it is held to the log-mel budget like the audio graphs."""
    synth, golden = Synthesizer(package), package.golden
    spectrogram = golden.inputs(golden.first("reference_encoder"))["spectrogram"]
    decode = golden.inputs(golden.first("latent"))

    def speech(outputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        ge = package.run("reference_encoder", {"spectrogram": spectrogram, "sv": outputs["sv"]})["ge"]
        return [synth.decode(decode | {"ge": ge})]
    return speech


def check_speaker_verification(package: Package, report: VerifyReport) -> None:
    """Each golden recording's embedding by the package's ``speaker_verification`` graph against the original's,
    both spoken (:func:`speaker_verification_speech`), held to the log-mel gate."""
    speech, golden = speaker_verification_speech(package), package.golden
    mel = MelSettings(**package.manifest.audio["mel"])
    rows = []
    for item in (i["name"] for i in golden.items if i["graph"] == SPEAKER_VERIFICATION):
        (want,), (got,) = speech(golden.outputs(item)), speech(package.run(SPEAKER_VERIFICATION, golden.inputs(item)))
        rows.append({"item": f"{item} → speech", "graph": f"{SPEAKER_VERIFICATION} → reference_encoder → latent → generator",
                     "output": "audio", **golden_metrics(want, got, mel)})
    report.golden += rows
    if "logmel_l1_max" in package.manifest.gates and rows:
        report.gates.append(Gate("speaker verification → speech log-mel L1 (worst)", max(r["logmel_l1"] for r in rows),
                                 package.manifest.gates["logmel_l1_max"], "max"))


def check_voices(synth, report: VerifyReport, references, original, original_config):
    """SoVITS: each recording as a new voice. The package (reference encoder graph, then the decode graphs)
    and the original checkpoint synthesise the golden sentence with it from the same tokens and noise;
    their audio is compared with the golden gates. Needs the original (default: the exported checkpoint)."""
    if not references:
        return None
    eager = load_original(synth.manifest, original, original_config)
    golden = synth.package.golden
    inputs = golden.inputs(golden.first("latent"))
    rows, plot_pair = [], None
    for reference in references:
        recording = read_wav(reference, synth.sample_rate)
        ge_package = synth.voice_embedding([recording])
        ge_original = eager.voice_embedding(recording)
        output = synth.decode(inputs | {"ge": ge_package})
        expected = eager(inputs | {"ge": ge_original})
        row = {"reference": str(reference), "seconds": round(len(recording) / synth.sample_rate, 3),
               "ge_snr_db": snr_db(ge_original, ge_package),
               **golden_metrics(expected, output, MelSettings(**synth.manifest.audio["mel"]))}
        rows.append(row)
        plot_pair = plot_pair or (expected, output, f"original model, voice from {Path(reference).name}")
    report.references.extend(rows)
    gates = synth.manifest.gates
    if "snr_db_min" in gates:  # exact precisions; an INT8 generator is held by the log-mel gate
        report.gates.append(Gate("voice SNR dB vs original (worst)", min(r["snr_db"] for r in rows), gates["snr_db_min"], "min"))
    report.gates.append(Gate("voice log-mel L1 vs original (worst)", max(r["logmel_l1"] for r in rows),
                             gates["logmel_l1_max"], "max"))
    return plot_pair
