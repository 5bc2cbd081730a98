"""The request bodies, as the OpenAI API defines them (the parts a fine-tuned model can
honour; fields of the API this server does not use are accepted and ignored, as other
OpenAI-compatible servers do, so any client works)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_CHOICES = 8
MAX_STOPS = 4
MAX_MESSAGES = 256
MAX_INPUTS = 256


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: str
    content: str | list[TextPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content or ""


class StreamOptions(BaseModel):
    include_usage: bool = False


class Sampled(BaseModel):
    """What chat and text completions share."""

    model_config = ConfigDict(extra="ignore")

    model: str
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    n: int = Field(1, ge=1, le=MAX_CHOICES)
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None

    @field_validator("stop")
    @classmethod
    def _stops(cls, value: str | list[str] | None) -> str | list[str] | None:
        stops = [value] if isinstance(value, str) else value or []
        if len(stops) > MAX_STOPS:
            raise ValueError(f"at most {MAX_STOPS} stop sequences")
        if any(not s for s in stops):
            raise ValueError("a stop sequence may not be empty")
        return value

    def stops(self) -> tuple[str, ...]:
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())


class ChatRequest(Sampled):
    messages: list[ChatMessage] = Field(min_length=1, max_length=MAX_MESSAGES)
    max_completion_tokens: int | None = Field(None, ge=1)


class CompletionRequest(Sampled):
    prompt: str | list[str] = Field(min_length=1)

    @field_validator("prompt")
    @classmethod
    def _prompts(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and len(value) > MAX_INPUTS:
            raise ValueError(f"at most {MAX_INPUTS} prompts in one request")
        return value

    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)


class ClassifyRequest(BaseModel):
    """Texts (`input`) or base64-encoded images (`images`); uploads come as multipart."""

    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    input: str | list[str] | None = None
    images: list[str] | None = Field(None, max_length=MAX_INPUTS)

    @field_validator("input")
    @classmethod
    def _inputs(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and not 1 <= len(value) <= MAX_INPUTS:
            raise ValueError(f"give 1 to {MAX_INPUTS} texts")
        return value
