"""One stream alone: first audio and RTF through the batched decode vs the unbatched one, interleaved in one process.

Continuous batching must not cost a lone request (issue 24: no worse than 5 %). Each round streams the same seeded
request (a fixed sentence's phonemes, ``--tokens`` semantic tokens with EOS held off, so every run makes the same
audio) once per variant, the variants' order rotated round by round; medians and p95 over the rounds:

- ``unbatched``: the GPT decodes on the request's own thread (``GPT.tokens`` without a scheduler: the path every
  request took before batching);
- ``batched``: through :class:`~ttsopt.runtime.batching.DecodeScheduler` (``GPT.batch``), as the server runs it;
- ``--also REV``: the scheduler of ``ttsopt/runtime/batching.py`` at git revision ``REV`` (e.g. the one before a
  change), loaded beside the current one.

    python examples/bench_lone_stream.py build/real-tts --rounds 9 --also ac5b3d8
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import ttsopt.runtime
from ttsopt.bench.load import SENTENCES
from ttsopt.runtime import SynthesisRequest
from ttsopt.runtime.sampling import SamplingParams


def scheduler_at(revision: str, gpt, rows: int):
    """The DecodeScheduler of ``batching.py`` at ``revision``, made for ``gpt``."""
    source = subprocess.run(["git", "show", f"{revision}:ttsopt/runtime/batching.py"], check=True, capture_output=True,
                            text=True, cwd=Path(__file__).resolve().parent.parent).stdout
    path = Path(tempfile.mkdtemp()) / f"batching_{revision}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"batching_{revision}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module.DecodeScheduler(gpt, rows)


def one(tts, scheduler, request: SynthesisRequest) -> tuple[float, float]:
    """(first audio s, RTF) of ``request`` streamed with ``scheduler`` (None: unbatched)."""
    tts.gpt.scheduler = scheduler
    start, samples = time.perf_counter(), 0
    speech = tts.stream(request)
    for piece in speech:
        samples += piece.size
    return speech.stats.first_audio_s, (time.perf_counter() - start) / (samples / tts.sample_rate)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("package")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--tokens", type=int, default=150)
    parser.add_argument("--rows", type=int, default=8, help="rows of the batch (the server's default: 8 workers)")
    parser.add_argument("--also", action="append", default=[], metavar="REV", help="the scheduler at this git revision too")
    args = parser.parse_args()
    ttsopt.runtime.share_thread_pool()
    tts = ttsopt.runtime.load(args.package)
    voice = next(iter(tts.voices))
    variants = {"unbatched": None, "batched": tts.gpt.batch(args.rows)}
    variants |= {f"batched@{rev}": scheduler_at(rev, tts.gpt, args.rows) for rev in args.also}
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    names = list(variants)
    sampling = SamplingParams(top_k=tts.gpt.default_top_k, max_new_tokens=args.tokens, eos_suppress_steps=args.tokens, seed=0)
    warm = SynthesisRequest(phonemes=SENTENCES[0], voice=voice, sampling=sampling)
    for scheduler in variants.values():
        one(tts, scheduler, warm)
    for round_ in range(args.rounds):
        request = warm.replace(sampling=SamplingParams(**{**sampling.__dict__, "seed": 1 + round_}))
        for name in names[round_ % len(names):] + names[: round_ % len(names)]:
            results[name].append(one(tts, variants[name], request))
        print(f"round {round_ + 1}/{args.rounds}", file=sys.stderr)
    base_first = statistics.median(r[0] for r in results["unbatched"])
    base_rtf = statistics.median(r[1] for r in results["unbatched"])
    print(f"{args.package}: one stream alone, {args.tokens} tokens ({args.tokens / 25:.1f} s), {args.rounds} interleaved rounds")
    print(f"{'variant':<22} {'first audio p50 / p95':>22} {'vs unbatched':>12} {'RTF p50 / p95':>15} {'vs unbatched':>12}")
    for name, rows in results.items():
        first, rtf = [r[0] for r in rows], [r[1] for r in rows]
        print(f"{name:<22} {statistics.median(first) * 1000:>10.0f} / {np.percentile(first, 95) * 1000:>5.0f} ms "
              f"{statistics.median(first) / base_first - 1:>+11.1%} {statistics.median(rtf):>7.3f} / {np.percentile(rtf, 95):.3f} "
              f"{statistics.median(rtf) / base_rtf - 1:>+11.1%}")
    for scheduler in variants.values():
        if scheduler is not None:
            scheduler.close()


if __name__ == "__main__":
    main()
