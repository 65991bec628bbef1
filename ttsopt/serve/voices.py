"""The server's voice store (``serve --voices DIR``) and the cache of voices made from recordings.

A voice is made from a recording, its transcript and the transcript's language with the package's graphs
(:meth:`ttsopt.runtime.voice.Voice.from_recording`: HuBERT → prompt tokens, the transcript's phones, ``ge``).
That costs a HuBERT run, so it happens on a thread of its own (never the event loop, never a synthesis
worker) and at most once per content: voices are cached by the sha256 of the recording's bytes, the
transcript and the language, so an api_v2 client that sends the same ``ref_audio_path`` with every request,
or two uploads of the same recording, compute it once.

Stored voices are ``DIR/NAME.voice`` files (atomic writes: a reader never sees half a file; a restart loads
them again). The uploaded recording itself is never written anywhere: only what was computed from it.
"""

from __future__ import annotations

import hashlib
import io
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ttsopt.errors import TtsoptError
from ttsopt.runtime.voice import SUFFIX, Voice

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
#: Voices made from recordings kept in memory (a voice is a few KB: prompt tokens, phones, ge).
CACHED_VOICES = 256


class VoiceConflict(TtsoptError):
    """A name already taken (409)."""


class VoiceNotFound(TtsoptError):
    """No stored voice of that name (404)."""


def decode_recording(data: bytes, name: str = "the recording") -> tuple[np.ndarray, int]:
    """Audio bytes (any format libsndfile reads: wav, flac, ogg, mp3) → (float32 samples, rate)."""
    import soundfile

    if not data:
        raise TtsoptError(f"{name} is empty: send a 3-10 s recording of speech")
    try:
        samples, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=False)
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise TtsoptError(f"{name} is not audio this server can read ({str(exc).splitlines()[0][:120]}): "
                          "send WAV, FLAC, Ogg or MP3") from None
    return samples, int(rate)


class VoiceStore:
    """Stored voices by name (persisted in ``directory``; none without one) and computed voices by content."""

    def __init__(self, tts, directory: Path | None, max_voices: int = 100, on_compute: Callable[[], None] | None = None):
        self.tts, self.directory, self.max_voices = tts, directory, max_voices
        self.on_compute = on_compute or (lambda: None)
        self.voices: dict[str, Voice] = {}
        self._by_content: OrderedDict[str, Voice | np.ndarray] = OrderedDict()
        self._lock = threading.RLock()  # add() checks and writes under it
        self.computed = 0  # voices actually computed (the rest came from the content cache)
        if directory is not None:
            self._load(directory)

    def _load(self, directory: Path) -> None:
        if directory.exists() and not directory.is_dir():
            raise TtsoptError(f"--voices {directory} is a file: give a folder for the voice files")
        directory.mkdir(parents=True, exist_ok=True)
        for path in sorted(directory.glob(f"*{SUFFIX}")):
            if not NAME.match(path.stem):
                raise TtsoptError(f"{path}: a stored voice's name is letters, digits, _ and - (at most 64): rename the file")
            if path.stem in self.tts.voices:
                raise TtsoptError(f"{path}: the package already has a voice {path.stem!r}: rename the file")
            self.voices[path.stem] = Voice.load(path, self.tts)

    def describe(self) -> list[dict]:
        with self._lock:
            stored = sorted(self.voices.items())
        return [{"id": name, "name": name, "prompt": True, "stored": True, "text": voice.text, "lang": voice.lang,
                 "seconds": voice.seconds} for name, voice in stored]

    def get(self, name: str) -> Voice | None:
        with self._lock:
            return self.voices.get(name)

    def compute(self, data: bytes, transcript: str, lang: str, name: str = "the recording") -> Voice:
        """The voice of a recording (its bytes) and its transcript, computed once per content (blocking: HuBERT)."""
        key = hashlib.sha256(data).hexdigest() + "|" + hashlib.sha256(f"{lang}\0{transcript}".encode()).hexdigest()
        with self._lock:
            cached = self._by_content.get(key)
            if cached is not None:
                self._by_content.move_to_end(key)
                return cached
        voice = Voice.from_recording(self.tts, decode_recording(data, name), transcript, lang)
        self.on_compute()
        with self._lock:
            self.computed += 1
            self._by_content[key] = voice
            while len(self._by_content) > CACHED_VOICES:
                self._by_content.popitem(last=False)
        return voice

    def embedding(self, data: bytes, name: str = "the recording") -> np.ndarray:
        """``ge`` of a recording without a transcript (reference-free synthesis, api_v2's empty ``prompt_text``),
        computed once per content (blocking: the reference encoder)."""
        from ttsopt.runtime.voice import reference_at_model_rate

        key = hashlib.sha256(data).hexdigest() + "|ge"
        with self._lock:
            cached = self._by_content.get(key)
            if cached is not None:
                self._by_content.move_to_end(key)
                return cached
        samples, rate = decode_recording(data, name)
        ge = self.tts.voice_embedding([reference_at_model_rate((samples, rate), self.tts.sample_rate)])
        self.on_compute()
        with self._lock:
            self.computed += 1
            self._by_content[key] = ge
            while len(self._by_content) > CACHED_VOICES:
                self._by_content.popitem(last=False)
        return ge

    def check_name(self, name: str) -> None:
        """Refuse a name that cannot be stored (before any work is done)."""
        if self.directory is None:
            raise TtsoptError("this server keeps no voices: start it with --voices DIR to add voices")
        if not NAME.match(name):
            raise TtsoptError(f"voice name {name[:80]!r}: use letters, digits, _ and - (at most 64, starting with a letter or digit)")
        if name in self.tts.voices:
            raise VoiceConflict(f"the package has a voice {name!r}: choose another name")
        with self._lock:
            if name in self.voices:
                raise VoiceConflict(f"a voice {name!r} is stored already: delete it first (DELETE /v1/voices/{name}) or choose another name")
            if len(self.voices) >= self.max_voices:
                raise VoiceConflict(f"this server keeps at most {self.max_voices} voices: delete one first")

    def add(self, name: str, voice: Voice) -> None:
        """Store ``voice`` as ``name``: written atomically to the folder, then listed."""
        with self._lock:
            self.check_name(name)
            voice.save(self.directory / f"{name}{SUFFIX}")
            self.voices[name] = voice

    def delete(self, name: str) -> None:
        with self._lock:
            if name not in self.voices:
                hint = " (a package voice cannot be deleted)" if name in self.tts.voices else ""
                raise VoiceNotFound(f"no stored voice {name[:80]!r}{hint}: GET /v1/voices lists them")
            del self.voices[name]
            (self.directory / f"{name}{SUFFIX}").unlink(missing_ok=True)
