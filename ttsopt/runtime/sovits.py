"""The SoVITS API of a package: semantic tokens + phonemes + a voice → 32 kHz speech (numpy + onnxruntime).

    >>> synth = ttsopt.runtime.load("build/sovits-cpu")
    >>> audio = synth.synthesize(tokens, "n i2 h ao3 .", voice="alice", noise_scale=0.5, seed=0)

A voice is either a name stored in the package (its ``ge`` computed at export: the reference encoder
never runs for it), a :class:`~ttsopt.runtime.voice.Voice` (a ``.voice`` file), or reference recordings,
encoded on the fly by the ``reference_encoder`` graph and averaged. v2Pro/v2ProPlus packages also hold a
``speaker_verification`` graph: a recording's 16 kHz Kaldi fbank (numpy, :mod:`ttsopt.audio.kaldi`) gives its
``sv`` embedding, which the reference encoder takes beside the spectrogram; stored voices have it folded into their ``ge``.

The noise of the prior is drawn here (numpy, seeded) and passed to the ``latent`` graph, so equal seeds
give equal audio; numpy's generator is not torch's, so a seed does not reproduce the official code's draw for
the same seed (pass ``noise=`` to reproduce a given draw exactly).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from ttsopt.audio.io import read_wav
from ttsopt.audio.kaldi import sv_features
from ttsopt.audio.mel import linear_spectrogram
from ttsopt.errors import TtsoptError
from ttsopt.runtime.package import Package
from ttsopt.runtime.phonemes import PhonemeTable
from ttsopt.runtime.prompt import MAX_SAMPLES, MIN_SAMPLES, SSL_RATE
from ttsopt.runtime.sampling import resolve_seed
from ttsopt.runtime.voice import Voice

SYMBOLS_FILE = "symbols.json"
VOICES_FILE = "voices.npz"
SPEED_RANGE = (0.25, 4.0)
#: The graph of v2Pro/v2ProPlus packages that embeds a reference for speaker verification.
SPEAKER_VERIFICATION = "speaker_verification"


def check_reference_length(samples: int, sample_rate: int, name: str | Path) -> None:
    """Refuse a reference outside the official 3-10 s, counted as the official code counts it and with the bound
    :mod:`ttsopt.runtime.prompt` holds for every recording that becomes a voice: samples at 16 kHz (``samples`` at
    ``sample_rate`` resampled, as librosa rounds up)."""
    at_16k = int(math.ceil(int(samples) * float(SSL_RATE) / int(sample_rate)))
    if not MIN_SAMPLES <= at_16k <= MAX_SAMPLES:
        raise TtsoptError(f"reference recording {name} is {samples / sample_rate:.2f} s long; GPT-SoVITS takes "
                          f"{MIN_SAMPLES // SSL_RATE}-{MAX_SAMPLES // SSL_RATE} s (the official bound): "
                          + ("give a longer recording" if at_16k < MIN_SAMPLES else "cut it to 10 s or less of clean speech"))


def check_reference_file(path: str | Path) -> None:
    """:func:`check_reference_length` from a file's header (nothing decoded): what a command checks before it works."""
    import soundfile

    try:
        info = soundfile.info(str(path))
    except Exception:  # unreadable or missing: read_wav says so in its own words when the file is read
        return
    check_reference_length(info.frames, info.samplerate, path)


def read_reference(path: str | Path, sample_rate: int) -> np.ndarray:
    """A reference recording at ``sample_rate``, refused outside the official 3-10 s."""
    wav = read_wav(path, sample_rate)
    check_reference_length(wav.size, sample_rate, path)
    return wav


def reference_waveform(wav: np.ndarray) -> np.ndarray:
    """The official reference normalisation: a waveform peaking above 1 is divided by ``min(2, peak)``."""
    peak = float(np.max(np.abs(wav))) if wav.size else 0.0
    return (wav / min(2.0, peak)).astype(np.float32) if peak > 1.0 else wav.astype(np.float32)


def reference_spectrogram(wav: np.ndarray, n_fft: int, hop_length: int, win_length: int, bins: int) -> np.ndarray:
    """``[1, bins, frames]``: the official reference normalisation, then the part of the linear spectrogram
    the reference encoder reads (v2: the lowest 704 of 1025 bins)."""
    spec = linear_spectrogram(reference_waveform(np.asarray(wav, dtype=np.float32).reshape(-1)), n_fft, hop_length, win_length)
    return spec[None, :bins]


def reference_sv_features(wav: np.ndarray, sample_rate: int) -> np.ndarray:
    """``[1, T, 80]`` fbank of the normalised reference (the same waveform the spectrogram is made of), at 16 kHz."""
    return sv_features(reference_waveform(np.asarray(wav, dtype=np.float32).reshape(-1)), sample_rate)


def latent_frames(tokens: int, speed: float) -> int:
    """Prior length for ``tokens`` codes at ``speed``: ``2T`` at speed 1, else ``int(2T / speed) + 1`` (official rule)."""
    return 2 * tokens if speed == 1 else int(2 * tokens / speed) + 1


def check_synthesis(speed: float, noise_scale: float) -> None:
    """Refuse a speed or noise scale the graphs cannot use, before any work is done."""
    if not SPEED_RANGE[0] <= speed <= SPEED_RANGE[1]:
        raise TtsoptError(f"speed {speed:g} is outside {SPEED_RANGE[0]:g}..{SPEED_RANGE[1]:g}")
    if noise_scale < 0 or not np.isfinite(noise_scale):
        raise TtsoptError(f"noise scale must be >= 0, got {noise_scale}")


class Synthesizer:
    def __init__(self, package: Package):
        self.package = package
        self.manifest = package.manifest
        self.settings = self.manifest.runtime
        self.sample_rate = self.manifest.sample_rate
        #: The SoVITS model's own rate (official ``hps.data.sampling_rate``): a reference is read at it, and HuBERT's
        #: zero padding is 0.3 × it. The output rate for v1/v2; v4 outputs 48 kHz but reads references at 32 kHz.
        self.reference_rate = self.sample_rate
        config = self.manifest.model_config  # the model's sizes: one copy, written at export
        self.hop, self.inter_channels = int(config["hop_length"]), int(config["inter_channels"])
        self.codebook_size = int(config["codebook_size"])
        self.reference = {"n_fft": int(config["filter_length"]), "hop_length": self.hop, "win_length": int(config["win_length"]),
                          "bins": int(self.manifest.graphs["reference_encoder"].inputs[0].shape[1])}
        self.context_frames = int(self.settings["generator_context_frames"])
        self.phonemes = PhonemeTable.from_file(package.path / self.settings["symbols"],
                                               config.get("symbol_version", config["version"]))
        self.speaker_verification = SPEAKER_VERIFICATION in self.manifest.graphs
        with np.load(package.path / self.settings["voices_file"]) as stored:
            self.voice_data: dict[str, np.ndarray] = {key: stored[key] for key in stored.files}
        #: name -> ge; a GPT package also keeps each voice's prompt under "name/prompt_tokens", "name/prompt_phonemes".
        self.voices = {key: value for key, value in self.voice_data.items() if "/" not in key}
        latent = self.manifest.graphs["latent"]
        self.max_tokens, self.max_phonemes = latent.dims["tokens"].max, latent.dims["phonemes"].max
        self.max_frames = latent.dims["frames"].max
        for graph in ("latent", "generator"):
            package.session(graph)  # created now, so the first call is as fast as the rest

    # -- inputs --------------------------------------------------------------------------------

    def phoneme_ids(self, phonemes: str | Sequence[int] | np.ndarray) -> np.ndarray:
        if isinstance(phonemes, str):
            return self.phonemes.ids(phonemes, limit=self.max_phonemes)
        ids = np.asarray(phonemes, dtype=np.int64).reshape(-1)
        if ids.size == 0 or ids.min() < 0 or ids.max() >= len(self.phonemes.symbols):
            raise TtsoptError(f"phoneme ids must be 0..{len(self.phonemes.symbols) - 1} and not empty")
        return ids

    def _tokens(self, tokens: np.ndarray) -> np.ndarray:
        tokens = np.asarray(tokens)
        if tokens.dtype.kind not in "iu":
            raise TtsoptError(f"semantic tokens must be integers, got {tokens.dtype}: save them as int64")
        tokens = tokens.reshape(-1).astype(np.int64)
        size = self.codebook_size
        if tokens.size == 0:
            raise TtsoptError("no semantic tokens given")
        if tokens.min() < 0 or tokens.max() >= size:
            raise TtsoptError(f"semantic token {int(tokens.max() if tokens.max() >= size else tokens.min())} is outside "
                              f"0..{size - 1}: remove the EOS token ({size}) and any padding")
        if tokens.size > self.max_tokens:
            raise TtsoptError(f"{tokens.size} tokens ({tokens.size / 25:.0f} s); this package takes at most "
                              f"{self.max_tokens} per call: split the utterance")
        return tokens

    def reference_spectrogram(self, wav: np.ndarray) -> np.ndarray:
        """``[1, bins, frames]`` spectrogram the reference encoder reads, of a waveform at :attr:`sample_rate`."""
        return reference_spectrogram(wav, **self.reference)

    def reference_inputs(self, wav: np.ndarray) -> dict[str, np.ndarray]:
        """The ``reference_encoder`` graph's inputs for a waveform at :attr:`sample_rate` (v2Pro/v2ProPlus: runs the
        ``speaker_verification`` graph for ``sv``)."""
        inputs = {"spectrogram": self.reference_spectrogram(wav)}
        if self.speaker_verification:
            if len(wav) < self.sample_rate // 40:
                raise TtsoptError(f"a reference of {len(wav) / self.sample_rate * 1000:.0f} ms is too short to embed: give 3-10 s of speech")
            inputs["sv"] = self.package.run(SPEAKER_VERIFICATION, {"fbank": reference_sv_features(wav, self.sample_rate)})["sv"]
        return inputs

    def voice_embedding(self, references: Sequence[str | Path | np.ndarray]) -> np.ndarray:
        """``ge`` ``[1, gin, 1]`` of one or more reference recordings (averaged, as the official code does)."""
        if not references:
            raise TtsoptError("no reference recording given")
        ges = []
        for reference in references:
            wav = reference if isinstance(reference, np.ndarray) else read_reference(reference, self.sample_rate)
            ges.append(self.package.run("reference_encoder", self.reference_inputs(wav))["ge"])
        return np.mean(ges, axis=0).astype(np.float32)

    def voice(self, name: str) -> np.ndarray:
        if name not in self.voices:
            known = ", ".join(sorted(self.voices)) or "none (export with --voice NAME=ref.wav, or pass --reference)"
            raise TtsoptError(f"voice {name!r} is not in this package (voices: {known})")
        return self.voices[name]

    def _ge(self, voice: str | np.ndarray | Voice | None) -> np.ndarray:
        if isinstance(voice, Voice):
            voice.check_package(self)
            return voice.ge
        if voice is None:
            if not self.voices:
                raise TtsoptError("this package stores no voice: give --reference ref.wav (3-10 s of speech; a text-to-speech "
                                  "package also takes --voice NAME.voice, made with `ttsopt voice`)")
            if len(self.voices) != 1:
                raise TtsoptError(f"say which voice: --voice NAME (package voices: {', '.join(sorted(self.voices))}) or --reference ref.wav")
            return next(iter(self.voices.values()))
        return self.voice(voice) if isinstance(voice, str) else np.asarray(voice, dtype=np.float32)

    # -- synthesis -----------------------------------------------------------------------------

    def latent(self, tokens: np.ndarray, phonemes: str | Sequence[int] | np.ndarray, voice: str | np.ndarray | None = None,
               noise_scale: float = 0.5, speed: float = 1.0, seed: int | None = None,
               noise: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(z [1, inter, frames], ge)``: everything before the generator."""
        tokens, ids, ge = self._tokens(tokens), self.phoneme_ids(phonemes), self._ge(voice)
        check_synthesis(speed, noise_scale)
        frames = latent_frames(tokens.size, speed)
        if frames > self.max_frames:
            raise TtsoptError(f"{tokens.size} tokens at speed {speed:g} make {frames} frames; this package takes at "
                              f"most {self.max_frames}: split the utterance")
        shape = (1, self.inter_channels, frames)
        if noise is None:
            noise = np.random.default_rng(resolve_seed(seed)).standard_normal(shape, dtype=np.float32)
        elif noise.shape != shape:
            raise TtsoptError(f"noise must have shape {list(shape)}, got {list(noise.shape)}")
        inputs = {"tokens": tokens[None], "phonemes": ids[None], "ge": ge, "noise": noise,
                  "noise_scale": np.array([noise_scale], dtype=np.float32)}
        return self.package.run("latent", inputs)["z"], ge

    def latent_prefix(self, tokens: np.ndarray, phoneme_ids: np.ndarray, ge: np.ndarray, noise: np.ndarray,
                      noise_scale: float) -> np.ndarray:
        """``z`` of checked inputs (streaming re-runs this on every token prefix; :meth:`latent` checks)."""
        inputs = {"tokens": tokens[None], "phonemes": phoneme_ids[None], "ge": ge, "noise": noise,
                  "noise_scale": np.array([noise_scale], dtype=np.float32)}
        return self.package.run("latent", inputs)["z"]

    def vocode_chunks(self, z: np.ndarray, ge: np.ndarray, chunk_frames: int) -> Iterator[np.ndarray]:
        """Waveform of ``z`` in pieces of ``chunk_frames`` latent frames (the last may be shorter).

        Each chunk runs the generator on its frames plus ``generator_context_frames`` (measured at
        export) on each side and keeps only its own samples, so the concatenation equals
        whole-utterance decoding; a streaming runtime can call this as latent frames arrive.
        """
        if chunk_frames < 1:
            raise TtsoptError("chunk size must be at least one latent frame")
        total, context = z.shape[-1], self.context_frames
        for start in range(0, total, chunk_frames):
            stop = min(total, start + chunk_frames)
            lo, hi = max(0, start - context), min(total, stop + context)
            audio = self.package.run("generator", {"z": z[:, :, lo:hi], "ge": ge})["audio"].reshape(-1)
            yield audio[(start - lo) * self.hop: (stop - lo) * self.hop]

    def vocode(self, z: np.ndarray, ge: np.ndarray, chunk_frames: int | None = None) -> np.ndarray:
        if chunk_frames is None:
            return self.package.run("generator", {"z": z, "ge": ge})["audio"].reshape(-1)
        return np.concatenate(list(self.vocode_chunks(z, ge, chunk_frames)))

    def synthesize(self, tokens: np.ndarray, phonemes: str | Sequence[int] | np.ndarray,
                   voice: str | np.ndarray | None = None, noise_scale: float = 0.5, speed: float = 1.0,
                   seed: int | None = None, noise: np.ndarray | None = None) -> np.ndarray:
        """Semantic tokens (25 Hz, EOS removed) + target phonemes → float32 waveform at :attr:`sample_rate`."""
        z, ge = self.latent(tokens, phonemes, voice, noise_scale, speed, seed, noise)
        return self.vocode(z, ge)

    def decode(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """The graphs on prepared arrays (``tokens, phonemes, ge, noise, noise_scale``), as benchmarks feed them."""
        z = self.package.run("latent", inputs)["z"]
        return self.package.run("generator", {"z": z, "ge": inputs["ge"]})["audio"].reshape(-1)

    def prompt_codes(self, ssl: np.ndarray) -> np.ndarray:
        """HuBERT features ``[768, S]`` (or ``[1, 768, S]``) → prompt semantic codes ``[S // 2]``."""
        ssl = np.asarray(ssl, dtype=np.float32)
        ssl = ssl[None] if ssl.ndim == 2 else ssl
        return self.package.run("prompt_codes", {"ssl": ssl})["codes"][0]
