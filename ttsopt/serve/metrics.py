"""Prometheus metrics of one server (its own registry, so two apps in one process do not mix)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0)
RTF_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 5.0)


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

    def render(self) -> bytes:
        return generate_latest(self.registry)
