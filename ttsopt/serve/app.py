"""The FastAPI app: OpenAI's ``POST /v1/audio/speech`` (whole or streamed audio, or SSE events), voices,
health and Prometheus metrics. Errors are OpenAI-style JSON (``{"error": {"message", "type", ...}}``):
anything wrong with a request is a 4xx, never a 500."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator

import numpy as np
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ttsopt.errors import TtsoptError
from ttsopt.runtime.sampling import Cancelled
from ttsopt.serve.api_v2 import add_api_v2
from ttsopt.serve.audio import MEDIA_TYPES, OPUS_RATE, STREAMABLE, Encoder, encode_whole, encoder, pcm16
from ttsopt.serve.engine import Engine, Job, RequestTimeout
from ttsopt.serve.schemas import SpeechRequest
from ttsopt.serve.text import FrontEndUnavailable
from ttsopt.serve.voices import VoiceConflict, VoiceNotFound

log = logging.getLogger("ttsopt.serve")
RETRY_AFTER_S = 1


def error(status: int, message: str, kind: str = "invalid_request_error", param: str | None = None,
          headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": None}}, status, headers=headers)


def create_app(engine: Engine) -> FastAPI:
    app = FastAPI(title="ttsopt", description="OpenAI-compatible speech over a ttsopt text-to-speech package. "
                                             "The input field is text in `lang` (default: the server's --lang), "
                                             "or phonemes with lang \"phonemes\".")
    app.state.engine = engine
    tts = engine.tts

    def refused(status: int, message: str, kind: str = "invalid_request_error", param: str | None = None,
                headers: dict | None = None) -> JSONResponse:
        """An error answer to a speech request, counted in /metrics by its status."""
        engine.metrics.requests.labels(str(status)).inc()
        return error(status, message, kind, param, headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
        message = str(first.get("msg", "invalid request")).removeprefix("Value error, ")
        return refused(400, f"{where or 'body'}: {message}", param=where or None)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(TtsoptError)
    async def user_error(request: Request, exc: TtsoptError) -> JSONResponse:
        status = 409 if isinstance(exc, VoiceConflict) else 404 if isinstance(exc, VoiceNotFound) else 400
        if request.url.path.startswith("/v1/voices"):  # not a speech request: not in the speech counters
            return error(status, str(exc))
        return refused(status, str(exc))

    def authorized(request: Request) -> None:
        key = engine.settings.api_key
        if key is None:
            return
        given = request.headers.get("authorization", "")
        if not secrets.compare_digest(given.encode(), f"Bearer {key}".encode()):
            raise StarletteHTTPException(401, "missing or wrong API key: send Authorization: Bearer <key>")

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", "model": engine.name, "sample_rate": tts.sample_rate,
                "in_flight": engine.admission.active, "limit": engine.admission.limit}

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(engine.metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/v1/voices", dependencies=[Depends(authorized)])
    async def voices() -> dict:
        return {"voices": engine.voices()}

    @app.post("/v1/voices", dependencies=[Depends(authorized)], status_code=201)
    async def add_voice(request: Request) -> Response:
        """multipart/form-data: ``recording`` (a 3-10 s audio file), ``transcript`` (what it says), ``language`` and
        ``name``. The voice is computed (HuBERT, off the event loop), written to the store and listed; the recording
        itself is not kept."""
        limit = engine.settings.max_upload_bytes
        length = request.headers.get("content-length")
        if length is None or not length.isdigit():
            return error(411, "send the upload with a Content-Length")
        if int(length) > limit:
            return error(413, f"the upload is {int(length)} bytes; this server takes at most {limit} (a 3-10 s recording "
                              "is far less as FLAC or 16-bit WAV)")
        try:
            form = await request.form(max_files=1, max_fields=8)
        except AssertionError:  # starlette: python-multipart is missing
            return error(500, "this server cannot read uploads: pip install 'ttsopt[serve]'", kind="server_error")
        try:
            name, transcript, lang = (str(form.get(key) or "").strip() for key in ("name", "transcript", "language"))
            upload = form.get("recording")
            if not name or not transcript or not lang or upload is None or isinstance(upload, str):
                return error(400, "send multipart/form-data with recording (an audio file), transcript, language and name")
            engine.store.check_name(name)  # before the work
            data = await upload.read()
        finally:
            await form.close()  # a large upload spooled to a temporary file: gone now, whatever happens next
        voice = await engine.make_voice(data, transcript, lang, name=upload.filename or "the recording")
        del data  # the recording is not kept
        await asyncio.get_running_loop().run_in_executor(engine.voice_maker, engine.store.add, name, voice)
        return JSONResponse({"id": name, "name": name, "prompt": True, "stored": True, "text": voice.text, "lang": voice.lang,
                             "seconds": voice.seconds, "phones": list(voice.phones), "prompt_tokens": int(voice.prompt_tokens.size)},
                            201)

    @app.delete("/v1/voices/{name}", dependencies=[Depends(authorized)])
    async def delete_voice(name: str) -> dict:
        engine.store.delete(name)
        return {"id": name, "deleted": True}

    @app.get("/v1/models", dependencies=[Depends(authorized)])
    async def models() -> dict:
        return {"object": "list", "data": [{"id": engine.name, "object": "model", "owned_by": "ttsopt"}]}

    @app.post("/v1/audio/speech", dependencies=[Depends(authorized)])
    async def speech(body: SpeechRequest) -> Response:
        started = time.perf_counter()
        response_format = body.resolved_format()
        sse = body.stream_format == "sse"
        if sse and response_format != "pcm":
            return refused(400, "stream_format sse carries base64 16-bit PCM: use response_format pcm (or leave it out)",
                           param="response_format")
        streamed = sse or response_format in STREAMABLE
        try:
            job = await engine.prepare(body, streamed, started)
        except FrontEndUnavailable as exc:
            return refused(503, str(exc), kind="server_error")
        return await respond(job, sse)

    async def respond(job: Job, sse: bool) -> Response:
        """Synthesize a checked job: a JSON error for whatever fails before the first audio, else the audio, streamed
        (errors after that end the stream: an SSE error event, or the audio stops) or whole."""
        response_format = job.response_format
        coder = encoder(response_format, tts.sample_rate) if job.streamed and not sse else None
        if not engine.admission.try_enter():
            return refused(429, f"the server is busy ({engine.admission.limit} requests in progress): retry after "
                                f"{RETRY_AFTER_S} s", kind="rate_limit_error", headers={"Retry-After": str(RETRY_AFTER_S)})
        pieces = engine.audio(job)
        try:
            first = await anext(pieces)  # errors before any audio become a JSON answer, not a broken stream
        except RequestTimeout as exc:
            return refused(504, str(exc), kind="timeout")
        except TtsoptError as exc:
            return refused(400, str(exc))
        except Exception:
            log.exception("synthesis failed")
            return refused(500, "synthesis failed (the server's log has the details)", kind="server_error")
        if not job.streamed:
            try:
                audio = np.concatenate([first] + [piece async for piece in pieces])
            except TtsoptError as exc:
                return refused(504 if isinstance(exc, RequestTimeout) else 400, str(exc))
            engine.metrics.requests.labels("200").inc()
            return Response(encode_whole(audio, tts.sample_rate, response_format), media_type=MEDIA_TYPES[response_format])
        if sse:
            body_bytes, media = _sse(first, pieces, engine), "text/event-stream"
        else:
            body_bytes, media = _audio(first, pieces, engine, coder), MEDIA_TYPES[response_format]
        headers = {"X-Sample-Rate": str(OPUS_RATE if response_format == "opus" else tts.sample_rate), "Cache-Control": "no-cache"}
        return StreamingResponse(body_bytes, media_type=media, headers=headers)

    add_api_v2(app, engine, respond, authorized)
    return app


def _failure(exc: BaseException) -> tuple[str, str, str]:
    """(metric status, error type, message) of what ended a stream after its headers went out."""
    if isinstance(exc, RequestTimeout):
        return "504", "timeout", str(exc)
    if isinstance(exc, Cancelled):
        return "499", "cancelled", str(exc)
    if isinstance(exc, TtsoptError):
        return "400", "invalid_request_error", str(exc)
    log.error("synthesis failed during a stream", exc_info=exc)
    return "500", "server_error", "synthesis failed (the server's log has the details)"


async def _audio(first: np.ndarray, pieces: AsyncIterator[np.ndarray], engine: Engine, coder: Encoder) -> AsyncIterator[bytes]:
    status = "200"
    try:
        yield coder.encode(first)
        async for piece in pieces:
            chunk = coder.encode(piece)
            if chunk:
                yield chunk
        yield coder.finish()
    except Exception as exc:  # headers are gone: the stream just ends, and the metric says why
        status, _, message = _failure(exc)
        log.warning("stream ended early: %s", message)
    finally:
        await pieces.aclose()
        engine.metrics.requests.labels(status).inc()


async def _sse(first: np.ndarray, pieces: AsyncIterator[np.ndarray], engine: Engine) -> AsyncIterator[bytes]:
    def event(payload: dict) -> bytes:
        return f"data: {json.dumps(payload)}\n\n".encode()

    samples, status = 0, "200"
    try:
        samples += first.size
        yield event({"type": "speech.audio.delta", "audio": base64.b64encode(pcm16(first)).decode()})
        async for piece in pieces:
            samples += piece.size
            yield event({"type": "speech.audio.delta", "audio": base64.b64encode(pcm16(piece)).decode()})
        yield event({"type": "speech.audio.done", "usage": {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0},
                     "audio_seconds": samples / engine.tts.sample_rate, "sample_rate": engine.tts.sample_rate})
    except Exception as exc:
        status, kind, message = _failure(exc)
        yield event({"type": "error", "error": {"message": message, "type": kind}})
    finally:
        await pieces.aclose()
        engine.metrics.requests.labels(status).inc()
