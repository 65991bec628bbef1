"""Token-level streaming: audio pieces while the GPT is still generating (numpy + onnxruntime).

Every time a chunk of new semantic tokens is in (``first_tokens`` for the first piece, so first audio
comes early, then ``chunk_tokens``, growing to ``growth`` times the tokens so far: each piece re-runs
the latent graph on the whole prefix, so fixed chunks would cost O(T²) on long utterances, while
geometric ones keep the total within a few whole-utterance runs; the audio already sent covers the
longer wait, since decoding runs faster than real time), the SoVITS ``latent`` graph is re-run on the whole token prefix.
It is not causal (its text encoder attends over all tokens), so the latent frames near the end of a
prefix still change as tokens arrive: the last ``lookahead_frames`` are held back, and only frames
before them are committed. The generator then runs on the new committed frames with its measured
context (``generator_context_frames``) on the left taken from the committed frames (what earlier
pieces were made of) and on the right from the newest latent; ``crossfade_frames`` extra frames are
decoded past the end of each piece and crossfaded (linearly) into the head of the next, which hides
the small change between the two estimates.

The noise of the prior comes from one per-request draw, frame by frame (:class:`FrameNoise`), so every
prefix sees the same noise on the same frames as the whole utterance does; ``TextToSpeech.speak`` uses
the same draw, so a streamed request and a whole one with the same tokens differ only at the seams.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from dataclasses import dataclass, field

import numpy as np

from ttsopt.errors import TtsoptError
from ttsopt.runtime.sampling import GenerationResult, resolve_seed


@dataclass(frozen=True)
class StreamSettings:
    """When pieces are cut and how they are joined (defaults measured: BENCHMARKS.md, "Streaming and serving",
    "Piece schedule": the cuts are at 16, 48, 144, ... tokens; the first piece covers the wait for the second)."""

    first_tokens: int = 16
    chunk_tokens: int = 24
    lookahead_frames: int = 12
    crossfade_frames: int = 2
    growth: float = 2.0

    def __post_init__(self) -> None:
        if self.first_tokens < 1 or self.chunk_tokens < 1:
            raise TtsoptError(f"stream chunks must be at least one token, got {self.first_tokens} / {self.chunk_tokens}")
        if self.lookahead_frames < 0 or self.crossfade_frames < 0:
            raise TtsoptError("stream lookahead and crossfade must be >= 0 frames")
        if self.growth < 0:
            raise TtsoptError(f"stream chunk growth must be >= 0, got {self.growth}")


class FrameNoise:
    """One request's prior noise ``[1, channels, frames]``, drawn frame by frame from one generator, so a
    prefix of ``n`` frames is the same whatever the final length (a ``[1, C, F]`` draw in C order is not)."""

    def __init__(self, channels: int, seed: int | None):
        self.channels = channels
        self.rng = np.random.default_rng(resolve_seed(seed))
        self._frames = np.zeros((0, channels), np.float32)

    def __call__(self, frames: int) -> np.ndarray:
        missing = frames - self._frames.shape[0]
        if missing > 0:
            more = self.rng.standard_normal((missing, self.channels), dtype=np.float32)
            self._frames = np.concatenate((self._frames, more))
        return np.ascontiguousarray(self._frames[:frames].T[None])


def linear_fade(samples: int) -> tuple[np.ndarray, np.ndarray]:
    """(fade-out, fade-in) weights summing to 1: the two sides are estimates of the same signal (highly
    correlated), where an equal-power fade would swell by up to 3 dB mid-seam."""
    fade_in = (np.arange(samples, dtype=np.float32) + 0.5) / max(samples, 1)
    return 1.0 - fade_in, fade_in


@dataclass
class StreamStats:
    """Filled in while a stream runs: seconds from the start of iteration to the first piece, pieces and samples
    sent (sentence pauses included in the samples), and the GPT's result of each utterance finished so far."""

    started: float = field(default_factory=time.perf_counter)
    first_audio_s: float | None = None
    pieces: int = 0
    samples: int = 0
    results: list[GenerationResult] = field(default_factory=list)

    @property
    def result(self) -> GenerationResult | None:
        """The GPT result of the last utterance finished (None until the first one is)."""
        return self.results[-1] if self.results else None

    @property
    def tokens(self) -> np.ndarray | None:
        """Every semantic token generated so far, utterance after utterance (None before any utterance finished)."""
        return np.concatenate([r.tokens for r in self.results]) if self.results else None

    def count(self, audio: np.ndarray) -> np.ndarray:
        """Record a speech piece as it goes out."""
        if self.first_audio_s is None:
            self.first_audio_s = time.perf_counter() - self.started
        self.pieces += 1
        self.samples += audio.size
        return audio


def stream_pieces(synth, token_iter, phoneme_ids: np.ndarray, ge: np.ndarray, noise: FrameNoise, noise_scale: float,
                  speed: float, settings: StreamSettings) -> Generator[np.ndarray, None, GenerationResult]:
    """Float32 audio pieces of the tokens ``token_iter`` yields (a generator returning a GenerationResult), then
    that result; ``synth`` is the package's :class:`~ttsopt.runtime.sovits.Synthesizer`."""
    from ttsopt.runtime.sovits import latent_frames

    hop, context = synth.hop, synth.context_frames
    tokens: list[int] = []
    committed = np.zeros((1, synth.inter_channels, 0), np.float32)  # latent frames pieces were made of
    tail = np.zeros(0, np.float32)  # audio decoded past the last piece, to crossfade into the next
    next_cut = settings.first_tokens

    def piece(final: bool) -> np.ndarray:
        nonlocal committed, tail
        frames = latent_frames(len(tokens), speed)
        z = synth.latent_prefix(np.asarray(tokens, np.int64), phoneme_ids, ge, noise(frames), noise_scale)
        start = committed.shape[-1]
        stop = frames if final else max(start, frames - settings.lookahead_frames)
        if stop <= start:
            return np.zeros(0, np.float32)
        committed = np.concatenate((committed, z[:, :, start:stop]), axis=-1)
        extra = 0 if final else min(settings.crossfade_frames, frames - stop)
        lo = max(0, start - context)
        hi = min(frames, stop + extra + context)
        window = np.concatenate((committed[:, :, lo:stop], z[:, :, stop:hi]), axis=-1)
        audio = synth.package.run("generator", {"z": window, "ge": ge})["audio"].reshape(-1)
        audio = audio[(start - lo) * hop: (stop + extra - lo) * hop]
        if tail.size:  # crossfade the previous piece's look-past into this piece's head
            n = min(tail.size, audio.size)
            fade_out, fade_in = linear_fade(n)
            audio = audio.copy()
            audio[:n] = tail[:n] * fade_out + audio[:n] * fade_in
        body, tail = (audio, np.zeros(0, np.float32)) if final else (audio[: (stop - start) * hop], audio[(stop - start) * hop:])
        return body

    while True:
        try:
            tokens.append(next(token_iter))
        except StopIteration as done:
            result = done.value
            break
        if len(tokens) >= next_cut:
            next_cut += max(settings.chunk_tokens, int(settings.growth * len(tokens)))
            audio = piece(final=False)
            if audio.size:
                yield audio
    if not tokens:
        raise TtsoptError("the GPT produced no semantic tokens for this text: check the phonemes")
    audio = piece(final=True)
    if audio.size:
        yield audio
    return result
