"""A fake Slack on 127.0.0.1: Web API, Socket Mode and response URLs, for the real slack_sdk/bolt.

The real `AsyncWebClient(base_url=slack.api_url)` and bolt's `AsyncSocketModeHandler` talk to it
unmodified. It records every call, keeps the messages a user would see (edited in place by
`chat.update`), and can fail calls the way Slack does (429 + Retry-After, 5xx). The payload
builders below produce events and actions in Slack's own shapes. One module rather than two,
because the builders and the server share the ids (UBOT, BBOT, T1, A1) and the ts clock.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import math
import random
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

BOT_USER_ID = "UBOT"
BOT_ID = "BBOT"
TEAM_ID = "T1"  # the workspace the bot is installed in (auth.test says so)
APP_ID = "A1"
# What auth.test's X-OAuth-Scopes header says; bolt copies it into context.authorize_result.
BOT_SCOPES = "app_mentions:read,chat:write,channels:history,groups:history"
_JSON_ARGS = ("blocks", "attachments", "metadata")  # form-encoded as JSON strings by clients
_MAX_BLOCKS = 50  # Slack: 50 blocks per message
_MAX_TEXT = 40_000  # Slack: longer text is refused with msg_too_long

_ticks = itertools.count(101)
_event_ids = itertools.count(1)


def new_ts() -> str:
    """A message ts, unique and increasing across the process, like "1700000000.000101"."""
    n = next(_ticks)
    return f"{1_700_000_000 + n // 1_000_000}.{n % 1_000_000:06d}"


@dataclass(frozen=True)
class Call:
    """One request the fake received: a Web API method, or "response_url"."""

    method: str
    args: dict[str, Any]
    token: str | None
    status: int = 200  # the HTTP status answered: 429/5xx for injected faults
    error: str | None = None  # the "error" Slack answered with, e.g. "message_not_found"
    at: float = field(default_factory=time.monotonic)

    @property
    def ok(self) -> bool:
        """Slack accepted it: not faulted, no error."""
        return self.status == 200 and self.error is None


@dataclass
class _Fault:
    status: int
    retry_after: float
    times: int
    after_effect: bool = False  # the call takes effect, then the answer is lost
    channel: str | None = None  # only calls in this channel


@dataclass
class Hold:
    """A call the fake keeps unanswered (after doing it, with `after_effect`) until released."""

    method: str
    nth: int
    after_effect: bool
    match: Callable[[dict[str, Any]], bool]
    reached: asyncio.Event = field(default_factory=asyncio.Event)
    released: asyncio.Event = field(default_factory=asyncio.Event)
    seen: int = 0
    args: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Limit:
    """A method's workspace limit: refused for `for_s` seconds from its first call on."""

    for_s: float
    until: float | None = None


@dataclass
class _Flakiness:
    """Each call to `methods` fails with probability `rate`: 429 (Retry-After) or 500."""

    rate: float
    methods: frozenset[str]
    rng: random.Random
    retry_after: float


class FakeSlack:
    """`async with FakeSlack() as slack:` serves /api/<method>, /socket-mode and /response/...

    With `echo_bot_events`, the bot's own posts and edits come back over Socket Mode as
    `message` / `message_changed` events, as they do from real Slack.
    """

    def __init__(self, *, echo_bot_events: bool = False) -> None:
        self.echo_bot_events = echo_bot_events
        self.calls: list[Call] = []
        self.arrivals: list[tuple[str, dict[str, Any]]] = []  # every call as it came, held too
        self.messages: list[dict[str, Any]] = []
        self.ephemerals: list[dict[str, Any]] = []
        self.envelopes: list[dict[str, Any]] = []
        self.acks: list[str] = []
        self.connected = asyncio.Event()
        self.api_url = ""
        self._base = ""
        self._runner: web.AppRunner | None = None
        self._sockets: list[web.WebSocketResponse] = []
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._faults: dict[str, _Fault] = {}
        self._limits: dict[str, _Limit] = {}
        self._flaky: _Flakiness | None = None
        self._holds: list[Hold] = []
        self.latency_s = 0.0  # each Web API call takes at least this long, like a real round trip
        self._changed = asyncio.Condition()

    async def __aenter__(self) -> FakeSlack:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_get("/socket-mode", self._socket)
        app.router.add_post("/response/{channel}/{message_ts}/{user}", self._response)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        port = self._runner.addresses[0][1]
        self._base = f"http://127.0.0.1:{port}"
        self.api_url = f"{self._base}/api/"
        return self

    async def __aexit__(self, *exc: object) -> None:
        for held in self._holds:
            held.released.set()
        for ws in list(self._sockets):
            await ws.close(code=aiohttp.WSCloseCode.GOING_AWAY, message=b"server shutdown")
        for future in self._pending.values():
            future.cancel()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- what tests read -------------------------------------------------------------------

    def calls_to(self, method: str) -> list[dict[str, Any]]:
        """The args of every call to `method` that Slack accepted (ok, not faulted), in order."""
        return [c.args for c in self.calls if c.method == method and c.ok]

    def arrived(self, method: str, match: Callable[[dict[str, Any]], bool]) -> bool:
        """Whether a call to `method` that `match`es came in, whatever became of it."""
        return any(m == method and match(args) for m, args in self.arrivals)

    def thread(self, channel: str, thread_ts: str) -> list[dict[str, Any]]:
        """The bot's messages in a thread as they look now, in post order (the parent excluded)."""
        return [m for m in self.messages if m["channel"] == channel and m["thread_ts"] == thread_ts]

    def message_at(self, channel: str, ts: str) -> dict[str, Any] | None:
        """The bot's message at (channel, ts) as it looks now, or None."""
        return next((m for m in self.messages if (m["channel"], m["ts"]) == (channel, ts)), None)

    @property
    def connections(self) -> int:
        """How many Socket Mode clients are connected now."""
        return len(self._sockets)

    async def wait_until(self, check: Callable[[], object], *, timeout: float = 5.0) -> None:
        """Return once `check()` is truthy; re-checked after every call and ack the fake sees."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(check)

    async def wait_for_call(
        self,
        method: str,
        match: Callable[[dict[str, Any]], bool] = lambda args: True,
        *,
        timeout: float = 5.0,
    ) -> dict[str, Any]:
        """The args of the first answered call to `method` that `match`es, waiting for it."""

        def found() -> list[dict[str, Any]]:
            return [a for a in self.calls_to(method) if match(a)]

        await self.wait_until(found, timeout=timeout)
        return found()[0]

    # -- what tests do ---------------------------------------------------------------------

    def add_message(
        self,
        channel: str,
        text: str,
        *,
        thread_ts: str | None = None,
        blocks: list[dict[str, Any]] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A bot message shown before this fake started (no call recorded, no event sent), for
        a bot started on an old database to edit; returned as kept, with its new ts."""
        shown = _shown(channel, thread_ts, {"text": text, "blocks": blocks, "metadata": metadata})
        self.messages.append(shown)
        return shown

    def fail_next(
        self,
        method: str,
        status: int = 429,
        *,
        retry_after: float = 1,
        times: int = 1,
        after_effect: bool = False,
        channel: str | None = None,
    ) -> None:
        """Answer the next `times` calls to `method` (in `channel`, if given) with `status`.

        429 carries Retry-After. With `after_effect` the call does what it asks first: a post
        whose answer got lost."""
        self._faults[method] = _Fault(status, retry_after, times, after_effect, channel)

    def rate_limit(self, method: str, *, for_s: float) -> None:
        """Slack's workspace-wide limit of `method` is reached at its next call: every call
        for `for_s` seconds from then gets 429, Retry-After saying how long is left."""
        self._limits[method] = _Limit(for_s)

    def hold(
        self,
        method: str,
        *,
        nth: int = 1,
        after_effect: bool = False,
        match: Callable[[dict[str, Any]], bool] = lambda args: True,
    ) -> Hold:
        """Keep the `nth` matching call to `method` from now on unanswered until released
        (then it gets a 500): a process can be killed at that very point."""
        held = Hold(method, nth, after_effect, match)
        self._holds.append(held)
        return held

    def be_flaky(
        self,
        rate: float,
        *,
        methods: tuple[str, ...] = ("chat.postMessage", "chat.update"),
        seed: int = 0,
        retry_after: float = 0.2,
    ) -> None:
        """From now on, fail each call to `methods` with probability `rate` (half 429, half 500)."""
        self._flaky = _Flakiness(rate, frozenset(methods), random.Random(seed), retry_after)

    def calm(self) -> None:
        """Stop failing calls at random."""
        self._flaky = None

    async def send_events_api(
        self,
        event: dict[str, Any],
        *,
        event_id: str | None = None,
        retry_attempt: int = 0,
        retry_reason: str | None = None,
        timeout: float = 5.0,
    ) -> dict[str, Any]:
        """Deliver an event over Socket Mode; return the client's ack (TimeoutError if none)."""
        reason = retry_reason if retry_reason is not None else ("timeout" if retry_attempt else "")
        envelope_id = await self._send_envelope(
            "events_api",
            event_callback(event, event_id=event_id),
            retry_attempt=retry_attempt,
            retry_reason=reason,
            timeout=timeout,
        )
        return await self._wait_ack(envelope_id, timeout)

    async def send_interactive(
        self, payload: dict[str, Any], *, timeout: float = 5.0
    ) -> dict[str, Any]:
        """Deliver an interaction over Socket Mode; return the ack. Fills in a response_url."""
        if not payload.get("response_url") and "container" in payload:
            c = payload["container"]
            url = self.response_url(c["channel_id"], c["message_ts"], payload["user"]["id"])
            payload = {**payload, "response_url": url}
        envelope_id = await self._send_envelope("interactive", payload, timeout=timeout)
        return await self._wait_ack(envelope_id, timeout)

    async def send_disconnect(self, reason: str = "refresh_requested") -> None:
        """Ask every connected client to reconnect, as Slack does every few hours."""
        for ws in list(self._sockets):
            await ws.send_json(
                {"type": "disconnect", "reason": reason, "debug_info": _debug_info()}
            )

    def response_url(self, channel: str, message_ts: str, user: str = "U1") -> str:
        """A response_url for an action on the message at (channel, message_ts) by `user`."""
        return f"{self._base}/response/{channel}/{message_ts}/{user}"

    def block_action(
        self,
        action_id: str,
        value: str,
        *,
        message_ts: str,
        user: str = "U1",
        channel: str = "C1",
        block_id: str = "b1",
        team: str = TEAM_ID,
    ) -> dict[str, Any]:
        """A click on a button of the bot's message at `message_ts`, as that message looks now."""
        shown = self.message_at(channel, message_ts) or {}
        return block_action(
            action_id,
            value,
            user=user,
            team=team,
            channel=channel,
            message_ts=message_ts,
            thread_ts=shown.get("thread_ts"),
            block_id=block_id,
            text=shown.get("text", ""),
            blocks=shown.get("blocks"),
            response_url=self.response_url(channel, message_ts, user),
        )

    # -- Socket Mode -----------------------------------------------------------------------

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()  # autoping: answers the client's sdk-ping-pong pings
        await ws.prepare(request)
        self._sockets.append(ws)
        self.connected.set()
        await self._notify()
        hello = {
            "type": "hello",
            "num_connections": len(self._sockets),
            "debug_info": _debug_info(),
            "connection_info": {"app_id": APP_ID},
        }
        await ws.send_json(hello)
        try:
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    await self._on_ack(json.loads(msg.data))
        finally:
            self._sockets.remove(ws)
            if not self._sockets:
                self.connected.clear()
            await self._notify()
        return ws

    async def _send_envelope(
        self, kind: str, payload: dict[str, Any], *, timeout: float = 5.0, **extra: Any
    ) -> str:
        async with asyncio.timeout(timeout):
            await self.connected.wait()
        envelope_id = str(uuid.uuid4())
        self._pending[envelope_id] = asyncio.get_running_loop().create_future()
        accepts = payload.get("type") in {"view_submission", "block_suggestion"}
        envelope = {
            "envelope_id": envelope_id,
            "payload": payload,
            "type": kind,
            "accepts_response_payload": accepts,
            **extra,
        }
        self.envelopes.append(envelope)
        await self._sockets[-1].send_json(envelope)
        return envelope_id

    async def _wait_ack(self, envelope_id: str, timeout: float) -> dict[str, Any]:
        try:
            async with asyncio.timeout(timeout):
                return await self._pending[envelope_id]
        finally:
            self._pending.pop(envelope_id, None)

    async def _on_ack(self, message: dict[str, Any]) -> None:
        envelope_id = message.get("envelope_id")
        if envelope_id is None:
            return
        self.acks.append(envelope_id)
        future = self._pending.get(envelope_id)
        if future is not None and not future.done():
            future.set_result(message)
        await self._notify()

    async def _notify(self) -> None:
        """Wake `wait_until`: something a test may be waiting for changed."""
        async with self._changed:
            self._changed.notify_all()

    async def _echo(self, event: dict[str, Any]) -> None:
        if self.echo_bot_events and self._sockets:
            await self._send_envelope(
                "events_api", event_callback(event), retry_attempt=0, retry_reason=""
            )

    # -- Web API ---------------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args = await _read_args(request)
        auth = request.headers.get("Authorization", "")
        token = (
            auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else args.pop("token", None)
        )
        self.arrivals.append((method, args))  # told by the answer or the hold that follows
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        held = self._held(method, args)
        if held is not None:
            return await self._keep(held, method, args, token)
        fault = self._fault_for(method, args)
        if fault is not None and not fault.after_effect:
            error = "ratelimited" if fault.status == 429 else "fatal_error"
            await self._record(Call(method, args, token, fault.status, error))
            return self._fault(method, fault, error)
        kind, handler = self._handlers().get(method, ("", None))
        refused = "unknown_method" if handler is None else _token_error(token, kind)
        if refused or handler is None:
            body: dict[str, Any] = {"ok": False, "error": refused}
        else:
            body = await handler(args)
        if fault is not None:  # it took effect; the answer is lost
            await self._record(Call(method, args, token, fault.status, "fatal_error"))
            return self._fault(method, fault, "fatal_error")
        await self._record(Call(method, args, token, 200, body.get("error")))
        headers = {"X-OAuth-Scopes": BOT_SCOPES} if kind == "xoxb-" else {}
        return web.json_response(body, headers=headers)

    def _handlers(self) -> dict[str, tuple[str, Callable[[dict[str, Any]], Any]]]:
        """Web API method -> (the token kind it takes, its handler)."""
        return {
            "auth.test": ("xoxb-", self._auth_test),
            "chat.postMessage": ("xoxb-", self._post_message),
            "chat.update": ("xoxb-", self._update),
            "chat.postEphemeral": ("xoxb-", self._post_ephemeral),
            "conversations.replies": ("xoxb-", self._replies),
            "apps.connections.open": ("xapp-", self._connections_open),
        }

    async def _record(self, call: Call) -> None:
        self.calls.append(call)
        await self._notify()

    def _held(self, method: str, args: dict[str, Any]) -> Hold | None:
        for held in self._holds:
            if held.method == method and held.match(args):
                held.seen += 1
                if held.seen == held.nth:
                    return held
        return None

    async def _keep(
        self, held: Hold, method: str, args: dict[str, Any], token: str | None
    ) -> web.Response:
        if held.after_effect:
            await self._handlers()[method][1](args)
        held.args = args
        held.reached.set()
        await self._notify()
        await held.released.wait()
        await self._record(Call(method, args, token, 500, "fatal_error"))
        return web.json_response({"ok": False, "error": "fatal_error"}, status=500)

    def _fault_for(self, method: str, args: dict[str, Any]) -> _Fault | None:
        limit = self._limits.get(method)
        if limit is not None:
            now = time.monotonic()
            limit.until = limit.until or now + limit.for_s
            if now < limit.until:  # Slack says whole seconds
                return _Fault(429, float(math.ceil(limit.until - now)), 1)
            del self._limits[method]
        fault = self._faults.get(method)
        if fault is not None and fault.channel in (None, args.get("channel")):
            return fault
        return self._flake(method)

    def _flake(self, method: str) -> _Fault | None:
        flaky = self._flaky
        if flaky is None or method not in flaky.methods or flaky.rng.random() >= flaky.rate:
            return None
        return _Fault(flaky.rng.choice((429, 500)), flaky.retry_after, 1)

    def _fault(self, method: str, fault: _Fault, error: str) -> web.Response:
        fault.times -= 1
        if fault.times <= 0 and self._faults.get(method) is fault:
            del self._faults[method]
        # Slack: 429 says when to come back; slack_sdk's rate-limit retry handler reads it.
        headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.status == 429 else {}
        body = {"ok": False, "error": error}
        return web.json_response(body, status=fault.status, headers=headers)

    async def _auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://test.slack.com/",
            "team": "Test",
            "user": "orchestrator",
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    async def _connections_open(self, args: dict[str, Any]) -> dict[str, Any]:
        ws_base = self._base.replace("http://", "ws://", 1)
        return {"ok": True, "url": f"{ws_base}/socket-mode?ticket={uuid.uuid4()}&app_id={APP_ID}"}

    async def _post_message(self, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("channel"):
            return {"ok": False, "error": "channel_not_found"}
        if error := _content_error(args):
            return {"ok": False, "error": error}
        shown = _shown(args["channel"], args.get("thread_ts"), args)
        self.messages.append(shown)
        await self._echo(_bot_event(shown))
        return {
            "ok": True,
            "channel": shown["channel"],
            "ts": shown["ts"],
            "message": _as_sent(shown),
        }

    async def _update(self, args: dict[str, Any]) -> dict[str, Any]:
        shown = self.message_at(args.get("channel", ""), args.get("ts", ""))
        if shown is None:
            return {"ok": False, "error": "message_not_found"}
        if error := _content_error(args):
            return {"ok": False, "error": error}
        before = dict(shown)
        # Slack: fields left out of chat.update keep their previous value.
        shown.update({k: args[k] for k in ("text", "blocks") if k in args})
        await self._echo(_changed_event(before, shown))
        reply = {"ok": True, "channel": shown["channel"], "ts": shown["ts"], "text": shown["text"]}
        return {**reply, "message": _as_sent(shown)}

    async def _replies(self, args: dict[str, Any]) -> dict[str, Any]:
        """The bot's messages in a thread (one page), with their metadata when asked for."""
        channel, ts = args.get("channel", ""), args.get("ts", "")
        found = [m for m in self.messages if m["channel"] == channel and m["thread_ts"] == ts]
        with_meta = str(args.get("include_all_metadata")).lower() in ("1", "true")
        messages = [
            {**_as_sent(m), **({"metadata": m["metadata"]} if with_meta and m["metadata"] else {})}
            for m in found
        ]
        return {"ok": True, "messages": messages, "has_more": False}

    async def _post_ephemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("channel"):
            return {"ok": False, "error": "channel_not_found"}
        if not args.get("user"):
            return {"ok": False, "error": "user_not_in_channel"}
        if error := _content_error(args):
            return {"ok": False, "error": error}
        ts = new_ts()
        keys = ("channel", "user", "text", "blocks", "thread_ts")
        self.ephemerals.append({"ts": ts, **{k: args.get(k) for k in keys}})
        return {"ok": True, "message_ts": ts}

    async def _response(self, request: web.Request) -> web.Response:
        """A post to a response_url: replace or delete the original, or say something."""
        body = await request.json()
        channel, message_ts, user = (
            request.match_info[k] for k in ("channel", "message_ts", "user")
        )
        await self._record(Call("response_url", body, None))
        original = self.message_at(channel, message_ts)
        if body.get("delete_original") and original is not None:
            self.messages.remove(original)
        elif body.get("replace_original") and original is not None:
            original.update({k: body[k] for k in ("text", "blocks") if k in body})
        elif body.get("response_type") == "in_channel":
            self.messages.append(_shown(channel, body.get("thread_ts"), body))
        else:
            keys = ("text", "blocks", "thread_ts")
            self.ephemerals.append(
                {"ts": new_ts(), "channel": channel, "user": user} | {k: body.get(k) for k in keys}
            )
        return web.Response(text="ok")


async def _read_args(request: web.Request) -> dict[str, Any]:
    """Query string, then a JSON or form body; JSON-valued form fields parsed (as Slack does)."""
    args: dict[str, Any] = dict(request.query)
    if request.content_type == "application/json" and request.can_read_body:
        args.update(await request.json())
    elif request.can_read_body:
        args.update({k: v for k, v in (await request.post()).items() if isinstance(v, str)})
    for key in _JSON_ARGS:
        if isinstance(args.get(key), str):
            args[key] = json.loads(args[key])
    return args


def _token_error(token: str | None, kind: str) -> str | None:
    if not token:
        return "not_authed"
    if token.startswith(kind):
        return None
    if token.startswith(("xoxb-", "xoxp-", "xapp-")):
        return "not_allowed_token_type"
    return "invalid_auth"


def _content_error(args: dict[str, Any]) -> str | None:
    blocks = args.get("blocks")
    if not (args.get("text") or blocks or args.get("attachments")):
        return "no_text"
    if blocks is not None and not isinstance(blocks, list):
        return "invalid_blocks_format"
    if blocks is not None and len(blocks) > _MAX_BLOCKS:
        return "invalid_blocks"
    if len(args.get("text") or "") > _MAX_TEXT:
        return "msg_too_long"
    return None


def _shown(channel: str, thread_ts: str | None, args: dict[str, Any]) -> dict[str, Any]:
    """A new bot message as the fake keeps it: what a user sees, editable in place."""
    return {
        "channel": channel,
        "ts": new_ts(),
        "thread_ts": thread_ts or None,
        "text": args.get("text") or "",
        "blocks": args.get("blocks") or [],
        "user": BOT_USER_ID,
        "bot_id": BOT_ID,
        "metadata": args.get("metadata"),
    }


def _as_sent(shown: dict[str, Any]) -> dict[str, Any]:
    """A bot message as Slack returns it in API responses and events."""
    sent = {"type": "message", "text": shown["text"], "user": shown["user"]}
    if shown["bot_id"]:
        sent.update(bot_id=shown["bot_id"], app_id=APP_ID)
    sent.update(team=TEAM_ID, ts=shown["ts"])
    if shown["blocks"]:
        sent["blocks"] = shown["blocks"]
    if shown["thread_ts"]:
        sent["thread_ts"] = shown["thread_ts"]
    return sent


def _bot_event(shown: dict[str, Any]) -> dict[str, Any]:
    event = _as_sent(shown)
    event.update(
        channel=shown["channel"], event_ts=shown["ts"], channel_type=_channel_type(shown["channel"])
    )
    return event


def _channel_type(channel: str) -> str:
    return {"G": "group", "D": "im"}.get(channel[:1], "channel")


def _debug_info() -> dict[str, Any]:
    return {"host": "applink-fake", "build_number": 1, "approximate_connection_time": 18060}


# -- payload builders: Slack's own shapes ------------------------------------------------------


def _rich_text(text: str) -> list[dict[str, Any]]:
    """The rich_text block Slack attaches to a typed message, mentions as user elements."""
    elements: list[dict[str, Any]] = []
    for part in re.split(r"(<@[A-Z0-9]+>)", text):
        if found := re.fullmatch(r"<@([A-Z0-9]+)>", part):
            elements.append({"type": "user", "user_id": found[1]})
        elif part:
            elements.append({"type": "text", "text": part})
    section = {"type": "rich_text_section", "elements": elements}
    return [{"type": "rich_text", "block_id": "rt1", "elements": [section]}]


def _typed(
    kind: str,
    text: str,
    user: str,
    channel: str,
    ts: str | None,
    thread_ts: str | None,
    team: str = TEAM_ID,
) -> dict[str, Any]:
    ts = ts or new_ts()
    event: dict[str, Any] = {
        "client_msg_id": str(uuid.uuid4()),
        "type": kind,
        "text": text,
        "user": user,
        "ts": ts,
        "blocks": _rich_text(text),
        "team": team,
        "channel": channel,
        "event_ts": ts,
    }
    if team != TEAM_ID:
        # Slack Connect: a shared channel's message names the sender's workspace on the event;
        # the envelope still names the workspace it is delivered to.
        event.update(user_team=team, source_team=team)
    if thread_ts:
        event["thread_ts"] = thread_ts
    return event


def mention(
    text: str,
    *,
    user: str = "U1",
    channel: str = "C1",
    ts: str | None = None,
    thread_ts: str | None = None,
    team: str = TEAM_ID,
) -> dict[str, Any]:
    """An app_mention event by `user` of workspace `team`; the text is prefixed with "<@UBOT> "
    unless it already mentions the bot."""
    if not text.startswith(f"<@{BOT_USER_ID}>"):
        text = f"<@{BOT_USER_ID}> {text}"
    return _typed("app_mention", text, user, channel, ts, thread_ts, team)


def message(
    text: str,
    *,
    user: str = "U1",
    channel: str = "C1",
    ts: str | None = None,
    thread_ts: str | None = None,
    subtype: str | None = None,
    bot_id: str | None = None,
    channel_type: str = "channel",
    team: str = TEAM_ID,
) -> dict[str, Any]:
    """A message event: typed by a person (of workspace `team`), or posted by an app (`bot_id`)."""
    event = _typed("message", text, user, channel, ts, thread_ts, team)
    event["channel_type"] = channel_type
    if subtype is not None:
        event["subtype"] = subtype
    if bot_id is not None:
        del event["client_msg_id"]
        event.update(bot_id=bot_id, app_id=APP_ID, bot_profile={"id": bot_id, "app_id": APP_ID})
    return event


def message_changed(
    channel: str,
    ts: str,
    text: str,
    *,
    previous_text: str = "",
    user: str = BOT_USER_ID,
    bot_id: str | None = BOT_ID,
    thread_ts: str | None = None,
) -> dict[str, Any]:
    """The message_changed event for an edit of the message at (channel, ts) to `text`."""
    after: dict[str, Any] = {"channel": channel, "ts": ts, "thread_ts": thread_ts, "text": text}
    after.update(blocks=[], user=user, bot_id=bot_id)
    return _changed_event({**after, "text": previous_text}, after)


def _changed_event(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    ts = new_ts()
    return {
        "type": "message",
        "subtype": "message_changed",
        "message": {**_as_sent(after), "edited": {"user": after["user"], "ts": ts}},
        "previous_message": _as_sent(before),
        "channel": after["channel"],
        "hidden": True,
        "ts": ts,
        "event_ts": ts,
        "channel_type": _channel_type(after["channel"]),
    }


def message_deleted(
    channel: str, ts: str, *, text: str = "", user: str = BOT_USER_ID
) -> dict[str, Any]:
    """The message_deleted event for the message at (channel, ts)."""
    now = new_ts()
    previous = {"type": "message", "text": text, "user": user, "ts": ts}
    return {
        "type": "message",
        "subtype": "message_deleted",
        "hidden": True,
        "deleted_ts": ts,
        "channel": channel,
        "previous_message": previous,
        "ts": now,
        "event_ts": now,
        "channel_type": _channel_type(channel),
    }


def event_callback(event: dict[str, Any], *, event_id: str | None = None) -> dict[str, Any]:
    """The Events API envelope Slack wraps around an event (HTTP body / Socket Mode payload)."""
    event_ts = event.get("event_ts") or new_ts()
    return {
        "token": "verification-token",
        "team_id": TEAM_ID,
        "context_team_id": TEAM_ID,
        "context_enterprise_id": None,
        "api_app_id": APP_ID,
        "event": event,
        "type": "event_callback",
        "event_id": event_id or f"Ev{next(_event_ids):010d}",
        "event_time": int(float(event_ts)),
        "authorizations": [
            {
                "enterprise_id": None,
                "team_id": TEAM_ID,
                "user_id": BOT_USER_ID,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": event.get("user_team", TEAM_ID) != TEAM_ID,
        "event_context": f"4-{uuid.uuid4().hex}",
    }


def block_action(
    action_id: str,
    value: str,
    *,
    user: str = "U1",
    team: str = TEAM_ID,
    channel: str = "C1",
    message_ts: str,
    thread_ts: str | None = None,
    block_id: str = "b1",
    text: str = "",
    blocks: list[dict[str, Any]] | None = None,
    response_url: str | None = None,
) -> dict[str, Any]:
    """A block_actions payload: `user` of workspace `team` clicked button `action_id`.

    Without `response_url` none is set; `FakeSlack.send_interactive` fills in one of its own.
    """
    container: dict[str, Any] = {
        "type": "message",
        "message_ts": message_ts,
        "channel_id": channel,
        "is_ephemeral": False,
    }
    shown: dict[str, Any] = {
        "type": "message",
        "user": BOT_USER_ID,
        "bot_id": BOT_ID,
        "ts": message_ts,
    }
    shown.update(text=text, blocks=blocks or [], team=TEAM_ID, app_id=APP_ID)
    if thread_ts:
        container["thread_ts"] = thread_ts
        shown["thread_ts"] = thread_ts
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": team},
        "api_app_id": APP_ID,
        "token": "verification-token",
        "container": container,
        "trigger_id": f"{time.time_ns()}.{uuid.uuid4().hex[:12]}",
        "team": {"id": team, "domain": "test" if team == TEAM_ID else team.lower()},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel, "name": "general"},
        "message": shown,
        "state": {"values": {}},
        "actions": [
            {
                "action_id": action_id,
                "block_id": block_id,
                "value": value,
                "type": "button",
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }
    if response_url is not None:
        payload["response_url"] = response_url
    return payload


# -- HTTP mode: what Slack posts to the bot's /slack/events ------------------------------------


def event_body(event: dict[str, Any], *, event_id: str | None = None) -> str:
    """The JSON body of an Events API request."""
    return json.dumps(event_callback(event, event_id=event_id))


def action_body(payload: dict[str, Any]) -> str:
    """The form body of an interactivity request: payload=<urlencoded JSON>."""
    return urlencode({"payload": json.dumps(payload)})


def sign(signing_secret: str, timestamp: str, body: str | bytes) -> str:
    """Slack's request signature: v0=hex(hmac_sha256(secret, "v0:{ts}:{body}"))."""
    raw = body.encode() if isinstance(body, str) else body
    base = b"v0:" + timestamp.encode() + b":" + raw
    return "v0=" + hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()


async def post_signed(
    url: str,
    body: str | bytes,
    content_type: str,
    signing_secret: str,
    *,
    timestamp: str | int | None = None,
    signature: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, str]:
    """POST `body` the way Slack does, signed unless `signature` overrides it: (status, text)."""
    ts = str(timestamp if timestamp is not None else int(time.time()))
    sent = {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": signature if signature is not None else sign(signing_secret, ts, body),
        **(headers or {}),
    }
    data = body.encode() if isinstance(body, str) else body
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=data, headers=sent) as resp,
    ):
        return resp.status, await resp.text()
