"""Text-to-speech with a GPT-SoVITS v4 package: phonemes + a stored voice → GPT tokens → v4 SoVITS → 48 kHz.

The GPT part is v2's (:class:`TextToSpeech`: the prompt of the voice, sampling, text front end, sentences);
the SoVITS part is :class:`V4Synthesizer`'s chunked CFM loop. The request's seed seeds both the GPT's sampling
and the CFM's starting noise; its ``steps`` are the CFM's Euler steps. Streaming yields one piece per official CFM
chunk once the GPT is done (a chunk is a 1000-frame window that needs all its tokens), each vocoded with its context
so the pieces equal the whole.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ttsopt.errors import TtsoptError
from ttsopt.runtime.gpt import GPT
from ttsopt.runtime.package import Package
from ttsopt.runtime.request import SynthesisRequest
from ttsopt.runtime.sampling import GenerationResult, StopFn
from ttsopt.runtime.sovits_v4 import V4Synthesizer
from ttsopt.runtime.text.g2pw import package_g2pw
from ttsopt.runtime.tts import TextToSpeech, UtterancePieces


class V4TextToSpeech(V4Synthesizer, TextToSpeech):
    def __init__(self, package: Package):  # noqa: D107 - TextToSpeech.__init__ would build v2's synthesizer
        V4Synthesizer.__init__(self, package)
        self.gpt = GPT(package)
        self.token_rate = int(self.settings["token_rate_hz"])
        self.g2pw = package_g2pw(package.path, self.settings)  # as TextToSpeech.__init__ (not called) sets it

    def _speak_one(self, request: SynthesisRequest, stop: StopFn | None) -> tuple[np.ndarray, GenerationResult]:
        """One utterance through v4's SoVITS (``request.steps`` Euler steps; noise scale has no meaning here),
        unreported (``speak`` reports a text's cut-offs once)."""
        chosen = self._voice(request.voice)  # fails early, before the GPT runs, on an unknown voice
        inputs = self._gpt_inputs(request)
        result = self.gpt.generate(inputs.all_ids, inputs.features, inputs.prompt_tokens, request.sampling, stop=stop)
        if result.tokens.size == 0:
            raise TtsoptError("the GPT produced no semantic tokens for this text: check the phonemes")
        audio = self.synthesize(result.tokens, inputs.ids, chosen, speed=request.speed, seed=request.seed, steps=request.steps)
        return audio, result

    def _stream_utterance(self, request: SynthesisRequest, stop: StopFn | None) -> Callable[[], UtterancePieces]:
        """One piece per official CFM chunk (up to 1000 frames with the prompt), as each is generated: the GPT runs to
        its end first (a chunk needs all its tokens), so ``request.stream`` (v2's token-paced pieces) does not apply."""
        self._voice(request.voice)
        inputs = self._gpt_inputs(request)

        def pieces() -> UtterancePieces:
            result = self.gpt.generate(inputs.all_ids, inputs.features, inputs.prompt_tokens, request.sampling, stop=stop)
            if not result.tokens.size:
                raise TtsoptError("the GPT produced no semantic tokens for this text: check the phonemes")
            yield from self.synthesize_stream(result.tokens, inputs.ids, request.voice, request.speed, request.seed,
                                              request.steps)
            return result

        return pieces
