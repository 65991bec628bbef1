"""Inference off the event loop: one request = one job on a worker thread, its audio handed to the loop
piece by piece; the request body becomes one :class:`~ttsopt.runtime.request.SynthesisRequest` here (:meth:`Engine.check`),
which the worker hands to ``speak``/``stream``; isolated (each job has its own KV cache rows, sampling state and random
generators: nothing is shared between requests but the read-only package; the GPT's decode steps are batched, each
row sampled on its own), cancellable (a client that goes away or a
request past its timeout stops the GPT at its next token) and bounded (admission, input length,
tokens, time)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ttsopt.errors import TtsoptError
from ttsopt.runtime.request import SynthesisRequest
from ttsopt.runtime.sampling import Cancelled, SamplingParams
from ttsopt.runtime.streaming import StreamSettings
from ttsopt.runtime.voice import Voice
from ttsopt.serve.limits import Admission, AudioCache
from ttsopt.serve.metrics import Metrics
from ttsopt.serve.schemas import OPENAI_VOICES, SpeechRequest
from ttsopt.serve.text import request_sentences, sentences_key
from ttsopt.serve.voices import VoiceStore

log = logging.getLogger("ttsopt.serve")
#: Requests admitted (running or waiting) per worker by default: with the default 8 workers (one batch of GPT
#: decode rows), a burst of 16 is served or queued; the old defaults (2 workers, 4 admitted) refused half of 8.
ADMITTED_PER_WORKER = 2
#: Text is cut into pieces of at most max_tokens / 2 phonemes (speech runs at about 2 semantic tokens per phoneme),
#: but never below this many.
TOKENS_PER_PHONEME = 2
MIN_PIECE_PHONEMES = 64


@dataclass(frozen=True)
class ServeSettings:
    """The server's bounds. ``workers``: requests synthesized at once (threads over one shared package);
    ``max_concurrent``: requests admitted at once, running or waiting (default :data:`ADMITTED_PER_WORKER` ×
    workers), beyond → 429."""

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
    #: The voice of a request that names none or one of OpenAI's (alloy, ...); None: the package's first prompted voice
    #: (a package that stores none has no default: such a request is a 400 saying how to make a voice).
    default_voice: str | None = None
    #: ``serve --voices DIR``: stored voices (loaded at start, added by POST /v1/voices); None: no store.
    voices_dir: Path | None = None
    max_voices: int = 100
    #: Largest upload POST /v1/voices takes (bytes of the whole multipart body).
    max_upload_bytes: int = 8 * 2**20
    #: ``serve --ref-audio-dir DIR``: the only folder /tts's ``ref_audio_path`` may name files in; None: no files.
    ref_audio_dir: Path | None = None

    def admitted(self) -> int:
        return self.max_concurrent if self.max_concurrent is not None else ADMITTED_PER_WORKER * self.workers


def fingerprint(voice: Voice | np.ndarray) -> str:
    """What a voice's audio depends on, as a cache key (a stored name can be deleted and made again)."""
    digest = hashlib.sha256()
    arrays = (voice,) if isinstance(voice, np.ndarray) else (
        voice.prompt_tokens, voice.phone_ids, voice.ge, voice.sv, voice.prompt_bert, voice.prompt_mel, voice.prompt_fea)
    for array in arrays:
        if array is not None:
            digest.update(np.ascontiguousarray(array).tobytes())
    return "voice:" + digest.hexdigest()


class RequestTimeout(TtsoptError):
    """The request ran past the server's timeout."""


@dataclass(frozen=True)
class Job:
    """A checked request: the synthesis (its text already cut into sentences), how it is answered, and the cache
    key (None: not cached)."""

    request: SynthesisRequest
    streamed: bool
    response_format: str
    cache_key: tuple | None
    #: ``time.perf_counter()`` when the request arrived: first audio is measured from here (text front end included).
    started: float = field(default_factory=time.perf_counter)


class Engine:
    def __init__(self, tts, settings: ServeSettings, name: str):
        self.tts, self.settings, self.name = tts, settings, name
        self.executor = ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="ttsopt-infer")
        # The text front end runs off the event loop too (a language's first use loads dictionaries for seconds),
        # on one thread of its own: its libraries' lazy set-up is not known to be thread-safe, and a request's text
        # should not wait behind another's synthesis.
        self.front_end = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ttsopt-text")
        self.admission = Admission(settings.admitted())
        self.cache = AudioCache(int(settings.cache_mb * 2**20)) if settings.cache_mb > 0 else None
        self.metrics = Metrics()
        self.metrics.in_flight.set_function(lambda: self.admission.active)
        self.default_voice = self._default_voice(settings.default_voice)
        self.store = VoiceStore(tts, settings.voices_dir, settings.max_voices, on_compute=self.metrics.voices_made.inc)
        # Making a voice runs HuBERT: on a thread of its own, so neither the event loop nor a synthesis waits for it.
        self.voice_maker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ttsopt-voice")
        # Every request's GPT decode steps run batched (ttsopt.runtime.batching), stepped by the worker that needs a
        # token; each worker holds a request (its prefill, its SoVITS work, its pieces), so the batch holds at most one
        # row per worker.
        self.scheduler = tts.gpt.batch(min(settings.workers, tts.gpt.max_batch))
        self.scheduler.on_step, self.scheduler.on_join = self.metrics.observe_step, self.metrics.queue_wait.observe

    def _default_voice(self, name: str | None) -> str | None:
        """``--default-voice``, else the package's first prompted voice, else its first; None for a package that
        stores none (a way to ship one: voices are made at run time), whose requests must name theirs."""
        voices = sorted(self.tts.voices)
        if name is not None:
            if name not in self.tts.voices:
                raise TtsoptError(f"--default-voice {name} is not in this package: " + (
                    f"use one of {', '.join(voices)}" if voices else "it stores no voice (drop --default-voice: requests then name theirs)"))
            return name
        prompted = [v for v in voices if f"{v}/prompt_tokens" in self.tts.voice_data]
        return (prompted or voices or [None])[0]

    def _no_voice(self) -> str:
        """What a request that names no usable voice is told when the package stores none: how to make and name one."""
        stored = [v["id"] for v in self.store.describe()]
        make = "make one with POST /v1/voices (recording, transcript, language, name) and give its name as voice"
        how = (f"give voice as one of the voices made on this server ({', '.join(stored)}), or {make}" if stored else
               make if self.store.directory is not None else f"start the server with --voices DIR, {make}")
        return f"this package stores no voice, so a request must name one: {how}"

    def voices(self) -> list[dict]:
        package = [{"id": name, "name": name, "prompt": f"{name}/prompt_tokens" in self.tts.voice_data, "default": name == self.default_voice}
                   for name in sorted(self.tts.voices)]
        return package + self.store.describe()

    def resolve_voice(self, voice: str | None) -> str | Voice:
        """The voice a request means: a package voice (its name), a stored one (a :class:`Voice`), or the default
        for none and for OpenAI's names."""
        if voice is None or (voice in OPENAI_VOICES and voice not in self.tts.voices and self.store.get(voice) is None):
            if self.default_voice is None:
                raise TtsoptError(self._no_voice())
            return self.default_voice
        if voice in self.tts.voices:
            return voice
        stored = self.store.get(voice)
        if stored is None and self.default_voice is None:
            raise TtsoptError(f"voice {voice[:80]!r} is not on this server; {self._no_voice()}")
        if stored is None:
            known = sorted(self.tts.voices) + [v["id"] for v in self.store.describe()]
            raise TtsoptError(f"voice {voice[:80]!r} is not in this package: use one of {', '.join(known)} "
                              f"(GET /v1/voices), or one of OpenAI's names for the default ({self.default_voice})")
        return stored

    async def make_voice(self, data: bytes, transcript: str, lang: str, name: str = "the recording") -> Voice | np.ndarray:
        """A voice from a recording's bytes and its transcript (without one: its ``ge``, for reference-free synthesis),
        made on the voice thread, once per content."""
        loop = asyncio.get_running_loop()
        if not transcript:
            return await loop.run_in_executor(self.voice_maker, self.store.embedding, data, name)
        return await loop.run_in_executor(self.voice_maker, self.store.compute, data, transcript, lang, name)

    def room(self, voice: str | Voice | np.ndarray, max_new_tokens: int) -> int:
        """Most phonemes one synthesis of ``voice`` takes: the latent graph's phoneme axis, the GPT's prefill
        (prompt phonemes + phonemes + prompt tokens) and its context (that + the new tokens)."""
        tts = self.tts
        prompt_tokens, prompt_ids = tts.prompt(voice)
        prompt = prompt_ids.size + (0 if prompt_tokens is None else prompt_tokens.size)
        return min(tts.max_phonemes, tts.gpt.max_new_positions - prompt, tts.gpt.max_capacity - prompt - max_new_tokens)

    async def prepare(self, request: SpeechRequest, streamed: bool, started: float | None = None,
                      voice: str | Voice | np.ndarray | None = None) -> Job:
        """:meth:`check` on the front end's thread (the event loop keeps serving meanwhile)."""
        started = time.perf_counter() if started is None else started
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.front_end, self.check, request, streamed, started, voice)

    def check(self, request: SpeechRequest, streamed: bool, started: float, voice: str | Voice | np.ndarray | None = None) -> Job:
        """Check a request against the package and the server's bounds, text front end included: everything that
        can be known before synthesis is known here, before any header goes out (no inference)."""
        settings, tts = self.settings, self.tts
        if len(request.input) > settings.max_input_chars:
            raise TtsoptError(f"input is {len(request.input)} characters; this server takes at most {settings.max_input_chars}: "
                              "split the text into sentences")
        voice = self.resolve_voice(request.voice) if voice is None else voice
        voice_key = voice if isinstance(voice, str) else fingerprint(voice)
        max_tokens = request.max_tokens or settings.max_tokens
        if max_tokens > settings.max_tokens:
            raise TtsoptError(f"max_tokens {max_tokens} exceeds this server's limit {settings.max_tokens}: ask for fewer")
        if max_tokens > tts.max_tokens:
            raise TtsoptError(f"max_tokens {max_tokens} exceeds what this package's SoVITS graphs take ({tts.max_tokens})")
        room = self.room(voice, max_tokens)
        if room < 1:
            raise TtsoptError(f"with this voice and max_tokens {max_tokens} this package has no room for text: ask for fewer tokens")
        # Text is cut into pieces whose speech fits the token cap (about 2 tokens per phoneme), not only the graphs.
        piece = min(room, max(MIN_PIECE_PHONEMES, max_tokens // TOKENS_PER_PHONEME))
        sentences = request_sentences(request.input, request.lang or settings.lang, tts, room, piece, request.text_split_method)
        sampling = SamplingParams(top_k=request.top_k or tts.gpt.default_top_k, top_p=request.top_p,
                                  temperature=request.temperature, repetition_penalty=request.repetition_penalty,
                                  max_new_tokens=max_tokens, seed=request.resolved_seed())
        synthesis = SynthesisRequest(sentences=sentences, voice=voice, sampling=sampling, noise_scale=request.noise_scale,
                                     speed=request.speed, pause_s=request.fragment_interval, stream=settings.stream)
        key = None
        if self.cache is not None and sampling.seed is not None:
            key = (sentences_key(sentences), voice_key, sampling, synthesis.noise_scale, synthesis.speed, synthesis.pause_s, streamed)
        return Job(synthesis, streamed, request.resolved_format(), key, started)

    async def audio(self, job: Job) -> AsyncIterator[np.ndarray]:
        """Float32 pieces of ``job`` (one piece for a whole utterance). Must be entered after
        ``admission.try_enter()``; leaves the admission when the worker is done. Closing the iterator
        early (the client went away) cancels the worker at its next token."""
        started = job.started
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
                if job.streamed:
                    speech = self.tts.stream(job.request, stop=stop)
                    for piece in speech:
                        send(("piece", piece))
                        if stop():
                            speech.close()
                            raise Cancelled("stopped between pieces")
                else:
                    audio, _ = self.tts.speak(job.request, stop=stop)
                    send(("piece", audio))
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
        self.front_end.shutdown(wait=False, cancel_futures=True)
        self.voice_maker.shutdown(wait=False, cancel_futures=True)
        self.scheduler.close()
