"""The body of ``POST /v1/audio/speech``: OpenAI's fields plus the GPT-SoVITS api_v2-style sampling knobs."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ttsopt.serve.text import INPUT_NOTE


class SpeechRequest(BaseModel):
    """Unknown fields are refused (a misspelt knob should not be silently ignored)."""

    model_config = ConfigDict(extra="forbid")

    model: str = "ttsopt"
    input: str = Field(min_length=1, description=INPUT_NOTE)
    lang: str | None = Field(None, description="language mode of input (official: zh, ja, ko, yue, all_zh, all_ja, all_ko, all_yue, en, "
                                             "auto, auto_yue) or \"phonemes\"; default: the server's --lang")
    voice: str | None = None
    response_format: Literal["wav", "pcm", "flac", "opus", "mp3"] | None = Field(
        None, description="default mp3 (OpenAI's); pcm with stream_format sse")
    speed: float = Field(1.0, ge=0.25, le=4.0)
    stream_format: Literal["audio", "sse"] = "audio"
    # GPT-SoVITS api_v2-style parameters
    top_k: int | None = Field(None, ge=1, description="default: the GPT's config")
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    repetition_penalty: float = Field(1.35, gt=0.0, le=10.0)
    seed: int | None = Field(None, ge=0, lt=2**63)
    noise_scale: float = Field(0.5, ge=0.0, le=2.0)
    max_tokens: int | None = Field(None, ge=1, description="semantic tokens, 25 per second; capped by the server")

    def resolved_format(self) -> str:
        return self.response_format or ("pcm" if self.stream_format == "sse" else "mp3")
