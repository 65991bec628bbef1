"""The FastAPI app: OpenAI's ``POST /v1/audio/speech`` (whole or streamed audio, or SSE events), voices,
health and Prometheus metrics. Errors are OpenAI-style JSON (``{"error": {"message", "type", ...}}``):
anything wrong with a request is a 4xx, never a 500."""

from __future__ import annotations

import base64
import json
import logging
import secrets
from collections.abc import AsyncIterator

import numpy as np
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ttsopt.errors import TtsoptError
from ttsopt.runtime.sampling import Cancelled
from ttsopt.serve.audio import MEDIA_TYPES, STREAMABLE, encode_whole, pcm16, streaming_wav_header
from ttsopt.serve.engine import Engine, RequestTimeout
from ttsopt.serve.schemas import SpeechRequest

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

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
        return error(400, f"{where or 'body'}: {first.get('msg', 'invalid request')}", param=where or None)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(TtsoptError)
    async def user_error(_: Request, exc: TtsoptError) -> JSONResponse:
        engine.metrics.requests.labels("400").inc()
        return error(400, str(exc))

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

    @app.get("/v1/models", dependencies=[Depends(authorized)])
    async def models() -> dict:
        return {"object": "list", "data": [{"id": engine.name, "object": "model", "owned_by": "ttsopt"}]}

    @app.post("/v1/audio/speech", dependencies=[Depends(authorized)])
    async def speech(body: SpeechRequest) -> Response:
        response_format = body.resolved_format()
        sse = body.stream_format == "sse"
        if sse and response_format != "pcm":
            return error(400, "stream_format sse carries base64 16-bit PCM: use response_format pcm (or leave it out)",
                         param="response_format")
        streamed = sse or response_format in STREAMABLE
        job = engine.prepare(body, streamed)
        if not engine.admission.try_enter():
            engine.metrics.requests.labels("429").inc()
            return error(429, f"the server is busy ({engine.admission.limit} requests in progress): retry after "
                              f"{RETRY_AFTER_S} s", kind="rate_limit_error", headers={"Retry-After": str(RETRY_AFTER_S)})
        pieces = engine.audio(job)
        try:
            first = await anext(pieces)  # errors before any audio become a JSON answer, not a broken stream
        except RequestTimeout as exc:
            engine.metrics.requests.labels("504").inc()
            return error(504, str(exc), kind="timeout")
        except TtsoptError as exc:
            engine.metrics.requests.labels("400").inc()
            return error(400, str(exc))
        if not streamed:
            audio = np.concatenate([first] + [piece async for piece in pieces])
            engine.metrics.requests.labels("200").inc()
            return Response(encode_whole(audio, tts.sample_rate, response_format), media_type=MEDIA_TYPES[response_format])
        body_bytes = _sse(first, pieces, engine) if sse else _audio(first, pieces, engine, response_format == "wav")
        media = "text/event-stream" if sse else MEDIA_TYPES[response_format]
        headers = {"X-Sample-Rate": str(tts.sample_rate), "Cache-Control": "no-cache"}
        return StreamingResponse(body_bytes, media_type=media, headers=headers)

    return app


async def _audio(first: np.ndarray, pieces: AsyncIterator[np.ndarray], engine: Engine, wav: bool) -> AsyncIterator[bytes]:
    status = "200"
    try:
        yield (streaming_wav_header(engine.tts.sample_rate) if wav else b"") + pcm16(first)
        async for piece in pieces:
            yield pcm16(piece)
    except (Cancelled, RequestTimeout) as exc:  # headers are gone: the stream just ends
        status = "504" if isinstance(exc, RequestTimeout) else "499"
        log.warning("stream ended early: %s", exc)
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
    except (Cancelled, RequestTimeout) as exc:
        status = "504" if isinstance(exc, RequestTimeout) else "499"
        yield event({"type": "error", "error": {"message": str(exc), "type": "timeout"}})
    finally:
        await pieces.aclose()
        engine.metrics.requests.labels(status).inc()
