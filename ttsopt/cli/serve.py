"""``ttsopt serve``."""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path
from typing import Annotated

import typer

from ttsopt.cli._common import Terminated, command, err
from ttsopt.errors import TtsoptError


@command
def serve(
    package: Annotated[Path, typer.Argument(help="Text-to-speech package directory (GPT + SoVITS).")],
    host: Annotated[str, typer.Option("--host", help="Interface to listen on (127.0.0.1: this machine only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port (0: any free one; the serving line says which).")] = 8000,
    workers: Annotated[int, typer.Option("--workers", help="Requests synthesized at once (threads over one loaded package; their "
                                                            "GPT decode steps run batched, up to the package's batch size).")] = 8,
    max_concurrent: Annotated[int | None, typer.Option("--max-concurrent", help="Requests admitted at once, running or waiting "
                                                       "(default 2 × workers); beyond: 429 with Retry-After.")] = None,
    max_input: Annotated[int, typer.Option("--max-input", help="Longest input accepted, in characters.")] = 4096,
    max_tokens: Annotated[int, typer.Option("--max-tokens", help="Most semantic tokens per request (25 per second).")] = 1500,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds a request may take before it is stopped.")] = 300.0,
    cache_mb: Annotated[float, typer.Option("--cache-mb", help="Finished-audio cache for seeded requests, MB (0: off).")] = 64.0,
    api_key: Annotated[str | None, typer.Option("--api-key", envvar="TTSOPT_API_KEY",
                                                help="Require Authorization: Bearer KEY (or set TTSOPT_API_KEY).")] = None,
    lang: Annotated[str, typer.Option("--lang", help="Language mode of a request's input when it names none: an official "
                                                      "mode (zh, all_zh, en, auto, ...: see run --lang), or phonemes "
                                                      "(input is space-separated phonemes).")] = "en",
    default_voice: Annotated[str | None, typer.Option("--default-voice", help="Voice of requests that name none or one of "
                                                      "OpenAI's (alloy, ...); default: the package's first voice with a prompt.")] = None,
    voices_dir: Annotated[Path | None, typer.Option("--voices", help="Voice store: the .voice files in DIR are served, and "
                                                    "POST /v1/voices adds voices there (made from a recording and its transcript).")] = None,
    max_voices: Annotated[int, typer.Option("--max-voices", help="Most voices the store keeps.")] = 100,
    max_upload_mb: Annotated[float, typer.Option("--max-upload-mb", help="Largest POST /v1/voices upload, MB.")] = 8.0,
    ref_audio_dir: Annotated[Path | None, typer.Option("--ref-audio-dir", help="The folder /tts's ref_audio_path (api_v2) may "
                                                       "name files in (nothing outside it is read).")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Model name reported by /v1/models (default: the directory name).")] = None,
    ray: Annotated[bool, typer.Option("--ray", help="Serve through Ray Serve, from --replicas copies that each own the package "
                                                    "(pip install 'ttsopt[cluster]').")] = False,
    replicas: Annotated[int, typer.Option("--replicas", help="With --ray: package runtimes serving requests (each with --workers).")] = 1,
    address: Annotated[str | None, typer.Option("--address", help="With --ray: join this Ray cluster (e.g. auto, or ray://head:10001) "
                                                                   "instead of starting a local Ray instance.")] = None,
) -> None:
    """Serve a text-to-speech package over HTTP: OpenAI's /v1/audio/speech (streamed), voices, health, metrics."""
    try:
        import lameenc  # noqa: F401  (mp3, the default format, streams through it)
        import uvicorn

        from ttsopt.serve.app import create_app
        from ttsopt.serve.engine import Engine, ServeSettings
        from ttsopt.serve.text import FrontEndUnavailable, server_lang, warm_up
    except ImportError as exc:
        raise TtsoptError(f"the server needs its extra ({exc.name} is missing): pip install 'ttsopt[serve]'") from None
    from ttsopt.runtime import TextToSpeech, load, share_thread_pool

    if workers < 1 or (max_concurrent is not None and max_concurrent < 1):
        raise TtsoptError("--workers and --max-concurrent must be at least 1")
    if (replicas != 1 or address is not None) and not ray:
        raise TtsoptError("--replicas and --address apply to --ray: add --ray")
    if not 0 <= port <= 65535:
        raise TtsoptError(f"--port {port} is not a TCP port: use 1..65535 (or 0 for any free one)")
    if ray and port == 0:
        raise TtsoptError("--port 0 is not available with --ray (Ray Serve's proxy binds the port itself): name a port")
    listening = None if ray else listen(host, port)  # before the package loads: a port in use is said at once
    share_thread_pool()
    tts = load(package)
    if not isinstance(tts, TextToSpeech):
        raise TtsoptError(f"{package} is a {tts.manifest.task} package: serve needs a text-to-speech package (export --gpt ... --sovits ...)")
    settings = ServeSettings(workers=workers, max_concurrent=max_concurrent, max_input_chars=max_input, max_tokens=max_tokens,
                             timeout_s=timeout, cache_mb=cache_mb, api_key=api_key, lang=server_lang(lang, tts),
                             default_voice=default_voice, voices_dir=voices_dir, max_voices=max_voices,
                             max_upload_bytes=int(max_upload_mb * 2**20), ref_audio_dir=ref_audio_dir)
    if ref_audio_dir is not None and not ref_audio_dir.is_dir():
        raise TtsoptError(f"--ref-audio-dir {ref_audio_dir} is not a folder: give the folder of the reference recordings")
    if max_voices < 0 or max_upload_mb <= 0:
        raise TtsoptError("--max-voices must be >= 0 and --max-upload-mb > 0")
    try:
        warm_up(settings.lang, tts)  # the front end of --lang, loaded now rather than by the first request
    except FrontEndUnavailable as exc:
        raise TtsoptError(f"--lang {lang}: {exc}") from None
    name = name or Path(package).resolve().name
    voices = ", ".join(sorted(tts.voices)) or "none stored in the package"
    if ray:
        from ttsopt.serve.cluster import serve_on_ray

        del tts  # each replica loads its own
        serve_on_ray(package, settings, name, host, port, replicas, address, lambda url: err.print(
            f"serving {package} on {url} through Ray Serve (pid {os.getpid()}; {replicas} replicas × {workers} workers, "
            f"{settings.admitted()} requests admitted per replica; voices: {voices})", highlight=False))
        return
    engine = Engine(tts, settings, name)
    stored = f" + {len(engine.store.voices)} stored in {voices_dir}" if voices_dir is not None else ""
    bound = listening.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    err.print(f"serving {package} on http://{shown}:{bound} (pid {os.getpid()}; {workers} workers, "
              f"{settings.admitted()} requests admitted; voices: {voices}{stored}; default voice: "
              f"{engine.default_voice or 'none (requests name theirs: POST /v1/voices makes one)'})", highlight=False,
              soft_wrap=True)  # one line, whatever the terminal's width: scripts read the port from it
    config = uvicorn.Config(create_app(engine), log_level="warning", timeout_graceful_shutdown=5)
    try:
        uvicorn.Server(config).run(sockets=[listening])
    except (KeyboardInterrupt, Terminated):  # uvicorn shut down gracefully, then re-raised the signal it had caught
        err.print(f"stopped serving {package}", highlight=False, soft_wrap=True)


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` and listening (uvicorn serves on it): the real port of ``--port 0`` is known
    before the serving line is printed, and a port in use or an unknown host is one line before any work."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    except socket.gaierror as exc:
        raise TtsoptError(f"--host {host}: {exc.strerror or exc}") from None
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: a restart need not wait for TIME_WAIT
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        reason = "is in use" if exc.errno == errno.EADDRINUSE else f"cannot be listened on ({exc.strerror or exc})"
        raise TtsoptError(f"port {port} on {host} {reason}: choose another with --port (0: any free one)") from None
    sock.set_inheritable(True)
    return sock
