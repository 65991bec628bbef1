"""Read official GPT-SoVITS SoVITS ("s2") ``.pth`` files without running code from them.

An official file (``process_ckpt.savee``) is a torch zip holding
``{'weight': {name: fp16 tensor} (no enc_q.*), 'config': utils.HParams, 'info': '<E>epoch_<S>iteration'}``.
Because ``config`` is a pickled instance of the training code's ``utils.HParams`` class,
``torch.load(weights_only=True)`` refuses these files, and ``weights_only=False`` would execute whatever
the pickle names. This module unpickles with a restricted :class:`pickle.Unpickler` whose
``find_class`` resolves only what such a file needs: ``utils.HParams`` (mapped to the small
attribute-dict :class:`HParams` here), ``collections.OrderedDict``, torch's tensor-rebuild functions,
storage classes and dtypes. Any other global is refused with a :class:`TtsoptError` before it is
called. Legacy (non-zip) torch files and TorchScript archives are refused without unpickling.

Version detection, in order (fact sheet §1.2):
1. the 2-byte header: newer writers replace the zip magic ``PK`` with an ASCII tag
   (``03`` v3 LoRA, ``04`` v4 LoRA, ``05`` v2Pro, ``06`` v2ProPlus; readers also know ``00`` v1,
   ``01`` v2, ``02`` v3). ``PK`` is restored in memory before unzipping;
2. the tensors: ``cfm.*`` → v3/v4, ``sv_emb.*`` → v2Pro/v2ProPlus (told apart by the tag, else the config's
   ``model.version``, else the first upsampler's kernel: 20 → ProPlus), otherwise the rows of
   ``enc_p.text_embedding.weight``: 322 → v1, 732 → v2.
v1, v2, v2Pro and v2ProPlus load (every size from the config and the tensors: the speaker-verification width
from ``sv_emb.weight``); v3/v4 are refused with "<version> SoVITS checkpoints are not supported yet" rather
than built into a model that would produce wrong audio.
"""

from __future__ import annotations

import collections
import io
import pickle
import types
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ttsopt.compiler.checkpoint import checkpoint_head, describe_checkpoint
from ttsopt.errors import TtsoptError
from ttsopt.families.gpt_sovits.formats import SOVITS_HEADER_TAGS, SOVITS_LORA_TAGS, SOVITS_PREFIXES
from ttsopt.families.gpt_sovits.sovits_model import (
    SPEAKER_VERIFICATION_VERSIONS,
    SUPPORTED_VERSIONS,
    SYMBOLS_PER_VERSION,
    SoVITSConfig,
    SoVITSModel,
)

EXPECTED = "a GPT-SoVITS SoVITS (s2) .pth checkpoint"

#: ASCII tags written in place of ``PK`` (``process_ckpt.my_save2``; 00–02 are only known to readers).

#: Official key of the codebook and the name it has in :class:`SoVITSModel`.
_CODEBOOK_PREFIX = "quantizer.vq.layers.0._codebook."
_CODEBOOK_KEY = "quantizer.embed"
#: Training-only state in official files: the posterior encoder and the codebook's EMA statistics.
_TRAINING_ONLY_PREFIXES = ("enc_q.",)
_TRAINING_ONLY_CODEBOOK = ("embed_avg", "cluster_size", "inited")
_WN_G, _WN_V = ".parametrizations.weight.original0", ".parametrizations.weight.original1"

_MODEL_FIELDS = ("inter_channels", "hidden_channels", "filter_channels", "n_heads", "n_layers", "kernel_size",
                 "resblock", "resblock_kernel_sizes", "resblock_dilation_sizes", "upsample_rates",
                 "upsample_initial_channel", "upsample_kernel_sizes", "gin_channels")
_DATA_FIELDS = ("sampling_rate", "filter_length", "hop_length", "win_length")


# --------------------------------------------------------------------------------------------------
# Restricted unpickling
# --------------------------------------------------------------------------------------------------


class HParams(dict):
    """Stand-in for the official ``utils.HParams``: a dict whose items are also attributes.

    Only ever created by unpickling (``NEWOBJ`` then ``BUILD`` with the instance ``__dict__``), so
    ``__setstate__`` takes that dict; nested configs arrive already converted.
    """

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise pickle.UnpicklingError(f"malformed HParams state of type {type(state).__name__}")
        self.update(state)


_HPARAMS_GLOBALS = {("utils", "HParams"), ("GPT_SoVITS.utils", "HParams")}
_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor"): torch._utils._rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch", "Size"): torch.Size,
}
_STORAGE_NAMES = {"HalfStorage", "FloatStorage", "DoubleStorage", "BFloat16Storage", "LongStorage", "IntStorage",
                  "ShortStorage", "CharStorage", "ByteStorage", "BoolStorage"}


def _resolve_global(module: str, name: str, source: str) -> Any:
    if (module, name) in _HPARAMS_GLOBALS:
        return HParams
    if (module, name) in _ALLOWED_GLOBALS:
        return _ALLOWED_GLOBALS[(module, name)]
    if module == "torch" and name in _STORAGE_NAMES:
        return getattr(torch, name)
    if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
        return getattr(torch, name)
    raise TtsoptError(f"refusing to unpickle {module}.{name} from {source}: a checkpoint should hold only "
                      f"tensors and its config, and this global could run code; do not use this file")


def _restricted_pickle_module(source: str) -> types.ModuleType:
    """A stand-in ``pickle`` module for ``torch.load(pickle_module=...)`` that resolves only allowed globals."""

    class RestrictedUnpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            return _resolve_global(module, name, source)

    module = types.ModuleType("ttsopt_restricted_pickle")
    module.Unpickler = RestrictedUnpickler  # type: ignore[attr-defined]
    module.load = lambda file, **kwargs: RestrictedUnpickler(file, **kwargs).load()  # type: ignore[attr-defined]
    module.loads = lambda data, **kw: RestrictedUnpickler(io.BytesIO(data), **kw).load()  # type: ignore[attr-defined]
    return module


def restricted_torch_load(data: bytes, source: str) -> Any:
    """Unpickle the torch zip archive ``data`` with the restricted unpickler (CPU tensors).

    ``source`` names the file in error messages. Raises :class:`TtsoptError` for refused globals and
    for anything that is not a readable torch zip archive.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, EOFError, ValueError, OSError) as exc:
        raise TtsoptError(f"cannot read checkpoint {source}: truncated or corrupt (not a complete zip archive: "
                          f"{exc}): re-download or re-save it") from None
    if any(n.endswith("constants.pkl") for n in names):
        raise TtsoptError(f"{source} is a TorchScript archive, not a checkpoint: give {EXPECTED}")
    if not any(n.endswith("data.pkl") for n in names):
        raise TtsoptError(f"{source} is a zip archive but not a PyTorch checkpoint (no data.pkl): give {EXPECTED}")
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=False,
                          pickle_module=_restricted_pickle_module(source))
    except TtsoptError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure to decode the archive means a damaged file
        reason = (str(exc).splitlines() or [type(exc).__name__])[0][:160]
        raise TtsoptError(f"cannot read checkpoint {source}: truncated or corrupt ({reason}): "
                          f"re-download or re-save it") from None


# --------------------------------------------------------------------------------------------------
# Reading and classifying
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SoVITSCheckpoint:
    """The raw contents of a checked SoVITS file (weights in their on-disk names and dtype)."""

    path: Path
    version: str
    weights: Mapping[str, torch.Tensor] = field(repr=False)
    hparams: HParams = field(repr=False)
    info: str | None


@dataclass(frozen=True)
class LoadedSoVITS:
    """A ready model: float32, eval mode, CPU."""

    model: SoVITSModel
    config: SoVITSConfig
    version: str
    path: Path
    info: str | None
    hparams: HParams = field(repr=False)


def _unsupported(version: str, path: Path, evidence: str) -> TtsoptError:
    return TtsoptError(f"{version} SoVITS checkpoints are not supported yet: {path} is a GPT-SoVITS {version} "
                       f"file ({evidence}); ttsopt reads v1, v2, v2Pro and v2ProPlus SoVITS weights only")


def _hparams_version(hparams: Any) -> str | None:
    model = hparams.get("model") if isinstance(hparams, Mapping) else None
    version = model.get("version") if isinstance(model, Mapping) else None
    return version if isinstance(version, str) else None


def detect_sovits_version(weights: Mapping[str, torch.Tensor], hparams: Any = None) -> str:
    """Model version of a SoVITS state dict from its keys and shapes: v1, v2, v2Pro, v2ProPlus, v3, v4 or v3/v4.

    Raises ``ValueError`` when the tensors are not those of any SoVITS version.
    """
    declared = _hparams_version(hparams)
    if any(k.startswith("cfm.") for k in weights):
        return declared if declared in ("v3", "v4") else "v3/v4"
    if "sv_emb.weight" in weights:
        if declared in SPEAKER_VERIFICATION_VERSIONS:
            return declared
        first_up = weights.get("dec.ups.0.weight_v", weights.get("dec.ups.0.weight"))
        return "v2ProPlus" if first_up is not None and first_up.dim() == 3 and first_up.shape[-1] == 20 else "v2Pro"
    embedding = weights.get("enc_p.text_embedding.weight")
    if embedding is None:
        raise ValueError("no enc_p.text_embedding.weight")
    for version, rows in SYMBOLS_PER_VERSION.items():
        if embedding.shape[0] == rows:
            return version
    raise ValueError(f"enc_p.text_embedding.weight has {embedding.shape[0]} rows, neither v1 (322) nor v2 (732)")


def read_sovits_checkpoint(path: str | Path) -> SoVITSCheckpoint:
    """Read, unpickle (restricted) and classify an official SoVITS ``.pth``; refuse unsupported versions."""
    path = Path(path)
    head = checkpoint_head(path, "SoVITS checkpoint")[:2]
    if head in SOVITS_HEADER_TAGS and SOVITS_HEADER_TAGS[head] not in SUPPORTED_VERSIONS:
        version = SOVITS_HEADER_TAGS[head]
        kind = " LoRA" if head in SOVITS_LORA_TAGS else ""
        raise _unsupported(version, path, f"header tag {head.decode()}{kind}")
    if head != b"PK" and head not in SOVITS_HEADER_TAGS:
        raise TtsoptError(f"{path} is not a PyTorch zip checkpoint (starts with {head!r}): give {EXPECTED}")
    data = b"PK" + path.read_bytes()[2:]  # a version tag replaces the zip magic; restore it in memory

    state = restricted_torch_load(data, str(path))
    is_sovits = (isinstance(state, Mapping) and isinstance(state.get("weight"), Mapping)
                 and any(str(k).startswith(SOVITS_PREFIXES) for k in state["weight"]))
    if not is_sovits:
        raise TtsoptError(f"{path} is {describe_checkpoint(state)}, not {EXPECTED}: give the SoVITS weights "
                          f"(the .pth from SoVITS_weights*/)")
    weights = dict(state["weight"])
    hparams = state.get("config")
    odd = next((k for k, v in weights.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)), None)
    if odd is not None:
        raise TtsoptError(f"{path}: weight entry {odd!r} is not a named tensor: the file is damaged; re-export it")
    try:
        version = detect_sovits_version(weights, hparams)
    except ValueError as exc:
        raise TtsoptError(f"{path} does not look like any SoVITS version ({exc}): give {EXPECTED}") from None
    if version not in SUPPORTED_VERSIONS:
        evidence = "cfm.* tensors" if version.startswith(("v3", "v4")) else "sv_emb.* tensors"
        raise _unsupported(version, path, evidence)
    if head in SOVITS_HEADER_TAGS and SOVITS_HEADER_TAGS[head] in SPEAKER_VERIFICATION_VERSIONS:
        if version not in SPEAKER_VERIFICATION_VERSIONS:
            raise TtsoptError(f"{path} carries the {SOVITS_HEADER_TAGS[head]} header tag but holds {version} tensors "
                              f"(no sv_emb.*): the file is inconsistent; re-export it")
        version = SOVITS_HEADER_TAGS[head]  # Pro and ProPlus share one architecture; the tag is the label
    elif head in SOVITS_HEADER_TAGS and SOVITS_HEADER_TAGS[head] != version:
        raise TtsoptError(f"{path} carries the {SOVITS_HEADER_TAGS[head]} header tag but holds {version} tensors: "
                          f"the file is inconsistent; re-export it")
    if not isinstance(hparams, Mapping):
        raise TtsoptError(f"{path} has no config (hps) of the training run: give the .pth written by the "
                          f"GPT-SoVITS trainer, which embeds it")
    info = state.get("info")
    return SoVITSCheckpoint(path, version, weights, hparams, info if isinstance(info, str) else None)


def config_from_hparams(hparams: Mapping[str, Any], version: str, source: str = "checkpoint") -> SoVITSConfig:
    """Build the :class:`SoVITSConfig` from the training ``hps`` (``data`` and ``model`` sections)."""
    data, model = hparams.get("data"), hparams.get("model")
    if not isinstance(data, Mapping) or not isinstance(model, Mapping):
        raise TtsoptError(f"the config in {source} lacks its 'data'/'model' sections: the file is not a "
                          f"trainer-written SoVITS checkpoint")
    missing = [f"model.{k}" for k in _MODEL_FIELDS if k not in model] + [f"data.{k}" for k in _DATA_FIELDS
                                                                          if k not in data]
    if missing:
        raise TtsoptError(f"the config in {source} lacks {', '.join(missing)}: the file is damaged or not "
                          f"written by the GPT-SoVITS trainer")
    try:
        return SoVITSConfig(
            version=version,
            sampling_rate=int(data["sampling_rate"]), filter_length=int(data["filter_length"]),
            hop_length=int(data["hop_length"]), win_length=int(data["win_length"]),
            inter_channels=int(model["inter_channels"]), hidden_channels=int(model["hidden_channels"]),
            filter_channels=int(model["filter_channels"]), n_heads=int(model["n_heads"]),
            n_layers=int(model["n_layers"]), kernel_size=int(model["kernel_size"]),
            resblock=str(model["resblock"]),
            resblock_kernel_sizes=tuple(int(k) for k in model["resblock_kernel_sizes"]),
            resblock_dilation_sizes=tuple(tuple(int(d) for d in ds) for ds in model["resblock_dilation_sizes"]),
            upsample_rates=tuple(int(r) for r in model["upsample_rates"]),
            upsample_initial_channel=int(model["upsample_initial_channel"]),
            upsample_kernel_sizes=tuple(int(k) for k in model["upsample_kernel_sizes"]),
            gin_channels=int(model["gin_channels"]),
        )
    except (TypeError, ValueError) as exc:
        raise TtsoptError(f"the config in {source} is not a valid SoVITS config ({exc}): the file is damaged") from None


# --------------------------------------------------------------------------------------------------
# Official state dict <-> model state dict
# --------------------------------------------------------------------------------------------------


def _weight_normed_prefixes(model: nn.Module) -> set[str]:
    return {k[: -len(_WN_G)] for k in model.state_dict() if k.endswith(_WN_G)}


def to_model_state_dict(weights: Mapping[str, torch.Tensor], model: SoVITSModel,
                        dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """Rename official keys onto :class:`SoVITSModel` and cast to ``dtype``.

    Drops training-only state (``enc_q.*``, codebook EMA buffers); maps legacy weight norm
    (``X.weight_g``/``X.weight_v``) onto the parametrization (``X.parametrizations.weight.original0/1``);
    a layer stored already folded (``X.weight`` where the model has weight norm) is re-split as
    ``v = w, g = ‖w‖``, which reproduces ``w`` exactly up to rounding.
    """
    normed = _weight_normed_prefixes(model)
    out: dict[str, torch.Tensor] = {}
    for key, tensor in weights.items():
        if key.startswith(_TRAINING_ONLY_PREFIXES):
            continue
        if key.startswith(_CODEBOOK_PREFIX):
            leaf = key[len(_CODEBOOK_PREFIX):]
            if leaf in _TRAINING_ONLY_CODEBOOK:
                continue
            key = _CODEBOOK_KEY if leaf == "embed" else key
        tensor = tensor.to(dtype)
        if key.endswith(".weight_g"):
            out[key[: -len(".weight_g")] + _WN_G] = tensor
        elif key.endswith(".weight_v"):
            out[key[: -len(".weight_v")] + _WN_V] = tensor
        elif key.endswith(".weight") and key[: -len(".weight")] in normed:
            prefix = key[: -len(".weight")]
            norm = torch.linalg.vector_norm(tensor, dim=tuple(range(1, tensor.dim())), keepdim=True)
            out[prefix + _WN_G], out[prefix + _WN_V] = norm, tensor
        else:
            out[key] = tensor
    return out


def to_official_state_dict(model: SoVITSModel) -> dict[str, torch.Tensor]:
    """The model's weights in the official on-disk layout (what ``process_ckpt.savee`` writes).

    float16, legacy ``weight_g``/``weight_v`` pairs, official codebook key, no ``enc_q.*``. The codebook's
    EMA buffers, which inference never reads, are filled consistently (``embed_avg = embed``,
    ``cluster_size = 1``, ``inited = 1``) so the key set matches a trainer-written file.
    """
    out: dict[str, torch.Tensor] = {}
    for key, tensor in model.state_dict().items():
        tensor = tensor.detach().to(torch.float16).clone()
        if key.endswith(_WN_G):
            out[key[: -len(_WN_G)] + ".weight_g"] = tensor
        elif key.endswith(_WN_V):
            out[key[: -len(_WN_V)] + ".weight_v"] = tensor
        elif key == _CODEBOOK_KEY:
            out[_CODEBOOK_PREFIX + "inited"] = torch.ones(1, dtype=torch.float16)
            out[_CODEBOOK_PREFIX + "cluster_size"] = torch.ones(tensor.shape[0], dtype=torch.float16)
            out[_CODEBOOK_PREFIX + "embed"] = tensor
            out[_CODEBOOK_PREFIX + "embed_avg"] = tensor.clone()
        else:
            out[key] = tensor
    return out


def _check_against_model(state: Mapping[str, torch.Tensor], model: SoVITSModel, path: Path) -> None:
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    for key, shape in expected.items():
        if key not in state:
            raise TtsoptError(f"{path} lacks tensor {key} that a {model.config.version} SoVITS model needs: "
                              f"the file is incomplete or from an unsupported variant")
        if tuple(state[key].shape) != shape:
            raise TtsoptError(f"{path}: tensor {key} is {list(state[key].shape)} but the embedded config implies "
                              f"{list(shape)}: the config (hps.model) does not describe these weights")
    unexpected = sorted(set(state) - set(expected))
    if unexpected:
        raise TtsoptError(f"{path} has tensors a SoVITS {model.config.version} model does not use "
                          f"(e.g. {unexpected[0]}): it is from an unsupported variant")


def load_sovits_checkpoint(path: str | Path) -> LoadedSoVITS:
    """Load an official SoVITS v1/v2/v2Pro/v2ProPlus ``.pth`` as a float32 eval-mode :class:`SoVITSModel` on CPU.

    Weight norm stays applied (as a parametrization); fold it with
    :func:`ttsopt.compiler.folding.remove_weight_norm` before export.
    """
    checkpoint = read_sovits_checkpoint(path)
    config = config_from_hparams(checkpoint.hparams, checkpoint.version, str(checkpoint.path))
    if config.speaker_verification:  # hard-coded (20480) in the official class; read from the tensor here
        sv_emb = checkpoint.weights.get("sv_emb.weight")
        if sv_emb is None or sv_emb.dim() != 2:
            raise TtsoptError(f"{checkpoint.path} lacks the 2-D tensor sv_emb.weight a {config.version} model needs: "
                              f"the file is incomplete")
        config = replace(config, sv_dim=int(sv_emb.shape[1]))
    model = SoVITSModel(config)
    state = to_model_state_dict(checkpoint.weights, model)
    _check_against_model(state, model, checkpoint.path)
    model.load_state_dict(state, strict=True)
    return LoadedSoVITS(model.eval(), config, checkpoint.version, checkpoint.path, checkpoint.info,
                        checkpoint.hparams)
