"""HuBERT in the package (``ssl``), prompt tokens made torch-free, and voices from a recording + transcript,
against the official oracle (``gpt-sovits-aux-tiny``: README §2 prompt codes, §4 the prompted chain ``chain_en``)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile

from tests.conftest import AUX_ORACLE, CHAIN_EN_PROMPT, assert_one_line_error, ttsopt

WAVS = ("ref_a_22k", "ref_b_32k", "ref_c_44k", "ref_g_32k")
REF_G = AUX_ORACLE / "wavs" / "ref_g_32k.wav"
CHAIN_EN_TARGET = "It is a sunny day, so we will walk to the park."


@pytest.fixture(scope="module")
def oracle_prompt():
    if not (AUX_ORACLE / "prompt.npz").is_file():
        pytest.skip(f"oracle not found under {AUX_ORACLE}")
    with np.load(AUX_ORACLE / "prompt.npz") as prompt, np.load(AUX_ORACLE / "prompt_code_gaps.npz") as gaps:
        return {k: prompt[k] for k in prompt.files}, {k: gaps[k] for k in gaps.files}


@pytest.fixture(scope="module")
def chain():
    with np.load(AUX_ORACLE / "chain.npz") as data:
        return {k.removeprefix("chain_en__"): data[k] for k in data.files if k.startswith("chain_en__")}


@pytest.fixture(scope="module")
def tts(hubert_package: Path):
    import ttsopt.runtime

    return ttsopt.runtime.load(hubert_package)


def test_16k_input_is_bit_exact_for_every_rate(oracle_prompt) -> None:
    """librosa 0.10.2 ``load(sr=16000)`` (soxr HQ) and the 9600-zero padding, reproduced sample for sample."""
    from ttsopt.runtime.prompt import hubert_input, load_16k, padding_samples

    prompt, _ = oracle_prompt
    assert padding_samples(32000) == 9600
    for name in WAVS:
        audio = load_16k(AUX_ORACLE / "wavs" / f"{name}.wav")
        assert audio.wav16k.dtype == np.float32
        np.testing.assert_array_equal(audio.wav16k, prompt[f"{name}__wav16k"])
        np.testing.assert_array_equal(hubert_input(audio.wav16k, 9600)[None], prompt[f"{name}__hubert_input"])
    # A (samples, rate) pair is read the same way as the file.
    samples, rate = soundfile.read(str(REF_G), dtype="float32")
    np.testing.assert_array_equal(load_16k((samples, rate)).wav16k, prompt["ref_g_32k__wav16k"])
    pcm, _ = soundfile.read(str(AUX_ORACLE / "wavs" / "ref_a_22k.wav"), dtype="int16")  # PCM16 scaled as soundfile does
    np.testing.assert_array_equal(load_16k((pcm, 22050)).wav16k, prompt["ref_a_22k__wav16k"])


def test_reference_bounds_are_the_official_3_to_10_s() -> None:
    from ttsopt.errors import TtsoptError
    from ttsopt.runtime.prompt import load_16k

    assert load_16k((np.zeros(48000, np.float32), 16000)).wav16k.size == 48000
    for seconds in (2.99, 10.01):
        with pytest.raises(TtsoptError, match="a reference must be 3-10 s"):
            load_16k((np.zeros(int(seconds * 32000), np.float32), 32000))


@pytest.mark.skipif(not AUX_ORACLE.is_dir(), reason=f"oracle not found under {AUX_ORACLE}")
def test_hubert_folder_loads_and_bad_folders_are_refused(tmp_path: Path) -> None:
    from ttsopt.errors import TtsoptError
    from ttsopt.families.gpt_sovits.hubert import load_hubert

    loaded = load_hubert(AUX_ORACLE / "chinese-hubert-base")  # fp16 file, legacy weight-norm names
    assert next(loaded.model.parameters()).dtype.is_floating_point and loaded.hidden_size == 768
    assert loaded.facts()["samples_per_frame"] == 320
    with pytest.raises(TtsoptError, match="no config.json"):
        load_hubert(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(TtsoptError, match="not HuBERT"):
        load_hubert(tmp_path)


def test_ssl_graph_matches_the_official_features_and_prompt_codes(tts, oracle_prompt) -> None:
    """HuBERT features within 1e-4 of the official ones; prompt codes exact except at near-ties (gap < 1e-3)."""
    from ttsopt.families.gpt_sovits.verification import PROMPT_CODES_GATE
    from ttsopt.runtime.voice import prompt_tokens

    prompt, gaps = oracle_prompt
    assert tts.manifest.runtime["auxiliary"]["hubert"]["padding_samples"] == 9600
    gates = {gate["name"]: gate for gate in tts.manifest.verification["gates"]}
    assert gates[PROMPT_CODES_GATE]["value"] == 1.0 and gates[PROMPT_CODES_GATE]["passed"]  # checked at export
    for name in WAVS:
        features = tts.package.run("ssl", {"waveform": prompt[f"{name}__hubert_input"]})["ssl"]
        want = prompt[f"{name}__hubert_last_hidden_state"].transpose(0, 2, 1)
        assert features.shape == want.shape
        assert np.max(np.abs(features - want)) < 1e-4, name
        codes = prompt_tokens(tts, prompt[f"{name}__wav16k"])
        official = prompt[f"{name}__prompt_semantic"]
        assert codes.shape == official.shape
        differ = np.flatnonzero(codes != official)
        gap_key = next(k for k in gaps if k.startswith(name))
        assert all(gaps[gap_key][i] < 1e-3 for i in differ), (name, differ)


def test_voice_cli_json_matches_the_official_prompt(hubert_package: Path, tmp_path: Path, chain) -> None:
    out = tmp_path / "gee.voice"
    done = ttsopt("voice", hubert_package, "--reference", REF_G, "--text", CHAIN_EN_PROMPT, "--lang", "en", "-o", out,
                  "--json", check=True)
    made = json.loads(done.stdout)
    assert made["prompt_tokens"] == chain["prompt_semantic"].tolist()
    assert made["phone_ids"] == chain["prompt_phones"].tolist()
    assert made["norm_text"] == CHAIN_EN_PROMPT + "."  # the official closing mark for an English prompt
    assert out.is_file() and not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    inspected = ttsopt("inspect", hubert_package, check=True).stdout
    assert "auxiliary models: hubert" in inspected and "no chinese-hubert-base" not in inspected


def test_export_voice_from_transcript_is_the_official_prompt(tts, chain) -> None:
    """``--voice 'gee=ref.wav|en|transcript'``: prompt made at export by the original HuBERT + SoVITS."""
    tokens, phonemes = tts.prompt("gee")
    np.testing.assert_array_equal(tokens, chain["prompt_semantic"])
    np.testing.assert_array_equal(phonemes, chain["prompt_phones"])
    assert tts.manifest.runtime["voices"]["gee"]["transcript"] == CHAIN_EN_PROMPT


def test_chain_en_greedy_tokens_are_the_official_ones(tts, chain) -> None:
    """Recording + transcript + target text → the official greedy tokens (top_k=1, penalty 1.35, EOS by idx 276),
    and the SoVITS decode of them equal to the original model's with the same noise."""
    from ttsopt.runtime import SynthesisRequest
    from ttsopt.runtime.sampling import SamplingParams
    from ttsopt.runtime.voice import Voice

    voice = Voice.from_recording(tts, REF_G, CHAIN_EN_PROMPT, "en")
    [sentence] = tts.phonemize(CHAIN_EN_TARGET, "en", cut="cut0")
    ids = tts.phonemes.ids(" ".join(sentence.phones))
    np.testing.assert_array_equal(ids, chain["target_phones"])
    result = tts.semantic_tokens(SynthesisRequest(phonemes=ids, voice=voice, sampling=SamplingParams(top_k=1, repetition_penalty=1.35, seed=0)))
    assert result.stop_reason == "eos" and result.steps == int(chain["gpt_idx"]) == 276
    np.testing.assert_array_equal(result.tokens, chain["sovits_codes"][0, 0])
    np.testing.assert_array_equal(np.concatenate((voice.prompt_tokens, result.tokens)), chain["gpt_y"])
    # The official chain's SoVITS noise is torch's draw after the GPT's sampling (not recorded, and not reproduced by
    # replaying those draws): the package's decode of the official codes is held to the original model, same noise.
    from tests.conftest import ORACLE
    from ttsopt.families.gpt_sovits.sovits_checkpoint import load_sovits_checkpoint
    from ttsopt.families.gpt_sovits.spec import EagerSoVITS

    noise = np.random.default_rng(0).standard_normal((1, tts.inter_channels, 2 * result.tokens.size), dtype=np.float32)
    audio = tts.synthesize(result.tokens, ids, voice, noise_scale=0.5, noise=noise)
    eager = EagerSoVITS(load_sovits_checkpoint(ORACLE / "sovits_tiny.pth").model)
    want = eager({"tokens": chain["sovits_codes"][0], "phonemes": ids[None], "ge": voice.ge, "noise": noise,
                  "noise_scale": np.array([0.5], np.float32)})
    assert audio.size == chain["sovits_audio"].size and np.max(np.abs(audio - want)) < 1e-4


def test_voice_file_round_trip_and_refusals(tts, tmp_path: Path) -> None:
    from ttsopt.errors import TtsoptError
    from ttsopt.runtime import SynthesisRequest
    from ttsopt.runtime.sampling import SamplingParams
    from ttsopt.runtime.voice import Voice

    samples, rate = soundfile.read(str(REF_G), dtype="float32")
    voice = Voice.from_recording(tts, (samples, rate), CHAIN_EN_PROMPT, "en")
    path = voice.save(tmp_path / "gee.voice")
    loaded = Voice.load(path, tts)
    for field in ("prompt_tokens", "phone_ids", "ge"):
        np.testing.assert_array_equal(getattr(loaded, field), getattr(voice, field))
    assert loaded.phones == voice.phones and loaded.prompt_bert is None and loaded.sv is None
    params = SamplingParams(top_k=1, seed=0, max_new_tokens=30)
    audio, result = tts.speak(SynthesisRequest(phonemes="h ao3 .", voice=loaded, sampling=params))
    streamed = np.concatenate(list(tts.stream(SynthesisRequest(phonemes="h ao3 .", voice=loaded, sampling=params))))
    assert audio.size == streamed.size == result.tokens.size * 2 * tts.hop
    other = dataclasses.replace(voice, model={"sovits": "0" * 64, "gpt": "1" * 64}).save(tmp_path / "other.voice")
    with pytest.raises(TtsoptError, match="made with another model"):
        Voice.load(other, tts)
    truncated = tmp_path / "truncated.voice"
    truncated.write_bytes(path.read_bytes()[:200])
    with pytest.raises(TtsoptError, match="not a readable voice file"):
        Voice.load(truncated, tts)


def test_run_takes_voice_files_and_a_transcribed_reference(hubert_package: Path, tmp_path: Path) -> None:
    made = tmp_path / "gee.voice"
    ttsopt("voice", hubert_package, "--reference", REF_G, "--text", CHAIN_EN_PROMPT, "--lang", "en", "-o", made, check=True)
    common = ("--phonemes", "h ao3 .", "--seed", "0", "--top-k", "1", "--max-tokens", "20")
    ttsopt("run", hubert_package, "--voice", made, *common, "-o", tmp_path / "a.wav", check=True)
    ttsopt("run", hubert_package, "--reference", REF_G, "--reference-text", CHAIN_EN_PROMPT, "--reference-lang", "en",
           *common, "-o", tmp_path / "b.wav", check=True)
    a, b = soundfile.read(str(tmp_path / "a.wav"))[0], soundfile.read(str(tmp_path / "b.wav"))[0]
    np.testing.assert_array_equal(a, b)
    done = ttsopt("run", hubert_package, "--voice", made, *common, "--stream", "-o", tmp_path / "c.wav", check=True)
    assert "first audio after" in done.stdout and soundfile.info(str(tmp_path / "c.wav")).frames == a.size


def test_bad_voice_inputs_are_one_line_errors_and_write_nothing(hubert_package: Path, tts_package: Path,
                                                                  tmp_path: Path) -> None:
    from ttsopt.runtime.voice import Voice

    out = tmp_path / "x.voice"
    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("not audio")
    short = tmp_path / "short.wav"
    soundfile.write(str(short), np.zeros(32000 * 2), 32000)
    long = tmp_path / "long.wav"
    soundfile.write(str(long), np.zeros(32000 * 11), 32000)
    cases = [
        ((hubert_package, "--reference", not_audio, "--text", "Hi there.", "--lang", "en"), ("cannot read",)),
        ((hubert_package, "--reference", short, "--text", "Hi there.", "--lang", "en"), ("3-10 s",)),
        ((hubert_package, "--reference", long, "--text", "Hi there.", "--lang", "en"), ("3-10 s",)),
        ((hubert_package, "--reference", REF_G, "--text", "  ", "--lang", "en"), ("transcript is empty",)),
        ((hubert_package, "--reference", REF_G, "--text", "Hi there.", "--lang", "xx"), ("unsupported language",)),
        ((tts_package, "--reference", REF_G, "--text", "Hi there.", "--lang", "en"), ("--hubert", "--pretrained")),
    ]
    for args, fragments in cases:
        assert_one_line_error(ttsopt("voice", *args, "-o", out), *fragments)
        assert not out.exists() and not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())
    # A voice file of another model, and a truncated one, refused by `run` in one line.
    from ttsopt.runtime import load

    voice = Voice.from_recording(load(hubert_package), REF_G, CHAIN_EN_PROMPT, "en")
    other = dataclasses.replace(voice, model={"sovits": "0" * 64, "gpt": "1" * 64}).save(tmp_path / "other.voice")
    truncated = tmp_path / "cut.voice"
    truncated.write_bytes(voice.to_bytes()[:-50])
    for bad, fragment in ((other, "made with another model"), (truncated, "not a readable voice file")):
        done = ttsopt("run", hubert_package, "--voice", bad, "--phonemes", "h ao3 .", "-o", tmp_path / "x.wav")
        assert_one_line_error(done, fragment)
        assert not (tmp_path / "x.wav").exists()
    done = ttsopt("run", tts_package, "--reference", REF_G, "--reference-text", "Hi there.", "--reference-lang", "en",
                  "--phonemes", "h ao3 .", "-o", tmp_path / "x.wav")
    assert_one_line_error(done, "--hubert")


def test_voice_is_made_and_spoken_without_torch(hubert_package: Path, tmp_path: Path) -> None:
    from tests.test_runtime_without_torch import _run_without_torch

    done = _run_without_torch(f"""
import ttsopt.runtime, numpy as np
from ttsopt.runtime.sampling import SamplingParams
tts = ttsopt.runtime.load({str(hubert_package)!r})
voice = ttsopt.runtime.Voice.from_recording(tts, {str(REF_G)!r}, {CHAIN_EN_PROMPT!r}, "en")
voice = ttsopt.runtime.Voice.load(voice.save({str(tmp_path / 'v.voice')!r}), tts)
request = ttsopt.runtime.SynthesisRequest(phonemes="h ao3 .", voice=voice, sampling=SamplingParams(top_k=1, seed=0, max_new_tokens=10))
audio, result = tts.speak(request)
assert 'torch' not in sys.modules and 'transformers' not in sys.modules and np.isfinite(audio).all()
print('ok', voice.prompt_tokens.size)
""")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok 110")


def test_a_package_without_hubert_says_what_it_costs(tts_package: Path) -> None:
    inspected = ttsopt("inspect", tts_package, check=True).stdout
    held = next(line for line in inspected.splitlines() if line.startswith("auxiliary models:"))
    assert "hubert" not in held
    assert "note: no chinese-hubert-base (--hubert or --pretrained)" in " ".join(inspected.split())


def test_export_voice_with_a_transcript_needs_hubert_and_a_well_formed_entry(tmp_path: Path) -> None:
    from tests.conftest import ORACLE

    if not (ORACLE / "sovits_tiny.pth").is_file():
        pytest.skip(f"oracle not found under {ORACLE}")

    out = tmp_path / "pkg"
    base = ("export", "--gpt", ORACLE / "gpt_tiny.ckpt", "--sovits", ORACLE / "sovits_tiny.pth")
    assert_one_line_error(ttsopt(*base, "--voice", f"x={REF_G}|en|", "-o", out), "NAME=recording.wav|LANG|transcript")
    assert_one_line_error(ttsopt(*base, "--voice", f"x={REF_G}|en|Hello there.", "-o", out), "--hubert", "--pretrained")
    assert not out.exists()
