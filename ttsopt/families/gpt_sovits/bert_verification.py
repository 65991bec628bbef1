"""The ``bert`` graph's gates, in the terms the issue sets for any precision of it (torch-free).

1. **Feature SNR**: the graph's features on the golden Chinese sentences against the original model's (FP32,
   PyTorch, stored at export), worst sentence; the limit is the precision's ``bert_snr_db_min`` (else its
   ``snr_db_min``). What it is held to is set from measurement (``configs/cpu.yaml``, docs/precision.md).
2. **The GPT's greedy agreement**: each golden sentence through the package's own front end (its
   ``norm_text`` and ``word2ph``), the GPT run greedily (official repetition penalty, EOS held off) for
   :data:`GREEDY_STEPS` tokens with the original's FP32 features; then teacher-forced along those tokens with the
   package's features: the share of steps whose greedy choice is the same (worst sentence), held to the precision's
   ``greedy_agreement_min``. Teacher-forced, so that one near-tie flipping does not count every later step; the
   free-running run with the package's features is reported too (the first step where its tokens differ).

A feature SNR says how far the features moved; the greedy agreement says whether the GPT, which is what reads
them, notices. An FP32 graph is 100+ dB from the original and changes no choice; what INT8 and FP16 do is recorded.
"""

from __future__ import annotations

import logging

import numpy as np

from ttsopt.audio.metrics import snr_db
from ttsopt.errors import TtsoptError
from ttsopt.runtime.bert import BERT_GRAPH
from ttsopt.runtime.package import Package
from ttsopt.runtime.sampling import SamplingParams, sample_next_token
from ttsopt.runtime.tts import TextToSpeech
from ttsopt.verify.report import Gate, VerifyReport

FEATURES_GATE = "BERT features SNR dB vs FP32 original (worst golden sentence)"
GREEDY_GATE = "GPT greedy agreement, package BERT features vs FP32 (teacher-forced)"
#: The gates that hold a precision pass of the ``bert`` graph.
BERT_GATES = (FEATURES_GATE, GREEDY_GATE)
#: Greedy tokens per golden sentence (4 s of speech at 25 tokens/s: every golden sentence's length or more).
GREEDY_STEPS = 100


def golden_text(tts: TextToSpeech, input_ids: np.ndarray) -> str:
    """A golden item's sentence, back from its token ids (one token per character between [CLS] and [SEP])."""
    return "".join(tts.bert.tokenizer.id_to_token(int(token)) for token in input_ids[0, 1:-1])


def per_phone(characters: np.ndarray, word2ph: list[int]) -> np.ndarray:
    """``[1, dim, phones]`` of per-character rows, as ``get_bert_feature`` repeats them."""
    return np.ascontiguousarray(np.repeat(characters[: len(word2ph)], word2ph, axis=0).T[None], dtype=np.float32)


def teacher_forced(tts: TextToSpeech, ids: np.ndarray, bert: np.ndarray | None, prompt: np.ndarray | None,
                   tokens: np.ndarray, params: SamplingParams) -> tuple[np.ndarray, int]:
    """Raw logits of each loop index with ``tokens`` fed back, and how many greedy choices repeat ``tokens`` (one
    more step than ``tokens`` when ``eos`` ends it, as the reference generation does)."""
    prompt_len = 0 if prompt is None else prompt.shape[-1]
    logits = [tts.gpt.prefill(ids, bert, prompt, reserve=len(tokens) + 1)]
    for j, token in enumerate(tokens[:-1]):
        logits.append(tts.gpt.step(int(token), prompt_len + j))
    history = tokens if prompt is None else np.concatenate((prompt.reshape(-1), tokens))
    agree = 0
    for k, row in enumerate(logits):
        agree += sample_next_token(row, history[: prompt_len + k], k, params, None).token == int(tokens[k])
    return np.stack(logits), agree


def _v4_tts(package: Package) -> TextToSpeech:
    from ttsopt.runtime.tts_v4 import V4TextToSpeech

    return V4TextToSpeech(package)


def check_bert(package: Package, report: VerifyReport) -> None:
    """Both gates (module docstring); one row per golden sentence for the greedy runs."""
    golden, gates = package.golden, package.manifest.gates
    items = [item["name"] for item in golden.items if item["graph"] == BERT_GRAPH]
    feature_rows = [row for row in report.golden if row["graph"] == BERT_GRAPH]
    if not items or not feature_rows:
        return
    tts = TextToSpeech(package) if package.manifest.model_config.get("version") != "v4" else _v4_tts(package)
    params = SamplingParams(greedy=True, max_new_tokens=GREEDY_STEPS, eos_suppress_steps=GREEDY_STEPS)
    quiet = logging.getLogger("ttsopt")  # the front end's notes (pypinyin fallback, lite detector) are not verify's
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        agreements = []
        for name in items:
            inputs = golden.inputs(name)
            text = golden_text(tts, inputs["input_ids"])
            (sentence,) = tts.phonemize(text, "all_zh", cut="cut0")
            (segment,) = sentence.segments
            if segment.norm_text != text:  # the golden rows are per character of the text the original model read
                raise TtsoptError(f"golden BERT sentence {text!r} is normalised to {segment.norm_text!r} by the package's "
                                  "front end: its stored features no longer fit it; re-export the package")
            fp32 = per_phone(golden.outputs(name)["features"][0, 1:-1], segment.word2ph)
            ours = per_phone(package.run(BERT_GRAPH, inputs)["features"][0, 1:-1], segment.word2ph)
            ids = tts.phoneme_ids(" ".join(sentence.phones))
            want = tts.gpt.generate(ids, fp32, None, params).tokens
            _, agree = teacher_forced(tts, ids, ours, None, want, params)
            got = tts.gpt.generate(ids, ours, None, params).tokens
            differ = np.flatnonzero(want[: got.size] != got[: want.size])
            agreements.append(agree / len(want))
            report.golden.append({
                "item": f"{name} → GPT greedy ({len(want)} steps)", "graph": f"{BERT_GRAPH} → gpt",
                "output": f"tokens: {agree}/{len(want)} teacher-forced, free-running equal "
                          + (f"to step {int(differ[0])}" if differ.size else "throughout"),
                "snr_db": snr_db(fp32, ours), "max_abs_error": float(np.max(np.abs(fp32 - ours))),
                "nonfinite": int(np.sum(~np.isfinite(ours))), "greedy_agreement": agree / len(want),
                "first_token_difference": int(differ[0]) if differ.size else None})
    finally:
        quiet.setLevel(level)
    report.gates += [
        Gate(FEATURES_GATE, min(row["snr_db"] for row in feature_rows),
             gates.get("bert_snr_db_min", gates.get("snr_db_min", 0.0)), "min"),
        Gate(GREEDY_GATE, min(agreements), gates.get("greedy_agreement_min", 1.0), "min"),
    ]


__all__ = ["BERT_GATES", "FEATURES_GATE", "GREEDY_GATE", "GREEDY_STEPS", "check_bert", "golden_text", "per_phone",
           "teacher_forced"]
