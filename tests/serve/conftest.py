"""A real server: ``python -m ttsopt serve`` on 127.0.0.1 and a free port, stopped by its own pid."""

from __future__ import annotations

import os
import queue
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT

pytest.importorskip("fastapi", reason="the server extra is not installed: pip install 'ttsopt[serve]'")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_server(package: Path, *args: str, env: dict | None = None, startup_s: float = 240, stop_s: float = 15,
                   started: list | None = None, output: list | None = None) -> Iterator[str]:
    """The server's URL once /health answers; ``started`` (if given) receives the server's process, ``output`` its
    output lines as they come (read all along, so the server never blocks on a full pipe).

    The one-machine server is started on ``--port 0`` and its URL read from its serving line: a port picked here
    could be taken by another process before the server binds it (then /health could answer from that one).
    Ray Serve binds its proxy itself, so ``--ray`` gets a free port picked here. ``startup_s`` bounds the wait: a server
    that exits is seen at once; one that starts slowly on a loaded 2-core machine took up to 225 s (90 s was flaky)."""
    ray = "--ray" in args
    port = free_port() if ray else 0
    process = subprocess.Popen([sys.executable, "-m", "ttsopt", "serve", str(package), "--host", "127.0.0.1", "--port", str(port), *args],
                               cwd=ROOT, env={**os.environ, "COLUMNS": "200", **(env or {})}, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue = queue.Queue()
    seen = output if output is not None else []

    def drain() -> None:
        for line in process.stdout:
            seen.append(line)
            lines.put(line)
        lines.put(None)

    threading.Thread(target=drain, daemon=True).start()
    if started is not None:
        started.append(process)
    try:
        deadline = time.monotonic() + startup_s
        url = f"http://127.0.0.1:{port}" if ray else None
        while url is None:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"server printed no serving line in {startup_s} s: {''.join(seen)}") from None
            if line is None:
                process.wait(timeout=15)
                raise AssertionError(f"server exited ({process.returncode}): {''.join(seen)}")
            found = re.search(r"serving .* on (http://127\.0\.0\.1:\d+) ", line)
            url = found.group(1) if found else None
        while True:
            if process.poll() is not None:
                raise AssertionError(f"server exited ({process.returncode}): {''.join(seen)}")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"server did not come up in {startup_s} s")
            time.sleep(0.3)
        yield url
    finally:
        process.terminate()  # our own pid only
        try:
            process.wait(timeout=stop_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


@pytest.fixture(scope="module")
def server(tts_package: Path) -> Iterator[str]:
    # Inputs are phonemes unless a request names its language (test_text_input_through_the_front_end).
    with running_server(tts_package, "--workers", "2", "--max-concurrent", "8", "--max-input", "2000", "--max-tokens", "400",
                        "--cache-mb", "0", "--lang", "phonemes") as url:  # no cache: the load test must exercise synthesis
        yield url
