"""Token-level streaming (``tts.stream``) against whole-utterance synthesis with the same tokens and noise,
the KV cache sized to what is filled, per-request decoders, and ``ttsopt run --stream``."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile

from tests.conftest import ttsopt
from ttsopt.audio.mel import MelSettings
from ttsopt.audio.metrics import logmel_l1, snr_db
from ttsopt.runtime import SynthesisRequest, TextToSpeech, load
from ttsopt.runtime import gpt as gpt_module
from ttsopt.runtime.sampling import SamplingParams
from ttsopt.runtime.streaming import FrameNoise, StreamSettings

TEXT = "j in1 t ian1 t ian1 q i4 h en3 h ao3 , w o3 m en5 q v4 g ong1 y van2 b a5 ."
MEL = MelSettings(32000, 1024, 320, 1024, 80)


@pytest.fixture(scope="module")
def tts(tts_package: Path) -> TextToSpeech:
    return load(tts_package)


def _params(**kwargs) -> SamplingParams:
    return SamplingParams(**{"top_k": 15, "seed": 5, "max_new_tokens": 150, "eos_suppress_steps": 120} | kwargs)


def _request(params: SamplingParams, **fields) -> SynthesisRequest:
    return SynthesisRequest(phonemes=TEXT, voice="fox", sampling=params, **fields)


def test_streamed_audio_matches_whole_utterance(tts: TextToSpeech):
    """Same tokens and noise: streamed audio within the measured seam cost of whole-utterance synthesis
    (tiny oracle, default settings: log-mel L1 0.03, SNR 31 dB measured; gates with margin)."""
    params = _params()
    whole, result = tts.speak(_request(params))
    stream = tts.stream(_request(params))
    pieces, gpt_done_at_first_piece = [], None
    for piece in stream:
        if gpt_done_at_first_piece is None:
            gpt_done_at_first_piece = stream.stats.result is not None
        pieces.append(piece)
    audio = np.concatenate(pieces)
    assert gpt_done_at_first_piece is False  # the first piece came while the GPT was still generating
    assert len(pieces) >= 4 and stream.stats.first_audio_s is not None
    np.testing.assert_array_equal(stream.stats.tokens, result.tokens)
    assert audio.size == whole.size == 2 * result.tokens.size * tts.hop
    assert snr_db(whole, audio) >= 20.0
    assert logmel_l1(whole, audio, MEL) <= 0.08


def test_stream_without_lookahead_is_worse(tts: TextToSpeech):
    """Holding latent frames back is what makes the seams close: with none the error grows (measured 24 vs 31 dB)."""
    params = _params()
    whole, _ = tts.speak(_request(params))
    held = np.concatenate(list(tts.stream(_request(params))))
    raw = np.concatenate(list(tts.stream(_request(params, stream=StreamSettings(lookahead_frames=0, crossfade_frames=0)))))
    assert snr_db(whole, held) > snr_db(whole, raw) + 2.0


def test_frame_noise_prefixes_agree():
    whole = FrameNoise(4, 3)(50)
    grown = FrameNoise(4, 3)
    grown(7), grown(20)
    np.testing.assert_array_equal(grown(50), whole)
    np.testing.assert_array_equal(FrameNoise(4, 3)(9), whole[:, :, :9])


def test_closing_a_stream_stops_the_gpt(tts: TextToSpeech):
    stream = tts.stream(_request(_params(max_new_tokens=150, eos_suppress_steps=150)))
    pieces = iter(stream)
    assert next(pieces).size > 0
    stream.close()
    assert stream.stats.result is None  # never ran to the end


def test_cache_is_sized_to_the_prefill_not_the_token_cap(tts: TextToSpeech, monkeypatch):
    capacities: list[int] = []

    class Recording(gpt_module.KVCache):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            capacities.append(self.capacity)

    monkeypatch.setattr(gpt_module, "KVCache", Recording)
    monkeypatch.setattr(gpt_module, "CACHE_BLOCK", 1)
    result = tts.semantic_tokens(_request(_params(max_new_tokens=1500)))
    prompt_tokens, prompt_ids = tts.prompt("fox")
    filled = prompt_ids.size + len(TEXT.split()) + prompt_tokens.size
    assert capacities == [filled]  # not filled + 1500: every step's attention reads the capacity
    assert result.tokens.size > 0


def test_concurrent_requests_do_not_share_state(tts: TextToSpeech):
    """Each request has its own decoder (KV cache) and generators: two at once give what each gives alone."""
    alone = {seed: tts.speak(_request(_params(seed=seed)))[0] for seed in (1, 2)}
    together: dict[int, np.ndarray] = {}
    threads = [threading.Thread(target=lambda s=seed: together.__setitem__(s, tts.speak(_request(_params(seed=s)))[0]))
               for seed in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for seed in (1, 2):
        np.testing.assert_array_equal(together[seed], alone[seed])


def test_run_stream_cli(tts_package: Path, tmp_path: Path):
    out = tmp_path / "streamed.wav"
    done = ttsopt("run", tts_package, "--phonemes", TEXT, "--voice", "fox", "--seed", "3", "--max-tokens", "80", "--stream", "-o", out)
    assert done.returncode == 0, done.stderr
    assert "first audio after" in done.stdout and "pieces" in done.stdout
    streamed, rate = soundfile.read(out, dtype="float32")
    whole_path = tmp_path / "whole.wav"
    assert ttsopt("run", tts_package, "--phonemes", TEXT, "--voice", "fox", "--seed", "3", "--max-tokens", "80", "-o", whole_path).returncode == 0
    whole, _ = soundfile.read(whole_path, dtype="float32")
    assert rate == 32000 and streamed.size == whole.size and snr_db(whole, streamed) >= 20.0
