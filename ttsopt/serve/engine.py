"""Inference off the event loop: one request = one job on a worker thread, its audio handed to the loop
piece by piece; isolated (each job has its own GPT decoder, KV cache and random generators: nothing
is shared between requests but the read-only package), cancellable (a client that goes away or a
request past its timeout stops the GPT at its next token) and bounded (admission, input length,
tokens, time)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from ttsopt.errors import TtsoptError
from ttsopt.runtime.sampling import Cancelled, SamplingParams
from ttsopt.runtime.streaming import StreamSettings
from ttsopt.runtime.tts import SENTENCE_PAUSE_S
from ttsopt.serve.limits import Admission, AudioCache
from ttsopt.serve.metrics import Metrics
from ttsopt.serve.schemas import SpeechRequest
from ttsopt.serve.text import request_sentences

log = logging.getLogger("ttsopt.serve")


@dataclass(frozen=True)
class ServeSettings:
    """The server's bounds. ``workers``: requests synthesized at once (threads over one shared package);
    ``max_concurrent``: requests admitted at once, running or waiting (default 2 × workers), beyond → 429."""

    workers: int = 8
    max_concurrent: int | None = None
    max_input_chars: int = 4096
    max_tokens: int = 1500
    timeout_s: float = 300.0
    cache_mb: float = 64.0
    api_key: str | None = None
    stream: StreamSettings = field(default_factory=StreamSettings)
    #: Language of a request's input when it names none (``ttsopt serve --lang``).
    lang: str = "en"

    def admitted(self) -> int:
        return self.max_concurrent if self.max_concurrent is not None else 2 * self.workers


class RequestTimeout(TtsoptError):
    """The request ran past the server's timeout."""


@dataclass(frozen=True)
class Job:
    """A checked request: everything synthesis needs, and the cache key (None: not cached)."""

    #: Phonemes of each sentence, synthesised in order with the sentence pause between them.
    sentences: tuple[str, ...]
    voice: str
    params: SamplingParams
    noise_scale: float
    speed: float
    streamed: bool
    response_format: str
    cache_key: tuple | None


class Engine:
    def __init__(self, tts, settings: ServeSettings, name: str):
        self.tts, self.settings, self.name = tts, settings, name
        self.executor = ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="ttsopt-infer")
        self.admission = Admission(settings.admitted())
        self.cache = AudioCache(int(settings.cache_mb * 2**20)) if settings.cache_mb > 0 else None
        self.metrics = Metrics()
        self.metrics.in_flight.set_function(lambda: self.admission.active)
        # Every request's GPT decode steps run batched on one thread (ttsopt.runtime.batching); each worker holds a
        # request (its prefill, its SoVITS work, its pieces), so the batch holds at most one row per worker.
        self.scheduler = tts.gpt.batch(min(settings.workers, tts.gpt.max_batch))
        self.scheduler.on_step, self.scheduler.on_join = self.metrics.observe_step, self.metrics.queue_wait.observe

    def voices(self) -> list[dict]:
        return [{"id": name, "name": name, "prompt": f"{name}/prompt_tokens" in self.tts.voice_data} for name in sorted(self.tts.voices)]

    def prepare(self, request: SpeechRequest, streamed: bool) -> Job:
        """Check a request against the package and the server's bounds (cheap: no inference)."""
        settings, tts = self.settings, self.tts
        if len(request.input) > settings.max_input_chars:
            raise TtsoptError(f"input is {len(request.input)} characters; this server takes at most {settings.max_input_chars}: "
                              "split the text into sentences")
        voice = request.voice
        if voice is None:
            if len(tts.voices) != 1:
                raise TtsoptError(f"say which voice: voice is one of {', '.join(sorted(tts.voices))} (GET /v1/voices)")
            voice = next(iter(tts.voices))
        if voice not in tts.voices:
            raise TtsoptError(f"voice {voice!r} is not in this package: use one of {', '.join(sorted(tts.voices))} (GET /v1/voices)")
        max_tokens = request.max_tokens or settings.max_tokens
        if max_tokens > settings.max_tokens:
            raise TtsoptError(f"max_tokens {max_tokens} exceeds this server's limit {settings.max_tokens}: ask for fewer")
        sentences = request_sentences(request.input, request.lang or settings.lang, tts)
        params = SamplingParams(top_k=request.top_k or tts.gpt.default_top_k, top_p=request.top_p, temperature=request.temperature,
                                repetition_penalty=request.repetition_penalty, max_new_tokens=max_tokens, seed=request.seed)
        if params.max_new_tokens > tts.max_tokens:
            raise TtsoptError(f"max_tokens {max_tokens} exceeds what this package's SoVITS graphs take ({tts.max_tokens})")
        key = None
        if self.cache is not None and request.seed is not None:
            key = (sentences, voice, params, request.noise_scale, request.speed, streamed)
        return Job(sentences, voice, params, request.noise_scale, request.speed, streamed, request.resolved_format(), key)

    async def audio(self, job: Job) -> AsyncIterator[np.ndarray]:
        """Float32 pieces of ``job`` (one piece for a whole utterance). Must be entered after
        ``admission.try_enter()``; leaves the admission when the worker is done. Closing the iterator
        early (the client went away) cancels the worker at its next token."""
        started = time.perf_counter()
        cached = self.cache.get(job.cache_key) if job.cache_key is not None else None
        if cached is not None:
            self.admission.leave()
            self.metrics.cache_hits.inc()
            self.metrics.first_audio.observe(time.perf_counter() - started)
            yield cached
            return
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        cancel = threading.Event()
        deadline = time.monotonic() + self.settings.timeout_s

        def stop() -> bool:
            return cancel.is_set() or time.monotonic() > deadline

        def send(item: tuple) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is gone (server shutting down)
                cancel.set()

        def work() -> None:
            try:
                if cancel.is_set():
                    raise Cancelled("the client went away before synthesis started")
                pause = np.zeros(int(SENTENCE_PAUSE_S * self.tts.sample_rate), np.float32)
                whole = []
                for index, phonemes in enumerate(job.sentences):
                    if index and job.streamed:
                        send(("piece", pause))
                    elif index:
                        whole.append(pause)
                    if job.streamed:
                        speech = self.tts.stream(phonemes, job.voice, params=job.params, noise_scale=job.noise_scale,
                                                 speed=job.speed, settings=self.settings.stream, stop=stop)
                        for piece in speech:
                            send(("piece", piece))
                            if stop():
                                speech.close()
                                raise Cancelled("stopped between pieces")
                    else:
                        audio, _ = self.tts.speak(phonemes, job.voice, params=job.params, noise_scale=job.noise_scale,
                                                  speed=job.speed, stop=stop)
                        whole.append(audio)
                if whole:
                    send(("piece", np.concatenate(whole)))
                send(("done", None))
            except Cancelled as exc:
                send(("error", RequestTimeout(f"the request ran past the server's {self.settings.timeout_s:g} s timeout: "
                                              "send shorter text") if time.monotonic() > deadline else exc))
            except BaseException as exc:  # delivered to the request, which reports it
                send(("error", exc))
            finally:
                self.admission.leave()

        loop.run_in_executor(self.executor, work)
        pieces: list[np.ndarray] = []
        try:
            while True:
                kind, value = await queue.get()
                if kind == "error":
                    raise value
                if kind == "done":
                    break
                if not pieces:
                    self.metrics.first_audio.observe(time.perf_counter() - started)
                pieces.append(value)
                yield value
        finally:
            cancel.set()
        seconds = sum(p.size for p in pieces) / self.tts.sample_rate
        if seconds > 0:
            self.metrics.rtf.observe((time.perf_counter() - started) / seconds)
            self.metrics.audio_seconds.inc(seconds)
        if job.cache_key is not None and pieces:
            self.cache.put(job.cache_key, np.concatenate(pieces))

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.scheduler.close()
