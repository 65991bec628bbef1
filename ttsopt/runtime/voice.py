"""A voice made from a reference recording and its transcript, and the ``.voice`` file that stores it (torch-free).

Every official GPT-SoVITS inference prompts the GPT with what was said in the reference: the recording's
semantic tokens (HuBERT → ``extract_latent``) and the transcript's phones (and, for Chinese, its BERT
features); SoVITS takes the recording's ``ge`` (v2Pro/v2ProPlus: with its speaker-verification embedding).
A :class:`Voice` computes all of it once, with the package's graphs, so a voice can be made at run time,
kept in a file and reused without the recording. A v4 package's voice also holds the prompt window its CFM
continues (the reference's normalised mel and the transcript's cond features, made by
:meth:`~ttsopt.runtime.sovits_v4.V4Synthesizer.make_voice`: v4 has no reference-free mode)::

    >>> tts = ttsopt.runtime.load("build/gpt-sovits-cpu")           # exported with --hubert (or --pretrained)
    >>> voice = Voice.from_recording(tts, "ref.wav", "Hello, this is my voice.", "en")
    >>> voice = Voice.from_recording(tts, (samples, 44100), "你好。", "zh")   # or a waveform and its rate
    >>> voice.save("alice.voice")                                    # atomic; a small npz with a JSON header
    >>> voice = Voice.load("alice.voice", tts)                       # refused if made with another model
    >>> audio, results = tts.speak(SynthesisRequest(text="Nice to meet you.", lang="en", voice=voice))
    >>> speech = tts.stream(SynthesisRequest(phonemes="n i2 h ao3 .", voice=voice))

Stable API: :meth:`Voice.from_recording`, :meth:`Voice.save`, :meth:`Voice.load` (also :meth:`Voice.from_bytes`
/ :meth:`Voice.to_bytes` for stores that keep voices elsewhere), :meth:`Voice.describe` (JSON-ready), and the
fields below. Every input problem is a :class:`~ttsopt.errors.TtsoptError` with a one-line message.

The official rules applied: the recording read as ``librosa.load(sr=16000)`` does, the 3–10 s bound, the
``0.3 × rate`` zero padding (:mod:`ttsopt.runtime.prompt`); the transcript gets "." (English) or "。" (other
languages) appended when it does not end in one of the official split marks, then the package's text front
end (:func:`ttsopt.runtime.text.sentence_phones`: the per-sentence rules, e.g. a "." prefix under 6 phones).
The SoVITS reference is the recording at the SoVITS model's own rate, ``reference_rate`` (32 kHz for v2 and
for v4, whose 48 kHz is the vocoder's output; a file at another rate is resampled by the runtime's polyphase
resampler, where the official code uses torchaudio's; the 32 kHz files of the oracle are not resampled), and
HuBERT's zero padding is ``0.3 ×`` that rate (the official ``hps.data.sampling_rate``, 32 000 for v4 too).

File format (``.voice``, version 1): an ``.npz`` (no pickles) of ``header`` (UTF-8 JSON as uint8: format,
version, the model it belongs to — the sha256 of the package's SoVITS and GPT checkpoints — transcript,
language, phones, source duration, symbol table version, which arrays are present), ``prompt_tokens`` int64
``[P]``, ``phone_ids`` int64 ``[N]``, ``ge`` float32 ``[1, gin, 1]``, and when present ``sv`` float32
``[1, sv_dim]`` (v2Pro/v2ProPlus) and ``prompt_bert`` float32 ``[1024, N]`` (a Chinese transcript's BERT
features, made by the package's ``bert`` graph; absent for other languages and for packages without the graph:
the GPT then reads zeros for the prompt, as the official code does for non-Chinese text). The header's ``kind``
says which model family the voice is for: ``"v1/v2"`` (also v2Pro/v2ProPlus; files without the key are this kind)
or ``"v4"``, whose files add ``prompt_mel`` float32 ``[1, 100, T]`` and ``prompt_fea`` float32 ``[1, C, T]``
(the prompt window, ``T`` ≤ 500 frames of 10 ms).
"""

from __future__ import annotations

import io
import json
import os
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ttsopt.errors import TtsoptError
from ttsopt.runtime.prompt import SSL, Recording, hubert_input, load_16k, padding_samples, read_audio, to_mono

if TYPE_CHECKING:
    from ttsopt.runtime.text import Sentence
    from ttsopt.runtime.text.g2pw import G2PW
    from ttsopt.runtime.tts import TextToSpeech

FORMAT = "ttsopt-voice"
VERSION = 1
SUFFIX = ".voice"
#: The official ``splits``: a prompt text ending in none of them gets "." (en) or "。" appended.
SPLIT_MARKS = frozenset("，。？！,.?!~:：—…")
#: The two kinds of voice file: what a v1/v2/v2Pro SoVITS takes (``ge``), and what v4 takes (``ge`` + prompt window).
KIND_V2, KIND_V4 = "v1/v2", "v4"
HUBERT_HINT = ("this package has no HuBERT (ssl graph), so it cannot make a voice from a recording and its transcript: "
               "re-export it with --hubert GPT_SoVITS/pretrained_models/chinese-hubert-base (or --pretrained CHECKOUT)")


def prompt_text(text: str, lang: str) -> str:
    """The official prompt-text rule (``TTS.run``): strip newlines, append "." (en) or "。" unless it ends in a split mark."""
    text = text.strip("\n")
    if not text.strip():
        raise TtsoptError("the transcript is empty: give the words spoken in the reference recording")
    return text if text[-1] in SPLIT_MARKS else text + ("." if lang == "en" else "。")


def transcript_bert(tts: TextToSpeech, sentence: Sentence) -> np.ndarray | None:
    """A Chinese transcript's BERT features by the package's RoBERTa (None for other languages, or without one:
    the prompt's columns are zeros then, as officially for non-Chinese text)."""
    return tts.bert_features(sentence) if tts.bert is not None and sentence.is_chinese else None


def package_kind(manifest) -> str:
    """Which kind of voice a package takes (:data:`KIND_V4` for GPT-SoVITS v4, else :data:`KIND_V2`)."""
    return KIND_V4 if manifest.model_config.get("version") == "v4" else KIND_V2


def model_identity(manifest) -> dict[str, str]:
    """The sha256 of the checkpoints a package was made from (SoVITS and GPT): what a voice belongs to."""
    hashes = manifest.source.get("sha256", {})
    return {role: hashes[role] for role in ("sovits", "gpt") if role in hashes}


@dataclass(frozen=True)
class Voice:
    """Everything a prompted synthesis needs of a reference recording and its transcript."""

    #: The recording's semantic tokens (25 Hz), int64 ``[P]``: the GPT continues after them.
    prompt_tokens: np.ndarray
    #: The transcript's phone ids in the package's symbol table, int64 ``[N]``.
    phone_ids: np.ndarray
    phones: tuple[str, ...]
    #: SoVITS speaker embedding, float32 ``[1, gin, 1]``.
    ge: np.ndarray
    text: str
    lang: str
    #: Duration of the recording (s, at 16 kHz as the prompt path reads it).
    seconds: float
    #: sha256 of the SoVITS and GPT checkpoints of the package that made it (role → hex).
    model: dict[str, str]
    symbol_version: str
    #: A Chinese transcript's BERT features ``[1024, N]`` (the package's ``bert`` graph); ``None``: zeros.
    prompt_bert: np.ndarray | None = None
    #: v2Pro/v2ProPlus: the recording's speaker-verification embedding ``[1, sv_dim]`` (already folded into ``ge``).
    sv: np.ndarray | None = None
    #: The transcript as spoken to the front end (with the official closing mark).
    norm_text: str = ""
    #: v4: the prompt window the CFM continues: the recording's normalised log-mel ``[1, 100, T]`` and the
    #: transcript's cond features ``[1, C, T]`` (:func:`ttsopt.runtime.cfm.prompt_window`); ``None`` for v1/v2.
    prompt_mel: np.ndarray | None = None
    prompt_fea: np.ndarray | None = None
    source: str = field(default="", compare=False)

    @property
    def kind(self) -> str:
        return KIND_V4 if self.prompt_mel is not None else KIND_V2

    # -- making one --------------------------------------------------------------------------------

    @classmethod
    def from_recording(cls, tts: TextToSpeech, recording: Recording, text: str, lang: str) -> Voice:
        """A voice from a recording (a path, or ``(samples, rate)``) and its transcript in ``lang``, with ``tts``'s graphs."""
        if not hasattr(tts, "gpt"):
            raise TtsoptError("a voice from a recording and its transcript prompts the GPT: this package has no GPT "
                              "(export it with --gpt s1.ckpt)")
        if SSL not in tts.manifest.graphs:
            raise TtsoptError(HUBERT_HINT)
        from ttsopt.runtime.text import package_langdetect

        sentence = transcript_phones(text, lang, tts.phonemes.symbols, tts.phonemes.version, tts.g2pw,
                                     langdetect=package_langdetect(tts.package))
        audio16k = load_16k(recording)  # the 3-10 s bound, before any graph runs
        codes = prompt_tokens(tts, audio16k.wav16k)
        phone_ids = tts.phonemes.ids(" ".join(sentence.phones))
        arrays = sovits_arrays(tts, reference_at_model_rate(recording, tts.reference_rate), codes, phone_ids)
        return cls(prompt_tokens=codes, phone_ids=phone_ids, phones=tuple(sentence.phones), text=text, lang=lang,
                   seconds=round(audio16k.seconds, 4), model=model_identity(tts.manifest),
                   symbol_version=tts.phonemes.version, prompt_bert=transcript_bert(tts, sentence),
                   norm_text=sentence.norm_text, source=audio16k.source, **arrays)

    # -- the file ------------------------------------------------------------------------------------

    def header(self) -> dict:
        return {"format": FORMAT, "version": VERSION, "model": self.model, "symbol_version": self.symbol_version,
                "text": self.text, "lang": self.lang, "norm_text": self.norm_text, "phones": list(self.phones),
                "seconds": self.seconds, "prompt_tokens": int(self.prompt_tokens.size),
                "prompt_bert": self.prompt_bert is not None, "sv": self.sv is not None, "kind": self.kind}

    def to_bytes(self) -> bytes:
        arrays = {"header": np.frombuffer(json.dumps(self.header(), ensure_ascii=False).encode(), np.uint8),
                  "prompt_tokens": self.prompt_tokens.astype(np.int64), "phone_ids": self.phone_ids.astype(np.int64),
                  "ge": self.ge.astype(np.float32)}
        if self.sv is not None:
            arrays["sv"] = self.sv.astype(np.float32)
        if self.prompt_bert is not None:
            arrays["prompt_bert"] = self.prompt_bert.astype(np.float32)
        if self.prompt_mel is not None:
            arrays["prompt_mel"], arrays["prompt_fea"] = self.prompt_mel.astype(np.float32), self.prompt_fea.astype(np.float32)
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        return buffer.getvalue()

    def save(self, path: str | Path) -> Path:
        """Write the voice file atomically (a temporary sibling renamed into place): never half-written."""
        path = Path(path)
        if path.is_dir():
            raise TtsoptError(f"{path} is a folder: give a file name such as {path / ('NAME' + SUFFIX)}")
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = self.to_bytes()
        scratch = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            with open(scratch, "xb") as sink:  # the umask's permissions, like any file the user writes
                sink.write(payload)
                sink.flush()
                os.fsync(sink.fileno())
            os.replace(scratch, path)
        except BaseException:
            Path(scratch).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def load(cls, path: str | Path, tts: TextToSpeech | None = None) -> Voice:
        """Read a voice file; with ``tts``, refuse it unless it was made with that package's model."""
        path = Path(path)
        if not path.is_file():
            raise TtsoptError(f"voice file not found: {path}: make one with `ttsopt voice PKG --reference ref.wav --text ...`")
        return cls.from_bytes(path.read_bytes(), tts, str(path))

    @classmethod
    def from_bytes(cls, payload: bytes, tts: TextToSpeech | None = None, name: str = "voice") -> Voice:
        try:
            with np.load(io.BytesIO(payload), allow_pickle=False) as stored:
                arrays = {key: stored[key] for key in stored.files}
            header = json.loads(arrays.pop("header").tobytes().decode())
        except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError, UnicodeDecodeError) as exc:
            raise TtsoptError(f"{name} is not a readable voice file ({type(exc).__name__}: it is truncated or not a "
                              f"{SUFFIX} file): make it again with `ttsopt voice`") from None
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise TtsoptError(f"{name} is not a ttsopt voice file: make one with `ttsopt voice`")
        if header.get("version") != VERSION:
            raise TtsoptError(f"{name} is a version {header.get('version')} voice file; this ttsopt reads version {VERSION}: "
                              "make it again with this ttsopt's `ttsopt voice`")
        kind = header.get("kind", KIND_V2)
        if kind not in (KIND_V2, KIND_V4):
            raise TtsoptError(f"{name} is a voice of kind {str(kind)[:40]!r}; this ttsopt reads {KIND_V2} and {KIND_V4} voices: "
                              "make it again with this ttsopt's `ttsopt voice`")
        missing = {"prompt_tokens", "phone_ids", "ge"} - set(arrays)
        if kind == KIND_V4:
            missing |= {"prompt_mel", "prompt_fea"} - set(arrays)
        if missing:
            raise TtsoptError(f"{name} lacks {', '.join(sorted(missing))}: it is damaged; make it again with `ttsopt voice`")
        voice = cls(prompt_tokens=arrays["prompt_tokens"].astype(np.int64), phone_ids=arrays["phone_ids"].astype(np.int64),
                    phones=tuple(header["phones"]), ge=arrays["ge"].astype(np.float32), text=header["text"],
                    lang=header["lang"], seconds=float(header["seconds"]), model=dict(header["model"]),
                    symbol_version=header["symbol_version"], prompt_bert=arrays.get("prompt_bert"),
                    sv=arrays.get("sv"), norm_text=header.get("norm_text", ""),
                    prompt_mel=arrays.get("prompt_mel") if kind == KIND_V4 else None,
                    prompt_fea=arrays.get("prompt_fea") if kind == KIND_V4 else None, source=name)
        bert = voice.prompt_bert
        if bert is not None and (bert.ndim != 2 or bert.shape[1] != voice.phone_ids.size):
            raise TtsoptError(f"{name} has prompt BERT features of shape {list(bert.shape)} for {voice.phone_ids.size} "
                              "transcript phones: it is damaged; make it again with `ttsopt voice`")
        mel, fea = voice.prompt_mel, voice.prompt_fea
        if mel is not None and (mel.ndim != 3 or fea.ndim != 3 or mel.shape[0] != 1 or fea.shape[0] != 1
                                or mel.shape[-1] != fea.shape[-1] or mel.shape[-1] == 0):
            raise TtsoptError(f"{name} has a v4 prompt window of shapes {list(mel.shape)} and {list(fea.shape)} (mel and cond "
                              "features of one length): it is damaged; make it again with `ttsopt voice`")
        if tts is not None:
            voice.check_package(tts, name)
        return voice

    def check_package(self, tts, name: str = "the voice") -> None:
        """Refuse a voice made for another kind of package, with another model, or whose arrays do not fit this package."""
        kind = package_kind(tts.manifest)
        if self.kind != kind:
            raise TtsoptError(f"{name} is a voice for {self.kind} packages and this package is {kind}: make the voice again "
                              f"with this package (`ttsopt voice PKG --reference ref.wav --text ...`)")
        own = model_identity(tts.manifest)
        if self.model != own:
            raise TtsoptError(f"{name} was made with another model (SoVITS sha256 {self.model.get('sovits', '?')[:12]}…, "
                              f"this package's is {own.get('sovits', '?')[:12]}…): make the voice again with this "
                              f"package (`ttsopt voice PKG --reference ref.wav --text ...`)")
        latent = tts.manifest.graphs["latent"]
        gin = next(spec.shape[1] for spec in latent.inputs if spec.name == "ge")  # the graph that reads ge says its size
        window_fits = self.prompt_mel is None or (
            self.prompt_mel.shape[1] == tts.mel_bins and self.prompt_fea.shape[1] == latent.outputs[0].shape[1]
            and self.prompt_mel.shape[-1] <= tts.t_ref)
        if self.ge.shape != (1, gin, 1) or self.phone_ids.size != len(self.phones) or not window_fits or (
                self.phone_ids.size and int(self.phone_ids.max()) >= len(tts.phonemes.symbols)):
            raise TtsoptError(f"{name} does not fit this package (its arrays are damaged): make it again with `ttsopt voice`")

    def describe(self) -> dict:
        """JSON-ready summary: what ``ttsopt voice --json`` prints (compare with the official code's prompt)."""
        return {"text": self.text, "lang": self.lang, "norm_text": self.norm_text, "seconds": self.seconds,
                "prompt_tokens": self.prompt_tokens.tolist(), "phones": list(self.phones),
                "phone_ids": self.phone_ids.tolist(), "model": self.model, "prompt_bert": self.prompt_bert is not None,
                "sv": self.sv is not None, "kind": self.kind,
                **({} if self.prompt_mel is None else {"prompt_frames": int(self.prompt_mel.shape[-1])})}


def transcript_phones(text: str, lang: str, symbols: list[str], version: str, g2pw: G2PW | None = None,
                      langdetect: Path | None = None):
    """The transcript as the official code reads a prompt text: the closing-mark rule, then one sentence of the
    text front end (:class:`~ttsopt.runtime.text.Sentence`; ``g2pw``: the package's, for Chinese polyphones;
    ``langdetect``: its fastText model for the language segmentation);
    refused when empty or when nothing is readable."""
    from ttsopt.runtime.text import PUNCTUATION_PHONES, check_language, sentence_phones

    if not isinstance(text, str):
        raise TtsoptError("the transcript must be text")
    check_language(lang, version)
    sentence = sentence_phones(prompt_text(text, lang), lang, version, set(symbols), g2pw, langdetect)
    if not set(sentence.phones) - PUNCTUATION_PHONES:
        raise TtsoptError(f"nothing in the transcript {text!r} can be read as {lang!r}: check the language, or write the words out")
    return sentence


def prompt_tokens(tts, wav16k: np.ndarray) -> np.ndarray:
    """The official prompt codes of a 16 kHz reference: padding → ``ssl`` → ``prompt_codes``."""
    if SSL not in tts.manifest.graphs:
        raise TtsoptError(HUBERT_HINT)
    waveform = hubert_input(wav16k, padding_samples(tts.reference_rate))[None]
    features = tts.package.run(SSL, {"waveform": waveform})["ssl"]
    return tts.prompt_codes(features).astype(np.int64)


def sovits_arrays(tts, wav: np.ndarray, codes: np.ndarray, phone_ids: np.ndarray) -> dict[str, np.ndarray | None]:
    """What SoVITS takes of a recording at :attr:`reference_rate`: v1/v2 its ``ge`` (v2Pro/v2ProPlus: and ``sv``);
    v4 ``ge`` and the prompt window, by the package's own :meth:`~ttsopt.runtime.sovits_v4.V4Synthesizer.make_voice`
    (which needs the prompt tokens and the transcript's phone ids: the window's cond features are theirs)."""
    from ttsopt.runtime.sovits_v4 import V4Synthesizer

    if isinstance(tts, V4Synthesizer):
        made = tts.make_voice(wav, codes, phone_ids)
        return {"ge": made.ge.astype(np.float32), "prompt_mel": made.prompt.mel, "prompt_fea": made.prompt.fea}
    inputs = tts.reference_inputs(wav)
    return {"ge": tts.package.run("reference_encoder", inputs)["ge"].astype(np.float32), "sv": inputs.get("sv")}


def reference_at_model_rate(recording: Recording, sample_rate: int) -> np.ndarray:
    """The recording mono at the SoVITS rate (what the reference spectrogram, SV embedding and v4 mel are made of)."""
    from ttsopt.audio.io import read_wav, resample

    if not isinstance(recording, tuple):
        return read_wav(recording, sample_rate)
    audio, rate, _ = read_audio(recording)
    wav = to_mono(audio)
    return wav if rate == sample_rate else resample(wav, rate, sample_rate)


__all__ = ["FORMAT", "HUBERT_HINT", "KIND_V2", "KIND_V4", "SUFFIX", "VERSION", "Voice", "model_identity", "package_kind",
           "prompt_text", "prompt_tokens", "transcript_phones"]
