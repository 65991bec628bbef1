"""chinese-hubert-base → the package's ``ssl`` graph (16 kHz waveform → HuBERT features), build side only.

Every official GPT-SoVITS inference prompts the GPT with the semantic tokens of its reference recording:
16 kHz waveform + 0.3 × the SoVITS rate of zeros → HuBERT's ``last_hidden_state`` → ``extract_latent``
(the package's ``prompt_codes`` graph). The official code calls the bare ``HubertModel`` (``cnhubert.model``),
never the feature extractor, so the graph takes the raw waveform: no normalisation.

The user's folder (``GPT_SoVITS/pretrained_models/chinese-hubert-base``: ``config.json`` +
``pytorch_model.bin``, fp16, the positional convolution's weight norm under its legacy ``weight_g``/``weight_v``
names) is loaded with transformers' ``HubertModel`` as float32, with ``weights_only=True`` (transformers'
default for ``.bin`` files); a folder that does not load without missing or unexpected keys is refused in one
line. The exported copy has the positional convolution's weight norm folded (one constant weight instead of a
norm per call) and eager attention; the original model runs the golden outputs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ttsopt.compiler.folding import remove_weight_norm
from ttsopt.compiler.spec import GoldenItem, GraphExport
from ttsopt.errors import TtsoptError
from ttsopt.package.manifest import DimRange, TensorSpec
from ttsopt.runtime.prompt import SSL, SSL_RATE, hubert_input

HINT = "give --hubert GPT_SoVITS/pretrained_models/chinese-hubert-base (or --pretrained CHECKOUT)"
#: 16 kHz samples of the ``ssl`` graph's input: 2 HuBERT frames (45 ms) to 60 s (the official bound is
#: 3-10 s + the padding; the graph itself takes any length the SoVITS ``prompt_codes`` graph takes).
SAMPLES = DimRange(720, 8 * SSL_RATE, 60 * SSL_RATE)


@dataclass
class LoadedHubert:
    path: Path
    model: nn.Module  # transformers.HubertModel, float32, eval
    config: dict

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.hidden_size)

    def facts(self) -> dict:
        """What the manifest records of it."""
        c = self.model.config
        return {"model": "HubertModel", "source": str(self.path.resolve()), "hidden_size": c.hidden_size,
                "num_hidden_layers": c.num_hidden_layers, "intermediate_size": c.intermediate_size,
                "num_attention_heads": c.num_attention_heads, "samples_per_frame": int(np.prod(c.conv_stride)),
                "parameters": sum(p.numel() for p in self.model.parameters())}


def load_hubert(folder: Path) -> LoadedHubert:
    """The user's chinese-hubert-base folder as a float32 ``HubertModel`` (refused in one line if it is not one)."""
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise TtsoptError(f"--hubert {folder}: no config.json in it: {HINT}")
    try:
        config = json.loads(config_file.read_text())
    except (OSError, ValueError) as exc:
        raise TtsoptError(f"--hubert {folder}: config.json is not readable JSON ({exc}): {HINT}") from None
    if config.get("model_type") != "hubert":
        raise TtsoptError(f"--hubert {folder}: config.json describes a {config.get('model_type')!r} model, not HuBERT: {HINT}")
    if not any((folder / name).is_file() for name in ("pytorch_model.bin", "model.safetensors")):
        raise TtsoptError(f"--hubert {folder}: no pytorch_model.bin (or model.safetensors) in it: {HINT}")
    from transformers import HubertModel
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        model, info = HubertModel.from_pretrained(str(folder), output_loading_info=True, torch_dtype=torch.float32,
                                                   local_files_only=True)  # the user's folder; never a hub
    except Exception as exc:  # transformers raises OSError/ValueError/RuntimeError/pickle errors for bad files
        raise TtsoptError(f"--hubert {folder}: transformers cannot load it ({str(exc).splitlines()[0][:200]}): {HINT}") from None
    finally:
        hf_logging.set_verbosity(verbosity)
    problems = {k: v for k, v in info.items() if k in ("missing_keys", "unexpected_keys", "mismatched_keys") and v}
    if problems:
        detail = "; ".join(f"{k.replace('_', ' ')}: {', '.join(map(str, v[:3]))}{' …' if len(v) > 3 else ''}"
                           for k, v in problems.items())
        raise TtsoptError(f"--hubert {folder}: its weights do not match its config ({detail}): {HINT}")
    return LoadedHubert(folder, model.float().eval(), config)


class SslGraph(nn.Module):
    """``waveform [B, samples]`` (16 kHz, padded) → ``ssl [B, hidden, frames]`` (the layout ``prompt_codes`` takes)."""

    def __init__(self, hubert: nn.Module):
        super().__init__()
        self.hubert = hubert

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        return self.hubert(waveform).last_hidden_state.transpose(1, 2)


def exported_copy(loaded: LoadedHubert) -> nn.Module:
    """A second instance for export: weight norm folded, eager attention (plain MatMul/Softmax in ONNX)."""
    from transformers import HubertModel

    config = loaded.model.config.__class__.from_dict(loaded.model.config.to_dict())
    config._attn_implementation = "eager"
    copy = HubertModel(config)
    copy.load_state_dict(loaded.model.state_dict())
    remove_weight_norm(copy)
    return copy.eval()


def ssl_graph(loaded: LoadedHubert) -> GraphExport:
    rng = torch.Generator().manual_seed(3)
    return GraphExport(
        name=SSL, module=SslGraph(exported_copy(loaded)).eval(),
        example_inputs=(0.1 * torch.randn(2, 16000, generator=rng),),
        inputs=(TensorSpec("waveform", "float32", ("batch", "samples"), kind="waveform"),),
        outputs=(TensorSpec("ssl", "float32", ("batch", loaded.hidden_size, "ssl_frames"), kind="features"),),
        dims={"batch": DimRange(1, 1, 8), "samples": SAMPLES},
        check_sizes=({"batch": 1, "samples": 720}, {"batch": 1, "samples": 57_600}, {"batch": 2, "samples": 9_999}),
    )


def golden_items(recordings_16k: list[tuple[str, np.ndarray]], padding: int) -> list[GoldenItem]:
    """The verification recordings as the official prompt path feeds HuBERT (16 kHz + ``padding`` zeros)."""
    return [GoldenItem(f"ssl-{name}", SSL, {"waveform": hubert_input(wav, padding)[None]}) for name, wav in recordings_16k]


def torch_runner(loaded: LoadedHubert):
    """The original (unfolded, SDPA) model on a golden input: what the ``ssl`` graph is verified against."""
    module = SslGraph(loaded.model).eval()

    def run(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with torch.inference_mode():
            return {"ssl": module(torch.from_numpy(inputs["waveform"])).numpy()}
    return run


@dataclass
class SslPlan:
    """What a package with HuBERT adds to the export plan."""

    graph: GraphExport
    original: object  # callable(inputs) -> outputs
    golden: list[GoldenItem]
    facts: dict
    loaded: LoadedHubert


def plan_ssl(folder: Path, speech, sovits_rate: int) -> SslPlan:
    """The ``ssl`` graph of the user's HuBERT folder, verified on the bundled recordings read at 16 kHz and
    padded as the official prompt path pads them for this SoVITS rate; ``speech(rate)`` gives the recordings."""
    from ttsopt.runtime.prompt import padding_samples

    loaded = load_hubert(folder)
    padding = padding_samples(sovits_rate)
    facts = loaded.facts() | {"sample_rate": SSL_RATE, "padding_samples": padding}
    return SslPlan(ssl_graph(loaded), torch_runner(loaded), golden_items(speech(SSL_RATE), padding), facts, loaded)


def official_prompt(loaded: LoadedHubert, prompt_codes, sovits_rate: int):
    """``recording → prompt codes`` by the original models (HuBERT, SoVITS ``extract_latent`` given as
    ``prompt_codes``: a torch module ``ssl → codes``): what ``--voice NAME=ref.wav|LANG|transcript`` stores."""
    from ttsopt.runtime.prompt import load_16k, padding_samples

    module = SslGraph(loaded.model).eval()

    def prompt(recording: Path) -> np.ndarray:
        wav = hubert_input(load_16k(recording).wav16k, padding_samples(sovits_rate))
        with torch.inference_mode():
            return prompt_codes(module(torch.from_numpy(wav)[None]))[0].numpy().astype(np.int64)
    return prompt
