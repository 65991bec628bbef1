"""A drop-in for the official GPT-SoVITS ``api_v2.py``: ``/tts`` (GET with query parameters, POST with JSON) with its
field names and defaults, so an app written for the official server switches by changing its URL.

Its fields map onto the speech request: ``text`` / ``text_lang`` → ``input`` / ``lang``, ``speed_factor`` → ``speed``,
``media_type`` ``wav`` / ``raw`` / ``ogg`` → wav / pcm / Ogg Opus (``aac``: no streaming AAC encoder ships as a
wheel, refused), ``streaming_mode`` 0/false → whole, 1–3/true → streamed as the GPT generates, ``seed`` -1 → random,
``top_k``, ``top_p``, ``temperature``, ``repetition_penalty``, ``text_split_method``, ``fragment_interval`` as they
are. ``batch_size``, ``batch_threshold``, ``split_bucket``, ``parallel_infer``, ``sample_steps``, ``super_sampling``,
``overlap_length``, ``min_chunk_length`` tune the official pipeline's internals and are accepted and ignored.

``ref_audio_path`` is a voice id (a package voice or a stored one: ``GET /v1/voices``), or a file inside the folder
given at ``serve --ref-audio-dir`` (symlinks resolved; anything outside it, or without that folder, is a 4xx and is
never opened). A file becomes a voice with ``prompt_text`` / ``prompt_lang`` (made once per content), or, with no
``prompt_text``, reference-free synthesis with its ``ge``, as the official ``ref_free`` mode. Errors are the
official shape: ``{"message": ...}`` with a 4xx.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ValidationError

from ttsopt.errors import TtsoptError
from ttsopt.serve.engine import Engine, Job
from ttsopt.serve.schemas import SpeechRequest
from ttsopt.serve.text import FrontEndUnavailable

MEDIA = {"wav": "wav", "raw": "pcm", "ogg": "opus"}


class TtsRequest(BaseModel):
    """api_v2's ``TTS_Request``: the same fields and defaults (unknown fields ignored, as there)."""

    text: str | None = None
    text_lang: str | None = None
    ref_audio_path: str | None = None
    aux_ref_audio_paths: list | None = None
    prompt_lang: str | None = None
    prompt_text: str = ""
    top_k: int = 15
    top_p: float = 1
    temperature: float = 1
    text_split_method: str = "cut5"
    batch_size: int = 1
    batch_threshold: float = 0.75
    split_bucket: bool = True
    speed_factor: float = 1.0
    fragment_interval: float = 0.3
    seed: int = -1
    media_type: str = "wav"
    streaming_mode: bool | int = False
    parallel_infer: bool = True
    repetition_penalty: float = 1.35
    sample_steps: int = 32
    super_sampling: bool = False
    overlap_length: int = 2
    min_chunk_length: int = 16


def _message(status: int, message: str) -> JSONResponse:
    return JSONResponse({"message": message}, status)


def _inside(root: Path, given: str) -> Path:
    """``given`` (relative to ``root``, or absolute) resolved, symlinks included, and refused unless it is a file
    inside ``root``: nothing outside is ever opened."""
    base = root.resolve()
    try:
        target = (base / given).resolve()
    except (ValueError, OSError) as exc:  # a NUL byte, a loop of links
        raise TtsoptError(f"ref_audio_path {given[:200]!r} is not a usable path ({exc})") from None
    if not target.is_relative_to(base):
        raise PermissionError(f"ref_audio_path {given[:200]!r} is outside the reference folder of this server")
    if not target.is_file():
        raise FileNotFoundError(f"ref_audio_path {given[:200]!r} is not a file in the reference folder of this server")
    return target


def add_api_v2(app: FastAPI, engine: Engine, respond: Callable[[Job, bool], Awaitable[Response]], authorized) -> None:
    """Add ``/tts`` (GET and POST) to ``app``; ``respond`` synthesizes a checked job (the speech endpoint's)."""

    async def voice_of(req: TtsRequest):
        given = req.ref_audio_path
        if given in engine.tts.voices:
            return given
        stored = engine.store.get(given)
        if stored is not None:
            return stored
        root = engine.settings.ref_audio_dir
        if root is None:
            raise TtsoptError(f"ref_audio_path {given[:200]!r} is not a voice id (GET /v1/voices) and this server reads no "
                              "reference files: start it with --ref-audio-dir DIR")
        path = _inside(root, given)
        if req.prompt_text and not req.prompt_lang:
            raise TtsoptError("prompt_lang is required")
        data = await asyncio.get_running_loop().run_in_executor(None, path.read_bytes)
        return await engine.make_voice(data, req.prompt_text, (req.prompt_lang or "").lower(), name=Path(given).name)

    async def handle(fields: dict) -> Response:
        try:
            req = TtsRequest.model_validate(fields)
        except ValidationError as exc:
            first = exc.errors()[0]
            return _message(400, f"{'.'.join(map(str, first.get('loc', ())))}: {first.get('msg')}")
        if not req.text:
            return _message(400, "text is required")
        if not req.text_lang:
            return _message(400, "text_lang is required")
        if not req.ref_audio_path:
            return _message(400, "ref_audio_path is required (a voice id from GET /v1/voices, or a file in --ref-audio-dir)")
        if req.media_type not in MEDIA:
            return _message(400, f"media_type: {req.media_type[:40]} is not supported: use one of {', '.join(MEDIA)}")
        if req.aux_ref_audio_paths:
            return _message(400, "aux_ref_audio_paths (several references fused) is not supported: give one ref_audio_path")
        if isinstance(req.streaming_mode, int) and not isinstance(req.streaming_mode, bool) and req.streaming_mode not in (0, 1, 2, 3):
            return _message(400, "the value of streaming_mode must be 0, 1, 2, 3 or true/false")
        try:
            speech = SpeechRequest(input=req.text, lang=req.text_lang.lower(), response_format=MEDIA[req.media_type], speed=req.speed_factor,
                                   top_k=req.top_k, top_p=req.top_p, temperature=req.temperature, repetition_penalty=req.repetition_penalty,
                                   seed=req.seed, text_split_method=req.text_split_method, fragment_interval=req.fragment_interval)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = {"speed": "speed_factor", "input": "text", "lang": "text_lang"}.get(str(first["loc"][0]), first["loc"][0])
            return _message(400, f"{where}: {first.get('msg')}")
        try:
            voice = await voice_of(req)
            job = await engine.prepare(speech, bool(req.streaming_mode), voice=voice)
        except PermissionError as exc:
            return _message(403, str(exc))
        except FileNotFoundError as exc:
            return _message(404, str(exc))
        except OSError as exc:
            return _message(400, f"ref_audio_path {req.ref_audio_path[:200]!r} cannot be read: {exc.strerror or exc}")
        except FrontEndUnavailable as exc:
            return _message(503, str(exc))
        except TtsoptError as exc:
            engine.metrics.requests.labels("400").inc()
            return _message(400, str(exc))
        response = await respond(job, False)
        if isinstance(response, JSONResponse) and response.status_code >= 400:  # the official error shape
            return _message(response.status_code, json.loads(response.body)["error"]["message"])
        return response

    @app.get("/tts", dependencies=[Depends(authorized)])
    async def tts_get(request: Request) -> Response:
        return await handle(dict(request.query_params))

    @app.post("/tts", dependencies=[Depends(authorized)])
    async def tts_post(request: Request) -> Response:
        try:
            fields = await request.json()
        except ValueError:
            return _message(400, "the body is not JSON: send the fields of api_v2's TTS_Request")
        if not isinstance(fields, dict):
            return _message(400, "the body must be a JSON object of api_v2's TTS_Request fields")
        return await handle(fields)
