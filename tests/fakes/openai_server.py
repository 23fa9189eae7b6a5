"""A fake OpenAI-compatible server on 127.0.0.1 for the real openai client to talk to."""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Reply:
    """One scripted answer: a completion, or an error status, after an optional delay."""

    content: str = ""
    status: int = 200
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    tokens: int = 10

    @classmethod
    def plan(cls, *steps: dict[str, Any], tokens: int = 10) -> Reply:
        return cls(json.dumps({"steps": list(steps)}), tokens=tokens)

    @classmethod
    def error(cls, status: int, message: str = "boom", **headers: str) -> Reply:
        return cls(message, status=status, headers=headers)


Responder = Callable[[dict[str, Any]], "Reply | Awaitable[Reply]"]


class FakeOpenAI:
    """Serves /v1/chat/completions and /v1/models; records every request body.

    Replies come from `script()`ed ones first, then `responder`, then `default`.
    """

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.request_times: list[float] = []  # time.monotonic() of each, for backoff tests
        self.aborted = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.rejects_json_schema = False
        self.responder: Responder | None = None
        self.default = Reply("ok")
        self._script: deque[Reply] = deque()
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    def script(self, *replies: Reply) -> None:
        self._script.extend(replies)

    async def __aenter__(self) -> FakeOpenAI:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        # handler_cancellation: a client that aborts its request cancels the handler, so tests
        # can see that cancellation reached the model call.
        self._runner = web.AppRunner(app, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}/v1"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _next_reply(self, body: dict[str, Any]) -> Reply:
        if self._script:
            return self._script.popleft()
        if self.responder is not None:
            reply = self.responder(body)
            return await reply if inspect.isawaitable(reply) else reply
        return self.default

    async def _chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(body)
        self.request_times.append(time.monotonic())
        fmt = (body.get("response_format") or {}).get("type")
        if self.rejects_json_schema and fmt == "json_schema":
            return _error(400, "response_format type json_schema is not supported", {})
        reply = await self._next_reply(body)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if reply.delay_s:
                await asyncio.sleep(reply.delay_s)
        except asyncio.CancelledError:
            self.aborted += 1
            raise
        finally:
            self.in_flight -= 1
        if reply.status != 200:
            return _error(reply.status, reply.content, reply.headers)
        return web.json_response(
            {
                "id": f"chatcmpl-{len(self.requests)}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", "fake"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": reply.content},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": reply.tokens // 2,
                    "completion_tokens": reply.tokens - reply.tokens // 2,
                    "total_tokens": reply.tokens,
                },
            },
            headers=reply.headers,
        )

    async def _models(self, request: web.Request) -> web.Response:
        model = {"id": "fake-model", "object": "model", "created": 0, "owned_by": "tests"}
        return web.json_response({"object": "list", "data": [model]})


def _error(status: int, message: str, headers: dict[str, str]) -> web.Response:
    body = {"error": {"message": message, "type": "server_error", "code": None}}
    return web.json_response(body, status=status, headers=headers)


def step_request(body: dict[str, Any]) -> str | None:
    """The `Input:` line of a step request, or None for a planning request."""
    system: str = body["messages"][0]["content"]
    if "planner" in system:
        return None
    user: str = body["messages"][1]["content"]
    for line in user.splitlines():
        if line.startswith("Input: "):
            return line.removeprefix("Input: ")
    return ""


class Router:
    """A responder: planning requests get `plans` in order, steps get replies by their input.

    A step's replies may be a list, served one per attempt; unknown inputs echo "done: <input>".
    """

    def __init__(
        self, plans: list[Reply], steps: dict[str, Reply | list[Reply]] | None = None
    ) -> None:
        self._plans = deque(plans)
        self._steps = {k: deque(v) if isinstance(v, list) else v for k, v in (steps or {}).items()}
        self.step_calls: list[str] = []

    def __call__(self, body: dict[str, Any]) -> Reply:
        step_input = step_request(body)
        if step_input is None:
            return self._plans.popleft()
        self.step_calls.append(step_input)
        reply = self._steps.get(step_input, Reply(f"done: {step_input}"))
        if isinstance(reply, deque):
            return reply.popleft() if len(reply) > 1 else reply[0]
        return reply
