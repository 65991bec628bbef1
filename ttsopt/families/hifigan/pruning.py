"""``ttsopt prune`` for HiFi-GAN V1–V3: what is prunable, the conv-step walker, the pruned checkpoint's format,
and the pipeline (fold → prune → refit → [distill] → measure against the original → gate → write).

Scopes. ``hidden``: only the channels between the two convs of each V1/V2 residual unit (``convs1`` outputs =
``convs2`` inputs); the residual streams keep their width (−24 % MACs at 25 % on V1, issue 16). ``all``: the
residual streams too (one group per upsampling stage, tied across its 3 resblocks by torch-pruning); V3
(``resblock: "2"``) has no hidden channels, only ``all`` prunes it. ``conv_pre`` (first layer) and ``conv_post``
(output) never lose output channels; ``conv_post`` loses inputs under ``all``, as the stream it reads narrows.

The pruned checkpoint stays a jik876 checkpoint: ``{'generator': state_dict}`` with the same keys
(``weight_g``/``weight_v``/``bias``, weight norm re-derived from the pruned weights), and a copy of the
original ``config.json`` plus a ``ttsopt_pruning`` key (the record; jik876's own code ignores unknown keys).
The channel counts are the tensors': ttsopt's loader reads them from there when that key is present (jik876's
``Generator`` derives them from ``upsample_initial_channel`` and cannot build a pruned model unchanged).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ttsopt.assets import CALIBRATION, VERIFICATION, bundled_recordings
from ttsopt.audio.io import read_wav
from ttsopt.audio.mel import MelSettings, log_mel
from ttsopt.compiler.cost import count_flops
from ttsopt.compiler.folding import remove_weight_norm
from ttsopt.compiler.prune import quality
from ttsopt.compiler.prune.graph import PruneScope
from ttsopt.errors import TtsoptError
from ttsopt.families.hifigan.checkpoint import PRUNING_KEY, LoadedHiFiGAN, load_hifigan
from ttsopt.families.hifigan.model import LRELU_SLOPE, HiFiGANGenerator, ResBlock1
from ttsopt.package.manifest import json_safe, sha256_file
from ttsopt.package.writer import check_destination, move_into_place, scratch_directory

SCOPES = ("hidden", "all")
CHECKPOINT_NAME = "generator.pth.tar"
CONFIG_NAME = "config.json"
PACKAGE_NAME = "package"
CROP_SECONDS = 1.0
#: Refit and distillation hold every crop's activations in memory; more speech than this is sampled evenly.
MAX_CROPS = 96


def conv_steps(model: HiFiGANGenerator, mel: torch.Tensor):
    """:meth:`HiFiGANGenerator.forward` as a generator: yields ``(name, conv, input)`` at each conv, is sent its
    output, returns the waveform (the refit's lockstep walker, :data:`ttsopt.compiler.prune.refit.ConvSteps`)."""
    x = yield "conv_pre", model.conv_pre, mel
    for i, up in enumerate(model.ups):
        x = yield f"ups.{i}", up, F.leaky_relu(x, LRELU_SLOPE)
        acc = None
        for j in range(i * model.num_kernels, (i + 1) * model.num_kernels):
            block, h = model.resblocks[j], x
            if isinstance(block, ResBlock1):
                for k in range(len(block.convs1)):
                    y = yield f"resblocks.{j}.convs1.{k}", block.convs1[k], F.leaky_relu(h, LRELU_SLOPE)
                    h = h + (yield f"resblocks.{j}.convs2.{k}", block.convs2[k], F.leaky_relu(y, LRELU_SLOPE))
            else:
                for k in range(len(block.convs)):
                    h = h + (yield f"resblocks.{j}.convs.{k}", block.convs[k], F.leaky_relu(h, LRELU_SLOPE))
            acc = h if acc is None else acc + h
        x = acc / model.num_kernels
    out = yield "conv_post", model.conv_post, F.leaky_relu(x)
    return torch.tanh(out)


def stage_names(model: HiFiGANGenerator) -> list[str]:
    return [f"stage{i + 1}" for i in range(len(model.ups))]


def prune_scope(model: HiFiGANGenerator, scope: str, ratios: dict[str, float]) -> PruneScope:
    """The convs that may lose output channels under ``scope``, each with its stage's ratio."""
    stage_of: dict[nn.Module, str] = {}
    for i, up in enumerate(model.ups):
        stage = f"stage{i + 1}"
        blocks = model.resblocks[i * model.num_kernels:(i + 1) * model.num_kernels]
        if scope == "hidden":
            stage_of.update({conv: stage for block in blocks if isinstance(block, ResBlock1) for conv in block.convs1})
        else:
            stage_of[up] = stage
            stage_of.update({conv: stage for block in blocks for conv in block.modules() if isinstance(conv, nn.Conv1d)})
    if not stage_of:
        raise TtsoptError("this generator has no hidden channels (resblock '2', HiFi-GAN V3): prune it with --scope all")
    convs = [m for m in model.modules() if isinstance(m, (nn.Conv1d, nn.ConvTranspose1d))]
    ignored = [m for m in convs if m not in stage_of]
    return PruneScope(torch.randn(1, model.config.num_mels, 16), ignored,
                      {m: ratios[s] for m, s in stage_of.items()}, stage_of)


def folded_copy(loaded: LoadedHiFiGAN) -> HiFiGANGenerator:
    """A weight-norm-free copy (a new instance: parametrized modules share their class with deep copies)."""
    model = HiFiGANGenerator(loaded.config, loaded.model.widths)
    model.load_state_dict(loaded.model.state_dict())
    remove_weight_norm(model)
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()


def crops(recordings: Sequence[np.ndarray], mel: MelSettings, seconds: float = CROP_SECONDS,
          limit: int = MAX_CROPS) -> tuple[torch.Tensor, torch.Tensor]:
    """Non-overlapping ``seconds`` crops of each recording: mels ``[N, n_mels, F]`` and the audio ``[N, F·hop]``."""
    frames = max(8, round(seconds * mel.sample_rate / mel.hop_length))
    mels, audio = [], []
    for wav in recordings:
        spec = log_mel(wav, mel)
        for start in range(0, spec.shape[1] - frames + 1, frames):
            piece = wav[start * mel.hop_length:(start + frames) * mel.hop_length]
            if piece.shape[0] == frames * mel.hop_length:
                mels.append(spec[:, start:start + frames])
                audio.append(piece)
    if not mels:
        raise TtsoptError(f"the calibration speech holds no {seconds:g} s piece: give longer recordings (--data)")
    if len(mels) > limit:
        pick = np.linspace(0, len(mels) - 1, limit).round().astype(int)
        mels, audio = [mels[i] for i in pick], [audio[i] for i in pick]
    return torch.from_numpy(np.stack(mels)), torch.from_numpy(np.stack(audio).astype(np.float32))


def data_recordings(directory: Path | None) -> list[Path]:
    if directory is None:
        return []
    if not Path(directory).is_dir():
        raise TtsoptError(f"--data {directory} is not a directory: give a folder of .wav recordings")
    found = sorted(p for p in Path(directory).iterdir() if p.suffix.lower() == ".wav")
    if not found:
        raise TtsoptError(f"--data {directory} holds no .wav recordings: add some speech (tens of seconds)")
    return found


def _teacher_audio(model: nn.Module, mels: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([model(mels[s:s + 8])[:, 0] for s in range(0, mels.shape[0], 8)])


def cost(model: HiFiGANGenerator) -> dict:
    """FLOP per audio second (torch's FlopCounterMode, as export records it) and the parameter count."""
    frames = 860
    seconds = frames * model.config.hop_size / model.config.sampling_rate
    return {"flop_per_audio_second": count_flops(model, torch.zeros(1, model.config.num_mels, frames)) / seconds,
            "parameters": sum(p.numel() for p in model.parameters())}


def save_checkpoint(model: HiFiGANGenerator, config_source: Path, record: dict, directory: Path) -> None:
    """``generator.pth.tar`` in jik876 form (legacy weight-norm keys) and ``config.json`` with the record."""
    state = {}
    for key, value in model.state_dict().items():
        if key.endswith(".weight") and value.dim() == 3:
            base = key[: -len(".weight")]
            state[f"{base}.weight_g"] = torch.norm_except_dim(value, 2, 0).clone()
            state[f"{base}.weight_v"] = value.clone()
        else:
            state[key] = value.clone()
    torch.save({"generator": state}, directory / CHECKPOINT_NAME)
    raw = json.loads(Path(config_source).read_text())
    raw[PRUNING_KEY] = json_safe(record)
    (directory / CONFIG_NAME).write_text(json.dumps(raw, indent=2) + "\n")


def _is_prune_output(out: Path) -> bool:
    try:
        return PRUNING_KEY in json.loads((out / CONFIG_NAME).read_text())
    except (OSError, ValueError):
        return False


def prune_checkpoint(checkpoint: Path, config: Path | None, ratio: str, out: Path, *, scope: str = "hidden",
                     budget: dict[str, float] | None = None, minutes: float = 0.0, data: Path | None = None,
                     target: str = "cpu", export: bool = False, importance: str = "auto", lr: float | None = None,
                     max_crops: int = MAX_CROPS, step: Callable[[str], None] = lambda m: None,
                     progress: Callable[[float, str], None] = lambda f, t: None, replace: bool = False) -> dict:
    """The whole of ``ttsopt prune`` for a HiFi-GAN checkpoint; returns the record written into the config
    (and, with ``export``, into the package's manifest). Unmet gates raise :class:`QualityGateError` and nothing
    is written."""
    from ttsopt.compiler.prune.distill import LEARNING_RATE, distill
    from ttsopt.compiler.prune.importance import CANDIDATES, choose_and_prune
    from ttsopt.compiler.prune.ratios import parse_ratio
    from ttsopt.compiler.prune.refit import refit
    from ttsopt.targets import load_target

    if scope not in SCOPES:
        raise TtsoptError(f"--scope {scope!r}: choose one of {', '.join(SCOPES)}")
    if importance not in ("auto", *CANDIDATES):
        raise TtsoptError(f"--importance {importance!r}: choose auto, {', '.join(CANDIDATES)}")
    if minutes < 0:
        raise TtsoptError(f"--minutes {minutes:g} is negative: give 0 (refit only) or more")
    out = check_destination(out, replace=replace, is_ours=_is_prune_output, what="ttsopt prune output")
    gates = quality.pruned_gates(load_target(target), budget or {})
    extra = data_recordings(data)

    step("loading checkpoint")
    loaded = load_hifigan(checkpoint, config)
    if loaded.pruning:
        raise TtsoptError(f"{checkpoint} is already pruned: prune the original checkpoint ({loaded.pruning['source']['checkpoint']})")
    teacher = folded_copy(loaded)
    ratios = parse_ratio(ratio, stage_names(teacher))
    prune_scope(teacher, scope, ratios)  # refuses a scope with nothing to prune before any work
    mel = MelSettings(**loaded.config.mel_settings())
    rate = loaded.config.sampling_rate
    calibration = [read_wav(p, rate) for p in bundled_recordings(CALIBRATION) + extra]
    mels, audio = crops(calibration, mel, limit=max_crops)
    teacher_audio = _teacher_audio(teacher, mels)

    started = time.perf_counter()
    kinds = CANDIDATES if importance == "auto" else (importance,)
    student, result, chosen = choose_and_prune(folded_copy(loaded), lambda m: prune_scope(m, scope, ratios), mels, audio,
                                               teacher_audio, mel, kinds, step)
    step("refitting the pruned convs to the original's outputs, layer by layer")
    refit_record = refit(student, teacher, conv_steps, mels, result.kept, step)
    from ttsopt.compiler.prune.importance import score

    refit_record["calibration_logmel_l1"] = score(student, mels, teacher_audio, mel)
    distillation = None
    if minutes > 0:
        step("distilling")
        distillation = distill(student, mels, teacher_audio, mel, minutes, gates.get("logmel_l1_max"),
                               lr=lr or LEARNING_RATE, progress=progress)
        distillation["crop_seconds"] = CROP_SECONDS
        distillation["data"] = [p.name for p in bundled_recordings(CALIBRATION)] + [str(p) for p in extra]

    step("measuring the pruned model against the original on held-out speech")
    heldout = [(p.stem, read_wav(p, rate)) for p in bundled_recordings(VERIFICATION)]
    report = quality.measure(student, teacher, heldout, mel, gates, str(out))
    before, after = cost(teacher), cost(student)
    record = {
        "source": {"checkpoint": str(Path(checkpoint).resolve()), "sha256": sha256_file(Path(checkpoint)),
                   "config": str(loaded.config_path.resolve())},
        "scope": scope, "ratios": ratios, "importance": chosen, **result.record,
        "flop_per_audio_second": {"original": before["flop_per_audio_second"], "pruned": after["flop_per_audio_second"],
                                  "reduction": 1 - after["flop_per_audio_second"] / before["flop_per_audio_second"]},
        "parameters": {"original": before["parameters"], "pruned": after["parameters"],
                       "reduction": 1 - after["parameters"] / before["parameters"]},
        "calibration": {"recordings": len(calibration), "crops": int(mels.shape[0]), "crop_seconds": CROP_SECONDS,
                        "data": [str(p) for p in extra]},
        "refit": refit_record, "distillation": distillation,
        "quality": {"against": "the original (unpruned) checkpoint on the held-out verification speech",
                    **{k: v for k, v in report.to_dict().items() if k in ("golden", "references", "gates", "passed")}},
        "seconds": round(time.perf_counter() - started, 1),
    }
    report.require("the pruned model fails its 'pruned' gates (prune less, add --minutes of distillation, or --data)")

    step("writing the pruned checkpoint")
    scratch = scratch_directory(out)
    try:
        save_checkpoint(student, loaded.config_path, record, scratch)
        move_into_place(scratch, out)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    if export:
        try:
            _export(out, target, step)
        except BaseException:
            shutil.rmtree(out, ignore_errors=True)
            raise
    return record


def _export(out: Path, target: str, step: Callable[[str], None]) -> None:
    from ttsopt.compiler.exporter import export_package
    from ttsopt.compiler.spec import ExportSources
    from ttsopt.families.hifigan.family import FAMILY

    export_package(FAMILY, ExportSources({"generator": out / CHECKPOINT_NAME}, out / CONFIG_NAME), target, out / PACKAGE_NAME, step=step)
