"""Read GPT-SoVITS v4 SoVITS files (a user's LoRA file + the base ``s2Gv4.pth``, or a full file) and the vocoder.

Files (fact sheet §1, §6):

- a **LoRA file** (``s2_train_v3_lora.py``; the only thing the webui trains for v3/v4): the zip magic ``PK`` is
  replaced by the tag ``04`` (v4) or ``03`` (v3); ``weight`` holds the fully fine-tuned ``ref_enc``, ``bridge``,
  ``wns1``, ``linear_mel``, every buffer (codebook, rotary ``inv_freq``), and per DiT attention projection
  (``to_q/to_k/to_v/to_out.0``) the LoRA pair ``lora_A [r, in]`` / ``lora_B [out, r]`` under the peft prefix
  ``cfm.base_model.model.``; top-level ``lora_rank``. It cannot make speech without the base;
- the **base** (``gsv-v4-pretrained/s2Gv4.pth``) or any full v3/v4 file: untagged, every tensor, ``cfm.estimator.*``.

v3 and v4 have identical keys and shapes; only the tag, the md5 of the first 8192 bytes of the released bases, or
the config's ``model.version`` tell them apart, and v3 (24 kHz, BigVGAN vocoder) is refused with that reason.
The merge is the official one (peft ``merge_and_unload``): base weights, overwritten by the LoRA file's plain
tensors, then ``W += (alpha / r) · B·A`` per projection with ``alpha = r`` (scale 1), in float32.
Every file is unpickled by the restricted unpickler of :mod:`..sovits_checkpoint` (the config is a pickled
``utils.HParams``); the vocoder is a bare state dict read with ``weights_only=True``.
"""

from __future__ import annotations

import hashlib
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ttsopt.compiler.checkpoint import checkpoint_head, describe_checkpoint, load_checkpoint
from ttsopt.errors import TtsoptError
from ttsopt.families.gpt_sovits.formats import SOVITS_HEADER_TAGS, SOVITS_LORA_TAGS
from ttsopt.families.gpt_sovits.sovits_checkpoint import HParams, config_from_hparams, restricted_torch_load
from ttsopt.families.gpt_sovits.v4.dit import DiTSizes
from ttsopt.families.gpt_sovits.v4.model import SoVITSV4, V4Sizes
from ttsopt.families.gpt_sovits.v4.vocoder import UPSAMPLE_RATES, Vocoder, VocoderSizes

#: md5 of the first 8192 bytes of the released bases (the official fast probe).
RELEASED_BASE_MD5 = {"4f26b9476d0c5033e04162c486074374": "v4", "43797be674a37c1c83ee81081941ed0f": "v3"}
BASE_HINT = "--sovits-base GPT_SoVITS/pretrained_models/gsv-v4-pretrained/s2Gv4.pth (or --pretrained CHECKOUT)"
VOCODER_HINT = "--vocoder GPT_SoVITS/pretrained_models/gsv-v4-pretrained/vocoder.pth (or --pretrained CHECKOUT)"
V3_REASON = ("v3 SoVITS models are not supported: they speak through NVIDIA's BigVGAN 24 kHz vocoder, which "
             "ttsopt does not build; train a v4 model (48 kHz, its own vocoder) instead")

_PEFT_PREFIX = "cfm.base_model.model."
_LORA_KEY = re.compile(r"^cfm\.base_model\.model\.(estimator\.transformer_blocks\.\d+\.attn\.(?:to_q|to_k|to_v|to_out\.0))"
                       r"\.lora_(A|B)\.default\.weight$")
_CODEBOOK_PREFIX = "quantizer.vq.layers.0._codebook."
#: State the inference model does not hold: codebook EMA statistics, the unused mel head.
_DROPPED = (_CODEBOOK_PREFIX + "inited", _CODEBOOK_PREFIX + "cluster_size", _CODEBOOK_PREFIX + "embed_avg")
_DROPPED_PREFIXES = ("linear_mel.", "enc_q.")


@dataclass(frozen=True)
class V4File:
    """One v3/v4 SoVITS file as read: whether it is a LoRA file, the version and the evidence for it."""

    path: Path
    version: str               # "v3" or "v4" (or "v3/v4" when nothing says)
    evidence: str
    lora: bool
    weights: Mapping[str, torch.Tensor] = field(repr=False)
    hparams: HParams | None = field(repr=False)
    info: str | None
    lora_rank: int | None


@dataclass(frozen=True)
class LoadedV4:
    """A ready v4 SoVITS model (float32, eval, CPU, LoRA merged) and where it came from."""

    model: SoVITSV4
    sizes: V4Sizes
    path: Path
    base: Path | None
    info: str | None
    lora_rank: int | None
    hparams: HParams = field(repr=False)

    def describe(self) -> str:
        if self.base is None:
            return f"full v4 SoVITS model {self.path.name}"
        return f"v4 LoRA {self.path.name} (rank {self.lora_rank}) merged into {self.base.name}"


def is_cfm_sovits(path: str | Path) -> bool:
    """Whether ``path`` is a v3/v4 SoVITS file (tag ``03``/``04``, or a zip whose pickle names ``cfm.*`` tensors).

    Cheap: reads the tag, or only the small ``data.pkl`` of the zip (no tensor data), so a loader can choose
    between the v2 and the v4 path before reading the weights.
    """
    path = Path(path)
    head = checkpoint_head(path, "SoVITS checkpoint")[:2]
    if head in SOVITS_LORA_TAGS:
        return True
    if head != b"PK":  # the v1/v2/Pro tags, or not a zip: the v2 loader's business
        return False
    try:
        with open(path, "rb") as handle, zipfile.ZipFile(handle) as archive:
            name = next((n for n in archive.namelist() if n.endswith("data.pkl")), None)
            return name is not None and b"cfm.estimator." in archive.read(name)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError):
        return False  # the v2 loader reports the damage in its own words


def _md5_head(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.md5(handle.read(8192)).hexdigest()


def read_v4_file(path: str | Path) -> V4File:
    """Read a v3/v4 SoVITS file (restricted unpickling) and say which version and kind it is."""
    path = Path(path)
    head = checkpoint_head(path, "SoVITS checkpoint")[:2]
    if head != b"PK" and head not in SOVITS_HEADER_TAGS:
        raise TtsoptError(f"{path} is not a PyTorch zip checkpoint (starts with {head!r}): give a GPT-SoVITS v4 .pth")
    state = restricted_torch_load(b"PK" + path.read_bytes()[2:], str(path))
    weights = state.get("weight") if isinstance(state, Mapping) else None
    if not isinstance(weights, Mapping) or not any(str(k).startswith("cfm.") for k in weights):
        kind = describe_checkpoint(state)
        raise TtsoptError(f"{path} is {kind} without cfm.* tensors, not a GPT-SoVITS v3/v4 SoVITS file: give a v4 .pth")
    odd = next((k for k, v in weights.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)), None)
    if odd is not None:
        raise TtsoptError(f"{path}: weight entry {odd!r} is not a named tensor: the file is damaged; re-export it")
    lora = any(_LORA_KEY.match(k) for k in weights)
    hparams = state.get("config") if isinstance(state.get("config"), Mapping) else None
    declared = (hparams or {}).get("model", {}).get("version") if isinstance((hparams or {}).get("model"), Mapping) else None
    md5 = RELEASED_BASE_MD5.get(_md5_head(path)) if head == b"PK" else None
    if head in SOVITS_HEADER_TAGS:
        version, evidence = SOVITS_HEADER_TAGS[head], f"header tag {head.decode()}"
    elif md5 is not None:
        version, evidence = md5, f"the released s2G{md5}.pth (md5 of its first 8192 bytes)"
    elif declared in ("v3", "v4"):
        version, evidence = declared, f"its config's model.version {declared!r}"
    else:
        version, evidence = "v3/v4", "no header tag, no known md5, no model.version in its config"
    if head in SOVITS_HEADER_TAGS and version not in ("v3", "v4"):
        raise TtsoptError(f"{path} carries the {version} header tag but holds cfm.* (v3/v4) tensors: the file is "
                          f"inconsistent; re-export it")
    rank = state.get("lora_rank")
    info = state.get("info")
    return V4File(path, version, evidence, lora, dict(weights), hparams, info if isinstance(info, str) else None,
                  int(rank) if isinstance(rank, int) else None)


def _refuse_non_v4(file: V4File, role: str) -> None:
    if file.version == "v3":
        raise TtsoptError(f"{file.path} is a GPT-SoVITS v3 {role} ({file.evidence}): {V3_REASON}")
    if file.version != "v4":
        raise TtsoptError(f"cannot tell whether {file.path} is a v3 or a v4 SoVITS file ({file.evidence}; their "
                          f"tensors are identical): give the file the GPT-SoVITS trainer wrote (it records the version)")


def _fold_weight_norm(weights: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``X.weight_g`` / ``X.weight_v`` → ``X.weight = v · (g / ‖v‖)`` (norm over every dim but the first)."""
    out = {k: v for k, v in weights.items() if not k.endswith((".weight_g", ".weight_v"))}
    for key in weights:
        if key.endswith(".weight_v"):
            prefix = key[: -len(".weight_v")]
            if prefix + ".weight_g" not in weights:
                raise TtsoptError(f"tensor {prefix}.weight_g is missing beside {key}: the file is damaged; re-export it")
            v, g = weights[key], weights[prefix + ".weight_g"]
            out[prefix + ".weight"] = v * (g / torch.linalg.vector_norm(v, dim=tuple(range(1, v.dim())), keepdim=True))
    return out


def _plain_state(weights: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official names → :class:`SoVITSV4` names, float32, weight norm folded, training-only state dropped."""
    out = {}
    for key, tensor in weights.items():
        if key in _DROPPED or key.startswith(_DROPPED_PREFIXES) or _LORA_KEY.match(key):
            continue
        if key == _CODEBOOK_PREFIX + "embed":
            key = "quantizer.embed"
        elif key.startswith(_PEFT_PREFIX):
            key = "cfm." + key[len(_PEFT_PREFIX):]
        out[key] = tensor.to(torch.float32)
    return _fold_weight_norm(out)


def merge_lora(base: Mapping[str, torch.Tensor], lora: V4File) -> dict[str, torch.Tensor]:
    """The official merge: ``base`` (plain names, float32) ← the LoRA file's plain tensors, then
    ``W += (alpha / r) · B·A`` on each adapted projection (``alpha = r``: scale 1)."""
    merged = dict(base)
    for key, tensor in _plain_state(lora.weights).items():
        if key not in merged:
            raise TtsoptError(f"{lora.path} has tensor {key}, which the base model lacks: the LoRA file belongs to "
                              f"another model; give the base it was trained on ({BASE_HINT})")
        if merged[key].shape != tensor.shape:
            raise TtsoptError(f"{lora.path}: {key} is {list(tensor.shape)} but the base has {list(merged[key].shape)}: "
                              f"the LoRA file was trained on another base; give its base ({BASE_HINT})")
        merged[key] = tensor
    pairs: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in lora.weights.items():
        match = _LORA_KEY.match(key)
        if match:
            pairs.setdefault(match.group(1), {})[match.group(2)] = tensor.to(torch.float32)
    for module, pair in sorted(pairs.items()):
        target = f"cfm.{module}.weight"
        if set(pair) != {"A", "B"}:
            raise TtsoptError(f"{lora.path} holds only lora_{next(iter(pair))} of {module}: the file is damaged; re-export it")
        a, b = pair["A"], pair["B"]
        rank = a.shape[0]
        if lora.lora_rank is not None and rank != lora.lora_rank:
            raise TtsoptError(f"{lora.path}: {module} has LoRA rank {rank} but the file says lora_rank {lora.lora_rank}: "
                              f"the file is damaged; re-export it")
        if target not in merged or b.shape[1] != rank or merged[target].shape != (b.shape[0], a.shape[1]):
            raise TtsoptError(f"{lora.path}: the LoRA pair of {module} ({list(b.shape)}·{list(a.shape)}) does not fit the "
                              f"base's {list(merged.get(target, torch.empty(0)).shape)}: give the base it was trained on ({BASE_HINT})")
        alpha = float(rank)  # s2_train_v3_lora.py: LoraConfig(r=rank, lora_alpha=rank)
        merged[target] = merged[target] + (alpha / rank) * (b @ a)
    return merged


def _count(weights: Mapping[str, torch.Tensor], pattern: str) -> int:
    regex = re.compile(pattern)
    return len({m.group(1) for k in weights if (m := regex.match(k))})


def sizes_from_weights(weights: Mapping[str, torch.Tensor], hparams: Mapping[str, Any], source: str) -> V4Sizes:
    """Every size of the model: enc_p/ref_enc from the config (v2 layout), bridge/wns1/DiT from tensor shapes."""
    text = config_from_hparams(hparams, "v2", source)
    try:
        e = "cfm.estimator."
        inv_freq = weights.get(e + "rotary_embed.inv_freq")
        dim_head = 2 * inv_freq.numel() if inv_freq is not None else 64  # the DiT's default dim_head
        dim = weights[e + "time_embed.time_mlp.2.weight"].shape[0]
        mel_dim = weights[e + "proj_out.weight"].shape[0]
        conv_pos = weights[e + "input_embed.conv_pos_embed.conv1d.0.weight"]
        dit = DiTSizes(
            dim=dim, depth=_count(weights, r"^cfm\.estimator\.transformer_blocks\.(\d+)\."),
            heads=weights[e + "transformer_blocks.0.attn.to_q.weight"].shape[0] // dim_head, dim_head=dim_head,
            ff_inner=weights[e + "transformer_blocks.0.ff.ff.0.0.weight"].shape[0], mel_dim=mel_dim,
            text_dim=weights[e + "input_embed.proj.weight"].shape[1] - 2 * mel_dim,
            conv_layers=_count(weights, r"^cfm\.estimator\.text_embed\.text_blocks\.(\d+)\."),
            conv_inner=weights[e + "text_embed.text_blocks.0.pwconv1.weight"].shape[0],
            freq_embed_dim=weights[e + "time_embed.time_mlp.0.weight"].shape[1],
            conv_pos_kernel=conv_pos.shape[-1], conv_pos_groups=dim // conv_pos.shape[1])
        return V4Sizes(text=text, fea_channels=weights["bridge.0.weight"].shape[0],
                       wns1_layers=_count(weights, r"^wns1\.enc\.in_layers\.(\d+)\."),
                       wns1_kernel=weights["wns1.enc.in_layers.0.weight"].shape[-1], dit=dit)
    except (KeyError, IndexError, ZeroDivisionError) as exc:
        raise TtsoptError(f"{source} lacks tensor {exc} that a v4 SoVITS model needs: the file is incomplete; "
                          f"re-download or re-export it") from None


def build_model(state: dict[str, torch.Tensor], sizes: V4Sizes, source: str) -> SoVITSV4:
    """:class:`SoVITSV4` with ``state`` loaded strictly (a missing rotary ``inv_freq`` is the fp16-rounded default)."""
    model = SoVITSV4(sizes)
    key = "cfm.estimator.rotary_embed.inv_freq"
    if key not in state:  # saved as fp16 by the official saver; rounding the default the same way matches it
        state[key] = model.state_dict()[key].to(torch.float16).to(torch.float32)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        what = f"lacks {missing[0]}" if missing else f"has {unexpected[0]}, which a v4 model does not use"
        raise TtsoptError(f"{source} {what}: it is incomplete or not a GPT-SoVITS v4 SoVITS file")
    bad = next((k for k in expected if expected[k].shape != state[k].shape), None)
    if bad is not None:
        raise TtsoptError(f"{source}: tensor {bad} is {list(state[bad].shape)} where its config implies "
                          f"{list(expected[bad].shape)}: the config (hps.model) does not describe these weights")
    model.load_state_dict(state, strict=True)
    return model.eval()


def load_v4_sovits(path: str | Path, base: str | Path | None = None) -> LoadedV4:
    """A v4 SoVITS model from a LoRA file + its base, or from a full v4 file (``base`` then must be None)."""
    file = read_v4_file(path)
    _refuse_non_v4(file, "LoRA file" if file.lora else "SoVITS file")
    if not file.lora:
        if base is not None:
            raise TtsoptError(f"{file.path} is a full v4 SoVITS model, not a LoRA file: drop --sovits-base")
        if file.hparams is None:
            raise TtsoptError(f"{file.path} has no config (hps): give the .pth the GPT-SoVITS trainer wrote")
        state = _plain_state(file.weights)
        sizes = sizes_from_weights(state, file.hparams, str(file.path))
        return LoadedV4(build_model(state, sizes, str(file.path)), sizes, file.path, None, file.info, None, file.hparams)
    if base is None:
        raise TtsoptError(f"{file.path} is a v4 LoRA file ({file.evidence}): it only holds the changes to the v4 base "
                          f"model, which you must give too: {BASE_HINT}")
    base_file = read_v4_file(base)
    if base_file.lora:
        raise TtsoptError(f"--sovits-base {base_file.path} is a LoRA file itself: give the full base model ({BASE_HINT})")
    if base_file.version == "v3":
        raise TtsoptError(f"--sovits-base {base_file.path} is the v3 base ({base_file.evidence}), but {file.path} is a v4 "
                          f"LoRA: give the v4 base ({BASE_HINT})")
    hparams = base_file.hparams or file.hparams
    if hparams is None:
        raise TtsoptError(f"neither {file.path} nor {base_file.path} has a config (hps): give trainer-written files")
    state = merge_lora(_plain_state(base_file.weights), file)
    sizes = sizes_from_weights(state, hparams, str(base_file.path))
    model = build_model(state, sizes, f"{file.path} merged into {base_file.path}")
    return LoadedV4(model, sizes, file.path, base_file.path, file.info, file.lora_rank, hparams)


def load_vocoder(path: str | Path) -> Vocoder:
    """The v4 vocoder (``vocoder.pth``: a bare state dict with plain, weight-norm-free convs), float32 eval."""
    path = Path(path)
    state = load_checkpoint(path, "the GPT-SoVITS v4 vocoder (gsv-v4-pretrained/vocoder.pth)")
    if not isinstance(state, Mapping) or "conv_pre.weight" not in state or "ups.0.weight" not in state:
        raise TtsoptError(f"{path} is {describe_checkpoint(state)}, not the v4 vocoder: give {VOCODER_HINT}")
    state = {k: v.to(torch.float32) for k, v in _fold_weight_norm(state).items()}
    ups = _count(state, r"^ups\.(\d+)\.weight$")
    if ups != len(UPSAMPLE_RATES):
        raise TtsoptError(f"{path} has {ups} upsampling layers, the v4 vocoder {len(UPSAMPLE_RATES)} (×480 to 48 kHz): "
                          f"it is another vocoder (v3's BigVGAN, a v2 decoder?); give {VOCODER_HINT}")
    kernels = _count(state, r"^resblocks\.(\d+)\.convs1\.0\.weight$") // ups
    sizes = VocoderSizes(mel_bins=state["conv_pre.weight"].shape[1], initial_channels=state["conv_pre.weight"].shape[0],
                         upsample_kernel_sizes=tuple(state[f"ups.{i}.weight"].shape[-1] for i in range(ups)),
                         resblock_kernel_sizes=tuple(state[f"resblocks.{j}.convs1.0.weight"].shape[-1] for j in range(kernels)))
    model = Vocoder(sizes)
    expected = model.state_dict()
    bad = next((k for k in expected if k not in state or state[k].shape != expected[k].shape), None)
    extra = sorted(set(state) - set(expected))
    if bad is not None or extra:
        detail = f"tensor {bad} is missing or mis-shaped" if bad else f"it has {extra[0]}, which the v4 vocoder does not use"
        raise TtsoptError(f"{path} is not a v4 vocoder ({detail}): give {VOCODER_HINT}")
    model.load_state_dict(state, strict=True)
    return model.eval()
