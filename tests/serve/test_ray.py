"""``ttsopt serve --ray``: the same app through Ray Serve on a local Ray instance, two replicas that each own
the package; answers are those of the one-machine server (same seed, same audio, whichever replica), errors
stay 4xx JSON, and stopping the server by its pid stops the Ray instance it started."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.serve.conftest import free_port, running_server
from tests.serve.test_server import TEXT, pcm, speech
from ttsopt.errors import TtsoptError
from ttsopt.serve.cluster import OWNER_VARIABLE, _alive, _marked, check_ray_address

pytest.importorskip("ray.serve", reason="Ray Serve is not installed: pip install 'ttsopt[cluster]'")


def _ray_instance_of(server: int) -> set[int]:
    """The processes of the Ray instance a server started: its children carry the server's owner mark."""
    for child in Path(f"/proc/{server}/task/{server}/children").read_text().split():
        for item in (Path("/proc") / child / "environ").read_bytes().split(b"\0"):
            if item.startswith(f"{OWNER_VARIABLE}=".encode()):
                return _marked(item.split(b"=", 1)[1].decode())
    return set()


def test_ray_serve_replicas_answer_like_one_server(tts_package: Path):
    with running_server(tts_package, "--ray", "--replicas", "2", "--workers", "2", "--cache-mb", "0", "--lang", "phonemes",
                        "--max-tokens", "400", startup_s=300, stop_s=150, started=(started := []),
                        output=(output := [])) as url:
        assert httpx.get(f"{url}/health", timeout=10).json()["status"] == "ok"
        assert {v["id"] for v in httpx.get(f"{url}/v1/voices", timeout=10).json()["voices"]} == {"fox", "plain"}
        with ThreadPoolExecutor(4) as pool:  # four at once: both replicas synthesize
            answers = list(pool.map(lambda _: speech(url, response_format="pcm", seed=7, input=TEXT), range(4)))
        assert all(a.status_code == 200 for a in answers), [(a.status_code, a.text[:200]) for a in answers if a.status_code != 200]
        audio = [pcm(a.content) for a in answers]
        assert audio[0].size > 0 and all(np.array_equal(a, audio[0]) for a in audio[1:])
        bad = speech(url, voice="nobody")
        assert bad.status_code == 400 and "nobody" in bad.json()["error"]["message"]
        ray_processes = _ray_instance_of(started[0].pid)
        assert len(ray_processes) >= 4  # the local Ray instance: GCS, raylet, agents, controller, proxy, replicas
    # The server stops its Ray itself (serve and Ray shut down, then leftovers by pid: up to 20 s more); on a loaded
    # 2-core machine that took over the 60 s this test once allowed, and a server killed then orphans its Ray.
    assert started[0].returncode != -9, "the server did not stop within 150 s of SIGTERM (it was killed)"
    deadline = time.monotonic() + 60
    while _alive(ray_processes) and time.monotonic() < deadline:
        time.sleep(0.5)
    left = {pid: Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")[:120] for pid in _alive(ray_processes)}
    assert not left, f"the Ray instance outlived the server that started it: {left}; server said: {''.join(output[-20:])}"


def test_an_address_nothing_answers_at_is_refused_at_once():
    """``ray.init`` retries a dead address for minutes; --address is probed first and refused in one line."""
    started = time.monotonic()
    with pytest.raises(TtsoptError, match="cannot reach Ray at 127.0.0.1:"):
        check_ray_address(f"127.0.0.1:{free_port()}")
    with pytest.raises(TtsoptError, match="is not auto, HOST:PORT"):
        check_ray_address("head-node")
    assert time.monotonic() - started < 10
