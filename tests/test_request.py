"""The synthesis request (``ttsopt.runtime.request``): one immutable value, checked once, with one-line errors."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ttsopt.errors import TtsoptError
from ttsopt.runtime import SynthesisRequest
from ttsopt.runtime.sampling import SamplingParams
from ttsopt.runtime.streaming import StreamSettings


@pytest.mark.parametrize(("fields", "fragment"), [
    ({}, "give exactly one of text (with lang), phonemes or sentences"),
    ({"text": "Hi.", "lang": "en", "phonemes": "h ao3 ."}, "(got text and phonemes)"),
    ({"text": "Hi."}, "text needs its language"),
    ({"text": "  ", "lang": "en"}, "the text has nothing to speak"),
    ({"text": "Hi.", "lang": "en", "cut": "cut9"}, "unknown cut method 'cut9'"),
    ({"sentences": ()}, "no sentences to speak"),
    ({"text": "Hi.", "lang": "en", "bert": np.zeros((1024, 3), np.float32)}, "bert features go with phonemes"),
    ({"phonemes": "h ao3 .", "speed": 5.0}, "speed 5 is outside 0.25..4"),
    ({"phonemes": "h ao3 .", "noise_scale": -1.0}, "noise scale must be >= 0"),
    ({"phonemes": "h ao3 .", "pause_s": -0.1}, "pause between sentences must be 0..60 s"),
    ({"phonemes": "h ao3 .", "steps": 5}, "5 sampling steps are not offered"),
    ({"phonemes": "h ao3 .", "sampling": {"seed": 1}}, "sampling must be a SamplingParams"),
    ({"phonemes": "h ao3 .", "stream": 16}, "stream must be a StreamSettings"),
])
def test_bad_requests_are_refused_in_one_line(fields: dict, fragment: str) -> None:
    with pytest.raises(TtsoptError) as refused:
        SynthesisRequest(**fields)
    message = str(refused.value)
    assert fragment in message and "\n" not in message


def test_a_request_is_immutable_and_replaced_whole() -> None:
    request = SynthesisRequest(text="Hello there.", lang="en", voice="fox", sampling=SamplingParams(seed=3),
                               stream=StreamSettings(first_tokens=8))
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.speed = 2.0  # type: ignore[misc]
    one = request.replace(phonemes="h ao3 .")  # giving another input drops the text (and its language stays harmless)
    assert one.text is None and one.phonemes == "h ao3 ." and one.seed == 3 and one.stream.first_tokens == 8
    assert one.utterances() == ("h ao3 .",) and request.replace(sentences=["a", "b"]).utterances() == ("a", "b")
    with pytest.raises(TtsoptError, match="not cut into sentences yet"):
        request.utterances()
    with pytest.raises(TtsoptError, match="speed 0.1 is outside"):
        one.replace(speed=0.1)  # checked again
