"""Text-to-speech with a GPT-SoVITS v4 package: phonemes + a stored voice → GPT tokens → v4 SoVITS → 48 kHz.

The GPT part is v2's (:class:`TextToSpeech`: the prompt of the voice, sampling, text front end, sentences);
the SoVITS part is :class:`V4Synthesizer`'s chunked CFM loop. ``params.seed`` seeds both the GPT's sampling
and the CFM's starting noise. Streaming pieces while the GPT runs is not offered for v4 yet (the CFM chunks are
1000-frame windows that need all their tokens).
"""

from __future__ import annotations

import numpy as np

from ttsopt.errors import TtsoptError
from ttsopt.runtime.gpt import GPT
from ttsopt.runtime.package import Package
from ttsopt.runtime.sampling import GenerationResult, SamplingParams, StopFn
from ttsopt.runtime.sovits_v4 import V4Synthesizer
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
        chosen = self._voice(voice)  # fails early, before the GPT runs, on an unknown voice
        result = self.semantic_tokens(phonemes, voice, bert, params, stop=stop)
        if result.tokens.size == 0:
            raise TtsoptError("the GPT produced no semantic tokens for this text: check the phonemes")
        audio = self.synthesize(result.tokens, phonemes, chosen, speed=speed, seed=params.seed, steps=steps)
        return audio, result

    def stream(self, *args, **kwargs):  # noqa: D102
        raise TtsoptError("streaming is not available for v4 packages yet: run without --stream")
