"""Text-to-speech with a GPT-SoVITS v4 package: phonemes + a stored voice → GPT tokens → v4 SoVITS → 48 kHz.

The GPT part is v2's (:class:`TextToSpeech`: the prompt of the voice, sampling, text front end, sentences);
the SoVITS part is :class:`V4Synthesizer`'s chunked CFM loop. ``params.seed`` seeds both the GPT's sampling
and the CFM's starting noise. Streaming yields one piece per official CFM chunk once the GPT is done (a chunk is a
1000-frame window that needs all its tokens), each vocoded with its context so the pieces equal the whole.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np

from ttsopt.errors import TtsoptError
from ttsopt.runtime.gpt import GPT
from ttsopt.runtime.package import Package
from ttsopt.runtime.sampling import GenerationResult, SamplingParams, StopFn
from ttsopt.runtime.sovits_v4 import V4Synthesizer
from ttsopt.runtime.streaming import StreamSettings, StreamStats
from ttsopt.runtime.text.cutting import DEFAULT_METHOD
from ttsopt.runtime.text.g2pw import package_g2pw
from ttsopt.runtime.tts import TextToSpeech


class V4TextToSpeech(V4Synthesizer, TextToSpeech):
    def __init__(self, package: Package):  # noqa: D107 - TextToSpeech.__init__ would build v2's synthesizer
        V4Synthesizer.__init__(self, package)
        self.gpt = GPT(package)
        self.token_rate = int(self.settings["token_rate_hz"])
        self.g2pw = package_g2pw(package.path, self.settings)  # as TextToSpeech.__init__ (not called) sets it

    def speak(self, phonemes: str | np.ndarray | None = None, voice: str | None = None, bert: np.ndarray | None = None,
              params: SamplingParams | None = None, noise_scale: float = 0.5, speed: float = 1.0,
              stop: StopFn | None = None, *, text: str | None = None, lang: str | None = None, cut: str = DEFAULT_METHOD,
              steps: int | None = None) -> tuple[np.ndarray, GenerationResult | list[GenerationResult]]:
        """Waveform at 48 kHz and the GPT's result (see :meth:`TextToSpeech.speak`); ``steps``: Euler steps."""
        if text is not None or phonemes is None:
            return TextToSpeech.speak(self, phonemes, voice, bert, params, noise_scale, speed, stop, text=text, lang=lang, cut=cut)
        params = params or SamplingParams()
        audio, result = self._speak_one(phonemes, voice, bert, params, noise_scale, speed, stop, steps)
        self.report_stops([result], params)
        return audio, result

    def _speak_one(self, phonemes: str | np.ndarray, voice: str | None, bert: np.ndarray | None, params: SamplingParams,
                   noise_scale: float, speed: float, stop: StopFn | None, steps: int | None = None
                   ) -> tuple[np.ndarray, GenerationResult]:
        """One utterance, unreported (``speak_sentences`` reports a text's cut-offs once); a :class:`Sentence` brings
        its phones and BERT features."""
        chosen = self._voice(voice)  # fails early, before the GPT runs, on an unknown voice
        phonemes, bert = self._utterance(phonemes, bert)
        result = self.semantic_tokens(phonemes, voice, bert, params, stop=stop)
        if result.tokens.size == 0:
            raise TtsoptError("the GPT produced no semantic tokens for this text: check the phonemes")
        audio = self.synthesize(result.tokens, phonemes, chosen, speed=speed, seed=params.seed, steps=steps)
        return audio, result

    def stream(self, phonemes: str | np.ndarray, voice: str | None = None, bert: np.ndarray | None = None,
               params: SamplingParams | None = None, noise_scale: float = 0.5, speed: float = 1.0,
               settings: StreamSettings | None = None, stop: StopFn | None = None, steps: int | None = None) -> V4SpeechStream:
        """Audio pieces, one per official CFM chunk (up to 1000 frames with the prompt), as each is generated:
        the GPT runs to its end first (a chunk needs all its tokens). ``settings`` (v2's token-paced pieces) do
        not apply. Inputs are checked now; the work runs as the stream is iterated."""
        params = params or SamplingParams()
        self._voice(voice)
        ids, all_ids, features, prompt_tokens = self._gpt_inputs(phonemes, voice, bert, params)
        return V4SpeechStream(self, ids, voice, self.gpt.tokens(all_ids, features, prompt_tokens, params, stop=stop),
                              params, speed, steps)


class V4SpeechStream:
    """An iterable of float32 pieces at 48 kHz; :attr:`stats` fills in as it runs (as :class:`SpeechStream`)."""

    def __init__(self, tts: V4TextToSpeech, ids: np.ndarray, voice: str | None, tokens: Iterator[int],
                 params: SamplingParams, speed: float, steps: int | None):
        self.tts, self.ids, self.voice, self._tokens = tts, ids, voice, tokens
        self.params, self.speed, self.steps = params, speed, steps
        self.sample_rate = tts.sample_rate
        self.stats = StreamStats()

    def __iter__(self) -> Iterator[np.ndarray]:
        self.stats.started = time.perf_counter()
        tokens = []
        while True:
            try:
                tokens.append(next(self._tokens))
            except StopIteration as done:
                self.stats.result = done.value
                break
        if not tokens:
            raise TtsoptError("the GPT produced no semantic tokens for this text: check the phonemes")
        self.stats.tokens = np.asarray(tokens, np.int64)  # cut-offs: the caller's report_stops, as for SpeechStream
        for piece in self.tts.synthesize_stream(self.stats.tokens, self.ids, self.voice, self.speed, self.params.seed, self.steps):
            if self.stats.first_audio_s is None:
                self.stats.first_audio_s = time.perf_counter() - self.stats.started
            self.stats.pieces += 1
            self.stats.samples += piece.size
            yield piece

    def close(self) -> None:
        """Stop generating (the GPT stops at its next token)."""
        self._tokens.close()
