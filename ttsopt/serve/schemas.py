"""The body of ``POST /v1/audio/speech``: OpenAI's fields plus the GPT-SoVITS api_v2-style sampling knobs."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ttsopt.serve.audio import FORMATS
from ttsopt.serve.text import INPUT_NOTE

#: The voices OpenAI's API names; a request for one gets the server's default voice (``serve --default-voice``).
OPENAI_VOICES = frozenset({"alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer", "verse",
                           "marin", "cedar"})


class SpeechRequest(BaseModel):
    """Unknown fields are refused (a misspelt knob should not be silently ignored)."""

    model_config = ConfigDict(extra="forbid")

    model: str = "ttsopt"
    input: str = Field(min_length=1, description=INPUT_NOTE)
    lang: str | None = Field(None, description="language mode of input (official: zh, ja, ko, yue, all_zh, all_ja, all_ko, all_yue, en, "
                                             "auto, auto_yue) or \"phonemes\"; default: the server's --lang")
    voice: str | None = Field(None, description="a voice of GET /v1/voices; OpenAI's names (alloy, ...) and none: the server's default")
    instructions: str | None = Field(None, description="OpenAI's style instructions: accepted and ignored (this model takes none)")
    response_format: str | None = Field(None, description=f"one of {', '.join(FORMATS)}; default mp3 (OpenAI's); pcm with stream_format sse")
    speed: float = Field(1.0, ge=0.25, le=4.0)
    stream_format: Literal["audio", "sse"] = "audio"
    # GPT-SoVITS api_v2-style parameters
    top_k: int | None = Field(None, ge=1, description="default: the GPT's config")
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    repetition_penalty: float = Field(1.35, gt=0.0, le=10.0)
    seed: int | None = Field(None, ge=-1, lt=2**63, description="-1 or none: random (as api_v2's -1)")
    noise_scale: float = Field(0.5, ge=0.0, le=2.0)
    max_tokens: int | None = Field(None, ge=1, description="semantic tokens per sentence, 25 per second; capped by the server")
    text_split_method: Literal["cut0", "cut1", "cut2", "cut3", "cut4", "cut5"] = Field(
        "cut5", description="how text is cut into sentences (the official cut methods)")
    fragment_interval: float = Field(0.3, ge=0.0, le=5.0, description="seconds of silence after each sentence")

    @field_validator("response_format")
    @classmethod
    def _known_format(cls, value: str | None) -> str | None:
        if value is not None and value not in FORMATS:
            raise ValueError(f"{value!r} is not available from this server: use one of {', '.join(FORMATS)}")
        return value

    def resolved_format(self) -> str:
        return self.response_format or ("pcm" if self.stream_format == "sse" else "mp3")

    def resolved_seed(self) -> int | None:
        """None (random) for a missing seed and for api_v2's -1."""
        return None if self.seed is None or self.seed < 0 else self.seed
