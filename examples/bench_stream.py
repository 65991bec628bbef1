"""Streaming benchmarks on a text-to-speech package (interleaved, medians):

1. one GPT decode step with the KV cache sized to the filled length vs reserved for the 1500-token cap;
2. first audio (p50 / p95), RTF and playback stalls, streamed (``tts.stream``, one run per piece schedule
   ``--schedules``) vs whole utterance (``tts.speak``);
3. with ``--server``: first audio through ``ttsopt serve`` (HTTP, streamed PCM) vs in process, and
   RTF of N concurrent streams.

    python examples/bench_stream.py build/real-tts-int8 --repeat 10 --server
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

import ttsopt.runtime
from ttsopt.runtime import SynthesisRequest
from ttsopt.runtime.gpt import Decoder, block_capacity
from ttsopt.runtime.sampling import SamplingParams
from ttsopt.runtime.streaming import StreamSettings

SHORT = "n i2 h ao3 , w o3 sh i4 b ai2 y e4 ."  # 你好，我是白夜。: a 20-character sentence's worth of phonemes


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def kv_steps(tts, repeat: int) -> None:
    ids = tts.phoneme_ids(SHORT)
    prompt_tokens, prompt_ids = tts.prompt(next(iter(tts.voices)))
    all_ids = np.concatenate((prompt_ids, ids))
    times = {0: [], 1500: []}
    for _ in range(repeat):
        for reserve in times:
            decoder = Decoder(tts.gpt)
            decoder.prefill(all_ids, None, prompt_tokens, reserve=reserve)
            for j in range(20):
                start = time.perf_counter()
                decoder.step(j % 1000, (0 if prompt_tokens is None else prompt_tokens.size) + j)
                times[reserve].append(time.perf_counter() - start)
    filled = all_ids.size + (0 if prompt_tokens is None else prompt_tokens.size)
    for reserve, values in times.items():
        print(f"decode step, {filled} filled, reserve {reserve:4d} (capacity {block_capacity(filled + reserve, tts.gpt.max_capacity)}): "
              f"median {statistics.median(values) * 1000:.1f} ms")


def playback_stall(arrivals: list[tuple[float, float]]) -> float:
    """Seconds a player that starts at the first piece would wait for later ones: ``arrivals`` are
    (seconds since the request, seconds of audio) per piece, in order."""
    stall, playing_until = 0.0, arrivals[0][0]
    for arrived, seconds in arrivals:
        stall += max(0.0, arrived - playing_until)
        playing_until = max(playing_until, arrived) + seconds
    return stall


def schedule(text: str) -> StreamSettings:
    """``FIRST:GROWTH`` (e.g. ``10:0.5``) → stream settings with those, the rest default."""
    first, growth = text.split(":")
    return StreamSettings(first_tokens=int(first), growth=float(growth))


def first_audio(tts, repeat: int, tokens: int, schedules: list[StreamSettings]) -> None:
    """Whole utterance and one stream per piece schedule, interleaved on the same seeds."""
    voice = next(iter(tts.voices))
    whole_first, whole_rtf = [], []
    streamed = {settings: {"first": [], "rtf": [], "ratio": [], "stall": [], "pieces": 0} for settings in schedules}
    for i in range(repeat):
        params = SamplingParams(top_k=tts.gpt.default_top_k, seed=i, max_new_tokens=tokens, eos_suppress_steps=tokens)
        start = time.perf_counter()
        request = SynthesisRequest(phonemes=SHORT, voice=voice, sampling=params)
        audio, _ = tts.speak(request)
        elapsed = time.perf_counter() - start
        whole_first.append(elapsed)
        whole_rtf.append(elapsed / (audio.size / tts.sample_rate))
        for settings, row in streamed.items():
            start, arrivals = time.perf_counter(), []
            speech = tts.stream(request.replace(stream=settings))
            for piece in speech:
                arrivals.append((time.perf_counter() - start, piece.size / tts.sample_rate))
            total = time.perf_counter() - start
            rtf = total / sum(seconds for _, seconds in arrivals)
            row["first"].append(speech.stats.first_audio_s)
            row["rtf"].append(rtf)
            row["ratio"].append(rtf / whole_rtf[-1])
            row["stall"].append(playback_stall(arrivals))
            row["pieces"] = len(arrivals)
    print(f"{tokens} tokens ({tokens / 25:.1f} s), whole utterance: first audio p50 {pct(whole_first, 50) * 1000:.0f} ms, "
          f"RTF {statistics.median(whole_rtf):.3f}")
    for settings, row in streamed.items():
        print(f"  streamed, first {settings.first_tokens} tokens, growth {settings.growth:g} ({row['pieces']} pieces): "
              f"first audio p50 {pct(row['first'], 50) * 1000:.0f} ms, "
              f"p95 {pct(row['first'], 95) * 1000:.0f} ms, RTF {statistics.median(row['rtf']):.3f} = "
              f"{statistics.median(row['ratio']):.3f}x whole (paired median), playback stalls p50 "
              f"{pct(row['stall'], 50) * 1000:.0f} ms")


def server(package: str, tts, repeat: int, tokens: int, concurrency: list[int]) -> None:
    import httpx

    from tests.serve.conftest import running_server

    voice = next(iter(tts.voices))
    with running_server(package, "--workers", str(max(concurrency)), "--max-concurrent", str(2 * max(concurrency)),
                        "--cache-mb", "0") as url:
        def request(seed: int) -> tuple[float, float, float]:
            body = {"model": "m", "input": SHORT, "lang": "phonemes", "voice": voice, "response_format": "pcm",
                    "seed": seed, "max_tokens": tokens}  # the same phonemes as in process, not read as English
            start = time.perf_counter()
            first, size = None, 0
            with httpx.stream("POST", f"{url}/v1/audio/speech", json=body, timeout=300) as response:
                for chunk in response.iter_bytes():
                    first = first or time.perf_counter() - start
                    size += len(chunk)
            return first, time.perf_counter() - start, size / 2 / tts.sample_rate

        request(0)
        http, local = [], []
        for i in range(repeat):
            http.append(request(100 + i)[0])
            params = SamplingParams(top_k=tts.gpt.default_top_k, seed=100 + i, max_new_tokens=tokens)
            speech = tts.stream(SynthesisRequest(phonemes=SHORT, voice=voice, sampling=params))
            for _ in speech:
                pass
            local.append(speech.stats.first_audio_s)
        print(f"first audio over HTTP p50 {pct(http, 50) * 1000:.0f} ms (p95 {pct(http, 95) * 1000:.0f}) vs in process "
              f"p50 {pct(local, 50) * 1000:.0f} ms (p95 {pct(local, 95) * 1000:.0f}): server adds "
              f"{(pct(http, 50) - pct(local, 50)) * 1000:.0f} ms at p50")
        for n in concurrency:
            with ThreadPoolExecutor(n) as pool:
                results = list(pool.map(request, range(1000, 1000 + 2 * n)))
            rtfs = [total / seconds for _, total, seconds in results]
            print(f"{n} concurrent streams: first audio p50 {pct([r[0] for r in results], 50) * 1000:.0f} ms, "
                  f"per-stream RTF p50 {pct(rtfs, 50):.2f}, max {max(rtfs):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("package")
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--tokens", type=int, default=100)
    parser.add_argument("--kv", action="store_true")
    parser.add_argument("--server", action="store_true")
    parser.add_argument("--concurrency", default="1,2,3,4")
    default = StreamSettings()
    parser.add_argument("--schedules", default=f"{default.first_tokens}:{default.growth:g}",
                        help="piece schedules to compare, FIRST_TOKENS:GROWTH,... (e.g. 10:0.5,16:2)")
    args = parser.parse_args()
    ttsopt.runtime.share_thread_pool()
    tts = ttsopt.runtime.load(args.package)
    if args.kv:
        kv_steps(tts, max(3, args.repeat // 2))
    first_audio(tts, args.repeat, args.tokens, [schedule(s) for s in args.schedules.split(",")])
    if args.server:
        server(args.package, tts, args.repeat, args.tokens, [int(n) for n in args.concurrency.split(",")])
    sys.stdout.flush()


if __name__ == "__main__":
    main()
