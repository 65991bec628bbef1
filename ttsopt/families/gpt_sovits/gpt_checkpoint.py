"""Read official GPT-SoVITS GPT ("s1") checkpoints: ``{'weight': {model.*: fp16}, 'config': dict, 'info': str}``.

These ``.ckpt`` files are what ``s1_train.py`` writes (and what the released ``s1bert25hz-*.ckpt`` /
``s1v3.ckpt`` files look like): a torch zip whose pickle uses only ``OrderedDict``, ``HalfStorage`` and
``_rebuild_tensor_v2``, so ``torch.load(weights_only=True)`` reads them and no code from the file runs.

Everything a user can get wrong (wrong path, a download cut short, a SoVITS ``.pth`` or a vocoder
picked by mistake, a config that does not describe the tensors) becomes one :class:`TtsoptError` line
saying what is wrong and what to do.  v1 (phoneme vocabulary 512) and v2 (732, also used by v3/v4/v2Pro)
files are accepted; the architecture is otherwise identical.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ttsopt.compiler.checkpoint import load_checkpoint
from ttsopt.errors import TtsoptError
from ttsopt.families.gpt_sovits.gpt_model import PHONEME_VOCAB_VERSIONS, GPTConfig, Text2SemanticDecoder

KEY_PREFIX = "model."

#: First two bytes that the official SoVITS writer puts in place of ``PK`` (v3/v4 LoRA, v2Pro, v2ProPlus).

#: Required fields of ``config['model']`` in the official YAML.
_MODEL_FIELDS = ("vocab_size", "phoneme_vocab_size", "embedding_dim", "hidden_dim", "head", "n_layer", "EOS")


@dataclass(frozen=True)
class GPTCheckpoint:
    """A checked GPT checkpoint: config, weights (``model.`` prefix stripped, on-disk dtype) and metadata."""

    path: Path
    config: GPTConfig
    state_dict: Mapping[str, torch.Tensor] = field(repr=False)
    info: str
    raw_config: Mapping[str, Any] = field(repr=False)

    @property
    def stored_dtype(self) -> torch.dtype:
        return next(iter(self.state_dict.values())).dtype

    def build_model(self, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"
                    ) -> Text2SemanticDecoder:
        """The model with these weights cast to ``dtype`` (fp32 = official CPU inference), in eval mode."""
        model = Text2SemanticDecoder(self.config)
        model.load_state_dict({k: v.to(dtype) for k, v in self.state_dict.items()}, strict=True)
        return model.to(device=device, dtype=dtype).eval()


def load_gpt_checkpoint(path: str | Path) -> GPTCheckpoint:
    """Read and validate an official GPT ``.ckpt``; raise :class:`TtsoptError` on any problem."""
    path = Path(path)
    obj = load_checkpoint(path, "a GPT-SoVITS GPT checkpoint (the .ckpt from GPT_weights*/)")
    weight, raw_config = _unwrap(path, obj)
    config = config_from_official(raw_config, path)
    state_dict = {k[len(KEY_PREFIX):]: v for k, v in weight.items()}
    _check_tensors(path, config, state_dict)
    info = obj.get("info", "")
    return GPTCheckpoint(path=path, config=config, state_dict=state_dict,
                         info=info if isinstance(info, str) else str(info), raw_config=raw_config)


def load_gpt_model(path: str | Path, dtype: torch.dtype = torch.float32,
                   device: str | torch.device = "cpu") -> Text2SemanticDecoder:
    """:func:`load_gpt_checkpoint` + :meth:`GPTCheckpoint.build_model`."""
    return load_gpt_checkpoint(path).build_model(dtype=dtype, device=device)


def config_from_official(raw_config: Mapping[str, Any], path: Path | str = "<config>") -> GPTConfig:
    """Map the official YAML dict (``model``/``data``/``inference`` sections) to :class:`GPTConfig`."""
    model = raw_config.get("model") if isinstance(raw_config, Mapping) else None
    if not isinstance(model, Mapping):
        raise TtsoptError(f"{path}: the checkpoint's config has no 'model' section: "
                          "pass a GPT .ckpt written by GPT-SoVITS (s1_train.py)")
    missing = [name for name in _MODEL_FIELDS if name not in model]
    if missing:
        raise TtsoptError(f"{path}: config['model'] lacks {', '.join(missing)}: the GPT config is incomplete")
    try:
        sizes = {name: int(model[name]) for name in _MODEL_FIELDS}
    except (TypeError, ValueError):
        raise TtsoptError(f"{path}: config['model'] has a non-integer size: "
                          f"{ {name: model[name] for name in _MODEL_FIELDS} }") from None
    if sizes["embedding_dim"] != sizes["hidden_dim"]:
        raise TtsoptError(f"{path}: embedding_dim {sizes['embedding_dim']} != hidden_dim {sizes['hidden_dim']}: "
                          "the official GPT has no projection between them, so such a config cannot be run")
    if sizes["phoneme_vocab_size"] not in PHONEME_VOCAB_VERSIONS:
        raise TtsoptError(f"{path}: phoneme_vocab_size {sizes['phoneme_vocab_size']} matches no GPT-SoVITS symbol "
                          f"table (512 = v1, 732 = v2): only official vocabularies are supported")
    data = raw_config.get("data") if isinstance(raw_config.get("data"), Mapping) else {}
    inference = raw_config.get("inference") if isinstance(raw_config.get("inference"), Mapping) else {}
    try:
        return GPTConfig(
            vocab_size=sizes["vocab_size"], phoneme_vocab_size=sizes["phoneme_vocab_size"],
            hidden_dim=sizes["hidden_dim"], num_heads=sizes["head"], num_layers=sizes["n_layer"],
            ffn_dim=4 * sizes["hidden_dim"], eos_token=sizes["EOS"],
            max_sec=int(data.get("max_sec", 54)), default_top_k=int(inference.get("top_k", 15)))
    except ValueError as exc:
        raise TtsoptError(f"{path}: inconsistent GPT config: {exc}") from None


# ------------------------------------------------------------------------------------------------------


def _unwrap(path: Path, obj: Any) -> tuple[Mapping[str, torch.Tensor], Mapping[str, Any]]:
    """Find ``weight`` and ``config`` and make sure the weights are a GPT's, not another model's."""
    not_gpt = "not a GPT-SoVITS GPT checkpoint"
    if not isinstance(obj, Mapping):
        raise TtsoptError(f"{path}: {not_gpt} (top level is a {type(obj).__name__}, expected a dict with "
                          "'weight' and 'config'): pass the GPT .ckpt")
    if "generator" in obj:
        raise TtsoptError(f"{path}: {not_gpt}: it holds a 'generator' (a HiFi-GAN-style vocoder checkpoint)")
    if "weight" not in obj:
        if "state_dict" in obj:
            raise TtsoptError(f"{path}: {not_gpt}: this is a Lightning training checkpoint ('state_dict'); use the "
                              "half-precision weights the trainer saves in GPT_weights*/")
        keys = ", ".join(repr(k) for k in list(obj)[:5])
        raise TtsoptError(f"{path}: {not_gpt}: no 'weight' entry (top-level keys: {keys})")
    weight = obj["weight"]
    if not isinstance(weight, Mapping) or not weight:
        raise TtsoptError(f"{path}: {not_gpt}: 'weight' is not a non-empty tensor dict")
    if any(str(k).startswith(("enc_p.", "dec.", "flow.")) for k in weight):
        raise TtsoptError(f"{path}: this is a SoVITS model, not a GPT checkpoint: pass the GPT .ckpt "
                          "(GPT_weights*/ or s1*.ckpt)")
    if f"{KEY_PREFIX}ar_predict_layer.weight" not in weight:
        raise TtsoptError(f"{path}: {not_gpt}: 'weight' has no {KEY_PREFIX}ar_predict_layer.weight")
    bad = [k for k, v in weight.items() if not (isinstance(k, str) and k.startswith(KEY_PREFIX))
           or not isinstance(v, torch.Tensor)]
    if bad:
        raise TtsoptError(f"{path}: {not_gpt}: unexpected entry {bad[0]!r} in 'weight'")
    if not isinstance(obj.get("config"), Mapping):
        raise TtsoptError(f"{path}: the GPT checkpoint has no 'config' dict: the model sizes cannot be known; "
                          "re-save it with GPT-SoVITS")
    return weight, obj["config"]


def _check_tensors(path: Path, config: GPTConfig, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Config vs. tensors: same key set, same shapes, floating point, finite."""
    expected = {k: tuple(shape) for k, shape in Text2SemanticDecoder.expected_shapes(config).items()}
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    where = (f"config says n_layer={config.num_layers}, hidden_dim={config.hidden_dim}, "
             f"head={config.num_heads}, phoneme_vocab_size={config.phoneme_vocab_size}")
    if missing or unexpected:
        detail = []
        if missing:
            detail.append(f"missing {len(missing)} tensor(s) e.g. {KEY_PREFIX}{missing[0]}")
        if unexpected:
            detail.append(f"{len(unexpected)} unexpected e.g. {KEY_PREFIX}{unexpected[0]}")
        raise TtsoptError(f"{path}: config and tensors disagree ({where}; {'; '.join(detail)}): "
                          "the file is damaged or was edited")
    for key, shape in expected.items():
        tensor = state_dict[key]
        if tuple(tensor.shape) != shape:
            raise TtsoptError(f"{path}: config and tensors disagree ({where}): {KEY_PREFIX}{key} has shape "
                              f"{list(tensor.shape)}, expected {list(shape)}")
        if not tensor.is_floating_point():
            raise TtsoptError(f"{path}: {KEY_PREFIX}{key} has dtype {tensor.dtype}, expected a float tensor")
        if not bool(torch.isfinite(tensor).all()):
            raise TtsoptError(f"{path}: {KEY_PREFIX}{key} contains NaN or Inf: the checkpoint is unusable")


def _first_line(exc: BaseException | str) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line if len(line) <= 160 else line[:157] + "..."
