"""Public fakes for your own tests: an LLM that answers from a script, no server needed."""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from ._errors import LLMError
from ._llm import Message
from ._models import Completion


class ScriptedLLM:
    """Plans come from `plans` in order; a step's answer is looked up by its `Input:` line.

    A step whose input is in `failing` fails with a non-retryable `LLMError`.
    """

    def __init__(
        self,
        plans: Iterable[str | Mapping[str, Any]],
        *,
        answers: Mapping[str, str] | None = None,
        failing: Collection[str] = (),
        tokens: int = 10,
    ) -> None:
        self._plans = deque(p if isinstance(p, str) else json.dumps(p) for p in plans)
        self._answers = dict(answers or {})
        self._failing = frozenset(failing)
        self._tokens = tokens
        self.calls: list[list[Message]] = []

    async def complete(
        self, messages: list[Message], *, schema: dict[str, Any] | None = None
    ) -> Completion:
        """The next plan when a schema is asked for, else the scripted answer for the step."""
        self.calls.append(messages)
        if schema is not None:
            return Completion(self._plans.popleft(), self._tokens)
        step_input = next(
            (
                line.removeprefix("Input: ")
                for line in messages[-1]["content"].splitlines()
                if line.startswith("Input: ")
            ),
            "",
        )
        if step_input in self._failing:
            raise LLMError(f"scripted failure of {step_input}")
        return Completion(self._answers.get(step_input, f"done: {step_input}"), self._tokens)
