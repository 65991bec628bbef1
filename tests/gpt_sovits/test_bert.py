"""RoBERTa BERT features: the ``bert`` graph of a text-to-speech package against the official ``get_phones_and_bert``.

The input-side oracle (shared/oracle/gpt-sovits-aux-tiny, README §3–§4) holds the official BERT matrix of 16
inputs, the tokenizer ids of every Chinese segment, and the prompted ``chain_zh`` (transcript and target
BERT, the GPT's inputs and greedy tokens). Features are fed from the oracle's own segments (norm_text and
word2ph), so these tests do not depend on g2pW or the language segmentation (other work); one entry whose
phones ttsopt's front end already reproduces is checked end to end.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from tests.conftest import AUX_ORACLE, assert_one_line_error, ttsopt
from ttsopt.runtime import SynthesisRequest, TextToSpeech, load
from ttsopt.runtime.bert import encode
from ttsopt.runtime.sampling import SamplingParams
from ttsopt.runtime.text import Segment, Sentence, sentence_phones

ATOL = 1e-4
ENTRIES = {e["id"]: e for e in json.loads((AUX_ORACLE / "text.json").read_text())["entries"]} \
    if (AUX_ORACLE / "text.json").is_file() else {}

pytestmark = pytest.mark.skipif(not ENTRIES, reason=f"oracle not found under {AUX_ORACLE}")


@pytest.fixture(scope="module")
def tts(tts_bert_package: Path) -> TextToSpeech:
    return load(tts_bert_package)


@pytest.fixture(scope="module")
def oracle_bert() -> dict[str, np.ndarray]:
    with np.load(AUX_ORACLE / "bert.npz") as data:
        return {key: data[key] for key in data.files}


def _oracle_segments(entry: dict) -> list[Segment]:
    """The segments of the official result: the last attempt's (the "." retry replaces the first)."""
    last = max(s["attempt"] for s in entry["segments"])
    return [Segment(s["lang"], s["norm_text"], s["phones"], s["word2ph"]) for s in entry["segments"] if s["attempt"] == last]


def test_package_holds_the_cut_graph_and_the_tokenizer(tts_bert_package: Path, tts: TextToSpeech):
    manifest = tts.manifest
    facts = manifest.runtime["auxiliary"]["bert"]
    assert (facts["layers"], facts["layers_run"], facts["hidden_state"], facts["hidden_size"]) == (4, 2, -3, 1024)
    assert (tts_bert_package / manifest.runtime["bert"]["tokenizer"]).is_file()
    graph = onnx.load(str(tts_bert_package / manifest.graphs["bert"].file))
    stored = sum(int(np.prod(t.dims)) for t in graph.graph.initializer)
    # Embeddings + 2 of 4 layers; layers 3-4, the pooler and the MLM head (another 21128 x 1024) are not in it.
    assert abs(stored - facts["parameters"]) < 0.01 * facts["parameters"]
    assert stored < 34_000_000
    rows = [r for r in manifest.verification["golden"] if r["graph"] == "bert"]
    assert len(rows) == 3 and min(r["snr_db"] for r in rows) > 100


def test_tokenizer_ids_are_the_official_ones(tts: TextToSpeech):
    calls = [call for entry in ENTRIES.values() for call in entry["bert_tokenizer"]]
    assert len(calls) >= 12
    for call in calls:
        ids = encode(tts.bert.tokenizer, call["text"])
        assert ids["input_ids"][0].tolist() == call["input_ids"], call["text"]
        assert not ids["token_type_ids"].any() and ids["attention_mask"].all()


@pytest.mark.parametrize("entry", list(ENTRIES))
def test_features_of_the_official_segments(tts: TextToSpeech, oracle_bert, entry: str):
    """The whole matrix: Chinese segments through the graph, zeros for en/ja/ko/yue, joined along phones."""
    want = oracle_bert[ENTRIES[entry]["bert_key"]]
    got = tts.bert_features(Sentence(ENTRIES[entry]["text"], _oracle_segments(ENTRIES[entry])))
    assert got.shape == want.shape == tuple(ENTRIES[entry]["bert_shape"])
    np.testing.assert_allclose(got, want, rtol=0, atol=ATOL)
    assert int(np.any(got != 0, axis=0).sum()) == ENTRIES[entry]["bert_nonzero_columns"]


def test_front_end_to_features_end_to_end(tts: TextToSpeech, oracle_bert):
    """'你好。' (all_zh): the front end's phones and its "." retry equal the official ones, and so do the features."""
    entry = ENTRIES["zh_retry_dot"]
    sentence = sentence_phones(entry["text"], "zh", "v2", set(tts.phonemes.symbols))
    assert sentence.phones == entry["phones"] and sentence.norm_text == entry["norm_text"]
    np.testing.assert_allclose(tts.bert_features(sentence), oracle_bert[entry["bert_key"]], rtol=0, atol=ATOL)


def test_prompted_chain_greedy_tokens_with_bert(tts: TextToSpeech):
    """chain_zh: transcript and target features from the package, then the GPT (greedy, official penalty) repeats
    the official tokens up to the first near-tie of its margins (README §4: step 98 is the first under 1e-3)."""
    with np.load(AUX_ORACLE / "chain.npz") as data:
        chain = {k.removeprefix("chain_zh__"): data[k] for k in data.files if k.startswith("chain_zh__")}
    meta = json.loads((AUX_ORACLE / "meta.json").read_text())["chains"]["chain_zh"]
    # The transcript is all_zh: one segment, two phones per character and one per mark (v2).
    norm = meta["prompt_norm_text"]
    prompt = Sentence(norm, [Segment("zh", norm, [""] * chain["prompt_phones"].size, [1 if c in ",." else 2 for c in norm])])
    target = Sentence(meta["inputs"]["text"], _oracle_segments(ENTRIES["zh_mixed_chatgpt"]))
    np.testing.assert_allclose(tts.bert_features(prompt), chain["prompt_bert"], rtol=0, atol=ATOL)
    np.testing.assert_allclose(tts.bert_features(target), chain["target_bert"], rtol=0, atol=ATOL)
    bert = np.concatenate((tts.bert_features(prompt), tts.bert_features(target)), axis=1)[None]
    np.testing.assert_allclose(tts.gpt.prefill(chain["gpt_all_phoneme_ids"], bert, chain["gpt_prompt"]),
                               chain["gpt_step_logits_first32"][0], rtol=0, atol=ATOL)
    margins = chain["gpt_greedy_margins"]
    steps = int(np.argmax(margins < 1e-3))
    assert steps == 98
    params = SamplingParams(greedy=True, max_new_tokens=steps, eos_suppress_steps=11)
    result = tts.gpt.generate(chain["gpt_all_phoneme_ids"], bert, chain["gpt_prompt"][0], params)
    generated = chain["gpt_y"][chain["gpt_prompt"].shape[1]:]
    np.testing.assert_array_equal(result.tokens[:steps], generated[:steps])
    zeros = tts.gpt.generate(chain["gpt_all_phoneme_ids"], None, chain["gpt_prompt"][0], params)
    assert not np.array_equal(zeros.tokens[:steps], generated[:steps])  # the features matter for these tokens


def test_voice_transcripts_get_their_features(tts: TextToSpeech):
    """chain_zh's transcript: a Voice made at run time (torch-free graph) and the voice stored at export (original
    model) carry its official BERT features, and the GPT reads them as the prompt's columns: with the official
    prompt phones and codes put in, a Voice gives the official greedy tokens up to the first near-tie."""
    from tests.conftest import CHAIN_ZH_PROMPT
    from ttsopt.runtime.voice import Voice

    with np.load(AUX_ORACLE / "chain.npz") as data:
        chain = {k.removeprefix("chain_zh__"): data[k] for k in data.files if k.startswith("chain_zh__")}
    voice = Voice.from_recording(tts, AUX_ORACLE / "wavs" / "ref_b_32k.wav", CHAIN_ZH_PROMPT, "zh")
    np.testing.assert_allclose(voice.prompt_bert, chain["prompt_bert"], rtol=0, atol=ATOL)
    np.testing.assert_allclose(tts.voice_data["zht/prompt_bert"], chain["prompt_bert"], rtol=0, atol=ATOL)
    assert Voice.from_bytes(voice.to_bytes(), tts).prompt_bert.shape == chain["prompt_bert"].shape
    english = Voice.from_recording(tts, AUX_ORACLE / "wavs" / "ref_b_32k.wav", "This is a test.", "en")
    assert english.prompt_bert is None and "zh/prompt_bert" not in tts.voice_data  # zeros, as officially
    # The official prompt (phones from g2pW, which ttsopt does not run yet) with this voice's features.
    official = dataclasses.replace(voice, phone_ids=chain["prompt_phones"], prompt_tokens=chain["prompt_semantic"])
    target = Sentence("", _oracle_segments(ENTRIES["zh_mixed_chatgpt"]))
    steps = 98  # the first greedy margin under 1e-3 (README §4)
    params = SamplingParams(greedy=True, max_new_tokens=steps)
    result = tts.semantic_tokens(SynthesisRequest(phonemes=chain["target_phones"], voice=official, bert=tts.bert_features(target), sampling=params))
    np.testing.assert_array_equal(result.tokens[:steps], chain["gpt_y"][chain["prompt_semantic"].size:][:steps])


def test_text_is_spoken_with_its_features(tts: TextToSpeech):
    """A front-end sentence brings its features: equal to passing them by hand, unlike zeros (greedy GPT)."""
    (sentence,) = tts.phonemize("我今天很高兴，我们去公园散步吧。", "zh", cut="cut0")
    params = SamplingParams(greedy=True, max_new_tokens=30, eos_suppress_steps=30)
    phonemes = " ".join(sentence.phones)
    features = np.asarray(tts.bert_features(sentence))
    with_sentence = tts.semantic_tokens(SynthesisRequest(phonemes=phonemes, voice="zh", bert=features, sampling=params)).tokens
    audio, result = tts.speak(SynthesisRequest(phonemes=sentence, voice="zh", sampling=params))
    np.testing.assert_array_equal(result.tokens, with_sentence)
    assert not np.array_equal(tts.semantic_tokens(SynthesisRequest(phonemes=phonemes, voice="zh", sampling=params)).tokens, with_sentence)
    streamed = tts.stream(SynthesisRequest(phonemes=sentence, voice="zh", sampling=params))
    pieces = list(streamed)
    np.testing.assert_array_equal(streamed.stats.result.tokens, with_sentence)
    assert sum(p.size for p in pieces) == audio.size
    english = tts.phonemize("Hello there, my friend.", "en", cut="cut0")[0]
    assert not tts.bert_features(english).any() and tts.bert_features(english).shape == (1024, len(english.phones))


def test_cli_speaks_chinese_with_bert_and_without_torch(tts_bert_package: Path, tmp_path: Path):
    from tests.test_runtime_without_torch import _run_without_torch

    for extra in ([], ["--stream"]):
        args = ["run", str(tts_bert_package), "--text", "你好，世界。今天天气很好。", "--lang", "zh", "--voice", "zh",
                "--seed", "1", "--max-tokens", "30", "-o", str(tmp_path / "o.wav"), *extra]
        done = _run_without_torch(f"from ttsopt.cli import app; app({args!r})")
        assert done.returncode == 0, done.stderr
        assert "zero BERT features" not in done.stderr and (tmp_path / "o.wav").stat().st_size > 10_000


def test_phonemize_json_reports_segments_and_bert_phones(tts_bert_package: Path):
    """Per segment: language, norm_text, phones, word2ph and the phones that get BERT features (the official split)."""
    entry = ENTRIES["zh_mixed_chatgpt"]
    done = ttsopt("phonemize", tts_bert_package, "--text", entry["text"], "--lang", "zh", "--cut", "cut0", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    (sentence,) = report["sentences"]
    assert report["bert"] is True and sentence["bert_phones"] == entry["bert_nonzero_columns"] == 21
    official = _oracle_segments(entry)
    assert [(g["lang"], g["norm_text"], g["word2ph"]) for g in sentence["segments"]] == \
        [(g.lang, g.norm_text, g.word2ph) for g in official]
    assert [g["bert_phones"] for g in sentence["segments"]] == [8, 0, 13]
    text = ttsopt("phonemize", tts_bert_package, "--text", entry["text"], "--lang", "zh", "--cut", "cut0").stdout
    assert "bert    21 of 30 phones" in text


def test_a_package_without_bert_says_chinese_gets_zeros(hubert_package: Path, tmp_path: Path):
    for lang, text in (("zh", "你好，世界。今天天气很好。"), ("en", "Hello, world. This is a test.")):
        done = ttsopt("run", hubert_package, "--text", text, "--lang", lang, "--voice", "gee", "--seed", "1",
                      "--max-tokens", "20", "-o", tmp_path / f"{lang}.wav")
        assert done.returncode == 0, done.stderr
        assert ("zero BERT features" in done.stderr) == (lang == "zh")
    report = json.loads(ttsopt("phonemize", hubert_package, "--text", "你好，世界。", "--lang", "zh", "--json").stdout)
    assert report["bert"] is False and report["sentences"][0]["bert_phones"] == 0


def test_bad_bert_folder_is_one_line(tmp_path: Path):
    from tests.conftest import ORACLE

    hubert = AUX_ORACLE / "chinese-hubert-base"
    for folder, fragment in ((tmp_path, "no config.json"), (hubert, "is not a Chinese RoBERTa")):
        done = ttsopt("export", "--gpt", ORACLE / "gpt_tiny.ckpt", "--sovits", ORACLE / "sovits_tiny.pth", "--bert", folder,
                      "-o", tmp_path / "out")
        assert_one_line_error(done, "--bert", fragment)
        assert not (tmp_path / "out").exists()


def test_server_speaks_chinese_with_its_features(tts_bert_package: Path, tts: TextToSpeech):
    """``ttsopt serve`` answers Chinese text as the API streams it (RoBERTa features, seeded): the same samples, as
    pcm (streamed) and wav; the API's own test above shows that audio is not the zero-feature one."""
    import io

    import httpx
    import soundfile

    from tests.serve.conftest import running_server

    text, seed, tokens = "我今天很高兴。", 3, 30
    params = SamplingParams(top_k=tts.gpt.default_top_k, max_new_tokens=tokens, seed=seed)
    audio = np.concatenate(list(tts.stream(SynthesisRequest(text=text, lang="zh", voice="zh", sampling=params))))
    with running_server(tts_bert_package, "--lang", "zh", "--cache-mb", "0") as url:
        for response_format in ("pcm", "wav"):
            body = {"model": "ttsopt", "input": text, "voice": "zh", "lang": "zh", "seed": seed, "max_tokens": tokens,
                    "response_format": response_format}
            done = httpx.post(f"{url}/v1/audio/speech", json=body, timeout=300)
            assert done.status_code == 200, done.text
            if response_format == "wav":
                served, _ = soundfile.read(io.BytesIO(done.content), dtype="float32")
            else:
                served = np.frombuffer(done.content, dtype="<i2").astype(np.float32) / 32767.0
            assert served.size == audio.size
            np.testing.assert_allclose(served, audio, atol=2e-4)
