"""A load generator for a running ``ttsopt serve``: N concurrent streams (closed loop) or arrivals at a
rate (open loop), each a streamed PCM request, measured at the client.

Per load level: requests and errors, first audio p50/p95 (time to the first audio byte), per-stream RTF
p50/p95 (wall time of a request over the audio seconds it returned) and the aggregate audio seconds per
wall second (what the server delivered, all streams together). Streams hold real time while their RTF
stays below 1. The sentences are a fixed set of phoneme strings (``lang: "phonemes"``), so the load is the
same on any machine and needs no text front end; requests are seeded, so a run repeats.

Where the server's time went, per level: each graph's onnxruntime seconds over the level, read from the server's
``/metrics`` before and after it (``ttsopt_onnxruntime_seconds``: the server's runs take turns on the cores, so
their sum over the wall time is how busy the cores were with onnxruntime at all). A server that does not export
them (a Ray Serve proxy: the runs happen in its replicas) gives no breakdown.

Everything is bounded: each stream sends ``requests`` requests (closed loop) or arrivals stop after
``duration`` seconds (open loop), and every request has a client timeout. Standard library only (HTTP over
``http.client``), so it runs from a runtime-only install.
"""

from __future__ import annotations

import http.client
import json
import random
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from urllib.parse import urlsplit

import numpy as np

from ttsopt.errors import TtsoptError

#: A graph's held seconds in the server's Prometheus text (``ttsopt.serve.metrics.GraphTimes``).
_GRAPH_SECONDS = re.compile(r'^ttsopt_onnxruntime_seconds_total\{graph="([^"]+)"\} (\S+)$', re.MULTILINE)

#: Phonemes of five sentences of 12-20 syllables (v1 and v2 symbol tables).
SENTENCES = (
    "j in1 t ian1 t ian1 q i4 h en3 h ao3 , w o3 m en5 q v4 g ong1 y van2 b a5 .",
    "n i2 h ao3 , w o3 sh i4 b ai2 y e4 , h en3 g ao1 x ing4 r en4 sh i5 n i3 .",
    "zh e4 sh i4 y i2 g e4 c e4 sh i4 j v4 z i5 , q ing3 m an4 m an4 t ing1 .",
    "m ing2 t ian1 w o3 m en5 y i4 q i3 q v4 sh ang4 h ai3 k an4 k an5 b a5 .",
    "t a1 sh uo1 zh e4 j ian4 sh i4 q ing5 f ei1 ch ang2 zh ong4 y ao4 .",
)


@dataclass
class RequestResult:
    first_audio_s: float | None
    total_s: float
    audio_s: float
    error: str | None = None


@dataclass
class LoadLevel:
    """What one load level measured at the client."""

    label: str
    streams: int
    requests: int
    errors: int
    wall_s: float
    first_audio_p50_s: float | None
    first_audio_p95_s: float | None
    rtf_p50: float | None
    rtf_p95: float | None
    audio_s_per_wall_s: float
    error_kinds: list[str] = field(default_factory=list)
    #: Seconds each graph's onnxruntime runs held the server's cores during the level (empty: not exported).
    onnxruntime_s: dict[str, float] = field(default_factory=dict)

    @property
    def real_time(self) -> bool:
        """Every stream faster than real time and nothing failed."""
        return self.errors == 0 and self.rtf_p95 is not None and self.rtf_p95 < 1.0

    @property
    def cores_busy(self) -> float | None:
        """The share of the level's wall time the server's cores ran onnxruntime (None: not exported)."""
        return sum(self.onnxruntime_s.values()) / self.wall_s if self.onnxruntime_s else None


@dataclass
class LoadReport:
    url: str
    voice: str
    sample_rate: int
    levels: list[LoadLevel]

    def to_dict(self) -> dict:
        return {"url": self.url, "voice": self.voice, "sample_rate": self.sample_rate,
                "levels": [asdict(level) | {"real_time": level.real_time, "cores_busy": level.cores_busy}
                           for level in self.levels]}


class LoadGenerator:
    """Streamed ``POST /v1/audio/speech`` requests against ``url`` (``http://host:port``)."""

    def __init__(self, url: str, voice: str | None = None, api_key: str | None = None, max_tokens: int = 150,
                 timeout_s: float = 300.0):
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise TtsoptError(f"--serve {url}: give the server's address as http://HOST:PORT")
        self.url, self.host, self.port = url.rstrip("/"), parts.hostname, parts.port or 80
        self.api_key, self.max_tokens, self.timeout_s = api_key, max_tokens, timeout_s
        health = self._get("/health")
        self.sample_rate = int(health["sample_rate"])
        listing = self._get("/v1/voices")
        voices = [v["id"] for v in listing.get("voices", listing.get("data", []))]
        if voice is not None and voice not in voices:
            raise TtsoptError(f"voice {voice!r} is not served at {url}: use one of {', '.join(voices)}")
        if not voices:
            raise TtsoptError(f"the server at {url} has no voices to load-test with")
        self.voice = voice or voices[0]

    def _connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)

    def _headers(self) -> dict[str, str]:
        return {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {self.api_key}"} if self.api_key else {})

    def _get(self, path: str) -> dict:
        return json.loads(self._fetch(path))

    def _fetch(self, path: str) -> bytes:
        connection = self._connection()
        try:
            connection.request("GET", path, headers=self._headers())
            response = connection.getresponse()
            body = response.read()
        except OSError as exc:
            raise TtsoptError(f"cannot reach the server at {self.url} ({exc}): start it with ttsopt serve PKG") from None
        finally:
            connection.close()
        if response.status != 200:
            raise TtsoptError(f"GET {path} at {self.url} answered {response.status}: {body[:200]!r}")
        return body

    def graph_seconds(self) -> dict[str, float]:
        """Seconds each graph's runs have held the server's cores since it started (its ``/metrics``; empty when it
        does not export them)."""
        return {graph: float(value) for graph, value in _GRAPH_SECONDS.findall(self._fetch("/metrics").decode())}

    def _measured(self, level: Callable[[], LoadLevel]) -> LoadLevel:
        """``level()`` with the server's onnxruntime seconds per graph over it."""
        before = self.graph_seconds()
        result = level()
        after = self.graph_seconds()
        result.onnxruntime_s = {graph: seconds - before.get(graph, 0.0) for graph, seconds in after.items()
                                if seconds > before.get(graph, 0.0)}
        return result

    def request(self, index: int) -> RequestResult:
        """One streamed request (sentence and seed from ``index``)."""
        body = {"model": "ttsopt", "input": SENTENCES[index % len(SENTENCES)], "lang": "phonemes", "voice": self.voice,
                "response_format": "pcm", "seed": index, "max_tokens": self.max_tokens}
        connection = self._connection()
        start = time.perf_counter()
        first, size = None, 0
        try:
            connection.request("POST", "/v1/audio/speech", body=json.dumps(body), headers=self._headers())
            response = connection.getresponse()
            if response.status != 200:
                return RequestResult(None, time.perf_counter() - start, 0.0, f"HTTP {response.status}")
            while chunk := response.read1(65536):
                if first is None:
                    first = time.perf_counter() - start
                size += len(chunk)
        except OSError as exc:
            return RequestResult(first, time.perf_counter() - start, size / 2 / self.sample_rate, type(exc).__name__)
        finally:
            connection.close()
        return RequestResult(first, time.perf_counter() - start, size / 2 / self.sample_rate)

    def closed_loop(self, streams: int, requests: int) -> LoadLevel:
        """``streams`` clients, each sending ``requests`` requests one after the other."""
        return self._measured(lambda: self._closed_loop(streams, requests))

    def open_loop(self, rate: float, duration_s: float, seed: int = 0) -> LoadLevel:
        """Poisson arrivals at ``rate`` per second for ``duration_s`` seconds; each request on its own thread."""
        return self._measured(lambda: self._open_loop(rate, duration_s, seed))

    def _closed_loop(self, streams: int, requests: int) -> LoadLevel:
        counter = iter(range(10**9))
        lock = threading.Lock()

        def client(_: int) -> list[RequestResult]:
            results = []
            for _ in range(requests):
                with lock:
                    index = next(counter)
                results.append(self.request(index))
            return results

        start = time.perf_counter()
        with ThreadPoolExecutor(streams) as pool:
            results = [r for rs in pool.map(client, range(streams)) for r in rs]
        return _level(f"{streams} streams", streams, results, time.perf_counter() - start)

    def _open_loop(self, rate: float, duration_s: float, seed: int) -> LoadLevel:
        rng = random.Random(seed)
        arrivals, t = [], rng.expovariate(rate)
        while t < duration_s:
            arrivals.append(t)
            t += rng.expovariate(rate)
        start = time.perf_counter()
        with ThreadPoolExecutor(max(1, len(arrivals))) as pool:
            futures = []
            for index, at in enumerate(arrivals):
                time.sleep(max(0.0, at - (time.perf_counter() - start)))
                futures.append(pool.submit(self.request, index))
            results = [f.result() for f in futures]
        return _level(f"{rate:g}/s for {duration_s:g} s", len(arrivals), results, time.perf_counter() - start)


def _pct(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def _level(label: str, streams: int, results: list[RequestResult], wall_s: float) -> LoadLevel:
    good = [r for r in results if r.error is None and r.audio_s > 0]
    errors = [r.error or "no audio" for r in results if r.error is not None or r.audio_s == 0]
    rtfs = [r.total_s / r.audio_s for r in good]
    firsts = [r.first_audio_s for r in good if r.first_audio_s is not None]
    return LoadLevel(label, streams, len(results), len(errors), wall_s, _pct(firsts, 50), _pct(firsts, 95),
                     _pct(rtfs, 50), _pct(rtfs, 95), sum(r.audio_s for r in good) / wall_s, sorted(set(errors)))


def plot_curve(report: LoadReport, path: str) -> None:
    """Per-stream RTF p50/p95, first audio p95 and aggregate throughput over the load levels, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = [level for level in report.levels if level.rtf_p50 is not None]
    x = [level.streams for level in levels]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(x, [lv.rtf_p50 for lv in levels], "o-", label="RTF p50")
    left.plot(x, [lv.rtf_p95 for lv in levels], "o--", label="RTF p95")
    left.plot(x, [lv.first_audio_p95_s for lv in levels], "s-", label="first audio p95 (s)")
    left.axhline(1.0, color="grey", lw=0.8)
    left.set_xlabel("concurrent streams")
    left.legend()
    right.plot(x, [lv.audio_s_per_wall_s for lv in levels], "o-")
    right.set_xlabel("concurrent streams")
    right.set_ylabel("audio seconds per wall second")
    figure.suptitle(f"ttsopt serve at {report.url}")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


__all__ = ["LoadGenerator", "LoadLevel", "LoadReport", "SENTENCES", "plot_curve"]
