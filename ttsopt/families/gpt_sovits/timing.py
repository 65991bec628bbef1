"""How long one GPT decode step, one GPT prefill, one RoBERTa call or one v4 DiT (Euler) step of a package takes:
what the INT8 candidates are timed by."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np

from ttsopt.runtime.gpt import GPT
from ttsopt.runtime.package import Package


def median_probe(call: Callable[[], object], repeat: int) -> Callable[[], float]:
    """A probe whose calls return the median milliseconds of ``repeat`` calls of ``call``."""

    def median_ms() -> float:
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
        return 1000 * statistics.median(times)

    return median_ms


def decode_step_timer(package: Package, repeat: int = 15) -> Callable[[], float]:
    """A probe of ``package``'s decode step, its sessions created now (so the package's graph files may change
    afterwards): each call returns the median milliseconds of ``repeat`` steps at 256 cache slots (the
    runtime's smallest capacity)."""
    gpt = GPT(package)

    def median_ms() -> float:
        gpt.prefill(np.arange(20) % 100, None, np.arange(50) % 1000, reserve=200)
        times = []
        for position in range(50, 50 + repeat):
            start = time.perf_counter()
            gpt.step(position % 1000, position)
            times.append(time.perf_counter() - start)
        return 1000 * statistics.median(times)

    return median_ms


def bert_timer(package: Package, repeat: int = 3) -> Callable[[], float]:
    """A probe of ``package``'s ``bert`` graph on its longest golden sentence, its session created now (warmed up):
    each call returns the median milliseconds of ``repeat`` runs."""
    from ttsopt.runtime.bert import BERT_GRAPH

    golden = package.golden
    feeds = [golden.inputs(item["name"]) for item in golden.items if item["graph"] == BERT_GRAPH]
    feed = max(feeds, key=lambda inputs: inputs["input_ids"].shape[1])
    package.run(BERT_GRAPH, feed)

    return median_probe(lambda: package.run(BERT_GRAPH, feed), repeat)


def dit_step_timer(package: Package, repeat: int = 5) -> Callable[[], float]:
    """A probe of a v4 package's ``dit_step`` graph on the golden step's inputs (the golden voice's prompt + 160
    frames), its session created now (warmed up): each call returns the median milliseconds of ``repeat`` Euler steps."""
    golden = package.golden
    feed = golden.inputs(golden.first("dit_step"))
    package.run("dit_step", feed)

    return median_probe(lambda: package.run("dit_step", feed), repeat)


def prefill_timer(package: Package, repeat: int = 5) -> Callable[[], float]:
    """A probe of ``package``'s GPT prefill (``gpt_prefill`` where the package has it), its sessions created now:
    each call returns the median milliseconds of ``repeat`` prefills of 91 positions (41 phonemes and a 50-token
    prompt, the benchmark's)."""
    gpt = GPT(package)
    phonemes, prompt = np.arange(41) % 100, np.arange(50) % 1000
    gpt.prefill(phonemes, None, prompt)

    return median_probe(lambda: gpt.prefill(phonemes, None, prompt), repeat)
