"""The vocoder API of a package: mel spectrogram (or a recording, via the model's own mel) → waveform."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ttsopt.audio.io import read_wav
from ttsopt.audio.mel import MelSettings, log_mel
from ttsopt.errors import TtsoptError
from ttsopt.runtime.package import Package

GRAPH = "vocoder"


class Vocoder:
    def __init__(self, package: Package):
        self.package = package
        self.manifest = package.manifest
        self.mel_settings = MelSettings(**self.manifest.audio["mel"])
        self.sample_rate = self.manifest.sample_rate
        self.n_mels = self.mel_settings.n_mels
        self.max_frames = self.manifest.graphs[GRAPH].dims["frames"].max
        package.session(GRAPH)  # created now, so the first vocode() is as fast as the rest

    def mel(self, audio: np.ndarray) -> np.ndarray:
        """The model's own log-mel ``[n_mels, frames]`` of a waveform at :attr:`sample_rate`."""
        return log_mel(audio, self.mel_settings)

    def mel_from_wav(self, path: str | Path) -> np.ndarray:
        return self.mel(read_wav(path, self.sample_rate))

    def _as_batch(self, mel: np.ndarray) -> np.ndarray:
        mel = np.asarray(mel)
        if mel.ndim == 3 and mel.shape[0] == 1:
            mel = mel[0]
        if mel.ndim != 2:
            raise TtsoptError(f"mel must be [n_mels, frames] (or [1, n_mels, frames]); got shape {list(mel.shape)}")
        if mel.shape[0] != self.n_mels:
            if mel.shape[1] == self.n_mels:
                mel = mel.T  # [frames, n_mels], the other common layout
            else:
                raise TtsoptError(f"mel has {mel.shape[0]} bins (shape {list(mel.shape)}); this vocoder takes "
                                  f"{self.n_mels}: compute it with the model's mel settings (ttsopt inspect shows them)")
        if not np.isfinite(mel).all():
            raise TtsoptError("mel contains NaN or Inf values: check how it was computed")
        if mel.shape[1] == 0:
            raise TtsoptError("mel has no frames")
        return np.ascontiguousarray(mel[None], dtype=np.float32)

    def vocode(self, mel: np.ndarray) -> np.ndarray:
        """Waveform (float32, ``frames × hop`` samples) of one log-mel spectrogram."""
        batch = self._as_batch(mel)
        if batch.shape[2] > self.max_frames:
            raise TtsoptError(f"mel has {batch.shape[2]} frames; this package takes at most {self.max_frames}: "
                              "split the utterance")
        return self.package.run(GRAPH, {"mel": batch})["audio"].reshape(-1)

    def resynthesize(self, path: str | Path) -> np.ndarray:
        """Copy synthesis: recording → the model's mel → waveform."""
        return self.vocode(self.mel_from_wav(path))
