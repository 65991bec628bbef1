"""The runtime needs numpy + onnxruntime + soundfile, never torch: run it with torch unimportable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, SPEECH

# Any 'import torch' raises ImportError. A finder, not sys.modules['torch'] = None: libraries such as scipy
# look torch up in sys.modules and would trip over a None there, which a torch-less machine never shows.
BLOCK_TORCH = """import sys
class _NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked for this test")
sys.meta_path.insert(0, _NoTorch())
"""


def _run_without_torch(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK_TORCH + code], capture_output=True, text=True, cwd=ROOT, timeout=300)


def test_python_api_without_torch(package: Path, tmp_path: Path):
    done = _run_without_torch(f"""
import ttsopt.runtime, numpy as np
vocoder = ttsopt.runtime.load({str(package)!r})
audio = vocoder.vocode(vocoder.mel_from_wav({str(SPEECH)!r}))
assert audio.dtype == np.float32 and audio.size > 22050 and np.isfinite(audio).all()
assert 'torch' not in sys.modules
print('ok', audio.size)
""")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok")


def test_cli_run_verify_inspect_without_torch(package: Path, tmp_path: Path):
    for args in ([ "run", str(package), "--wav", str(SPEECH), "-o", str(tmp_path / "o.wav")],
                 ["verify", str(package), "--reference", str(SPEECH), "--plot", str(tmp_path / "v.png")],
                 ["inspect", str(package)]):
        done = _run_without_torch(f"from ttsopt.cli import app; app({args!r})")
        assert done.returncode == 0, (args, done.stderr)
    assert (tmp_path / "o.wav").stat().st_size > 10_000


def test_bench_without_torch_says_why_eager_is_missing(package: Path):
    done = _run_without_torch(f"from ttsopt.cli import app; app(['bench', {str(package)!r}, '--seconds', '0.5', '--repeat', '1'])")
    assert done.returncode == 0, done.stderr
    assert "PyTorch eager not measured: torch is not installed" in done.stdout


def test_build_commands_on_a_runtime_only_install_name_the_extra(universal: Path, tmp_path: Path):
    """``pip install ttsopt`` (no build extra) then ``ttsopt export``: one line naming the extra, no traceback."""
    blocked = """import sys
class _Absent:  # as on a machine without the build extra: the modules are not there
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("torch", "onnxslim"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, _Absent())
"""
    code = f"from ttsopt.cli import app; app(['export', {str(universal)!r}, '-o', {str(tmp_path / 'p')!r}])"
    done = subprocess.run([sys.executable, "-c", blocked + code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "pip install 'ttsopt[build]'" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "p").exists()


def test_text_front_end_without_torch():
    aux = ROOT.parent / "shared" / "oracle" / "gpt-sovits-aux-tiny"  # g2pW: the official interface, tokenizer.json
    done = _run_without_torch(f"""
import json, sys
from pathlib import Path
from ttsopt.runtime.text import phonemize
from ttsopt.runtime.text.g2pw import G2PW
symbols = json.load(open('ttsopt/families/gpt_sovits/symbols/v2.json'))
for lang, text in [('en', 'Hello, world.'), ('zh', '你好，世界。'), ('ja', 'こんにちは。'), ('ko', '안녕하세요.'), ('yue', '你好，世界。')]:
    assert phonemize(text, lang, symbols)[0].phones, lang
aux = Path({str(aux)!r})
if aux.is_dir():
    g2pw = G2PW(aux / 'G2PWModel', aux / 'chinese-roberta-wwm-ext-large' / 'tokenizer.json')
    assert phonemize('他说明天要去银行。', 'zh', symbols, g2pw=g2pw)[0].phones[:2] == ['t', 'uo1']  # the stand-in's reading
assert 'torch' not in sys.modules and 'transformers' not in sys.modules
print('ok')
""")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("ok")
