"""Prometheus metrics of one server (its own registry, so two apps in one process do not mix)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from ttsopt.runtime.threads import run_clock

LATENCY_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0)
RTF_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 5.0)
STEP_BUCKETS = (0.002, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5)
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 32)


class GraphTimes(Collector):
    """Each graph's onnxruntime runs in this process, read from :data:`~ttsopt.runtime.threads.run_clock` at scrape
    time: the seconds they held the cores (runs take turns, so these add up to at most the wall time) and their count."""

    def collect(self):
        seconds = CounterMetricFamily("ttsopt_onnxruntime_seconds", "Seconds a graph's onnxruntime runs held the cores "
                                      "(runs take turns; counted since the process started)", labels=["graph"])
        runs = CounterMetricFamily("ttsopt_onnxruntime_runs", "onnxruntime runs of a graph since the process started",
                                   labels=["graph"])
        for graph, (held, count) in sorted(run_clock.totals().items()):
            seconds.add_metric([graph], held)
            runs.add_metric([graph], count)
        yield seconds
        yield runs


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("ttsopt_requests", "Speech requests by outcome", ["status"], registry=self.registry)
        self.first_audio = Histogram("ttsopt_first_audio_seconds", "Request start to the first audio byte produced",
                                     buckets=LATENCY_BUCKETS, registry=self.registry)
        self.rtf = Histogram("ttsopt_rtf", "Synthesis seconds per second of audio", buckets=RTF_BUCKETS, registry=self.registry)
        self.audio_seconds = Counter("ttsopt_audio_seconds", "Seconds of audio produced", registry=self.registry)
        self.in_flight = Gauge("ttsopt_requests_in_flight", "Requests admitted and not finished", registry=self.registry)
        self.cache_hits = Counter("ttsopt_cache_hits", "Requests answered from the finished-audio cache", registry=self.registry)
        self.voices_made = Counter("ttsopt_voices_computed", "Voices computed from a recording (the rest came from the "
                                   "content cache)", registry=self.registry)
        self.batch_rows = Histogram("ttsopt_decode_batch_rows", "Requests stepped together per GPT decode step",
                                    buckets=BATCH_BUCKETS, registry=self.registry)
        self.step_seconds = Histogram("ttsopt_decode_step_seconds", "Wall time of one batched GPT decode step "
                                      "(its wait for its turn on the cores included)",
                                      buckets=STEP_BUCKETS, registry=self.registry)
        self.queue_wait = Histogram("ttsopt_decode_queue_wait_seconds", "A request's wait for a place in the decode batch "
                                    "after its prefill", buckets=LATENCY_BUCKETS, registry=self.registry)
        self.registry.register(GraphTimes())

    def observe_step(self, rows: int, seconds: float) -> None:
        self.batch_rows.observe(rows)
        self.step_seconds.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
