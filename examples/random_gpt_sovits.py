"""Write real-size GPT-SoVITS v2/v2Pro/v4 checkpoints with random weights, in the official on-disk format.

No trained GPT-SoVITS weights can be downloaded here, and speed does not depend on the weights' values,
so benchmarks and the real-size tests use files made by this script::

    python examples/random_gpt_sovits.py build/random-v2     # writes s1_v2_random.ckpt and s2_v2_random.pth
    python examples/random_gpt_sovits.py build/random-pro --version v2ProPlus   # + s2_v2proplus_random.pth, sv_eres2netv2_random.ckpt
    python examples/random_gpt_sovits.py build/random-v4 --version v4   # s2Gv4_random.pth, s2_v4_lora32_random.pth, vocoder_v4_random.pth

The GPT file is what the official ``s1_train.py`` writes: ``{'weight': {'model.<name>': fp16},
'config': the s1longer-v2.yaml dict, 'info': 'GPT-e<epoch>'}``. The SoVITS file is what the official
trainer's ``process_ckpt.savee`` writes: ``{'weight': fp16 state dict without enc_q.*,
'config': utils.HParams(s2.json), 'info': ...}``, the config pickled as the global ``utils.HParams``
(a stand-in class is registered under that name while saving).

v4 (fact sheet gpt-sovits-pro-v4.md §5–6): the base ``s2Gv4.pth`` at the released size (384.4 M elements,
≈769 MB fp16, incl. the unused ``linear_mel``), a rank-32 LoRA file as ``s2_train_v3_lora.py`` saves it (tag
``04``, the fully trained ref_enc/bridge/wns1/linear_mel, every buffer, 22 × 4 LoRA pairs under peft's names,
``lora_rank``; 258 tensors, 37.7 M elements) and the 48 kHz ``vocoder.pth`` (a bare state dict, 14.4 M elements).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import torch

from ttsopt.families.gpt_sovits.gpt_checkpoint import config_from_official
from ttsopt.families.gpt_sovits.gpt_model import Text2SemanticDecoder
from ttsopt.families.gpt_sovits.sovits_checkpoint import config_from_hparams, to_official_state_dict
from ttsopt.families.gpt_sovits.sovits_model import SoVITSModel
from ttsopt.families.gpt_sovits.sv_model import ERes2NetV2, SVConfig
from ttsopt.families.gpt_sovits.v4.dit import DiTSizes
from ttsopt.families.gpt_sovits.v4.model import SoVITSV4, V4Sizes
from ttsopt.families.gpt_sovits.v4.vocoder import Vocoder, VocoderSizes

#: The released ``GPT_SoVITS/configs/s2.json`` (v2), plus the fields the webui adds.
S2_V2 = {
    "train": {"segment_size": 20480, "fp16_run": True, "lora_rank": "32"},
    "data": {"max_wav_value": 32768.0, "sampling_rate": 32000, "filter_length": 2048, "hop_length": 640,
             "win_length": 2048, "n_mel_channels": 128, "mel_fmin": 0.0, "mel_fmax": None, "add_blank": True,
             "n_speakers": 300, "cleaned_text": True},
    "model": {"inter_channels": 192, "hidden_channels": 192, "filter_channels": 768, "n_heads": 2, "n_layers": 6,
              "kernel_size": 3, "p_dropout": 0.1, "resblock": "1", "resblock_kernel_sizes": [3, 7, 11],
              "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]], "upsample_rates": [10, 8, 2, 2, 2],
              "upsample_initial_channel": 512, "upsample_kernel_sizes": [16, 16, 8, 2, 2], "n_layers_q": 3,
              "use_spectral_norm": False, "gin_channels": 512, "semantic_frame_rate": "25hz",
              "freeze_quantizer": True, "version": "v2"},
    "s2_ckpt_dir": "logs/x", "name": "x", "version": "v2",
}


#: The released ``configs/s2v2Pro.json`` and ``s2v2ProPlus.json``: s2.json with gin 1024 (fact sheet
#: gpt-sovits-pro-v4.md §3.1), ProPlus also with a 768-channel generator whose first kernel is 20.
S2_V2PRO = copy.deepcopy(S2_V2)
S2_V2PRO["model"].update(gin_channels=1024, p_dropout=0.0, version="v2Pro")
S2_V2PRO["version"] = "v2Pro"
S2_V2PROPLUS = copy.deepcopy(S2_V2PRO)
S2_V2PROPLUS["model"].update(upsample_initial_channel=768, upsample_kernel_sizes=[20, 16, 8, 2, 2], version="v2ProPlus")
S2_V2PROPLUS["version"] = "v2ProPlus"

#: s2.json as the webui writes it for a v4 model (the v4 parts' sizes are hard-coded in the official constructor).
S2_V4 = copy.deepcopy(S2_V2)
S2_V4["model"]["version"] = "v4"
S2_V4["version"] = "v4"
#: The released DiT (fact sheet §5.1): dim 1024, depth 22, 16 heads of 64, ff_mult 2, text_dim 512, 4 ConvNeXt blocks.
DIT_V4 = DiTSizes(dim=1024, depth=22, heads=16, dim_head=64, ff_inner=2048, mel_dim=100, text_dim=512, conv_layers=4,
                  conv_inner=1024)
#: The released vocoder.pth (fact sheet §5.6): 100 mels, 512 channels, upsample kernels 20/12/4/4/4, resblocks 3/7/11.
VOCODER_V4 = VocoderSizes(mel_bins=100, initial_channels=512, upsample_kernel_sizes=(20, 12, 4, 4, 4),
                          resblock_kernel_sizes=(3, 7, 11))
#: What a v4 LoRA file saves besides the LoRA pairs (the modules the LoRA trainer trains fully, and every buffer).
_LORA_TRAINED = ("ref_enc.", "bridge.", "wns1.", "linear_mel.")
_LORA_PROJECTIONS = ("to_q", "to_k", "to_v", "to_out.0")

#: The released ``GPT_SoVITS/configs/s1longer-v2.yaml`` (the sections a GPT checkpoint embeds).
S1_V2 = {
    "train": {"seed": 1234, "epochs": 20, "batch_size": 8, "save_every_n_epoch": 1, "precision": "16-mixed",
              "gradient_clip": 1.0},
    "optimizer": {"lr": 0.01, "lr_init": 1e-05, "lr_end": 0.0001, "warmup_steps": 2000, "decay_steps": 40000},
    "data": {"max_eval_sample": 8, "max_sec": 54, "num_workers": 4, "pad_val": 1024},
    "model": {"vocab_size": 1025, "phoneme_vocab_size": 732, "embedding_dim": 512, "hidden_dim": 512, "head": 16,
              "linear_units": 2048, "n_layer": 24, "dropout": 0, "EOS": 1024, "random_bert": 0},
    "inference": {"top_k": 15},
}


class OfficialHParams:
    """Pickles like ``GPT_SoVITS/utils.py``'s ``HParams``: nested attribute objects."""

    def __init__(self, **kwargs):
        for key, value in kwargs.items():
            setattr(self, key, OfficialHParams(**value) if isinstance(value, dict) else value)


@contextlib.contextmanager
def official_hparams_global() -> Iterator[None]:
    """Make ``OfficialHParams`` pickle as the global ``utils.HParams`` while the block runs."""
    saved = sys.modules.get("utils")
    module = types.ModuleType("utils")
    module.HParams = OfficialHParams
    OfficialHParams.__module__, OfficialHParams.__qualname__ = "utils", "HParams"
    sys.modules["utils"] = module
    try:
        yield
    finally:
        OfficialHParams.__module__, OfficialHParams.__qualname__ = __name__, "OfficialHParams"
        if saved is None:
            sys.modules.pop("utils", None)
        else:
            sys.modules["utils"] = saved


def save_official_sovits(path: Path, weights: dict[str, torch.Tensor], hparams: dict,
                         info: str = "1epoch_100iteration", tag: bytes | None = None) -> Path:
    """``weights`` in official names (:func:`to_official_state_dict`) saved as the trainer does.

    ``tag``: the two ASCII bytes ``process_ckpt.my_save2`` writes over the zip magic (``b"05"`` v2Pro,
    ``b"06"`` v2ProPlus); None writes a plain zip (v1/v2).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"weight": {k: v.half() for k, v in weights.items()}, "config": None, "info": info}
    with official_hparams_global():
        state["config"] = OfficialHParams(**hparams)
        if tag is None:
            torch.save(state, path)
        else:
            buffer = io.BytesIO()
            torch.save(state, buffer)
            path.write_bytes(tag + buffer.getvalue()[2:])
    return path


def write_random_sovits(path: Path, hparams: dict = S2_V2, seed: int = 0) -> Path:
    """A randomly initialised SoVITS of ``hparams``' size (default: the released v2 model); v2Pro/v2ProPlus
    files get their header tag, as the trainer writes them."""
    torch.manual_seed(seed)
    version = hparams["model"]["version"]
    model = SoVITSModel(config_from_hparams(hparams, version))
    tag = {"v2Pro": b"05", "v2ProPlus": b"06"}.get(version)
    return save_official_sovits(path, to_official_state_dict(model), hparams, tag=tag)


def write_random_sv(path: Path, seed: int = 0) -> Path:
    """A randomly initialised ERes2NetV2 at the released size (``pretrained_eres2netv2w24s4ep4.ckpt``: 53.5 M
    parameters, 20480-d), saved as a bare fp32 state dict like the official file. Batch-norm statistics are
    randomised so activations stay in a speech-like range (and the Hardtanh clip is exercised)."""
    torch.manual_seed(seed)
    model = ERes2NetV2(SVConfig())
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.1)
                module.running_var.uniform_(0.5, 2.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return path


def _random_v4_official(seed: int) -> dict[str, torch.Tensor]:
    """A randomly initialised v4 SoVITS at the released size in official names (fp16), ``linear_mel`` included."""
    from ttsopt.families.gpt_sovits.sovits_checkpoint import config_from_hparams as text_config

    torch.manual_seed(seed)
    sizes = V4Sizes(text=text_config(S2_V4, "v2"), fea_channels=512, wns1_layers=8, wns1_kernel=5, dit=DIT_V4)
    model = SoVITSV4(sizes)
    mel_head = torch.nn.Conv1d(512, 100, 1)  # official linear_mel: trained, saved, unused at inference
    weights = to_official_state_dict(model)
    for key in [k for k in weights if k.startswith("wns1.enc.") and k.endswith(".weight")]:  # weight-normed officially
        v = weights.pop(key).float()
        weights[key[:-len("weight")] + "weight_g"] = torch.linalg.vector_norm(v, dim=(1, 2), keepdim=True).half()
        weights[key[:-len("weight")] + "weight_v"] = v.half()
    weights |= {f"linear_mel.{k}": v.detach().half() for k, v in mel_head.state_dict().items()}
    return weights


def write_random_v4(directory: Path, rank: int = 32, seed: int = 0) -> tuple[Path, Path, Path]:
    """The released v4 trio with random weights: base ``s2Gv4_random.pth``, a rank-``rank`` LoRA file trained on
    it (its fully trained modules and LoRA pairs random too), ``vocoder_v4_random.pth``."""
    weights = _random_v4_official(seed)
    base = save_official_sovits(directory / "s2Gv4_random.pth", weights, S2_V4, info="pretrained s2Gv4 (random)")
    torch.manual_seed(seed + 1)
    buffers = tuple(k for k in weights if k.startswith("quantizer.vq.") or k.endswith("inv_freq"))
    lora = {k: (v.float() + 0.01 * torch.randn(v.shape)).half() for k, v in weights.items() if k.startswith(_LORA_TRAINED)}
    lora |= {k: weights[k] for k in buffers}
    lora = {k.replace("cfm.", "cfm.base_model.model.", 1) if k.startswith("cfm.") else k: v for k, v in lora.items()}
    for block in range(DIT_V4.depth):
        for projection in _LORA_PROJECTIONS:
            prefix = f"cfm.base_model.model.estimator.transformer_blocks.{block}.attn.{projection}"
            lora[f"{prefix}.lora_A.default.weight"] = (torch.randn(rank, DIT_V4.dim) / DIT_V4.dim ** 0.5).half()
            lora[f"{prefix}.lora_B.default.weight"] = (0.01 * torch.randn(DIT_V4.dim, rank)).half()
    state = {"weight": lora, "config": None, "info": "my_v4_voice_e8_s96_l32", "lora_rank": rank}
    with official_hparams_global():
        state["config"] = OfficialHParams(**S2_V4)
        buffer = io.BytesIO()
        torch.save(state, buffer)
    lora_path = directory / f"s2_v4_lora{rank}_random.pth"
    lora_path.write_bytes(b"04" + buffer.getvalue()[2:])
    torch.manual_seed(seed + 2)
    vocoder = directory / "vocoder_v4_random.pth"
    torch.save(Vocoder(VOCODER_V4).state_dict(), vocoder)
    return base, lora_path, vocoder


def write_random_gpt(path: Path, config: dict = S1_V2, seed: int = 0) -> Path:
    """A randomly initialised s1 GPT of ``config``'s size (default: the released v2 model, 24 × 512)."""
    torch.manual_seed(seed)
    model = Text2SemanticDecoder(config_from_official(config))
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"weight": {f"model.{k}": v.half() for k, v in model.state_dict().items()}, "config": config,
                "info": "GPT-e1"}, path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="directory to write into")
    parser.add_argument("--version", choices=("v2", "v2Pro", "v2ProPlus", "v4"), default="v2",
                        help="SoVITS version; v2Pro/v2ProPlus also write a random sv_eres2netv2_random.ckpt (for --sv), "
                             "v4 the base, a rank-32 LoRA file and the 48 kHz vocoder")
    args = parser.parse_args()
    print(write_random_gpt(args.out / "s1_v2_random.ckpt"))
    if args.version == "v4":
        print(*write_random_v4(args.out), sep="\n")
        return
    hparams = {"v2": S2_V2, "v2Pro": S2_V2PRO, "v2ProPlus": S2_V2PROPLUS}[args.version]
    print(write_random_sovits(args.out / f"s2_{args.version.lower()}_random.pth", hparams))
    if args.version != "v2":
        print(write_random_sv(args.out / "sv_eres2netv2_random.ckpt"))


if __name__ == "__main__":
    main()
