"""GPT-SoVITS v4 in PyTorch against the official oracle (shared/oracle/gpt-sovits-v4-tiny): files, LoRA merge,
decode_encp, every DiT step, the chunked CFM loop (:mod:`ttsopt.runtime.cfm` driving the PyTorch DiT) and the
vocoder; the one-line errors of the loader. The exported graphs are checked in ``test_v4_graphs.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from examples.random_gpt_sovits import save_official_sovits
from tests.conftest import ORACLE as V2_ORACLE
from ttsopt.errors import TtsoptError
from ttsopt.families.gpt_sovits.sovits_checkpoint import restricted_torch_load
from ttsopt.families.gpt_sovits.v4.checkpoint import is_cfm_sovits, load_v4_sovits, load_vocoder, read_v4_file
from ttsopt.runtime import cfm
from ttsopt.runtime.sovits import reference_spectrogram

V4 = Path(__file__).resolve().parents[3] / "shared/oracle/gpt-sovits-v4-tiny"
LORA, BASE, VOCODER = V4 / "sovits_v4_lora_tiny.pth", V4 / "sovits_v4_base_tiny.pth", V4 / "vocoder_v4_tiny.pth"
TOL = json.loads((V4 / "tolerances.json").read_text()) if V4.is_dir() else {}
#: README "Suggested tolerances (fp32 reimplementation)".
FEA_ATOL, CFM_ATOL, VOCODER_IN_ATOL, AUDIO_ATOL = 1e-4, 1e-4, 1e-3, 1e-4
#: The reference log-mel: float32 FFT vs torch.stft on log of small energies (README: fp64 vs fp32 7.6e-6).
MEL_ATOL = 1e-4

pytestmark = pytest.mark.skipif(not LORA.is_file(), reason=f"v4 oracle not found under {V4}")
#: lora_a_steps32 runs through the exported graphs only (test_v4_package.py): 32 PyTorch DiT calls add nothing here.
RUNS = {"lora_a": ("ref_a_32k", "prompt_codes_a", "codes_a", 8, 1.0),
        "lora_a_speed125": ("ref_a_32k", "prompt_codes_a", "codes_a", 8, 1.25),
        "lora_b": ("ref_b_32k", "prompt_codes_b", "codes_b", 8, 1.0),
        "base_a": ("ref_a_32k", "prompt_codes_a", "codes_a", 8, 1.0)}


def assert_close(actual, expected, name: str, atol: float) -> float:
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, (name, actual.shape, expected.shape)
    diff = float(np.max(np.abs(actual - expected)))
    assert diff <= atol, f"{name}: max abs diff {diff:.3e} > {atol}"
    return diff


@pytest.fixture(scope="module")
def oracle() -> dict[str, np.ndarray]:
    with np.load(V4 / "v4_tiny.npz") as data:
        return {key: data[key] for key in data.files}


@pytest.fixture(scope="module")
def merged():
    return load_v4_sovits(LORA, BASE)


@pytest.fixture(scope="module")
def base_only():
    return load_v4_sovits(BASE)


def torch_dit(model):
    dit = model.estimator

    def condition(fea):
        with torch.no_grad():
            return dit.condition(torch.from_numpy(fea)).numpy()

    def step(x, prompt, text, t, d):
        with torch.no_grad():
            return dit(*(torch.from_numpy(np.ascontiguousarray(a)) for a in (x, prompt, text, t, d))).numpy()

    return condition, step


def test_files_and_versions():
    lora, base = read_v4_file(LORA), read_v4_file(BASE)
    assert (lora.version, lora.lora, lora.lora_rank) == ("v4", True, 4) and "header tag 04" in lora.evidence
    assert (base.version, base.lora) == ("v4", False) and "model.version" in base.evidence
    assert is_cfm_sovits(LORA) and is_cfm_sovits(BASE)
    if (V2_ORACLE / "sovits_tiny.pth").is_file():
        assert not is_cfm_sovits(V2_ORACLE / "sovits_tiny.pth")


def test_lora_merge_is_the_official_one(merged, oracle):
    assert merged.describe() == "v4 LoRA sovits_v4_lora_tiny.pth (rank 4) merged into sovits_v4_base_tiny.pth"
    sizes = merged.sizes
    assert (sizes.fea_channels, sizes.wns1_layers, sizes.dit.dim, sizes.dit.depth, sizes.dit.heads, sizes.dit.text_dim) == \
        (64, 2, 128, 2, 2, 64)  # read from the tensors: the tiny oracle is not the released size
    state = merged.model.state_dict()
    for block in (0, 1):
        for name in ("to_q", "to_k", "to_v", "to_out.0"):
            merged_weight = state[f"cfm.estimator.transformer_blocks.{block}.attn.{name}.weight"].numpy()
            assert_close(merged_weight, oracle[f"merged__block{block}_{name.replace('.', '')}_weight"], name, 0.0)


@pytest.mark.parametrize("run", list(RUNS))
def test_text_part_and_cfm_loop_match_the_oracle(run, merged, base_only, oracle):
    ref, prompt_codes, codes, steps, speed = RUNS[run]
    model = (base_only if run.startswith("base") else merged).model
    wav = oracle[ref][0]
    with torch.no_grad():
        ge = model.reference_embedding(torch.from_numpy(reference_spectrogram(wav, 2048, 640, 2048, 1025)))
        assert_close(ge, oracle[f"{run}__ge"], "ge", FEA_ATOL)
        fea_ref = model.decode_encp(torch.from_numpy(oracle[prompt_codes]), torch.from_numpy(oracle["phones_prompt"]), ge).numpy()
        fea_todo = model.decode_encp(torch.from_numpy(oracle[codes]), torch.from_numpy(oracle["phones_text"]), ge, speed).numpy()
    assert_close(fea_todo, oracle[f"{run}__fea_todo"], "fea_todo", FEA_ATOL)
    raw = cfm.reference_mel(wav)
    if f"{run}__ref_mel_raw" in oracle:
        assert_close(raw, oracle[f"{run}__ref_mel_raw"], "ref_mel_raw", MEL_ATOL)
        assert_close(fea_ref, oracle[f"{run}__fea_ref_full"], "fea_ref_full", FEA_ATOL)
    prompt = cfm.prompt_window(cfm.normalize(raw), fea_ref)
    assert prompt.frames == int(oracle[f"{run}__T_min"])
    assert_close(prompt.fea, oracle[f"{run}__fea_ref"], "fea_ref", FEA_ATOL)
    assert cfm.T_CHUNK - prompt.frames == int(oracle[f"{run}__chunk_len"])

    condition, step = torch_dit(model)
    n_chunks = int(oracle[f"{run}__n_chunks"])
    noises = [oracle.get(f"{run}__chunk{i}_noise") for i in range(n_chunks)]
    length = prompt.frames + fea_todo.shape[-1]
    comparable = noises[0] is not None or oracle["lora_a__chunk0_noise"].shape[-1] == length
    if noises[0] is None:
        # Runs that did not keep their noise drew lora_a's when they have its length (steps32, base_a: verified);
        # speed 1.25 drew another, so only its lengths and cond features are compared.
        noises = [oracle["lora_a__chunk0_noise"] if comparable else
                  np.random.default_rng(0).standard_normal((1, 100, length)).astype(np.float32)]
    pieces = list(cfm.generate(condition, step, prompt, fea_todo, steps, lambda i, length: noises[i]))
    assert len(pieces) == n_chunks
    mel = np.concatenate(pieces, axis=2)
    assert mel.shape == oracle[f"{run}__cfm_res_norm"].shape
    if comparable:
        assert_close(mel, oracle[f"{run}__cfm_res_norm"], "cfm_res_norm", CFM_ATOL)
        assert_close(cfm.denormalize(mel), oracle[f"{run}__vocoder_in"], "vocoder_in", VOCODER_IN_ATOL)


def test_every_euler_step_matches(merged, oracle):
    condition, step = torch_dit(merged.model)
    fea = oracle["lora_a__chunk0_fea_in"]
    assert_close(condition(fea), oracle["lora_a__text_embed"], "text_embed", CFM_ATOL)
    seen = {}
    out = cfm.euler(condition, step, fea, oracle["lora_a__chunk0_mel2_prompt"], 8, oracle["lora_a__chunk0_noise"],
                    on_step=lambda j, v: seen.setdefault(j, v))
    for j in range(8):
        assert_close(seen[j].transpose(0, 2, 1), oracle["lora_a__steps_v_pred"][j], f"v_pred step {j}", CFM_ATOL)
    assert_close(out, oracle["lora_a__chunk0_cfm_out"], "cfm_out", CFM_ATOL)


@torch.no_grad()
def test_vocoder_matches(oracle):
    vocoder = load_vocoder(VOCODER)
    assert vocoder.sizes.hop == 480 and vocoder.sizes.initial_channels == 64
    for run in ("lora_a", "lora_b"):
        audio = vocoder(torch.from_numpy(oracle[f"{run}__vocoder_in"])).numpy()
        assert_close(audio, oracle[f"{run}__audio"], f"{run} audio", AUDIO_ATOL)


def test_cfg_extrapolates_from_the_unconditioned_velocity(merged, oracle):
    condition, step = torch_dit(merged.model)
    fea, prompt, noise = (oracle[f"lora_a__chunk0_{k}"] for k in ("fea_in", "mel2_prompt", "noise"))
    plain = cfm.euler(condition, step, fea, prompt, 4, noise)
    guided = cfm.euler(condition, step, fea, prompt, 4, noise, cfg_rate=0.7)
    assert np.all(guided[..., :prompt.shape[-1]] == 0) and float(np.max(np.abs(guided - plain))) > 1e-3


def test_steps_are_checked():
    cfm.check_steps(8)
    with pytest.raises(TtsoptError, match="5 sampling steps are not offered: use one of 4, 8, 16, 32"):
        cfm.check_steps(5)


# --------------------------------------------------------------------------------------------------
# One-line errors
# --------------------------------------------------------------------------------------------------


def _retag(source: Path, target: Path, tag: bytes) -> Path:
    target.write_bytes(tag + source.read_bytes()[2:])
    return target


def test_lora_without_base():
    with pytest.raises(TtsoptError, match=r"is a v4 LoRA file \(header tag 04\).*--sovits-base"):
        load_v4_sovits(LORA)


def test_v3_is_refused_with_its_reason(tmp_path):
    with pytest.raises(TtsoptError, match="GPT-SoVITS v3 LoRA file.*BigVGAN"):
        load_v4_sovits(_retag(LORA, tmp_path / "v3.pth", b"03"), BASE)
    with pytest.raises(TtsoptError, match="is the v3 base"):
        load_v4_sovits(LORA, _retag(BASE, tmp_path / "base3.pth", b"03"))


def test_base_of_another_model(tmp_path):
    v2 = V2_ORACLE / "sovits_tiny.pth"
    if v2.is_file():
        with pytest.raises(TtsoptError, match="without cfm.* tensors, not a GPT-SoVITS v3/v4 SoVITS file"):
            load_v4_sovits(LORA, v2)
    with pytest.raises(TtsoptError, match="is a LoRA file itself"):
        load_v4_sovits(LORA, LORA)
    with pytest.raises(TtsoptError, match="is a full v4 SoVITS model, not a LoRA file: drop --sovits-base"):
        load_v4_sovits(BASE, BASE)


def test_base_without_version_is_not_guessed(tmp_path):
    state = restricted_torch_load(BASE.read_bytes(), str(BASE))
    hparams = json.loads(json.dumps(state["config"]))  # plain dicts
    del hparams["model"]["version"]
    path = save_official_sovits(tmp_path / "noversion.pth", dict(state["weight"]), hparams)
    with pytest.raises(TtsoptError, match="cannot tell whether .* is a v3 or a v4 SoVITS file"):
        load_v4_sovits(path)


def test_truncated_files(tmp_path):
    for source in (LORA, BASE):
        cut = tmp_path / source.name
        cut.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
        with pytest.raises(TtsoptError, match="truncated or corrupt"):
            load_v4_sovits(cut, BASE if source is LORA else None)
    cut = tmp_path / "vocoder.pth"
    cut.write_bytes(VOCODER.read_bytes()[:5000])
    with pytest.raises(TtsoptError, match="truncated or corrupt"):
        load_vocoder(cut)


def test_wrong_vocoder(tmp_path):
    with pytest.raises(TtsoptError, match="is a GPT-SoVITS SoVITS .* not the GPT-SoVITS v4 vocoder"):
        load_vocoder(BASE)
    state = torch.load(VOCODER, weights_only=True)
    four_ups = {k: v for k, v in state.items() if not k.startswith(("ups.4.", "resblocks.12.", "resblocks.13.", "resblocks.14."))}
    torch.save(four_ups, tmp_path / "four.pth")
    with pytest.raises(TtsoptError, match="has 4 upsampling layers, the v4 vocoder 5"):
        load_vocoder(tmp_path / "four.pth")


def test_export_sources_of_a_v4_model(tmp_path):
    """What ``export`` takes: a LoRA needs its base, every v4 model its vocoder; a full file ignores a base found
    by ``--pretrained`` (the checkout always has one)."""
    from ttsopt.compiler.spec import ExportSources
    from ttsopt.families.gpt_sovits.v4.spec import _sources

    found = {"sovits_base": BASE, "vocoder": VOCODER}
    assert _sources(ExportSources({"sovits": LORA}, auxiliary=found)) == (LORA, BASE, VOCODER)
    assert _sources(ExportSources({"sovits": BASE}, auxiliary=found)) == (BASE, None, VOCODER)
    with pytest.raises(TtsoptError, match="speaks through its own 48 kHz vocoder: give --vocoder"):
        _sources(ExportSources({"sovits": LORA}, auxiliary={"sovits_base": BASE}))
    with pytest.raises(TtsoptError, match="is a v4 LoRA file .*--sovits-base"):
        _sources(ExportSources({"sovits": LORA}, auxiliary={"vocoder": VOCODER}))
    with pytest.raises(TtsoptError, match="--sv is for v2Pro/v2ProPlus"):
        _sources(ExportSources({"sovits": LORA, "sv": VOCODER}, auxiliary=found))
