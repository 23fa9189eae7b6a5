"""The one place that talks to an OpenAI-compatible server and maps its errors.

Imported only by a program that uses it (see `orchestrator.__getattr__`): openai takes a tenth of
a second to import and is two thirds of the objects such a process holds, which every full
garbage collection walks again.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import logging
import time
from typing import Any

import openai

from ._errors import LLMError
from ._llm import Message
from ._models import Completion

log = logging.getLogger(__name__)


class OpenAILLM:
    """Chat completions through the openai client; retries are the caller's (see `_retry`)."""

    def __init__(self, client: openai.AsyncOpenAI, *, model: str) -> None:
        self._client = client
        self._model = model
        # Servers such as older vLLM or llama.cpp refuse json_schema; learn it once, not per call.
        self._is_json_schema_refused = False

    async def complete(
        self, messages: list[Message], *, schema: dict[str, Any] | None = None
    ) -> Completion:
        """One completion; JSON mode when `schema` is given, json_object if the server refuses."""
        if schema is None:
            return await self._create(messages, None)
        if not self._is_json_schema_refused:
            response_format = {
                "type": "json_schema",
                "json_schema": {"name": "plan", "schema": schema, "strict": True},
            }
            try:
                return await self._create(messages, response_format)
            except LLMError as err:
                if not err.is_format_refused:
                    raise
                log.info("server refused json_schema; falling back to json_object")
                self._is_json_schema_refused = True
        hint = {
            "role": "system",
            "content": "Reply with one JSON object that matches this JSON schema:\n"
            + json.dumps(schema),
        }
        return await self._create([*messages, hint], {"type": "json_object"})

    async def _create(
        self, messages: list[Message], response_format: dict[str, Any] | None
    ) -> Completion:
        extra: dict[str, Any] = {}
        if response_format is not None:
            extra["response_format"] = response_format
        try:
            response = await self._client.chat.completions.create(
                model=self._model,
                messages=messages,  # type: ignore[arg-type]
                **extra,
            )
        except openai.APIError as exc:
            raise map_openai_error(exc, has_format=response_format is not None) from exc
        if not response.choices:
            raise LLMError("the model returned no choices", retryable=True)
        text = response.choices[0].message.content or ""
        tokens = response.usage.total_tokens if response.usage else 0
        return Completion(text=text, tokens=tokens)


def map_openai_error(exc: openai.APIError, *, has_format: bool) -> LLMError:
    """An `LLMError` saying what went wrong and whether a retry may help; never the key."""
    if isinstance(exc, openai.APITimeoutError):
        return LLMError("the model did not answer in time", retryable=True)
    if isinstance(exc, openai.APIConnectionError):
        return LLMError("could not reach the model server", retryable=True)
    if not isinstance(exc, openai.APIStatusError):
        return LLMError(f"the model call failed: {type(exc).__name__}")
    status = exc.status_code
    return LLMError(
        f"the model server answered {status}: {_short(_server_message(exc))}",
        retryable=status == 429 or status >= 500,
        retry_after=_retry_after(exc),
        # 400/422 on a structured-output request is how servers say they lack json_schema.
        is_format_refused=has_format and status in (400, 422),
    )


def _server_message(exc: openai.APIStatusError) -> str:
    """The server's own words (the `error.message` of its body), without the client's prefix."""
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])
    return exc.message


def _retry_after(exc: openai.APIStatusError) -> float | None:
    """Seconds the server asks us to wait: `retry-after-ms` (OpenAI's), else `retry-after`."""
    headers = exc.response.headers
    with contextlib.suppress(ValueError):
        return max(0.0, float(headers.get("retry-after-ms", "")) / 1000)
    value = headers.get("retry-after")
    if value is None:
        return None
    with contextlib.suppress(ValueError):
        return max(0.0, float(value))
    try:  # RFC 9110 also allows an HTTP date
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
