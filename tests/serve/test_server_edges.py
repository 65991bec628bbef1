"""A user's first hour with ``ttsopt serve`` (issue 25), against real servers on 127.0.0.1: everything checkable is
checked before the headers, long unpunctuated text is cut (not refused), a missing text front end is named, ports
are honest, /metrics counts what it says, and OpenAI's clients work out of the box (streamed mp3/opus, OpenAI's
voice names, ``instructions``), with defaults that queue a burst of 8 instead of refusing half of it."""

from __future__ import annotations

import io
import re
import textwrap
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile

from tests.conftest import ROOT, assert_one_line_error, ttsopt
from tests.serve.conftest import free_port, running_server

TEXT = "n i2 h ao3 , w o3 sh i4 b ai2 y e4 ."
HANZI = "我们今天去公园玩" * 75  # 600 hanzi, no punctuation: about 1200 phonemes, over the package's 1024
TEXT_EXTRA = ("pypinyin", "jieba_fast", "cn2an", "inflect", "wordsegment", "g2p_en", "pyopenjtalk", "g2pk2", "mecab", "jamo",
              "ToJyutping")


@pytest.fixture(scope="module")
def edge_server(tts_package: Path) -> Iterator[str]:
    """Default --workers and --max-concurrent, --lang en (warmed at start-up), no cache."""
    with running_server(tts_package, "--cache-mb", "0", "--lang", "en", "--max-tokens", "200") as url:
        yield url


def speech(url: str, **body) -> httpx.Response:
    return httpx.post(f"{url}/v1/audio/speech", json={"input": TEXT, "lang": "phonemes", "max_tokens": 30} | body, timeout=120)


def metric(url: str, name: str) -> float:
    found = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", httpx.get(f"{url}/metrics").text, re.M)
    return float(found.group(1)) if found else 0.0


def pcm(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32767.0


def test_first_audio_metric_includes_the_text_front_end(edge_server: str):
    """600 hanzi (the front end's first zh use: dictionaries load, then ~20 pieces are phonemized) streamed: the
    first-audio histogram holds the client's wait, not only the synthesis after the front end."""
    before_sum, before_count = metric(edge_server, "ttsopt_first_audio_seconds_sum"), metric(edge_server, "ttsopt_first_audio_seconds_count")
    start = time.perf_counter()
    with httpx.stream("POST", f"{edge_server}/v1/audio/speech", timeout=120,
                      json={"input": HANZI[:60], "lang": "zh", "voice": "fox", "response_format": "pcm", "max_tokens": 20, "seed": 1}) as response:
        assert response.status_code == 200, response.read()
        chunks = response.iter_bytes()
        next(chunks)
        client_first = time.perf_counter() - start
        for _ in chunks:
            pass
    assert metric(edge_server, "ttsopt_first_audio_seconds_count") == before_count + 1
    observed = metric(edge_server, "ttsopt_first_audio_seconds_sum") - before_sum
    assert observed >= 0.7 * client_first - 0.05, (observed, client_first)


@pytest.mark.parametrize("stream", ["wav", "sse"])
def test_long_unpunctuated_text_is_cut_not_a_broken_stream(edge_server: str, stream: str):
    """Before: HTTP 200, then the connection broke at the 1200-phoneme sentence and /metrics counted a 200."""
    body = {"input": "Hello there. " + HANZI, "lang": "zh", "max_tokens": 20, "seed": 2}
    body |= {"stream_format": "sse"} if stream == "sse" else {"response_format": stream}
    errors_before = sum(metric(edge_server, f'ttsopt_requests_total{{status="{s}"}}') for s in ("400", "500"))
    with httpx.stream("POST", f"{edge_server}/v1/audio/speech", json=body, timeout=180) as response:
        assert response.status_code == 200
        data = response.read()
    if stream == "sse":
        events = [line for line in data.decode().splitlines() if line.startswith("data: ")]
        assert '"speech.audio.done"' in events[-1], events[-1][:200]
        assert len(events) > 20  # pieces of at most 64 phonemes (20 tokens), each streamed
    else:
        audio = pcm(data[44:] if stream == "wav" else data)
        assert audio.size / 32000 > 20 * 0.3  # ≥ 20 pieces, each followed by the 0.3 s pause
    assert sum(metric(edge_server, f'ttsopt_requests_total{{status="{s}"}}') for s in ("400", "500")) == errors_before


def test_too_many_phonemes_streamed_is_a_4xx_before_the_headers(edge_server: str):
    phonemes = " ".join(["a"] * 1100)
    for body in ({"response_format": "pcm"}, {"response_format": "wav"}, {"stream_format": "sse"}, {"response_format": "mp3"}):
        done = speech(edge_server, input=phonemes, **body)
        assert done.status_code == 400 and "takes at most 1024" in done.json()["error"]["message"], done.text


def test_schema_refusals_are_counted(edge_server: str):
    before = metric(edge_server, 'ttsopt_requests_total{status="400"}')
    assert speech(edge_server, temprature=1.0).status_code == 400
    assert httpx.post(f"{edge_server}/v1/audio/speech", content=b"{no", headers={"content-type": "application/json"}).status_code == 400
    assert metric(edge_server, 'ttsopt_requests_total{status="400"}') == before + 2


def test_openai_client_out_of_the_box(edge_server: str):
    """The openai client's defaults (mp3, voice "alloy", instructions): streamed mp3 whose first bytes come before the
    last, decoding to the default voice's audio; opus streams too; aac is refused naming the formats."""
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=f"{edge_server}/v1", api_key="unused")
    text = "Hello there, how are you today? I am fine, thank you."
    chunks, start, first_at = [], time.perf_counter(), None
    with client.audio.speech.with_streaming_response.create(model="tts-1", voice="alloy", input=text, instructions="cheerful",
                                                            extra_body={"seed": 3, "max_tokens": 40}) as response:
        assert response.headers["content-type"] == "audio/mpeg"
        for chunk in response.iter_bytes(1024):
            first_at = first_at or time.perf_counter() - start
            chunks.append(chunk)
    total = time.perf_counter() - start
    assert first_at < 0.8 * total, (first_at, total)  # streamed, not encoded whole
    mp3, rate = soundfile.read(io.BytesIO(b"".join(chunks)), dtype="float32")
    fox = speech(edge_server, input=text, lang="en", voice="fox", seed=3, max_tokens=40, response_format="pcm")
    reference = pcm(fox.content)
    assert rate == 32000 and abs(mp3.size - reference.size) < 4 * 1152  # LAME's delay and padding
    assert httpx.get(f"{edge_server}/v1/voices").json()["voices"][0] == {"id": "fox", "name": "fox", "prompt": True, "default": True}
    opus = speech(edge_server, seed=3, response_format="opus")
    decoded, rate = soundfile.read(io.BytesIO(opus.content), dtype="float32")
    whole = pcm(speech(edge_server, seed=3, response_format="pcm").content)
    assert opus.status_code == 200 and rate == 48000 and abs(decoded.size - whole.size * 1.5) < 960
    refused = speech(edge_server, response_format="aac")
    assert refused.status_code == 400 and "use one of mp3, opus, wav, pcm, flac" in refused.json()["error"]["message"]


def test_default_limits_queue_8_concurrent_requests(edge_server: str):
    with ThreadPoolExecutor(8) as pool:
        statuses = [r.status_code for r in pool.map(lambda i: speech(edge_server, seed=i, max_tokens=20), range(8))]
    assert statuses == [200] * 8


def test_seed_minus_one_is_random(edge_server: str):
    first, second = (speech(edge_server, seed=-1, response_format="pcm") for _ in range(2))
    assert first.status_code == second.status_code == 200 and first.content != second.content


def _blocking_site(tmp_path: Path) -> dict:
    """An environment whose Python finds none of the text extra's modules (as after ``pip install 'ttsopt[serve]'``)."""
    (tmp_path / "sitecustomize.py").write_text(textwrap.dedent(f"""
        import sys
        class _Absent:
            def find_spec(self, name, path=None, target=None):
                if name.partition(".")[0] in {TEXT_EXTRA!r}:
                    raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        sys.meta_path.insert(0, _Absent())
    """))
    return {"PYTHONPATH": f"{tmp_path}:{ROOT}"}


def test_missing_text_extra_is_named(tts_package: Path, tmp_path: Path):
    env = _blocking_site(tmp_path)
    done = ttsopt("serve", tts_package, "--port", str(free_port()), "--lang", "zh", env=env)
    assert_one_line_error(done, "--lang zh", "pip install 'ttsopt[text]'")
    assert "serving" not in done.stderr
    with running_server(tts_package, "--lang", "phonemes", env=env) as url:
        assert speech(url).status_code == 200  # phonemes need no front end
        for text, lang in (("I have 5 apples.", "en"), ("你好，世界。", "zh"), ("Hello.", "en")):
            done = speech(url, input=text, lang=lang)
            assert done.status_code == 503 and "pip install 'ttsopt[text]'" in done.json()["error"]["message"], done.text


def test_ports_are_honest(tts_package: Path):
    """--port 70000 refused; a port in use refused before the serving line. (--port 0 and the real port in the serving
    line: every ``running_server`` reads its URL from there.) SIGTERM stops the server gracefully: exit 0, one line,
    not the "nothing was written" of an interrupted export."""
    assert_one_line_error(ttsopt("serve", tts_package, "--port", "70000"), "--port 70000", "1..65535")
    assert_one_line_error(ttsopt("serve", tts_package, "--port", "0", "--ray"), "--port 0", "--ray")
    with running_server(tts_package, "--lang", "phonemes", started=(started := []), output=(output := [])) as url:
        taken = url.rsplit(":", 1)[1]
        done = ttsopt("serve", tts_package, "--port", taken, "--lang", "phonemes")
        assert_one_line_error(done, f"port {taken}", "in use")
        assert "serving" not in done.stderr
    said = "".join(output)
    assert started[0].returncode == 0 and "stopped serving" in said and "nothing was written" not in said, said


def test_a_failure_after_the_first_audio_ends_the_stream_and_is_counted(tts_package: Path, monkeypatch: pytest.MonkeyPatch):
    """What cannot be known before synthesis (here: the runtime failing after its first piece) ends an SSE stream with
    an error event and an audio stream early, and /metrics counts a 500, not a 200. (In-process: the failure is
    injected into the runtime; the app, engine and encoders are the server's.)"""
    from fastapi.testclient import TestClient

    import ttsopt.runtime
    from ttsopt.serve.app import create_app
    from ttsopt.serve.engine import Engine, ServeSettings

    engine = Engine(ttsopt.runtime.load(tts_package), ServeSettings(lang="phonemes", cache_mb=0, workers=1), "m")
    real_stream = engine.tts.stream

    def failing(*args, **kwargs):
        pieces = iter(real_stream(*args, **kwargs))
        yield next(pieces)
        raise RuntimeError("injected failure after the first piece")

    monkeypatch.setattr(engine.tts, "stream", failing)
    body = {"input": TEXT, "voice": "fox", "max_tokens": 40, "seed": 1}
    try:
        with TestClient(create_app(engine)) as client:
            with client.stream("POST", "/v1/audio/speech", json=body | {"stream_format": "sse"}) as response:
                assert response.status_code == 200
                events = [line for line in response.iter_lines() if line.startswith("data: ")]
            assert '"type": "error"' in events[-1] and "synthesis failed" in events[-1], events[-1][:200]
            with client.stream("POST", "/v1/audio/speech", json=body | {"response_format": "mp3"}) as response:
                assert response.status_code == 200 and len(response.read()) > 0
            metrics = client.get("/metrics").text
    finally:
        engine.close()
    assert 'ttsopt_requests_total{status="500"} 2.0' in metrics and 'status="200"' not in metrics
