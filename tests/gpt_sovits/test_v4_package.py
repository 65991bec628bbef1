"""A GPT-SoVITS v4 package against the official oracle, through its exported ONNX graphs and the torch-free runtime.

One package is exported through the CLI (tiny v4 LoRA + base + vocoder from shared/oracle/gpt-sovits-v4-tiny, the
v2 oracle's tiny GPT: v4 uses the v2 GPT architecture, with a stored voice made of the oracle's reference and
prompt; with the stand-in HuBERT, so voices are also made at run time), then: the stored voice equals the oracle's
``ge`` / prompt window; a ``.voice`` made from the oracle's recording and a transcript is ``make_voice`` of HuBERT's
prompt tokens and the transcript's phones, and speaks through the CLI, the API and the server; ``latent`` gives the oracle's cond
features; every Euler step's velocity, every chunk and the audio of the oracle's runs come out of
``dit_condition``/``dit_step``/``vocoder`` within the oracle's tolerances; ``ttsopt run`` speaks 48 kHz audio;
bad inputs get one-line errors.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile

from tests.conftest import AUX_ORACLE, assert_one_line_error, ttsopt
from tests.conftest import ORACLE as V2_ORACLE
from ttsopt.runtime import cfm, load
from ttsopt.runtime.text.langseg import lite_model
from ttsopt.runtime.tts_v4 import V4TextToSpeech
from ttsopt.runtime.voice import Voice

V4 = Path(__file__).resolve().parents[3] / "shared/oracle/gpt-sovits-v4-tiny"
LORA, BASE, VOCODER = V4 / "sovits_v4_lora_tiny.pth", V4 / "sovits_v4_base_tiny.pth", V4 / "vocoder_v4_tiny.pth"
GPT = V2_ORACLE / "gpt_tiny.ckpt"
#: The oracle README's suggested tolerances for an fp32 reimplementation (as test_v4_model.py).
FEA_ATOL, CFM_ATOL, VOCODER_IN_ATOL, AUDIO_ATOL = 1e-4, 1e-4, 1e-3, 1e-4
pytestmark = pytest.mark.skipif(not (LORA.is_file() and GPT.is_file()), reason="v4 or v2 oracle missing")


def assert_close(actual, expected, name: str, atol: float) -> None:
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, (name, actual.shape, expected.shape)
    diff = float(np.max(np.abs(actual - expected)))
    assert diff <= atol, f"{name}: max abs diff {diff:.3e} > {atol}"


@pytest.fixture(scope="module")
def oracle() -> dict[str, np.ndarray]:
    with np.load(V4 / "v4_tiny.npz") as data:
        return {key: data[key] for key in data.files}


#: What the voices made at run time say the oracle's (random) reference recording ref_a says.
TRANSCRIPT = "Hello, this is a short test recording."
#: A Chinese transcript of the same recording: the stored voice "zh" (made at export) and voices made at run time.
ZH_TRANSCRIPT = "这是一段测试用的参考音频，请听。"


def needs_hubert(package: Path) -> None:
    if "ssl" not in json.loads((package / "manifest.json").read_text())["graphs"]:
        pytest.skip(f"no HuBERT: the auxiliary oracle is not under {AUX_ORACLE}")


def _phonemes(ids: np.ndarray) -> str:
    symbols = json.loads((Path(__file__).resolve().parents[2] / "ttsopt/families/gpt_sovits/symbols/v2.json").read_text())
    return " ".join(symbols[i] for i in ids.reshape(-1))


@pytest.fixture(scope="module")
def package(tmp_path_factory, oracle) -> Path:
    """The one v4 export of the suite: LoRA merged into the base, the vocoder, the tiny GPT, voices a (oracle run
    lora_a's reference and prompt) and b (lora_b's: a prompt over 500 frames, two chunks); with the auxiliary oracle,
    its g2pW, RoBERTa (the ``bert`` graph) and HuBERT (the ``ssl`` graph: voices from a recording and its transcript),
    and the voice "zh" made at export from ref_a and a Chinese transcript."""
    root = tmp_path_factory.mktemp("v4")
    voices = []
    for name, ref, codes in (("a", "ref_a_32k", "prompt_codes_a"), ("b", "ref_b_32k", "prompt_codes_b")):
        soundfile.write(root / f"{name}.wav", oracle[ref][0], 32000, subtype="FLOAT")
        np.save(root / f"{name}.npy", oracle[codes])
        voices += ["--voice", f"{name}={root / name}.wav:{root / name}.npy:{_phonemes(oracle['phones_prompt'])}"]
    out = root / "pkg"
    g2pw = ["--g2pw", AUX_ORACLE / "G2PWModel", "--bert", AUX_ORACLE / "chinese-roberta-wwm-ext-large",
            "--hubert", AUX_ORACLE / "chinese-hubert-base", "--voice", f"zh={root / 'a.wav'}|zh|{ZH_TRANSCRIPT}"] \
        if AUX_ORACLE.is_dir() else []
    ttsopt("export", "--gpt", GPT, "--sovits", LORA, "--sovits-base", BASE, "--vocoder", VOCODER, *voices, *g2pw,
           "--langdetect", lite_model(), "-o", out, check=True)  # a fastText model to copy (the official one is 126 MB)
    return out


def test_manifest_and_stored_voices(package, oracle):
    manifest = json.loads((package / "manifest.json").read_text())
    assert manifest["task"] == "tts" and manifest["model_config"]["version"] == "v4"
    assert manifest["audio"]["sample_rate"] == 48000
    assert set(manifest["graphs"]) >= {"reference_encoder", "latent", "dit_condition", "dit_step", "vocoder", "prompt_codes"}
    gates = {g["name"]: g for g in manifest["verification"]["gates"]}
    assert gates["v4 chain SNR dB (tokens → speech)"]["passed"] and gates["v4 chain SNR dB (tokens → speech)"]["value"] > 100
    tts = load(package)
    assert isinstance(tts, V4TextToSpeech)
    for name, run in (("a", "lora_a"), ("b", "lora_b")):
        voice = tts.voice(name)
        assert_close(voice.ge, oracle[f"{run}__ge"], "ge", FEA_ATOL)
        assert_close(voice.prompt.fea, oracle[f"{run}__fea_ref"], "fea_ref", FEA_ATOL)
        assert_close(voice.prompt.mel, oracle[f"{run}__mel2_prompt0"], "mel2_prompt0", FEA_ATOL)


def test_graphs_match_the_oracle_step_by_step(package, oracle):
    synth = load(package)
    ge = synth.package.run("reference_encoder", {"spectrogram": oracle["lora_a__ref_spec"][:, :704]})["ge"]
    assert_close(ge, oracle["lora_a__ge"], "ge", FEA_ATOL)
    tokens, ids = oracle["prompt_codes_a"].reshape(-1), oracle["phones_prompt"][0]
    assert_close(synth.features(tokens, ids, ge, 1.0), oracle["lora_a__fea_ref_full"], "fea_ref_full", FEA_ATOL)
    codes, text = oracle["codes_a"].reshape(-1), oracle["phones_text"][0]
    assert_close(synth.features(codes, text, ge, 1.0), oracle["lora_a__fea_todo"], "fea_todo", FEA_ATOL)
    assert_close(synth.features(codes, text, ge, 1.25), oracle["lora_a_speed125__fea_todo"], "fea_todo speed 1.25", FEA_ATOL)

    fea = oracle["lora_a__chunk0_fea_in"]
    assert_close(synth._condition(fea), oracle["lora_a__text_embed"], "text_embed", CFM_ATOL)
    velocities = {}
    out = cfm.euler(synth._condition, synth._step, fea, oracle["lora_a__chunk0_mel2_prompt"], 8,
                    oracle["lora_a__chunk0_noise"], on_step=lambda j, v: velocities.setdefault(j, v))
    for j in range(8):
        assert_close(velocities[j].transpose(0, 2, 1), oracle["lora_a__steps_v_pred"][j], f"v_pred step {j}", CFM_ATOL)
    assert_close(out, oracle["lora_a__chunk0_cfm_out"], "cfm_out", CFM_ATOL)
    audio = synth.vocode(oracle["lora_a__vocoder_in"])
    assert_close(audio, oracle["lora_a__audio"].reshape(-1), "vocoder audio", AUDIO_ATOL)


@pytest.mark.parametrize("run,voice,steps", [("lora_a", "a", 8), ("lora_a_steps32", "a", 32), ("lora_b", "b", 8)])
def test_whole_runs_through_the_runtime(package, oracle, run, voice, steps):
    """The oracle's runs end to end (stored voice → chunks → vocoder), with its noise: lora_b is two chunks."""
    synth = load(package)
    source = "lora_a" if run.startswith("lora_a") else run
    noise = np.concatenate([oracle[f"{source}__chunk{i}_noise"] for i in range(int(oracle[f"{source}__n_chunks"]))], axis=2)
    codes = oracle["codes_a" if voice == "a" else "codes_b"].reshape(-1)
    fea = synth.features(codes, oracle["phones_text"][0], synth.voice(voice).ge, 1.0)
    assert synth.noise_frames(codes.size, synth.voice(voice)) == noise.shape[-1]
    mel = synth.mel(fea, synth.voice(voice), steps, noise=noise)
    assert_close(mel, oracle[f"{run}__cfm_res_norm"], "cfm_res_norm", CFM_ATOL)
    assert_close(cfm.denormalize(mel), oracle[f"{run}__vocoder_in"], "vocoder_in", VOCODER_IN_ATOL)
    audio = synth.synthesize(codes, _phonemes(oracle["phones_text"]), voice, steps=steps, noise=noise)
    assert_close(audio, oracle[f"{run}__audio"].reshape(-1), "audio", AUDIO_ATOL)


def test_run_speaks_48khz(package, tmp_path):
    out = tmp_path / "out.wav"
    ttsopt("run", package, "--phonemes", "n i2 h ao3 .", "--voice", "a", "--seed", "0", "--max-tokens", "20",
           "--steps", "4", "-o", out, check=True)
    audio, rate = soundfile.read(out)
    assert rate == 48000 and audio.size == 20 * 1920 and 0 < np.max(np.abs(audio)) <= 1
    ttsopt("run", package, "--text", "Hello, world.", "--lang", "en", "--voice", "a", "--seed", "0", "--max-tokens", "10",
           "--steps", "4", "-o", out, check=True)  # two sentences, each 10 tokens, 0.3 s pause after each
    assert soundfile.info(str(out)).frames == 2 * (10 * 1920 + int(0.3 * 48000))
    assert_one_line_error(ttsopt("run", package, "--phonemes", "n i2 .", "--voice", "a", "--steps", "5", "-o", out),
                          "5 sampling steps are not offered")
    assert_one_line_error(ttsopt("run", package, "--phonemes", "n i2 .", "--reference", tmp_path / "x.wav", "-o", out),
                          "a v4 model continues its reference's speech")


def test_text_is_read_with_the_package_g2pw(package, tmp_path):
    """v4 speaks Chinese with v2's front end: the package carries g2pW, and --text reads polyphones with it."""
    if not AUX_ORACLE.is_dir():
        pytest.skip(f"oracle not found under {AUX_ORACLE}")
    done = ttsopt("phonemize", package, "--text", "他说明天要去银行。", "--lang", "zh", "--json", check=True)
    report = json.loads(done.stdout)
    assert report["g2pw"] is True and report["sentences"][0]["phones"].startswith("t uo1 t uo1")  # the stand-in's reading
    done = ttsopt("run", package, "--text", "他说明天要去银行。", "--lang", "zh", "--voice", "a", "--seed", "0",
                  "--max-tokens", "20", "--steps", "4", "-o", tmp_path / "zh.wav", check=True)
    assert "g2pW is not available" not in done.stderr and soundfile.info(tmp_path / "zh.wav").samplerate == 48000


def test_mixed_text_is_segmented_with_the_package_language_model(package):
    """``--langdetect`` is copied into a v4 package as into v2's, and the front end segments mixed text with it."""
    facts = json.loads((package / "manifest.json").read_text())["runtime"]["auxiliary"]["langdetect"]
    assert facts["file"] == "lid.176.bin" and facts["official"] is False  # the lite model was given
    assert (package / "lid.176.bin").read_bytes() == lite_model().read_bytes()
    done = ttsopt("phonemize", package, "--text", "你好，Hello world，こんにちは。", "--lang", "auto", "--json", check=True)
    assert [s["lang"] for row in json.loads(done.stdout)["sentences"] for s in row["segments"]] == ["zh", "en", "ja"]


def test_export_errors_are_one_line(tmp_path):
    out = tmp_path / "pkg"
    assert_one_line_error(ttsopt("export", "--sovits", LORA, "--vocoder", VOCODER, "-o", out),
                          "is a v4 LoRA file (header tag 04)", "--sovits-base")
    assert_one_line_error(ttsopt("export", "--sovits", LORA, "--sovits-base", BASE, "-o", out), "48 kHz vocoder", "--vocoder")
    wav = tmp_path / "ref.wav"
    soundfile.write(wav, np.zeros(4 * 32000, np.float32), 32000)  # within the official 3-10 s
    assert_one_line_error(ttsopt("export", "--sovits", BASE, "--vocoder", VOCODER, "--voice", f"x={wav}", "-o", out),
                          "voice x: a v4 model continues the reference's speech")
    assert not out.exists()


def test_runtime_and_verify_without_torch(package, oracle, tmp_path):
    """A v4 package runs (Python API and ``ttsopt verify``: graphs, v4 chain, GPT) with torch unimportable."""
    from tests.test_runtime_without_torch import _run_without_torch

    np.save(tmp_path / "codes.npy", oracle["codes_a"])
    done = _run_without_torch(f"""
import ttsopt.runtime, numpy as np
tts = ttsopt.runtime.load({str(package)!r})
audio = tts.synthesize(np.load({str(tmp_path / "codes.npy")!r}), "n i2 h ao3 .", "a", seed=0, steps=4)
assert audio.dtype == np.float32 and audio.size == 40 * 1920 and np.isfinite(audio).all()
assert 'torch' not in sys.modules
from ttsopt.cli import app
app(["verify", {str(package)!r}])
""")
    assert done.returncode == 0, done.stderr + done.stdout
    assert "v4 chain SNR dB" in done.stdout and "all gates pass" in done.stdout, done.stdout


def test_streamed_pieces_equal_the_whole(package, oracle, tmp_path):
    """One piece per official CFM chunk (voice b: a 500-frame prompt, so 150 tokens make two chunks), each vocoded
    with the measured context: the pieces concatenated are the whole synthesis."""
    tts = load(package)
    assert tts.context_frames > 0
    codes, text = oracle["codes_b"].reshape(-1), _phonemes(oracle["phones_text"])
    whole = tts.synthesize(codes, text, "b", seed=3, steps=4)
    pieces = list(tts.synthesize_stream(codes, text, "b", seed=3, steps=4))
    assert len(pieces) == 3  # chunk 1 less the context, chunk 2 less the context, the context
    assert_close(np.concatenate(pieces), whole, "streamed audio", 1e-5)
    out = tmp_path / "stream.wav"
    done = ttsopt("run", package, "--phonemes", "n i2 h ao3 .", "--voice", "a", "--seed", "0", "--max-tokens", "20",
                  "--steps", "4", "--stream", "-o", out, check=True)
    assert "streamed in" in done.stdout and soundfile.info(str(out)).samplerate == 48000


@pytest.fixture(scope="module")
def int8_package(package, tmp_path_factory) -> tuple[Path, str]:
    """``quantize --int8`` of the v4 package (calibrated on the one example recording: the quickest), and its output."""
    out = tmp_path_factory.mktemp("v4-int8") / "int8"
    done = ttsopt("quantize", package, "--int8", "--calib", Path(__file__).parents[2] / "examples", "-o", out)
    assert done.returncode == 0, done.stderr
    return out, done.stdout


@pytest.mark.slow
def test_quantize_int8_vocoder_dit_and_gpt_are_gated(package, int8_package, tmp_path):
    """``quantize --int8`` of a v4 package: the vocoder's convolutions by the static INT8 search, the DiT step's
    MatMuls weight-only INT8 held to the golden voice's chain in speech terms (FP32 kept, with the reason, where that
    fails or does not pay), the GPT as for v2; the result verifies and speaks. Slow (about a minute of CPU: the
    vocoder's layer search, a full verification per candidate); the candidates' graphs are checked in CI below."""
    import onnx

    out, stdout = int8_package
    assert "dit_step" in stdout and "vocoder" in stdout  # the table names every graph
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["precision"] == "int8"
    records = manifest["quantization"]
    assert set(records) == {"vocoder", "dit_step", "gpt_transformer", "gpt_prefill"} | ({"bert"} if "bert" in manifest["graphs"] else set())
    # the GPT's prefill graph: made where it passed and paid, else left out (its record says which)
    assert ("gpt_prefill" in manifest["graphs"]) == (records["gpt_prefill"].get("chosen") == "dynamic")
    vocoder = records["vocoder"]
    assert vocoder["pass"] == "static-int8" and vocoder["budget"]["fitting_layers"] > 0
    assert vocoder["calibration"]["files"] == ["speech.wav"]
    if "kept_fp32" in vocoder:
        assert (out / "vocoder.onnx").read_bytes() == (package / "vocoder.onnx").read_bytes()
    else:
        assert any(n.op_type == "DequantizeLinear" for n in onnx.load(str(out / "vocoder.onnx")).graph.node)
    dit = records["dit_step"]  # the MatMul INT8 pass: dynamic and weight-only candidates, each verified and timed
    assert dit["pass"] == "matmul-int8" and set(dit["candidates"]) == {"dynamic", "weight-only"}
    assert all(c["quantized_matmuls"] > 0 and c["bytes"]["quantized"] < c["bytes"]["fp32"] for c in dit["candidates"].values())
    assert all(set(c["gates"]) == {"v4 chain log-mel L1"} for c in dit["candidates"].values())
    assert set(dit["ms"]) == {"fp32", "dynamic", "weight-only"}
    if "bert" in records:  # RoBERTa as in a v2 package: the MatMul INT8 pass, held to both BERT gates
        from ttsopt.families.gpt_sovits.bert_verification import BERT_GATES

        assert records["bert"]["pass"] == "matmul-int8"
        assert all(set(c["gates"]) == set(BERT_GATES) for c in records["bert"]["candidates"].values())
    dit_ops = {n.op_type for n in onnx.load(str(out / "dit_step.onnx")).graph.node}
    if dit.get("chosen") is None:  # missed the chain gate or was not faster: the FP32 graph, and why
        assert (out / "dit_step.onnx").read_bytes() == (package / "dit_step.onnx").read_bytes()
        assert dit["kept_fp32"] and "FP32 kept" in stdout
    else:
        assert dit_ops & {"MatMulNBits", "MatMulInteger", "DynamicQuantizeMatMul"} and not dit["candidates"][dit["chosen"]]["failed"]
        assert dit["speedup"] >= 1.05 and dit["speedup"] == pytest.approx(dit["ms"]["fp32"] / dit["ms"][dit["chosen"]])
    gates = {g["name"]: g for g in manifest["verification"]["gates"]}
    assert gates["v4 chain log-mel L1"]["value"] <= 0.05 and all(g["passed"] for g in gates.values())
    for name in ("latent.onnx", "dit_condition.onnx", "reference_encoder.onnx"):
        assert (out / name).read_bytes() == (package / name).read_bytes()
    checked = ttsopt("verify", out)
    assert checked.returncode == 0 and "v4 chain log-mel L1" in checked.stdout, checked.stdout + checked.stderr
    speak = ttsopt("run", out, "--phonemes", "n i2 h ao3 .", "--voice", "a", "--seed", "0", "--max-tokens", "10",
                   "--steps", "4", "-o", tmp_path / "int8.wav")
    assert speak.returncode == 0 and soundfile.info(str(tmp_path / "int8.wav")).samplerate == 48000, speak.stderr


def test_bench_times_every_stage(package):
    """The v4 bench's accounting on 12 s of audio at 4 steps (two official chunks): every Euler step of every chunk
    is timed, the stages add up to the whole, and the audio is as long as the tokens say."""
    from ttsopt.families.gpt_sovits.v4.bench import _request, _summary, _time_request, package_functions

    tts = load(package)
    request = _request(tts, 12.0)
    runs = [_time_request(package_functions(tts), request, 4) for _ in range(2)]
    assert runs[0]["chunks"] == 2 and len(runs[0]["dit"]) == 4 * 2 and runs[0]["gpt"] > 0
    assert runs[0]["audio_seconds"] == pytest.approx(12.0)  # 300 tokens × 4 frames × 480 samples at 48 kHz
    summary = _summary(runs)
    parts = summary["gpt_s"] + (summary["latent_ms"] + summary["condition_ms"]) / 1000 + summary["dit_s"] + summary["vocoder_s"]
    assert summary["whole_s"] == pytest.approx(parts) and summary["rtf"] == pytest.approx(summary["whole_s"] / 12.0)
    assert 0 < summary["dit_share"] < 1 and summary["dit_steps"] == 8


@pytest.mark.slow
def test_bench_cli_int8_fp32_and_eager(int8_package):
    """``ttsopt bench`` of the INT8 package: the package, its FP32 package and PyTorch eager per stage, the RTF by
    steps and the peak memory, in one run (slow: eager and two fresh processes for memory)."""
    out, _ = int8_package
    done = ttsopt("bench", out, "--seconds", "1", "--repeat", "1", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    row = report["rows"][0]
    for name in ("package (onnxruntime)", "FP32 package", "PyTorch eager FP32"):
        assert row[name]["dit_steps"] == 8 and row[name]["rtf"] > 0 and row[name]["gpt_s"] > 0
    assert row["speedup_vs_eager"] == pytest.approx(row["PyTorch eager FP32"]["whole_s"] / row["package (onnxruntime)"]["whole_s"])
    assert [r["steps"] for r in report["by_steps"]] == [4, 8, 16, 32]
    assert report["by_steps"][0]["dit_s"] < report["by_steps"][-1]["dit_s"]
    assert set(report["memory_mb"]) == {"package (onnxruntime)", "FP32 package", "PyTorch eager FP32"}


@pytest.mark.slow
def test_t4_export_is_fp16_without_nan(oracle, tmp_path):
    """``export --target t4`` of a v4 SoVITS package: every graph FP16 (FP32 islands where measurement asks for
    them, FP32 inputs/outputs), no NaN/Inf on the golden inputs, the v4 chain within the FP16 gates, and the package
    speaks through onnxruntime's CPU provider (what runs FP16 here: no GPU). Slow: a second export (the FP16 pass
    itself is in CI through the HiFi-GAN t4 test)."""
    import onnx

    soundfile.write(tmp_path / "a.wav", oracle["ref_a_32k"][0], 32000, subtype="FLOAT")
    np.save(tmp_path / "a.npy", oracle["prompt_codes_a"])
    out = tmp_path / "t4"
    ttsopt("export", "--sovits", LORA, "--sovits-base", BASE, "--vocoder", VOCODER, "--target", "t4", "-o", out,
           "--voice", f"a={tmp_path / 'a.wav'}:{tmp_path / 'a.npy'}:{_phonemes(oracle['phones_prompt'])}", check=True)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["precision"] == "fp16"
    records = manifest["quantization"]
    for graph in ("dit_condition", "dit_step", "vocoder", "latent"):
        assert records[graph]["fp16_nodes"] > 0 and records[graph]["output_snr_db"] >= 35.0, (graph, records[graph])
        model = onnx.load(str(out / manifest["graphs"][graph]["file"]))
        assert any(init.data_type == onnx.TensorProto.FLOAT16 for init in model.graph.initializer), graph
    gates = {g["name"]: g for g in manifest["verification"]["gates"]}
    assert gates["NaN/Inf samples"]["value"] == 0 and gates["v4 chain log-mel L1"]["value"] <= 0.02
    assert all(g["passed"] for g in gates.values())
    assert all(row["nonfinite"] == 0 for row in manifest["verification"]["golden"])
    tts = load(out)
    audio = tts.synthesize(oracle["codes_b"].reshape(-1), _phonemes(oracle["phones_text"]), "a", seed=0, steps=4)
    assert audio.size == oracle["codes_b"].size * 1920 and np.isfinite(audio).all()


def test_serve_speaks_48khz_whole_and_streamed(package, tmp_path):
    """``ttsopt serve`` of a v4 package: OpenAI's endpoint answers 48 kHz WAV, and streams 48 kHz PCM (one piece per
    official CFM chunk) whose length is the tokens' (20 tokens × 1920 samples) and the sentence pause after it; a v4
    voice uploaded to /v1/voices (a recording and its transcript) is stored as a v4 ``.voice`` and spoken, and api_v2's
    ``/tts`` speaks a reference file with its prompt text."""
    import io

    httpx = pytest.importorskip("httpx")
    from tests.serve.conftest import running_server

    needs_hubert(package)
    voices, refs = tmp_path / "voices", tmp_path / "refs"
    refs.mkdir()
    (refs / "a.wav").write_bytes((package.parent / "a.wav").read_bytes())
    body = {"input": "n i2 h ao3 .", "lang": "phonemes", "voice": "a", "max_tokens": 20, "seed": 0}
    with running_server(package, "--voices", str(voices), "--ref-audio-dir", str(refs), "--max-tokens", "20") as url:
        made = httpx.post(f"{url}/v1/voices", timeout=300, files={"recording": ("a.wav", (refs / "a.wav").read_bytes(), "audio/wav")},
                          data={"transcript": TRANSCRIPT, "language": "en", "name": "mine"})
        assert made.status_code == 201, made.text
        stored = Voice.load(voices / "mine.voice", load(package))
        assert stored.kind == "v4" and made.json()["prompt_tokens"] == stored.prompt_tokens.size > 0
        mine = httpx.post(f"{url}/v1/audio/speech", json=body | {"voice": "mine", "response_format": "wav"}, timeout=300)
        assert mine.status_code == 200, mine.text
        assert soundfile.info(io.BytesIO(mine.content)).samplerate == 48000
        fields = {"text": "Nice to meet you.", "text_lang": "en", "ref_audio_path": "a.wav", "prompt_text": TRANSCRIPT,
                  "prompt_lang": "en", "seed": 0}
        api_v2 = httpx.post(f"{url}/tts", json=fields, timeout=300)
        assert api_v2.status_code == 200 and soundfile.info(io.BytesIO(api_v2.content)).samplerate == 48000, api_v2.text
        no_transcript = httpx.post(f"{url}/tts", json=fields | {"prompt_text": ""}, timeout=300)
        assert no_transcript.status_code == 400 and "a v4 model continues its reference's speech" in no_transcript.text
        whole = httpx.post(f"{url}/v1/audio/speech", json=body | {"response_format": "wav"}, timeout=300)
        assert whole.status_code == 200, whole.text
        audio, rate = soundfile.read(io.BytesIO(whole.content))
        assert rate == 48000 and audio.size == 20 * 1920 + int(0.3 * 48000)
        with httpx.stream("POST", f"{url}/v1/audio/speech", json=body | {"response_format": "pcm"}, timeout=300) as streamed:
            assert streamed.status_code == 200 and streamed.headers["x-sample-rate"] == "48000"
            pcm = b"".join(streamed.iter_bytes())
        assert len(pcm) == 2 * audio.size
        assert np.allclose(np.frombuffer(pcm, np.int16) / 32767, audio, atol=2 / 32767)  # the same seed, the same speech


def test_dit_int8_candidates_run_close_to_fp32(package, tmp_path):
    """The DiT step's INT8 candidates (what ``quantize`` verifies and times): MatMuls converted, and the velocity on
    the golden inputs close to FP32's; the vocoder's calibration input is the recording's v4 mel."""
    import onnx
    import onnxruntime as ort

    from ttsopt.audio.metrics import snr_db
    from ttsopt.compiler.passes.matmul_int8 import METHODS
    from ttsopt.families.gpt_sovits.calibration import vocoder_v4_feeds
    from ttsopt.runtime.package import Package

    source = package / "dit_step.onnx"
    golden = Package(package).golden
    inputs = golden.inputs(golden.first("dit_step"))
    want = golden.outputs(golden.first("dit_step"))["v"]
    for name, build in METHODS.items():
        path = tmp_path / f"{name}.onnx"
        record = build(source, path)
        ops = [n.op_type for n in onnx.load(str(path)).graph.node]
        assert sum(op in ("MatMulNBits", "MatMulInteger", "DynamicQuantizeMatMul") for op in ops) == record["quantized_matmuls"] > 0
        got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, inputs)[0]
        assert np.isfinite(got).all() and snr_db(want, got) > 20, (name, snr_db(want, got))
    wav = soundfile.read(Path(__file__).parents[2] / "examples/speech.wav", dtype="float32")[0]
    from ttsopt.audio.io import resample

    feeds = vocoder_v4_feeds(Package(package), [resample(wav, 22050, 48000)])
    mel = feeds[0]["mel"]
    assert mel.shape[:2] == (1, 100) and abs(mel.shape[2] - round(wav.size / 22050 * 100)) <= 1
    direct = cfm.reference_mel(resample(wav, 22050, 32000))[..., :mel.shape[2]]  # 22.05 → 32 kHz without the 48 kHz hop
    assert float(np.mean(np.abs(mel[..., :direct.shape[2]] - direct))) < 0.05


def test_voice_from_a_recording_is_make_voice_of_hubert_tokens_and_transcript_phones(package):
    """``Voice.from_recording`` on a v4 package: its prompt tokens are ``ssl`` → ``prompt_codes`` of the 16 kHz
    recording padded with 0.3 × 32 kHz (the official v4 ``hps.data.sampling_rate``, not the 48 kHz output), its phones
    the transcript's, and its ``ge`` and prompt window exactly what ``make_voice`` makes of them; the file keeps them."""
    from ttsopt.audio.io import read_wav
    from ttsopt.runtime.prompt import hubert_input, load_16k
    from ttsopt.runtime.voice import transcript_phones

    needs_hubert(package)
    tts = load(package)
    wav = package.parent / "a.wav"
    voice = Voice.from_recording(tts, wav, TRANSCRIPT, "en")
    features = tts.package.run("ssl", {"waveform": hubert_input(load_16k(wav).wav16k, 9600)[None]})["ssl"]
    codes = tts.prompt_codes(features)
    np.testing.assert_array_equal(voice.prompt_tokens, codes)
    sentence = transcript_phones(TRANSCRIPT, "en", tts.phonemes.symbols, "v2")
    assert voice.phones == tuple(sentence.phones) and voice.kind == "v4"
    np.testing.assert_array_equal(voice.phone_ids, tts.phonemes.ids(" ".join(sentence.phones)))
    made = tts.make_voice(read_wav(wav, 32000), codes, voice.phone_ids)
    for name, want in (("ge", made.ge), ("prompt_mel", made.prompt.mel), ("prompt_fea", made.prompt.fea)):
        np.testing.assert_array_equal(getattr(voice, name), want, err_msg=name)
    assert voice.prompt_mel.shape[-1] == min(300, 4 * codes.size)  # 3 s of 10 ms frames, 4 cond frames per token
    loaded = Voice.from_bytes(voice.to_bytes(), tts)
    for name in ("prompt_tokens", "phone_ids", "ge", "prompt_mel", "prompt_fea"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(voice, name), err_msg=name)


def test_voice_file_speaks_through_run_and_the_api(package, tmp_path):
    """``ttsopt voice`` + ``run --voice X.voice`` write 48 kHz audio, the same (seeded) as the API with that voice, and
    ``run --reference … --reference-text …`` in one step gives the same audio as the two steps."""
    from ttsopt.runtime import SynthesisRequest
    from ttsopt.runtime.sampling import SamplingParams

    needs_hubert(package)
    made = tmp_path / "mine.voice"
    ttsopt("voice", package, "--reference", package.parent / "a.wav", "--text", TRANSCRIPT, "--lang", "en", "-o", made, check=True)
    common = ("--phonemes", "n i2 h ao3 .", "--seed", "0", "--top-k", "1", "--max-tokens", "20", "--steps", "4")
    ttsopt("run", package, "--voice", made, *common, "-o", tmp_path / "file.wav", check=True)
    ttsopt("run", package, "--reference", package.parent / "a.wav", "--reference-text", TRANSCRIPT, "--reference-lang", "en",
           *common, "-o", tmp_path / "direct.wav", check=True)
    two_steps, rate = soundfile.read(tmp_path / "file.wav", dtype="float32")
    one_step = soundfile.read(tmp_path / "direct.wav", dtype="float32")[0]
    assert rate == 48000 and two_steps.size > 0
    np.testing.assert_array_equal(one_step, two_steps)
    tts = load(package)
    request = SynthesisRequest(phonemes="n i2 h ao3 .", voice=Voice.load(made, tts), steps=4,
                               sampling=SamplingParams(top_k=1, seed=0, max_new_tokens=20))
    audio, _ = tts.speak(request)
    assert audio.size == two_steps.size
    assert np.max(np.abs(np.clip(audio, -1, 1) - two_steps)) <= 2 / 32767  # the CLI's WAV is 16-bit PCM


def test_voices_of_another_version_are_refused_in_one_line(package, hubert_package, tmp_path):
    """A v4 voice in a v2 package, and a v1/v2 voice in the v4 package: one line saying which is which."""
    import dataclasses

    from ttsopt.errors import TtsoptError

    needs_hubert(package)
    v4 = Voice.from_recording(load(package), package.parent / "a.wav", TRANSCRIPT, "en").save(tmp_path / "v4.voice")
    done = ttsopt("run", hubert_package, "--voice", v4, "--phonemes", "h ao3 .", "-o", tmp_path / "x.wav")
    assert_one_line_error(done, "is a voice for v4 packages and this package is v1/v2")
    assert not (tmp_path / "x.wav").exists()
    v2 = dataclasses.replace(Voice.load(v4), prompt_mel=None, prompt_fea=None)
    with pytest.raises(TtsoptError, match="is a voice for v1/v2 packages and this package is v4"):
        Voice.from_bytes(v2.to_bytes(), load(package))


def needs_bert(package: Path) -> None:
    if "bert" not in json.loads((package / "manifest.json").read_text())["graphs"]:
        pytest.skip(f"no RoBERTa: the auxiliary oracle is not under {AUX_ORACLE}")


def test_chinese_is_read_with_the_v2_roberta_features(package, tts_bert_package):
    """``export --bert`` of a v4 package adds v2's ``bert`` graph (verified by both BERT gates): a Chinese sentence's
    features are the v2 package's for that sentence (the matrix is a function of the text), the GPT reads them (its
    tokens and the audio differ from the zero-feature ones) and the audio is what passing them by hand gives."""
    from ttsopt.runtime import SynthesisRequest
    from ttsopt.runtime.sampling import SamplingParams

    needs_bert(package)
    needs_hubert(package)
    manifest = json.loads((package / "manifest.json").read_text())
    assert manifest["runtime"]["auxiliary"]["bert"]["layers_run"] == 2 and manifest["runtime"]["bert"]["graph"] == "bert"
    gates = {g["name"]: g for g in manifest["verification"]["gates"]}
    from ttsopt.families.gpt_sovits.bert_verification import BERT_GATES

    assert all(gates[name]["passed"] for name in BERT_GATES) and gates[BERT_GATES[0]]["value"] > 100
    tts = load(package)
    (sentence,) = tts.phonemize("我今天很高兴，我们去公园散步吧。", "zh", cut="cut0")
    features = tts.bert_features(sentence)
    v2 = load(tts_bert_package).bert_features(sentence)
    assert features.shape == (1024, len(sentence.phones)) and np.all(np.any(features != 0, axis=0))
    np.testing.assert_allclose(features, v2, rtol=0, atol=1e-5)
    params = SamplingParams(greedy=True, max_new_tokens=30, eos_suppress_steps=30, seed=0)  # the seed: the CFM's noise
    phonemes = " ".join(sentence.phones)
    # The voice made at export from a Chinese transcript (the prompt's columns are its features in all three).
    audio, result = tts.speak(SynthesisRequest(phonemes=sentence, voice="zh", sampling=params, steps=4))
    by_hand, given = tts.speak(SynthesisRequest(phonemes=phonemes, bert=v2, voice="zh", sampling=params, steps=4))
    zeros, plain = tts.speak(SynthesisRequest(phonemes=phonemes, voice="zh", sampling=params, steps=4))
    np.testing.assert_array_equal(result.tokens, given.tokens)
    np.testing.assert_allclose(audio, by_hand, rtol=0, atol=1e-5)
    assert not np.array_equal(result.tokens, plain.tokens)
    assert audio.shape != zeros.shape or not np.allclose(audio, zeros, atol=1e-3)


def test_chinese_voices_carry_their_prompt_bert(package):
    """A Chinese transcript's BERT features: stored with the voice made at export ("zh", original RoBERTa) and kept by
    a voice made at run time (the package's graph) alike, and read by the GPT as the prompt's columns; an English
    transcript gets none (zeros, as officially)."""
    from ttsopt.runtime import SynthesisRequest

    needs_bert(package)
    needs_hubert(package)
    tts = load(package)
    stored = tts.voice_data["zh/prompt_bert"]
    made = Voice.from_recording(tts, package.parent / "a.wav", ZH_TRANSCRIPT, "zh")
    assert made.prompt_bert.shape == stored.shape == (1024, made.phone_ids.size) and np.any(stored != 0)
    np.testing.assert_array_equal(tts.voice_data["zh/prompt_phonemes"], made.phone_ids)
    np.testing.assert_allclose(made.prompt_bert, stored, rtol=0, atol=1e-4)
    np.testing.assert_array_equal(Voice.from_bytes(made.to_bytes(), tts).prompt_bert, made.prompt_bert)
    for voice in ("zh", made):
        inputs = tts._gpt_inputs(SynthesisRequest(phonemes="n i2 h ao3 .", voice=voice))
        np.testing.assert_array_equal(inputs.features[0, :, :stored.shape[1]], stored if voice == "zh" else made.prompt_bert)
        assert not inputs.features[0, :, stored.shape[1]:].any()  # phonemes given as a string: zeros for the target
    assert "a/prompt_bert" not in tts.voice_data
    assert Voice.from_recording(tts, package.parent / "a.wav", TRANSCRIPT, "en").prompt_bert is None
    runtime = json.loads((package / "manifest.json").read_text())["runtime"]["voices"]
    assert runtime["zh"] == {"source": str((package.parent / "a.wav").resolve()), "prompt": True,
                             "transcript": ZH_TRANSCRIPT, "lang": "zh"}


@pytest.fixture(scope="module")
def voiceless(package, tmp_path_factory) -> Path:
    """The v4 package as exported without ``--voice`` (a way to ship one: voices made at run time)."""
    from tests.conftest import without_voices

    return without_voices(package, tmp_path_factory.mktemp("v4-voiceless") / "pkg")


def test_a_package_without_voices_is_served_and_says_how_to_make_one(package, voiceless, tmp_path):
    """``serve`` starts on a package that stores no voice; a request that names none (or one of OpenAI's) is a 400
    JSON error saying how to make one; POST /v1/voices makes one that is then spoken. ``run`` without ``--voice``:
    one line, exit 2."""
    import io

    httpx = pytest.importorskip("httpx")
    from tests.serve.conftest import running_server

    needs_hubert(voiceless)
    from ttsopt.families.gpt_sovits.v4.bench import _request

    tts = load(voiceless)
    assert not tts.voices
    request = _request(tts, 1.0)  # bench speaks with the verification chain's golden voice, the GPT unprompted
    with np.load(voiceless / "v4_reference.npz") as chain:
        np.testing.assert_array_equal(request["voice"].prompt.mel, chain["chain/prompt_mel"])
    assert request["gpt_prompt"] is None
    assert_one_line_error(ttsopt("run", voiceless, "--phonemes", "n i2 h ao3 .", "-o", tmp_path / "x.wav"),
                          "this package stores no voice", "ttsopt voice")
    assert not (tmp_path / "x.wav").exists()
    body = {"input": "n i2 h ao3 .", "lang": "phonemes", "max_tokens": 10, "seed": 0, "response_format": "wav"}
    output: list[str] = []
    with running_server(voiceless, "--voices", str(tmp_path / "voices"), "--max-tokens", "10", output=output) as url:
        assert "default voice: none" in "".join(output)
        for voice in ({}, {"voice": "alloy"}, {"voice": "bob"}):
            refused = httpx.post(f"{url}/v1/audio/speech", json=body | voice, timeout=60)
            assert refused.status_code == 400, refused.text
            message = refused.json()["error"]["message"]
            assert "this package stores no voice" in message and "POST /v1/voices" in message, message
        made = httpx.post(f"{url}/v1/voices", timeout=300, data={"transcript": ZH_TRANSCRIPT, "language": "zh", "name": "mine"},
                          files={"recording": ("a.wav", (package.parent / "a.wav").read_bytes(), "audio/wav")})
        assert made.status_code == 201, made.text
        spoken = httpx.post(f"{url}/v1/audio/speech", json=body | {"voice": "mine"}, timeout=300)
        assert spoken.status_code == 200 and soundfile.info(io.BytesIO(spoken.content)).samplerate == 48000, spoken.text
        unnamed = httpx.post(f"{url}/v1/audio/speech", json=body, timeout=60)
        assert unnamed.status_code == 400 and "voices made on this server (mine)" in unnamed.json()["error"]["message"]
