"""The API of a GPT-SoVITS v4 package: semantic tokens + phonemes + a voice → 48 kHz speech (numpy + onnxruntime).

    >>> synth = ttsopt.runtime.load("build/v4")          # a v4 SoVITS package
    >>> audio = synth.synthesize(tokens, "n i2 h ao3 .", voice="alice", steps=8, seed=0)

A v4 voice is more than v2's ``ge``: the official v4 path has no reference-free mode, every synthesis is a
continuation of the reference recording's mel, prompted by its cond features. A stored voice therefore holds
``ge``, the prompt window's normalised mel and cond features (made at export by the original model:
"speaker folding" for v4) and, for the GPT, the prompt tokens and phonemes; :meth:`V4Synthesizer.make_voice`
makes one at run time from a 32 kHz recording, its prompt tokens and phonemes, and a
:class:`~ttsopt.runtime.voice.Voice` (``.voice`` file, ``Voice.from_recording``: HuBERT's prompt tokens and the
transcript's phones, then ``make_voice``) carries one for a text-to-speech package.

Synthesis: ``latent`` (target cond features) → the chunked CFM loop (:mod:`ttsopt.runtime.cfm`, ``dit_condition``
once per chunk, ``dit_step`` once per Euler step) → denormalise → ``vocoder``. The noise of each chunk is drawn
here (numpy, seeded, chunk after chunk) or given, so equal seeds give equal audio.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ttsopt.audio.io import read_wav
from ttsopt.errors import TtsoptError
from ttsopt.runtime import cfm
from ttsopt.runtime.package import Package
from ttsopt.runtime.phonemes import PhonemeTable
from ttsopt.runtime.sovits import SPEED_RANGE, Synthesizer, reference_spectrogram
from ttsopt.runtime.voice import Voice

#: The reference is read at the SoVITS rate (spectrogram for ge, mel_fn_v4 for the prompt mel).
REFERENCE_RATE = 32000


def latent_frames_v4(tokens: int, speed: float) -> tuple[int, int]:
    """``(frames, valid)`` of the cond features of ``tokens`` tokens at ``speed`` (see the latent graph)."""
    if speed == 1:
        return 4 * tokens, 4 * tokens
    return 2 * (int(2 * tokens / speed) + 1), int(4 * tokens / speed) + 1


@dataclass(frozen=True)
class V4Voice:
    """What a v4 synthesis is conditioned on: ``ge [1, gin, 1]`` and the prompt window (mel + cond features)."""

    ge: np.ndarray
    prompt: cfm.Prompt


class V4Synthesizer(Synthesizer):
    """A v4 package's synthesis. A :class:`Synthesizer` for the CLI and servers (same ``synthesize`` signature);
    its own constructor, because a v4 manifest has other graphs and sizes than v1/v2."""

    def __init__(self, package: Package):  # noqa: D107 - Synthesizer.__init__ reads v2 graphs, not called
        self.package = package
        self.manifest = package.manifest
        self.settings = self.manifest.runtime
        self.sample_rate = self.manifest.sample_rate
        self.reference_rate = REFERENCE_RATE  # the v4 SoVITS's own rate (hps.data.sampling_rate); 48 kHz is the vocoder's
        config = self.manifest.model_config
        text = config["text"]
        self.codebook_size = int(text["codebook_size"])
        self.reference = {"n_fft": int(text["filter_length"]), "hop_length": int(text["hop_length"]),
                          "win_length": int(text["win_length"]), "bins": int(text["v2_reference_bins"])}
        self.speaker_verification = False
        self.phonemes = PhonemeTable.from_file(package.path / self.settings["symbols"], config["symbol_version"])
        with np.load(package.path / self.settings["voices_file"]) as stored:
            self.voice_data: dict[str, np.ndarray] = {key: stored[key] for key in stored.files}
        self.voices = {key: value for key, value in self.voice_data.items() if "/" not in key}
        latent = self.manifest.graphs["latent"]
        self.max_tokens, self.max_phonemes = latent.dims["tokens"].max, latent.dims["phonemes"].max
        self.max_frames = latent.dims["frames"].max
        self.mel_bins = int(config["sizes"]["dit"]["mel_dim"])
        self.hop = int(config["vocoder"]["hop"])  # output samples per mel frame (480 at 48 kHz)
        self.inter_channels = self.mel_bins
        self.context_frames = int(self.settings.get("vocoder_context_frames", 0))
        loop = self.settings["cfm"]
        self.default_steps, self.t_ref, self.t_chunk = int(loop["steps"]), int(loop["t_ref"]), int(loop["t_chunk"])

    # -- voices --------------------------------------------------------------------------------

    def voice(self, name: str) -> V4Voice:  # type: ignore[override]
        if name not in self.voices:
            known = ", ".join(sorted(self.voices)) or "none (export with --voice NAME=ref.wav:prompt_tokens.npy:\"phonemes\")"
            raise TtsoptError(f"voice {name!r} is not in this package (voices: {known})")
        return V4Voice(self.voices[name], cfm.Prompt(self.voice_data[f"{name}/prompt_mel"], self.voice_data[f"{name}/prompt_fea"]))

    def bench_voice(self) -> tuple[str | None, V4Voice]:
        """The first stored voice, or for a package that stores none (voices made at run time) the golden voice of its
        verification chain (made at export from the bundled speech): what ``bench`` and ``measure`` speak with."""
        if self.voices:
            name = sorted(self.voices)[0]
            return name, self.voice(name)
        with np.load(self.package.path / self.settings["v4_reference"]) as chain:
            return None, V4Voice(chain["chain/ge"], cfm.Prompt(chain["chain/prompt_mel"], chain["chain/prompt_fea"]))

    def _voice(self, voice: str | V4Voice | Voice | None) -> V4Voice:
        if isinstance(voice, V4Voice):
            return voice
        if isinstance(voice, Voice):
            voice.check_package(self)  # a v1/v2 voice, or one of another model: refused in one line
            return V4Voice(voice.ge, cfm.Prompt(voice.prompt_mel, voice.prompt_fea))
        if voice is None:
            if not self.voices:
                raise TtsoptError("this package stores no voice: give --voice NAME.voice (made with `ttsopt voice PKG --reference "
                                  "ref.wav --text TRANSCRIPT --lang LANG`) or --reference ref.wav --reference-text TRANSCRIPT "
                                  "--reference-lang LANG")
            if len(self.voices) != 1:
                raise TtsoptError(f"say which voice: --voice NAME (package voices: {', '.join(sorted(self.voices))})")
            voice = next(iter(self.voices))
        if not isinstance(voice, str):
            raise TtsoptError("a v4 model continues its reference's speech, so a bare embedding is not a v4 voice: pass a "
                              "voice stored in the package (--voice NAME), a .voice file made with `ttsopt voice`, or a V4Voice")
        return self.voice(voice)

    def _ge(self, voice):  # TextToSpeech checks the voice early through this
        return self._voice(voice).ge

    def voice_embedding(self, references: Sequence[str | Path | np.ndarray]) -> np.ndarray:
        raise TtsoptError("a v4 model continues its reference's speech and needs what was said in it: give the transcript "
                          "too (--reference-text TEXT --reference-lang LANG, `ttsopt voice`, api_v2's prompt_text) or use "
                          "a voice stored in the package (--voice NAME)")

    def make_voice(self, wav_32k: np.ndarray, prompt_tokens: np.ndarray, prompt_phonemes: str | Sequence[int]) -> V4Voice:
        """A voice from a recording at 32 kHz, its semantic tokens and its phonemes (what export stores, and what
        ``Voice.from_recording`` keeps in a ``.voice`` file)."""
        wav = np.asarray(wav_32k, dtype=np.float32).reshape(-1)
        if wav.size < REFERENCE_RATE // 10:
            raise TtsoptError(f"a reference of {wav.size / REFERENCE_RATE * 1000:.0f} ms is too short: give 3-10 s of speech")
        ge = self.package.run("reference_encoder", {"spectrogram": reference_spectrogram(wav, **self.reference)})["ge"]
        tokens, ids = self._tokens(prompt_tokens), self.phoneme_ids(prompt_phonemes)
        fea_ref = self.features(tokens, ids, ge, 1.0)
        return V4Voice(ge, cfm.prompt_window(cfm.normalize(cfm.reference_mel(wav)), fea_ref, self.t_ref))

    def voice_from_file(self, path: str | Path, prompt_tokens: np.ndarray, prompt_phonemes: str) -> V4Voice:
        return self.make_voice(read_wav(path, REFERENCE_RATE), prompt_tokens, prompt_phonemes)

    # -- synthesis -----------------------------------------------------------------------------

    def features(self, tokens: np.ndarray, ids: np.ndarray, ge: np.ndarray, speed: float) -> np.ndarray:
        """Cond features ``[1, C, frames]`` of checked tokens and phoneme ids (official ``decode_encp``)."""
        frames, valid = latent_frames_v4(tokens.size, speed)
        if frames > self.max_frames:
            raise TtsoptError(f"{tokens.size} tokens at speed {speed:g} make {frames} frames; this package takes at "
                              f"most {self.max_frames}: split the utterance")
        mask = (np.arange(frames) < valid).astype(np.float32)[None, None]
        return self.package.run("latent", {"tokens": tokens[None], "phonemes": ids[None], "ge": ge, "mask": mask})["fea"]

    def _condition(self, fea: np.ndarray) -> np.ndarray:
        return self.package.run("dit_condition", {"fea": fea})["text_embed"]

    def _step(self, x: np.ndarray, prompt: np.ndarray, text_embed: np.ndarray, t: np.ndarray, d: np.ndarray) -> np.ndarray:
        return self.package.run("dit_step", {"x": x, "prompt": prompt, "text_embed": text_embed, "t": t, "d": d})["v"]

    def mel(self, fea_todo: np.ndarray, voice: V4Voice, steps: int, noise: np.ndarray | None = None,
            seed: int | None = None, cfg_rate: float = 0.0) -> np.ndarray:
        """Normalised log-mel ``[1, mel, frames]`` of the target cond features, chunk by official chunk.

        ``noise``: the chunks' starting noise concatenated along time (chunk ``i`` takes the next prompt +
        chunk frames); else drawn from ``seed`` chunk after chunk.
        """
        cfm.check_steps(steps)
        rng = np.random.default_rng(seed)
        used = 0

        def start(index: int, length: int) -> np.ndarray:
            nonlocal used
            if noise is None:
                return rng.standard_normal((1, self.mel_bins, length), dtype=np.float32)
            piece = noise[..., used:used + length]
            used += length
            if piece.shape[-1] != length:
                raise TtsoptError(f"the given noise has {noise.shape[-1]} frames, fewer than the chunks need")
            return piece

        pieces = cfm.generate(self._condition, self._step, voice.prompt, fea_todo, steps, start, cfg_rate)
        return np.concatenate(list(pieces), axis=2)

    def noise_frames(self, tokens: int, voice: V4Voice, speed: float = 1.0) -> int:
        """Noise frames :meth:`mel` draws for ``tokens`` tokens: every chunk's prompt + chunk frames."""
        frames = latent_frames_v4(tokens, speed)[0]
        size = self.t_chunk - voice.prompt.frames
        return frames + voice.prompt.frames * -(-frames // size)

    def vocode(self, mel: np.ndarray, ge: np.ndarray | None = None, chunk_frames: int | None = None) -> np.ndarray:
        """Denormalised log-mel ``[1, mel, frames]`` → waveform at 48 kHz."""
        return self.package.run("vocoder", {"mel": np.ascontiguousarray(mel, dtype=np.float32)})["audio"].reshape(-1)

    def vocode_stream(self, chunks: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        """Audio pieces of denormalised mel chunks arriving in order, equal to vocoding their concatenation.

        Each piece is vocoded with the vocoder's receptive field (``vocoder_context_frames``, measured at export)
        of mel on both sides, so a chunk's last frames wait for the next chunk's first ones.
        """
        context, hop = self.context_frames, self.hop
        mel = np.zeros((1, self.mel_bins, 0), np.float32)
        done = 0

        def span(start: int, stop: int) -> np.ndarray:
            lo, hi = max(0, start - context), min(mel.shape[-1], stop + context)
            return self.vocode(mel[..., lo:hi])[(start - lo) * hop:(stop - lo) * hop]

        for chunk in chunks:
            mel = np.concatenate([mel, chunk], axis=2)
            ready = mel.shape[-1] - context
            if ready > done:
                yield span(done, ready)
                done = ready
        if mel.shape[-1] > done:
            yield span(done, mel.shape[-1])

    def synthesize_stream(self, tokens: np.ndarray, phonemes: str | Sequence[int] | np.ndarray,
                          voice: str | V4Voice | Voice | None = None, speed: float = 1.0, seed: int | None = None,
                          steps: int | None = None) -> Iterator[np.ndarray]:
        """:meth:`synthesize` in pieces, one per official CFM chunk (the same audio, concatenated)."""
        tokens, ids, chosen = self._tokens(tokens), self.phoneme_ids(phonemes), self._voice(voice)
        steps = self.default_steps if steps is None else steps
        cfm.check_steps(steps)
        fea = self.features(tokens, ids, chosen.ge, speed)
        rng = np.random.default_rng(seed)
        pieces = cfm.generate(self._condition, self._step, chosen.prompt, fea, steps,
                              lambda index, length: rng.standard_normal((1, self.mel_bins, length), dtype=np.float32))
        yield from self.vocode_stream(cfm.denormalize(piece) for piece in pieces)

    def synthesize(self, tokens: np.ndarray, phonemes: str | Sequence[int] | np.ndarray,
                   voice: str | V4Voice | Voice | None = None, noise_scale: float = 0.5, speed: float = 1.0,
                   seed: int | None = None, noise: np.ndarray | None = None, steps: int | None = None,
                   cfg_rate: float = 0.0) -> np.ndarray:
        """Semantic tokens (25 Hz, EOS removed) + target phonemes → float32 waveform at 48 kHz.

        ``noise_scale`` has no meaning for v4 (the CFM starts from unit noise) and is ignored; ``steps`` is
        the number of Euler steps (4/8/16/32, default the package's, 8).
        """
        tokens, ids, chosen = self._tokens(tokens), self.phoneme_ids(phonemes), self._voice(voice)
        if not SPEED_RANGE[0] <= speed <= SPEED_RANGE[1]:
            raise TtsoptError(f"speed {speed:g} is outside {SPEED_RANGE[0]:g}..{SPEED_RANGE[1]:g}")
        steps = self.default_steps if steps is None else steps
        cfm.check_steps(steps)
        fea = self.features(tokens, ids, chosen.ge, speed)
        return self.vocode(cfm.denormalize(self.mel(fea, chosen, steps, noise, seed, cfg_rate)))

    def decode(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """The chain on prepared arrays (``tokens, phonemes, ge, prompt_mel, prompt_fea, noise, steps``)."""
        voice = V4Voice(inputs["ge"], cfm.Prompt(inputs["prompt_mel"], inputs["prompt_fea"]))
        fea = self.features(inputs["tokens"][0], inputs["phonemes"][0], voice.ge, 1.0)
        mel = self.mel(fea, voice, int(inputs["steps"][0]), noise=inputs["noise"])
        return self.vocode(cfm.denormalize(mel))

    def latent(self, *args, **kwargs):  # noqa: D102 - no v2 latent (z) in a v4 package
        raise TtsoptError("a v4 package has no v2 latent (z): use synthesize()")
