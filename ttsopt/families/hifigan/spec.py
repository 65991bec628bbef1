"""Export spec of the HiFi-GAN vocoder: one graph, ``mel [batch, n_mels, frames] → audio [batch, 1, samples]``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ttsopt.audio.mel import MelSettings, log_mel
from ttsopt.compiler.folding import remove_weight_norm
from ttsopt.compiler.spec import ExportPlan, ExportSources, GoldenItem, GraphExport
from ttsopt.errors import TtsoptError
from ttsopt.families.hifigan.checkpoint import LoadedHiFiGAN, load_hifigan
from ttsopt.families.hifigan.model import HiFiGANGenerator
from ttsopt.package.manifest import DimRange, Manifest, TensorSpec

FAMILY = "hifigan"
TASK = "vocoder"
GRAPH = "vocoder"
#: The one checkpoint of this family, by role (``ExportSources.checkpoints``).
ROLE = "generator"
#: Mel frames a package accepts: 1 frame (≈ 12 ms) to 8192 frames (≈ 95 s at 22.05 kHz / hop 256).
FRAMES = DimRange(min=1, opt=256, max=8192)
BATCH = DimRange(min=1, opt=1, max=16)


def _model_config(loaded: LoadedHiFiGAN) -> dict:
    cfg = loaded.config
    return {
        "resblock": cfg.resblock, "upsample_rates": list(cfg.upsample_rates),
        "upsample_kernel_sizes": list(cfg.upsample_kernel_sizes),
        "upsample_initial_channel": cfg.upsample_initial_channel,
        "resblock_kernel_sizes": list(cfg.resblock_kernel_sizes),
        "resblock_dilation_sizes": [list(d) for d in cfg.resblock_dilation_sizes],
        "parameters": sum(p.numel() for p in loaded.model.parameters()),
    } | ({"pruning": loaded.pruning} if loaded.pruning else {})


def _run_torch(model: torch.nn.Module):
    def run(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with torch.inference_mode():
            return {"audio": model(torch.from_numpy(inputs["mel"])).numpy()}
    return run


def plan(sources: ExportSources, speech: Callable[[int], list[tuple[str, np.ndarray]]]) -> ExportPlan:
    """Load the checkpoint and describe its export; ``speech(rate)`` gives the verification recordings."""
    if sources.voices:
        raise TtsoptError("--voice applies to GPT-SoVITS packages; a HiFi-GAN vocoder has no voices")
    loaded = load_hifigan(sources.checkpoints[ROLE], sources.config)
    mel = MelSettings(**loaded.config.mel_settings())
    # A second instance, not copy.deepcopy: parametrized modules share their generated class with
    # their deep copies, so folding a copy would break the original.
    exported = HiFiGANGenerator(loaded.config, loaded.model.widths)
    exported.load_state_dict(loaded.model.state_dict())
    remove_weight_norm(exported)
    n_mels = loaded.config.num_mels
    graph = GraphExport(
        name=GRAPH,
        module=exported.eval(),
        # dynamo specialises sizes 0 and 1, so the example uses 2 utterances of 64 frames.
        example_inputs=(torch.randn(2, n_mels, 64),),
        inputs=(TensorSpec("mel", "float32", ("batch", n_mels, "frames"), kind="mel"),),
        outputs=(TensorSpec("audio", "float32", ("batch", 1, "samples"), kind="audio"),),
        dims={"batch": BATCH, "frames": FRAMES},
        check_sizes=({"batch": 1, "frames": 1}, {"batch": 1, "frames": 37}, {"batch": 3, "frames": 101}),
    )
    golden = [GoldenItem(name, GRAPH, {"mel": log_mel(wav, mel)[None]}) for name, wav in speech(loaded.config.sampling_rate)]
    return ExportPlan(
        family=FAMILY, task=TASK, model_config=_model_config(loaded),
        audio={"sample_rate": loaded.config.sampling_rate, "mel": mel.to_dict()},
        source={"config": str(loaded.config_path.resolve())},
        graphs=[graph], golden=golden, original={GRAPH: _run_torch(loaded.model)},
        # Every layer keeps the frame rate or multiplies it, so FLOPs are exactly linear in frames: 1 s is enough.
        cost_example=(exported, (torch.zeros(1, n_mels, 86),), 86 * loaded.config.hop_size / loaded.config.sampling_rate),
    )


def load_eager(manifest: Manifest, checkpoint: Path | None = None, config: Path | None = None):
    """The original checkpoint as PyTorch eager FP32, for ``bench`` and ``verify --original``:
    a callable ``mel [1, n_mels, frames] -> audio [samples]``."""
    loaded = load_hifigan(checkpoint or manifest.source["checkpoints"][ROLE],
                          config or (manifest.source.get("config") if checkpoint is None else None))
    if loaded.config.num_mels != manifest.audio["mel"]["n_mels"] or loaded.config.sampling_rate != manifest.sample_rate:
        raise TtsoptError(f"original checkpoint {loaded.checkpoint} is not the model this package was exported from "
                          f"({loaded.config.num_mels} mels at {loaded.config.sampling_rate} Hz): give the right --original")
    model = loaded.model

    def vocode(mel: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(np.ascontiguousarray(mel, dtype=np.float32))).numpy().reshape(-1)
    return vocode
