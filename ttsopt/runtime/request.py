"""One synthesis request: everything a text-to-speech call takes, as one immutable, checked value.

    >>> request = SynthesisRequest(text="Hello, world.", lang="en", voice="alice", sampling=SamplingParams(seed=0))
    >>> audio, results = tts.speak(request)
    >>> for piece in tts.stream(request.replace(stream=StreamSettings(first_tokens=8))): ...

The CLI (``ttsopt run``), the Python API (:meth:`TextToSpeech.speak` / :meth:`~TextToSpeech.stream`), the server
(its OpenAI and api_v2 bodies are converted into one at the edge) and the decode scheduler (:attr:`sampling`) all
take this value, so a parameter is named, defaulted and checked in one place. What can be checked without a
package is checked here, once, when the value is made (one-line :class:`~ttsopt.errors.TtsoptError`); what needs
the package (the voice exists, the token cap fits its graphs, the phonemes are in its table) is checked by
:class:`TextToSpeech` before any inference runs.

What is spoken is given one of three ways: ``text`` + ``lang`` (cut into sentences by the text front end, each
synthesised on its own and joined with ``pause_s`` of silence), ``phonemes`` (one utterance: a phoneme string, ids
or a front-end :class:`~ttsopt.runtime.text.Sentence`, optionally with its ``bert`` features) or ``sentences`` (what
the front end made of a text already: the server cuts text before it admits a request, so that bad text is a 4xx
before any header goes out).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ttsopt.errors import TtsoptError
from ttsopt.runtime.sampling import SamplingParams
from ttsopt.runtime.sovits import check_synthesis
from ttsopt.runtime.streaming import StreamSettings
from ttsopt.runtime.text.cutting import DEFAULT_METHOD, cut_method

if TYPE_CHECKING:
    from ttsopt.runtime.text import Sentence
    from ttsopt.runtime.voice import Voice

#: Seconds of silence between a text's sentences: the official ``fragment_interval``.
SENTENCE_PAUSE_S = 0.3


@dataclass(frozen=True, eq=False)
class SynthesisRequest:
    """What one synthesis takes. ``sampling`` holds the GPT's knobs and the seed (which also seeds the SoVITS
    noise: the same request gives the same audio); ``stream`` says how pieces are cut when the request is
    streamed; ``steps`` is the Euler steps of a v4 package's mel generator (None: the package's default)."""

    text: str | None = None
    lang: str | None = None
    cut: str = DEFAULT_METHOD
    phonemes: str | np.ndarray | Sentence | None = None
    sentences: tuple[str | Sentence, ...] | None = None
    bert: np.ndarray | None = None
    voice: str | np.ndarray | Voice | None = None
    sampling: SamplingParams = field(default_factory=SamplingParams)
    noise_scale: float = 0.5
    speed: float = 1.0
    pause_s: float = SENTENCE_PAUSE_S
    stream: StreamSettings = field(default_factory=StreamSettings)
    steps: int | None = None

    def __post_init__(self) -> None:
        given = [name for name in ("text", "phonemes", "sentences") if getattr(self, name) is not None]
        if len(given) != 1:
            raise TtsoptError("say what to speak: give exactly one of text (with lang), phonemes or sentences"
                              + (f" (got {' and '.join(given)})" if given else ""))
        if self.text is not None:
            if not self.text.strip():
                raise TtsoptError("the text has nothing to speak (it is empty): give some words")
            if self.lang is None:
                raise TtsoptError("text needs its language: lang='en', 'zh', 'ja', 'ko', 'yue', 'all_zh', ... or 'auto'")
            cut_method(self.cut)
        if self.sentences is not None:
            object.__setattr__(self, "sentences", tuple(self.sentences))
            if not self.sentences:
                raise TtsoptError("no sentences to speak: give at least one")
        if self.bert is not None and self.phonemes is None:
            raise TtsoptError("bert features go with phonemes; text gets its own (RoBERTa's for Chinese, when the package has it)")
        if not isinstance(self.sampling, SamplingParams):
            raise TtsoptError(f"sampling must be a SamplingParams, got {type(self.sampling).__name__}")
        if not isinstance(self.stream, StreamSettings):
            raise TtsoptError(f"stream must be a StreamSettings, got {type(self.stream).__name__}")
        check_synthesis(self.speed, self.noise_scale)
        if not 0.0 <= self.pause_s <= 60.0:
            raise TtsoptError(f"the pause between sentences must be 0..60 s, got {self.pause_s:g}")
        if self.steps is not None:
            from ttsopt.runtime.cfm import check_steps

            check_steps(self.steps)

    @property
    def seed(self) -> int | None:
        """The seed of the GPT's sampling and of the SoVITS noise (None: random)."""
        return self.sampling.seed

    def replace(self, **changes) -> SynthesisRequest:
        """A copy with ``changes`` (checked again); giving one of text / phonemes / sentences drops the others."""
        if {"text", "phonemes", "sentences"} & changes.keys():
            changes = {"text": None, "phonemes": None, "sentences": None, "bert": None} | changes
        return dataclasses.replace(self, **changes)

    def utterances(self) -> Sequence[str | np.ndarray | Sentence]:
        """The utterances of a request whose text is already cut (``phonemes``: one; ``sentences``: each)."""
        if self.text is not None:
            raise TtsoptError("this request's text is not cut into sentences yet: TextToSpeech.sentences(request) does it")
        return (self.phonemes,) if self.phonemes is not None else self.sentences


__all__ = ["SENTENCE_PAUSE_S", "SynthesisRequest"]
