"""The HiFi-GAN family: one vocoder graph (``mel → audio``), checked by copy synthesis, benchmarked over
audio lengths of real speech."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ttsopt.audio.mel import MelSettings, log_mel
from ttsopt.families.contract import Family, Feed, Workload

GRAPH = "vocoder"


class HiFiGAN(Family):
    name = "hifigan"
    roles = ("generator",)
    usage = "a HiFi-GAN checkpoint (ttsopt export generator.pth.tar)"

    def recognize_state(self, state: Any) -> str | None:
        if isinstance(state, Mapping) and ("generator" in state or any(str(k).startswith(("conv_pre.", "ups.0.")) for k in state)):
            return "a HiFi-GAN generator/vocoder checkpoint"
        return None

    def plan(self, sources, speech):
        from ttsopt.families.hifigan import spec

        return spec.plan(sources, speech)

    def load_eager(self, manifest, checkpoint=None, config=None):
        from ttsopt.families.hifigan import spec

        return spec.load_eager(manifest, checkpoint, config)

    def quantization(self):
        from ttsopt.compiler.passes import StaticInt8

        return {GRAPH: StaticInt8()}

    def calibration_feeds(self, package, recordings: Sequence[np.ndarray]) -> dict[str, list[Feed]]:
        """Calibration recordings as the vocoder's inputs: their log-mel spectrograms (the model's own front end)."""
        mel = MelSettings(**package.manifest.audio["mel"])
        return {GRAPH: [{"mel": log_mel(wav, mel)[None]} for wav in recordings]}

    def reference_checks(self, model, report, references, original, original_config):
        from ttsopt.verify.copy_synthesis import check_copy_synthesis

        return check_copy_synthesis(model, report, references, original, original_config)

    def workload(self, model: Any, seconds: float) -> tuple[Workload, Callable[[Any], Any]]:
        """Real speech: the first golden mel tiled to ``seconds``."""
        hop = model.manifest.audio["mel"]["hop_length"]
        frames = max(1, round(seconds * model.sample_rate / hop))
        golden = model.package.golden
        mel = golden.inputs(golden.items[0]["name"])["mel"][0]
        reps = -(-frames // mel.shape[1])
        inputs = np.ascontiguousarray(np.tile(mel, (1, reps))[:, :frames][None])
        return Workload(inputs, frames * hop / model.sample_rate), model.vocode


FAMILY = HiFiGAN()

__all__ = ["FAMILY", "GRAPH", "HiFiGAN"]
