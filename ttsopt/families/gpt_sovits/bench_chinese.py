"""Chinese text stages of a text-to-speech package with a ``bert`` graph (part of ``ttsopt bench``): RoBERTa per
sentence of 20 and 100 characters (the package's graph and, for a quantized package, the FP32 package's, interleaved)
and the peak memory of a process running it; the front end per sentence (with the package's g2pW, if it has one);
and first audio of a streamed Chinese sentence with BERT on, from the text (front end + BERT + prefill + first
tokens + first SoVITS piece), over :data:`FIRST_AUDIO_RUNS` runs at least.

``python -m ttsopt.families.gpt_sovits.bench_chinese PACKAGE`` is the memory-measuring child: it loads the
package's ``bert`` graph alone, runs the 100-character sentence and prints its peak RSS (KiB).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ttsopt.runtime.request import SynthesisRequest
from ttsopt.runtime.sampling import SamplingParams

#: Two Chinese paragraphs of common text; the first N characters are the sentence of N characters.
TEXT = ("今天天气很好，我们一起去公园散步吧。他说明天要去银行办理业务，还要了解一下行情。重要的事情说三遍，长大以后我想当一名音乐家。"
        "春天来了，河边的柳树发出了嫩绿的新芽，小鸟在枝头唱着欢快的歌，孩子们在草地上奔跑嬉戏，老人们坐在长椅上晒太阳聊天。")
LENGTHS = (20, 100)
#: The streamed sentence for first audio (20 characters, one sentence under cut0).
FIRST_AUDIO_TEXT = TEXT[:20]
#: Streamed runs for first audio: at least this many (p50 and p95 reported).
FIRST_AUDIO_RUNS = 10


def _timed(fn: Callable[[], object], runs: int) -> list[float]:
    fn()  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def _row(stage: str, variant: str, seconds: list[float], **extra) -> dict:
    return {"stage": stage, "variant": variant, "runs": len(seconds), "p50_ms": 1000 * statistics.median(seconds),
            "p95_ms": 1000 * float(np.percentile(seconds, 95)), **extra}


def bert_peak_rss_mb(package: Path) -> float | None:
    """Peak RSS of a fresh process that runs only ``package``'s ``bert`` graph on the 100-character sentence."""
    done = subprocess.run([sys.executable, "-m", __name__, str(package)], capture_output=True, text=True, timeout=600)
    return float(done.stdout.strip().splitlines()[-1]) / 1024 if done.returncode == 0 else None


def first_audio_s(tts, voice: str | None, params: SamplingParams, bert: bool = True) -> float:
    """Seconds from the text to the first streamed piece: front end, BERT (when the GPT starts), prefill, the first
    tokens and the first SoVITS piece; with ``bert`` False the same sentence's phones with zero features."""
    start = time.perf_counter()
    (sentence,) = tts.phonemize(FIRST_AUDIO_TEXT, "zh", cut="cut0")
    stream = tts.stream(SynthesisRequest(phonemes=sentence if bert else " ".join(sentence.phones), voice=voice,
                                         sampling=params))
    next(iter(stream))
    elapsed = time.perf_counter() - start
    stream.close()
    return elapsed


def run_chinese_bench(tts, fp32_tts, repeat: int, step: Callable[[str], None]) -> list[dict]:
    """The rows described in the module docstring; ``fp32_tts`` (or None) is the FP32 package of a quantized one."""
    from ttsopt.bench.variants import FP32_PACKAGE, PACKAGE

    variants = {PACKAGE: tts} | ({FP32_PACKAGE: fp32_tts} if fp32_tts is not None else {})
    rows = []
    for n in LENGTHS:
        step(f"BERT, {n} characters")
        times: dict[str, list[float]] = {name: [] for name in variants}
        for model in variants.values():
            model.bert.characters(TEXT[:n])  # warm-up
        for _ in range(repeat):  # interleaved
            for name, model in variants.items():
                start = time.perf_counter()
                model.bert.characters(TEXT[:n])
                times[name].append(time.perf_counter() - start)
        for name, model in variants.items():
            rows.append(_row(f"BERT (RoBERTa), {n} characters", f"{name}, {model.manifest.precision}", times[name]))
    for name, model in variants.items():
        peak = bert_peak_rss_mb(model.package.path)
        if peak is not None:
            rows.append({"stage": "BERT peak RSS (a process running only the bert graph, 100 characters)",
                         "variant": f"{name}, {model.manifest.precision}", "peak_rss_mb": peak})
    g2pw = "g2pW" if tts.g2pw is not None else "pypinyin: no g2pW in the package"
    for n in LENGTHS:
        step(f"front end, {n} characters")
        rows.append(_row(f"front end ({g2pw}), {n} characters", PACKAGE,
                         _timed(lambda n=n: tts.phonemize(TEXT[:n], "zh", cut="cut0"), repeat)))
    voice = next(iter(tts.voices), None)
    params = SamplingParams(top_k=tts.gpt.default_top_k, max_new_tokens=200, eos_suppress_steps=200, seed=0)
    runs = max(FIRST_AUDIO_RUNS, repeat)
    step(f"first audio of a streamed Chinese sentence, {runs} runs")
    first = {True: [], False: []}
    for bert in first:
        first_audio_s(tts, voice, params, bert)  # warm-up
    for _ in range(runs):  # interleaved: what BERT adds, on a machine whose load changes
        for bert in first:
            first[bert].append(first_audio_s(tts, voice, params, bert))
    for bert, seconds in first.items():
        rows.append(_row(f"first audio, streamed {len(FIRST_AUDIO_TEXT)}-character sentence, BERT {'on' if bert else 'off (zeros)'} "
                         "(text → first piece)", PACKAGE, seconds))
    return rows


def _child_main(package: str) -> None:
    from ttsopt.bench.memory import _peak_rss_kib
    from ttsopt.runtime.bert import BertFeatures
    from ttsopt.runtime.package import Package

    BertFeatures(Package(package)).characters(TEXT[:100])
    print(_peak_rss_kib())


if __name__ == "__main__":
    _child_main(sys.argv[1])
