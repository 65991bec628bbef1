"""The runtime: runs ttsopt packages with numpy + onnxruntime.  It never imports torch.

    >>> import ttsopt.runtime
    >>> vocoder = ttsopt.runtime.load("build/hifigan-cpu")
    >>> audio = vocoder.vocode(mel)          # mel [n_mels, frames] -> float32 waveform
    >>> synth = ttsopt.runtime.load("build/sovits-cpu")
    >>> audio = synth.synthesize(tokens, "n i2 h ao3 .", voice="alice", seed=0)
    >>> from ttsopt.runtime import SynthesisRequest
    >>> tts = ttsopt.runtime.load("build/gpt-sovits-cpu")
    >>> audio, result = tts.speak(SynthesisRequest(phonemes="n i2 h ao3 .", voice="alice"))
    >>> audio, results = tts.speak(SynthesisRequest(text="你好，世界。", lang="zh", voice="alice"))  # one result per sentence
    >>> voice = ttsopt.runtime.Voice.from_recording(tts, "ref.wav", "What is said in it.", "en")  # --hubert packages
    >>> audio, results = tts.speak(SynthesisRequest(text="Hello.", lang="en", voice=voice))

Several sessions in one process run faster on one shared thread pool: call
``ttsopt.runtime.share_thread_pool()`` first (see :mod:`ttsopt.runtime.threads` for when not to).
"""

from __future__ import annotations

from pathlib import Path

from ttsopt.runtime.package import Package
from ttsopt.runtime.request import SynthesisRequest
from ttsopt.runtime.sovits import Synthesizer
from ttsopt.runtime.threads import share_thread_pool
from ttsopt.runtime.tts import TextToSpeech
from ttsopt.runtime.vocoder import Vocoder
from ttsopt.runtime.voice import Voice

_TASKS = {"vocoder": Vocoder, "sovits": Synthesizer, "tts": TextToSpeech}


def load(path: str | Path) -> Vocoder | Synthesizer | TextToSpeech:
    """Open a package (checking every file against the manifest's hashes) as its task's API."""
    package = Package(path)
    if package.manifest.family == "gpt_sovits" and package.manifest.model_config.get("version") == "v4":
        from ttsopt.runtime.sovits_v4 import V4Synthesizer
        from ttsopt.runtime.tts_v4 import V4TextToSpeech

        return (V4TextToSpeech if package.manifest.task == "tts" else V4Synthesizer)(package)
    return _TASKS[package.manifest.task](package)


__all__ = ["Package", "SynthesisRequest", "Synthesizer", "TextToSpeech", "Vocoder", "Voice", "load", "share_thread_pool"]
