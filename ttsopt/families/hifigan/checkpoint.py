"""Loading jik876 HiFi-GAN generator checkpoints (``{'generator': state_dict}``) and their ``config.json``.

The config is checked against the tensors before anything runs: a V1 config with V2 weights (or any
other pairing that does not fit) is reported with the parameter and config field that disagree,
instead of a wall of ``size mismatch`` lines.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.nn.utils import parametrize

from ttsopt.compiler.checkpoint import describe_checkpoint, load_checkpoint
from ttsopt.errors import TtsoptError
from ttsopt.families.hifigan.model import HiFiGANConfig, HiFiGANGenerator

EXPECTED = "a HiFi-GAN generator checkpoint (jik876 format, e.g. generator_v1 or g_02500000)"
_REQUIRED = ("resblock", "upsample_rates", "upsample_kernel_sizes", "upsample_initial_channel",
             "resblock_kernel_sizes", "resblock_dilation_sizes", "num_mels", "n_fft", "hop_size",
             "win_size", "sampling_rate", "fmin", "fmax")
# The config field most likely responsible when a parameter's shape disagrees.
_FIELD_OF_PARAMETER = (("conv_pre", "num_mels / upsample_initial_channel"),
                       ("ups.", "upsample_initial_channel / upsample_kernel_sizes"),
                       ("resblocks.", "resblock_kernel_sizes / upsample_initial_channel"),
                       ("conv_post", "upsample_initial_channel / upsample_rates"))


#: The key a pruned generator's ``config.json`` carries (jik876's own code ignores unknown keys): its
#: channel counts then come from the checkpoint's tensors, not from ``upsample_initial_channel``.
PRUNING_KEY = "ttsopt_pruning"


@dataclass
class LoadedHiFiGAN:
    model: HiFiGANGenerator
    config: HiFiGANConfig
    checkpoint: Path
    config_path: Path

    @property
    def pruning(self) -> dict | None:
        """What ``ttsopt prune`` recorded in the config (ratios, reductions, quality), or None for an unpruned model."""
        return self.config.extra.get(PRUNING_KEY)


def read_config(path: str | Path) -> HiFiGANConfig:
    """Parse a jik876 ``config.json`` (training-only fields are kept aside, not interpreted)."""
    path = Path(path)
    if not path.is_file():
        raise TtsoptError(f"HiFi-GAN config not found: {path}: pass the config.json that came with the checkpoint (--config)")
    try:
        raw = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TtsoptError(f"HiFi-GAN config {path} is not valid JSON ({exc}): pass the checkpoint's config.json") from None
    if not isinstance(raw, dict):
        raise TtsoptError(f"HiFi-GAN config {path} is not a JSON object: pass the checkpoint's config.json")
    missing = [key for key in _REQUIRED if key not in raw]
    if missing:
        raise TtsoptError(f"HiFi-GAN config {path} lacks {', '.join(missing)}: pass the checkpoint's config.json")
    try:
        config = HiFiGANConfig(
            resblock=str(raw["resblock"]),
            upsample_rates=tuple(int(v) for v in raw["upsample_rates"]),
            upsample_kernel_sizes=tuple(int(v) for v in raw["upsample_kernel_sizes"]),
            upsample_initial_channel=int(raw["upsample_initial_channel"]),
            resblock_kernel_sizes=tuple(int(v) for v in raw["resblock_kernel_sizes"]),
            resblock_dilation_sizes=tuple(tuple(int(d) for d in ds) for ds in raw["resblock_dilation_sizes"]),
            num_mels=int(raw["num_mels"]), n_fft=int(raw["n_fft"]), hop_size=int(raw["hop_size"]),
            win_size=int(raw["win_size"]), sampling_rate=int(raw["sampling_rate"]),
            fmin=float(raw["fmin"]), fmax=None if raw["fmax"] is None else float(raw["fmax"]),
            extra={k: v for k, v in raw.items() if k not in _REQUIRED},
        )
    except (TypeError, ValueError) as exc:
        raise TtsoptError(f"HiFi-GAN config {path} has a malformed value ({exc}): pass the checkpoint's config.json") from None
    if config.resblock not in ("1", "2"):
        raise TtsoptError(f"HiFi-GAN config {path}: resblock {config.resblock!r} is neither '1' (V1/V2) nor '2' (V3)")
    if len(config.upsample_rates) != len(config.upsample_kernel_sizes):
        raise TtsoptError(f"HiFi-GAN config {path}: upsample_rates and upsample_kernel_sizes differ in length")
    if config.upsample_factor != config.hop_size:
        raise TtsoptError(f"HiFi-GAN config {path}: the upsample rates multiply to {config.upsample_factor} "
                          f"but hop_size is {config.hop_size}: fix the config")
    return config


def _generator_state(state: object, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(state, dict) and isinstance(state.get("generator"), dict):
        return state["generator"]
    if isinstance(state, dict) and any(str(k).startswith("conv_pre.") for k in state):
        return state  # a bare generator state dict
    raise TtsoptError(f"{path} holds no 'generator' state dict ({describe_checkpoint(state)}): give {EXPECTED}")


def _to_model_keys(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], str]:
    """Map the checkpoint's weight-norm form onto the model's (parametrizations API)."""
    if any(k.endswith(".weight_v") for k in state):
        renamed = {k.replace(".weight_g", ".parametrizations.weight.original0")
                    .replace(".weight_v", ".parametrizations.weight.original1"): v for k, v in state.items()}
        return renamed, "legacy"
    if any(".parametrizations.weight." in k for k in state):
        return dict(state), "parametrizations"
    return dict(state), "folded"


def widths_from_tensors(state: dict[str, torch.Tensor]) -> dict[str, tuple[int, int]]:
    """(in, out) channels of every conv in a (model-key) state dict, read from its weight tensors.

    Conv1d weights are ``[out, in, k]``; the transposed convs (``ups.*``) store ``[in, out, k]``."""
    widths = {}
    for key, tensor in state.items():
        for suffix in (".parametrizations.weight.original1", ".weight"):
            if key.endswith(suffix) and tensor.dim() == 3:
                name = key[: -len(suffix)]
                a, b = int(tensor.shape[0]), int(tensor.shape[1])
                widths[name] = (a, b) if name.startswith("ups.") else (b, a)
    return widths


def _check_shapes(model: torch.nn.Module, state: dict[str, torch.Tensor], path: Path, config_path: Path) -> None:
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    actual = {k: tuple(v.shape) for k, v in state.items()}
    problem = None
    for key, shape in expected.items():
        if key not in actual:
            problem = f"the config expects parameter {key} but the checkpoint has none"
        elif actual[key] != shape:
            problem = f"{key} is {list(actual[key])} in the checkpoint but {list(shape)} by the config"
        if problem:
            field = next((f for prefix, f in _FIELD_OF_PARAMETER if key.startswith(prefix)), "the architecture")
            break
    else:
        unexpected = sorted(set(actual) - set(expected))
        if not unexpected:
            return
        problem, field = f"the checkpoint has {unexpected[0]} which the config does not describe", "resblock / the layer counts"
    raise TtsoptError(f"config {config_path.name} does not match checkpoint {path.name}: {problem} "
                      f"(check {field}): pass the config.json that came with this checkpoint")


def load_hifigan(checkpoint: str | Path, config: str | Path | None = None) -> LoadedHiFiGAN:
    """Load a generator checkpoint as an eval-mode float32 model (weight norm still applied).

    ``config`` defaults to the ``config.json`` beside the checkpoint, as jik876 lays them out.
    """
    checkpoint = Path(checkpoint)
    config_path = Path(config) if config is not None else checkpoint.parent / "config.json"
    state = _generator_state(load_checkpoint(checkpoint, EXPECTED), checkpoint)
    if config is None and not config_path.is_file():
        raise TtsoptError(f"no config.json beside {checkpoint}: pass the checkpoint's config with --config")
    hparams = read_config(config_path)
    state, form = _to_model_keys(state)
    # A pruned generator's widths are its tensors'; everything else (kernels, dilations, layer count) is still checked.
    model = HiFiGANGenerator(hparams, widths_from_tensors(state) if PRUNING_KEY in hparams.extra else None)
    if form == "folded":
        for module in model.modules():
            if parametrize.is_parametrized(module, "weight"):
                parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
    _check_shapes(model, state, checkpoint, config_path)
    model.load_state_dict({k: v.float() for k, v in state.items()})
    return LoadedHiFiGAN(model.eval(), hparams, checkpoint, config_path)
