"""``ttsopt serve`` for real: uvicorn on 127.0.0.1, real HTTP clients (httpx and the official ``openai`` client),
streamed and whole audio, SSE, bad requests → 4xx JSON, a bounded load test without cross-request leakage, 429."""

from __future__ import annotations

import base64
import io
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile

from tests.serve.conftest import running_server
from tests.test_runtime_without_torch import _run_without_torch

TEXT = "n i2 h ao3 , w o3 sh i4 b ai2 y e4 ."
LONG = "j in1 t ian1 t ian1 q i4 h en3 h ao3 , w o3 m en5 q v4 g ong1 y van2 b a5 ."


def speech(url: str, timeout: float = 120, **body) -> httpx.Response:
    """A request bounded to 60 tokens (2.4 s) unless it says otherwise: the tiny oracle GPT rarely stops by itself early."""
    body = {"model": "ttsopt", "input": TEXT, "voice": "fox", "max_tokens": 60} | body
    return httpx.post(f"{url}/v1/audio/speech", json=body, timeout=timeout)


def pcm(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32767.0


def test_health_voices_models(server: str):
    assert httpx.get(f"{server}/health").json()["status"] == "ok"
    voices = {v["id"]: v for v in httpx.get(f"{server}/v1/voices").json()["voices"]}
    assert set(voices) == {"fox", "plain"} and voices["fox"]["prompt"] and not voices["plain"]["prompt"]
    assert httpx.get(f"{server}/v1/models").json()["data"][0]["object"] == "model"


def test_streamed_wav_and_whole_formats(server: str):
    wav = speech(server, response_format="wav", seed=1)
    assert wav.status_code == 200 and wav.headers["content-type"] == "audio/wav"
    assert wav.content[:4] == b"RIFF" and wav.content[4:8] == b"\xff\xff\xff\xff"  # streamed: length unknown in the header
    audio, rate = soundfile.read(io.BytesIO(wav.content), dtype="float32")
    assert rate == 32000 and audio.size > 0 and audio.size % 640 == 0
    raw = speech(server, response_format="pcm", seed=1)
    np.testing.assert_allclose(pcm(raw.content), audio, atol=1e-4)  # same seed, same audio
    for fmt, rate in (("flac", 32000), ("mp3", 32000), ("opus", 48000)):
        done = speech(server, response_format=fmt, seed=1)
        assert done.status_code == 200, done.text
        decoded, got_rate = soundfile.read(io.BytesIO(done.content), dtype="float32")
        assert got_rate == rate and decoded.size > 0.9 * audio.size * rate / 32000, fmt


def test_sse_events(server: str):
    events = []
    with httpx.stream("POST", f"{server}/v1/audio/speech", timeout=120,
                      json={"model": "ttsopt", "input": LONG, "voice": "fox", "stream_format": "sse", "seed": 4}) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
    deltas = [e for e in events if e["type"] == "speech.audio.delta"]
    assert len(deltas) >= 2 and events[-1]["type"] == "speech.audio.done"
    audio = np.concatenate([pcm(base64.b64decode(e["audio"])) for e in deltas])
    assert abs(audio.size / 32000 - events[-1]["audio_seconds"]) < 1e-6


def test_openai_client_streams(server: str, tmp_path: Path):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=f"{server}/v1", api_key="unused")
    chunks, first_at = [], None
    start = time.perf_counter()
    with client.audio.speech.with_streaming_response.create(model="ttsopt", voice="fox", input=LONG, response_format="pcm",
                                                            extra_body={"seed": 3}) as response:
        for chunk in response.iter_bytes(4096):
            first_at = first_at or time.perf_counter() - start
            chunks.append(chunk)
    streamed = pcm(b"".join(chunks))
    total = time.perf_counter() - start
    assert streamed.size > 32000 and first_at < total  # audio arrived before the response was complete
    whole = client.audio.speech.create(model="ttsopt", voice="fox", input=LONG, response_format="wav", extra_body={"seed": 3})
    whole.write_to_file(tmp_path / "speech.wav")
    audio, rate = soundfile.read(tmp_path / "speech.wav", dtype="float32")
    assert rate == 32000
    np.testing.assert_allclose(audio, streamed, atol=1e-4)


def test_text_input_through_the_front_end(server: str, tmp_path: Path):
    """Text in ``lang`` (here named by the request through the openai client's extra_body): cut into sentences by the
    text front end, each synthesised, joined with the sentence pause; streamed and whole give the same audio."""
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=f"{server}/v1", api_key="unused")
    text = "Hello, world. How are you today?"
    extra = {"lang": "en", "seed": 5, "max_tokens": 30}
    with client.audio.speech.with_streaming_response.create(model="ttsopt", voice="fox", input=text, response_format="pcm",
                                                            extra_body=extra) as response:
        streamed = pcm(b"".join(response.iter_bytes(4096)))
    whole = client.audio.speech.create(model="ttsopt", voice="fox", input=text, response_format="wav", extra_body=extra)
    whole.write_to_file(tmp_path / "text.wav")
    audio, rate = soundfile.read(tmp_path / "text.wav", dtype="float32")
    np.testing.assert_allclose(audio, streamed, atol=1e-4)
    pause = int(0.3 * rate)
    silent = np.convolve(np.abs(audio) < 1e-4, np.ones(pause), "valid") == pause  # the 0.3 s between the two sentences
    assert silent.any() and audio.size > 2 * pause
    for body, fragment in (({"lang": "xx"}, "unsupported language"), ({"input": "!!!", "lang": "en"}, "nothing to speak")):
        done = speech(server, **({"input": text} | body))
        assert 400 <= done.status_code < 500 and fragment in done.json()["error"]["message"], done.text


@pytest.mark.parametrize(("body", "fragment"), [
    ({"input": ""}, "input"),
    ({"input": "   "}, "no phonemes given"),
    ({"input": "hello world"}, "phonemes"),
    ({"voice": "nobody"}, "voice 'nobody' is not in this package"),
    ({"input": " ".join(["a"] * 2100)}, "at most 2000"),
    ({"top_p": 2}, "top_p"),
    ({"speed": 9}, "speed"),
    ({"response_format": "aac"}, "use one of mp3, opus, wav, pcm, flac"),
    ({"seed": -2}, "seed"),
    ({"max_tokens": 5000}, "exceeds this server's limit"),
    ({"temprature": 1.0}, "temprature"),
    ({"stream_format": "sse", "response_format": "mp3"}, "use response_format pcm"),
])
def test_bad_requests_are_4xx_json(server: str, body: dict, fragment: str):
    done = speech(server, **body)
    assert 400 <= done.status_code < 500, (done.status_code, done.text)
    assert fragment in done.json()["error"]["message"]
    bad_json = httpx.post(f"{server}/v1/audio/speech", content=b"{not json", headers={"content-type": "application/json"})
    assert bad_json.status_code == 400 and "error" in bad_json.json()


def test_load_isolated_and_bounded(server: str):
    """8 concurrent streams (16 requests, bounded to 240 s): no errors, and every request's audio equals what the
    same seed gives alone (no state leaks between concurrent requests: KV caches, generators, noise)."""
    alone = {seed: speech(server, response_format="pcm", seed=seed, input=LONG).content for seed in (11, 12, 13, 14)}
    assert len(set(alone.values())) == 4
    deadline = time.monotonic() + 240

    def one(i: int) -> tuple[int, httpx.Response]:
        assert time.monotonic() < deadline, "load test ran out of time"
        return 11 + i % 4, speech(server, response_format="pcm", seed=11 + i % 4, input=LONG)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(16)))
    for seed, response in results:
        assert response.status_code == 200, response.text
        assert response.content == alone[seed]


def test_429_beyond_the_limit(tts_package: Path):
    with running_server(tts_package, "--workers", "1", "--max-concurrent", "2", "--cache-mb", "0") as url:
        def slow(_: int) -> httpx.Response:
            return speech(url, input=LONG, response_format="pcm", max_tokens=200, seed=1)

        with ThreadPoolExecutor(6) as pool:
            statuses = [r.status_code for r in pool.map(slow, range(6))]
        rejected = [s for s in statuses if s == 429]
        assert rejected and set(statuses) <= {200, 429} and statuses.count(200) >= 2
        busy = None
        with ThreadPoolExecutor(3) as pool:
            for response in pool.map(slow, range(3)):
                busy = response if response.status_code == 429 else busy
        if busy is not None:
            assert busy.headers["Retry-After"] == "1" and busy.json()["error"]["type"] == "rate_limit_error"
        metrics = httpx.get(f"{url}/metrics").text
        assert 'ttsopt_requests_total{status="429"}' in metrics and "ttsopt_first_audio_seconds_bucket" in metrics


def test_client_disconnect_cancels_and_frees_the_slot(tts_package: Path):
    with running_server(tts_package, "--workers", "1", "--max-concurrent", "1", "--cache-mb", "0") as url:
        with httpx.stream("POST", f"{url}/v1/audio/speech", timeout=60,
                          json={"model": "m", "input": LONG, "voice": "fox", "response_format": "pcm", "max_tokens": 400,
                                "seed": 1}) as response:
            assert response.status_code == 200
            next(response.iter_bytes())  # first audio, then hang up
        deadline = time.monotonic() + 30
        while httpx.get(f"{url}/health").json()["in_flight"] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert httpx.get(f"{url}/health").json()["in_flight"] == 0  # the GPT stopped; the slot is free again
        assert speech(url, response_format="pcm", seed=2).status_code == 200


def test_api_key_and_cache(tts_package: Path):
    with running_server(tts_package, env={"TTSOPT_API_KEY": "s3cret"}) as url:
        assert speech(url).status_code == 401
        assert httpx.get(f"{url}/v1/voices").status_code == 401
        headers = {"Authorization": "Bearer s3cret"}
        body = {"model": "m", "input": TEXT, "voice": "fox", "response_format": "pcm", "seed": 9}
        first = httpx.post(f"{url}/v1/audio/speech", json=body, headers=headers, timeout=60)
        again = httpx.post(f"{url}/v1/audio/speech", json=body, headers=headers, timeout=60)
        assert first.status_code == again.status_code == 200 and first.content == again.content
        assert "ttsopt_cache_hits_total 1.0" in httpx.get(f"{url}/metrics").text


def test_server_never_imports_torch(tts_package: Path):
    done = _run_without_torch(f"""
from fastapi.testclient import TestClient
import ttsopt.runtime
from ttsopt.serve.app import create_app
from ttsopt.serve.engine import Engine, ServeSettings
engine = Engine(ttsopt.runtime.load({str(tts_package)!r}), ServeSettings(), "m")
client = TestClient(create_app(engine))
done = client.post("/v1/audio/speech", json={{"input": {TEXT!r}, "voice": "fox", "response_format": "pcm", "max_tokens": 30, "seed": 1}})
assert done.status_code == 200 and len(done.content) > 0, done.text
assert 'torch' not in sys.modules
print('ok')
""")
    assert done.returncode == 0, done.stderr
