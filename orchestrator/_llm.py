"""The model the orchestrator asks: a protocol, so any client (or a fake) can stand behind it."""

from __future__ import annotations

from typing import Any, Protocol

from ._models import Completion

Message = dict[str, str]


class LLM(Protocol):
    """A chat model. `schema` asks for one JSON object of that JSON schema."""

    async def complete(
        self, messages: list[Message], *, schema: dict[str, Any] | None = None
    ) -> Completion: ...
