"""``ttsopt serve --ray``: the same FastAPI app, served by Ray Serve from N replicas that each own a package runtime.

Each replica loads the package and builds :func:`ttsopt.serve.app.create_app` over its own :class:`Engine`
(Ray Serve's deferred ingress: ``__serve_build_asgi_app__`` runs in the replica, after its constructor), so a
request is answered exactly as by ``ttsopt serve`` on one machine — same endpoints, limits, errors and
streaming — and Ray's proxy spreads requests over the replicas, never sending one more than it admits.
Overflow waits at the proxy (a bounded queue), and beyond that gets a 429 with Retry-After from Ray.

Local mode (no ``--address``) starts a Ray instance for this process and stops it on exit. With ``--address``
the app joins an existing cluster and, on exit, deletes only its own application. Every node that runs a
replica needs ttsopt installed and the package at the same path (shared storage). Ray's internal ports
listen on all interfaces: run it on a private network.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
import uuid
from pathlib import Path

from ttsopt.errors import TtsoptError
from ttsopt.serve.engine import ServeSettings

APP_NAME = "ttsopt"


class Replica:
    """One package runtime behind one copy of the app (made a Ray Serve ingress by :func:`serve_on_ray`)."""

    def __init__(self, package: str, settings: ServeSettings, name: str) -> None:
        from ttsopt.runtime import load, share_thread_pool
        from ttsopt.serve.engine import Engine

        if not Path(package).is_dir():
            raise TtsoptError(f"package {package} is not on this node: put it at the same path on every node")
        share_thread_pool()
        self.engine = Engine(load(package), settings, name)

    def __serve_build_asgi_app__(self):
        from ttsopt.serve.app import create_app

        return create_app(self.engine)

    def __del__(self) -> None:
        engine = getattr(self, "engine", None)
        if engine is not None:
            engine.close()


#: Set in our environment before a local Ray starts; every process of that instance inherits it, which is how
#: we find ours (Ray's raylet starts its agents detached from us, so the process tree does not show them all).
OWNER_VARIABLE = "TTSOPT_RAY_OWNER"


def _marked(owner: str) -> set[int]:
    """Live processes (other than us) whose environment carries ``OWNER_VARIABLE=owner``; read from /proc."""
    marker = f"{OWNER_VARIABLE}={owner}".encode()
    found = set()
    proc = Path("/proc")
    for entry in proc.iterdir() if proc.is_dir() else ():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    found.add(int(entry.name))
            except OSError:
                continue
    return found


def _alive(pids: set[int]) -> set[int]:
    """Those of ``pids`` still running (not exited, not zombies); read from /proc."""
    alive = set()
    for pid in pids:
        try:
            if (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                alive.add(pid)
        except (OSError, IndexError):
            continue
    return alive


def _stop_leftovers(pids: set[int], grace_s: float = 10.0) -> None:
    """``ray.shutdown`` stops the GCS and the raylet; their agents notice only later (measured: over a minute).
    Give them ``grace_s``, then SIGTERM those still running, and SIGKILL what still runs ``grace_s`` later (CI saw
    two outlive a SIGTERM by 30 s): our own Ray's processes, by pid, nothing else."""
    for stop in (signal.SIGTERM, signal.SIGKILL):
        deadline = time.monotonic() + grace_s
        while _alive(pids) and time.monotonic() < deadline:
            time.sleep(0.2)
        for pid in _alive(pids):
            try:
                os.kill(pid, stop)
            except OSError:
                continue


def reap(server: int, owner: str) -> None:
    """Wait for the process ``server`` to be gone, then stop the processes marked ``owner`` (:func:`_stop_leftovers`)."""
    while _alive({server}):
        time.sleep(0.5)
    _stop_leftovers(_marked(owner))


def _start_reaper(owner: str) -> None:
    """A process of our own that stops our Ray's processes once this one is gone, however it went: Ray's core puts its
    own SIGTERM handler back in front of ours at some point after start-up (it logs "SIGTERM received" and exits
    at once, no clean-up), and a killed server runs none either; Ray's agents then outlive it by minutes. It does not
    carry the mark itself, and finds nothing to stop after a clean shutdown."""
    import subprocess
    import sys

    env = {key: value for key, value in os.environ.items() if key != OWNER_VARIABLE}
    subprocess.Popen([sys.executable, "-c", "import sys; from ttsopt.serve.cluster import reap; reap(int(sys.argv[1]), sys.argv[2])",
                      str(os.getpid()), owner], env=env, start_new_session=True, stdin=subprocess.DEVNULL,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _stop_on_sigterm() -> None:
    """SIGTERM (how a supervisor or a test stops us) unwinds like Ctrl-C, so Ray is shut down, not orphaned."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, interrupt)


def check_ray_address(address: str) -> None:
    """Refuse an ``--address`` nothing answers at, at once: ``ray.init`` would retry a dead address for minutes.
    ``auto`` (the cluster this node belongs to) is left to Ray."""
    if address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise TtsoptError(f"--address {address!r} is not auto, HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as exc:
        raise TtsoptError(f"cannot reach Ray at {address} ({exc.strerror or exc}): start the cluster "
                          "(ray start --head) or check --address") from None


def serve_on_ray(package: Path, settings: ServeSettings, name: str, host: str, port: int, replicas: int,
                 address: str | None, announce) -> None:
    """Run the app on Ray Serve until interrupted; ``announce(url)`` is called once it answers."""
    try:
        import ray
        from ray import serve
        from ray.serve.config import BackpressureConfig
    except ImportError:
        raise TtsoptError("--ray needs Ray Serve, which is not installed: pip install 'ttsopt[cluster]'") from None
    if replicas < 1:
        raise TtsoptError("--replicas must be at least 1")

    local = address is None
    if not local:
        check_ray_address(address)
    quiet = {"log_level": "WARNING", "enable_access_log": False}
    owner = uuid.uuid4().hex
    if local:
        os.environ[OWNER_VARIABLE] = owner
    try:
        if local:
            _start_reaper(owner)
            ray.init(include_dashboard=False, _node_ip_address="127.0.0.1", logging_level=logging.WARNING)
        else:
            ray.init(address=address, logging_level=logging.WARNING)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise TtsoptError(f"cannot start or reach Ray{'' if local else f' at {address}'}: {str(exc).splitlines()[0]}") from None
    try:
        serve.start(http_options={"host": host, "port": port}, logging_config=quiet)
        # A replica is sent no more than it admits: a proxy prefers the replicas on its own node and fills
        # them first, so a larger cap would pile a burst onto one node and have it refuse what another could
        # serve (measured: examples/ray_two_nodes.py). What no replica can take waits at the proxy, one round
        # of every replica's slots at most; beyond that Ray answers 429 with Retry-After, as the app does.
        deployment = serve.deployment(
            serve.ingress()(Replica), name=APP_NAME, num_replicas=replicas, ray_actor_options={"num_cpus": 1},
            max_ongoing_requests=settings.admitted(), max_queued_requests=replicas * settings.admitted(),
            backpressure_config=BackpressureConfig(status_code=429, retry_after_s=1), logging_config=quiet,
        )
        serve.run(deployment.bind(str(Path(package).resolve()), settings, name), name=APP_NAME, route_prefix="/",
                  logging_config=quiet)
        _stop_on_sigterm()  # after Ray's own set-up, which installs handlers of its own
        announce(f"http://{host}:{port}")
        while True:
            time.sleep(1.0)
    except KeyboardInterrupt:
        pass
    finally:
        started = _marked(owner) if local else set()
        try:
            if local:
                serve.shutdown()
            else:
                serve.delete(APP_NAME)
            ray.shutdown()
        finally:  # whatever Ray's shutdown raised, our own Ray's processes (and any it started meanwhile) are stopped
            _stop_leftovers(started | (_marked(owner) if local else set()))
