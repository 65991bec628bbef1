"""The voice store (``serve --voices DIR``: POST/GET/DELETE /v1/voices) and api_v2's ``/tts``, against a real server
over the tiny oracle package with the stand-in HuBERT; every synthesis is bounded by ``--max-tokens 30``."""

from __future__ import annotations

import io
import re
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile

from tests.conftest import AUX_ORACLE, CHAIN_EN_PROMPT
from tests.serve.conftest import running_server

KEY = {"Authorization": "Bearer k3y"}
WAVS = AUX_ORACLE / "wavs"


@pytest.fixture(scope="module")
def store(hubert_package: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, Path]]:
    """(url, voice folder, reference folder): two recordings in the reference folder, one link out of it."""
    voices, refs = tmp_path_factory.mktemp("voices"), tmp_path_factory.mktemp("refs")
    shutil.copy(WAVS / "ref_b_32k.wav", refs / "b.wav")
    (refs / "escape.wav").symlink_to(WAVS / "ref_c_44k.wav")  # inside by name, outside once resolved
    with running_server(hubert_package, "--voices", str(voices), "--ref-audio-dir", str(refs), "--max-tokens", "30", "--max-voices", "2",
                        "--max-upload-mb", "1", "--cache-mb", "0", "--lang", "en", "--api-key", "k3y") as url:
        yield url, voices, refs


def upload(url: str, name: str, data: bytes, transcript: str = CHAIN_EN_PROMPT, language: str = "en", headers: dict = KEY) -> httpx.Response:
    return httpx.post(f"{url}/v1/voices", headers=headers, timeout=120, files={"recording": ("ref.wav", data, "audio/wav")},
                      data={"transcript": transcript, "language": language, "name": name})


def computed(url: str) -> float:
    found = re.search(r"^ttsopt_voices_computed_total ([0-9.]+)$", httpx.get(f"{url}/metrics").text, re.M)
    return float(found.group(1))


def wav_bytes(seconds: float) -> bytes:
    """The first ``seconds`` of the oracle's 6.2 s reference (repeated beyond that)."""
    audio, rate = soundfile.read(WAVS / "ref_g_32k.wav", dtype="float32")
    buffer = io.BytesIO()
    soundfile.write(buffer, np.tile(audio, 3)[: int(seconds * rate)], rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def test_voice_store(store: tuple[str, Path, Path], hubert_package: Path):
    url, folder, _ = store
    recording = (WAVS / "ref_g_32k.wav").read_bytes()
    assert upload(url, "alice", recording, headers={}).status_code == 401
    made = upload(url, "alice", recording)
    assert made.status_code == 201, made.text
    assert made.json()["prompt_tokens"] > 0 and made.json()["lang"] == "en"
    assert sorted(p.name for p in folder.iterdir()) == ["alice.voice"]  # the recording itself is not kept
    before = computed(url)
    assert upload(url, "bob", recording).status_code == 201  # same recording and transcript: not computed again
    assert computed(url) == before
    listed = {v["id"]: v for v in httpx.get(f"{url}/v1/voices", headers=KEY).json()["voices"]}
    assert {"gee", "alice", "bob"} <= set(listed) and listed["alice"]["stored"] and not listed["gee"].get("stored")
    body = {"input": "Nice to meet you.", "lang": "en", "voice": "alice", "response_format": "pcm", "seed": 1}
    spoken = httpx.post(f"{url}/v1/audio/speech", json=body, headers=KEY, timeout=120)
    assert spoken.status_code == 200 and len(spoken.content) > 0

    for data, fields, status, fragment in (
        (recording, {"name": "alice"}, 409, "stored already"),
        (recording, {"name": "carol"}, 409, "at most 2 voices"),
        (recording, {"name": "gee"}, 409, "the package has a voice"),
        (recording, {"name": "../x"}, 400, "letters, digits"),
    ):
        done = upload(url, data=data, **fields)
        assert done.status_code == status and fragment in done.json()["error"]["message"], done.text
    assert httpx.delete(f"{url}/v1/voices/bob", headers=KEY).status_code == 200
    for data, fields, status, fragment in (
        (b"not audio at all" * 10, {}, 400, "not audio"),
        (wav_bytes(1.0), {}, 400, "3-10 s"),
        (wav_bytes(11.5), {}, 400, "3-10 s"),
        (wav_bytes(5.0), {"transcript": "   "}, 400, "transcript"),
        (wav_bytes(5.0), {"language": "xx"}, 400, "unsupported language"),
        (b"RIFF" + bytes(1_100_000), {}, 413, "at most"),
    ):
        done = upload(url, "dave", data, **fields)
        assert done.status_code == status and fragment in done.json()["error"]["message"], (fragment, done.text)
    assert sorted(p.name for p in folder.iterdir()) == ["alice.voice"]  # nothing left behind by the refusals

    # Computing a voice (HuBERT: ~1.5 s here) runs off the event loop: the server answers meanwhile.
    with ThreadPoolExecutor(1) as pool:
        started = time.perf_counter()
        pending = pool.submit(upload, url, "eve", wav_bytes(7.0), "Hello there, this is eve speaking now.")
        time.sleep(0.2)
        asked = time.perf_counter()
        assert httpx.get(f"{url}/health", timeout=30).status_code == 200
        health_s = time.perf_counter() - asked
        assert pending.result().status_code == 201
        upload_s = time.perf_counter() - started
    assert health_s < max(0.75, upload_s / 2), (health_s, upload_s)
    assert httpx.delete(f"{url}/v1/voices/eve", headers=KEY).status_code == 200

    with running_server(hubert_package, "--voices", str(folder), "--max-tokens", "30", "--lang", "en") as again:
        assert "alice" in {v["id"] for v in httpx.get(f"{again}/v1/voices").json()["voices"]}  # kept across a restart
    assert httpx.delete(f"{url}/v1/voices/alice", headers=KEY).status_code == 200
    assert not (folder / "alice.voice").exists()
    assert httpx.delete(f"{url}/v1/voices/alice", headers=KEY).status_code == 404
    gone = httpx.delete(f"{url}/v1/voices/gee", headers=KEY)
    assert gone.status_code == 404 and "package voice cannot be deleted" in gone.json()["error"]["message"]


def tts(url: str, method: str = "GET", **fields) -> httpx.Response:
    fields = {"text": "Nice to meet you.", "text_lang": "en", "ref_audio_path": "gee", "seed": 7} | fields
    if method == "GET":
        return httpx.get(f"{url}/tts", params=fields, headers=KEY, timeout=120)
    return httpx.post(f"{url}/tts", json=fields, headers=KEY, timeout=120)


def test_api_v2_tts(store: tuple[str, Path, Path]):
    url, _, _ = store
    whole = tts(url)
    assert whole.status_code == 200 and whole.headers["content-type"] == "audio/wav", whole.text
    audio, rate = soundfile.read(io.BytesIO(whole.content), dtype="float32")
    assert rate == 32000 and whole.content[4:8] != b"\xff\xff\xff\xff"  # whole: the header has the real sizes
    streamed = tts(url, "POST", streaming_mode=True, media_type="raw")
    assert streamed.status_code == 200
    pieces = np.frombuffer(streamed.content, "<i2") / 32767.0
    # Same seed, same tokens and noise; streamed pieces are decoded with their measured context (docs/serving.md).
    assert pieces.size == audio.size and np.corrcoef(pieces, audio)[0, 1] > 0.9

    before = computed(url)
    prompted = {"ref_audio_path": "b.wav", "prompt_text": CHAIN_EN_PROMPT, "prompt_lang": "en"}
    first, second = tts(url, **prompted), tts(url, "POST", **prompted)
    assert first.status_code == second.status_code == 200 and first.content == second.content
    assert computed(url) == before + 1  # one recording + transcript, computed once
    assert tts(url, ref_audio_path="b.wav").status_code == 200  # no prompt_text: reference-free, as the official ref_free
    assert tts(url, seed=-1, media_type="ogg", streaming_mode=2).status_code == 200

    for fields, status, fragment in (
        ({"ref_audio_path": "escape.wav"}, 403, "outside the reference folder"),
        ({"ref_audio_path": "../" * 8 + "etc/passwd"}, 403, "outside the reference folder"),
        ({"ref_audio_path": "/etc/passwd"}, 403, "outside the reference folder"),
        ({"ref_audio_path": "missing.wav"}, 404, "not a file"),
        ({"ref_audio_path": "b\x00.wav"}, 400, "not a usable path"),
        ({"text": ""}, 400, "text is required"),
        ({"text_lang": "xx"}, 400, "unsupported language"),
        ({"media_type": "aac"}, 400, "use one of wav, raw, ogg"),
        ({"streaming_mode": 7}, 400, "streaming_mode"),
        ({"text_split_method": "cut9"}, 400, "text_split_method"),
        ({"ref_audio_path": "b.wav", "prompt_text": "hello"}, 400, "prompt_lang is required"),
    ):
        done = tts(url, **fields)
        assert done.status_code == status and fragment in done.json()["message"], (fields, done.text)
