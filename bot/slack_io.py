"""The one place that writes to Slack's Web API: posts, in-place updates, lookups, ephemerals."""

from __future__ import annotations

import logging
import re
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from orchestrator import Redactor, StepError, Task

from . import render
from .render import Message

log = logging.getLogger(__name__)
# Slack message metadata naming the outbox slot a message shows, so a post repeated after a
# crash or a lost answer is found in the thread instead of posted twice.
SLOT_EVENT = "orchestrator_slot"
# Errors Slack answers when it could not take the call just now; anything else it answers with
# ok: false is about the call itself, and sending it again would get the same answer.
_TRANSIENT = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)
_GONE = frozenset({"message_not_found", "cant_update_message"})


class SlackWriteError(Exception):
    """Slack did not take a write. `retry_after`: when Slack said to come back (429);
    `is_unsure`: it may have landed anyway (5xx, lost connection, timeout)."""

    def __init__(
        self,
        method: str,
        error: str,
        *,
        retry_after: float | None = None,
        is_transient: bool = False,
        is_unsure: bool = False,
    ) -> None:
        super().__init__(f"{method} failed: {error}")
        self.method = method
        self.error = error
        self.retry_after = retry_after
        self.is_transient = is_transient or is_unsure or retry_after is not None
        self.is_unsure = is_unsure

    @property
    def is_gone(self) -> bool:
        """The message to edit no longer exists (someone deleted it)."""
        return self.error in _GONE


def build_client(
    token: str,
    base_url: str,
    *,
    retries: bool = True,
    session: aiohttp.ClientSession | None = None,
) -> AsyncWebClient:
    """A Web API client; with `retries` it waits out 429s (Retry-After) and retries 5xx.

    The outbox's client has none: it retries itself, and looks before it posts again. With a
    `session`, calls reuse its connections (without, each call opens one: a TLS handshake)."""
    client = AsyncWebClient(token=token, base_url=base_url, session=session)
    if not retries:
        client.retry_handlers.clear()
        return client
    # slack_sdk retries only connection errors by default.
    client.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=3))
    client.retry_handlers.append(AsyncServerErrorRetryHandler(max_retry_count=3))
    return client


class SlackThreads:
    """Writes into threads through one client; every failure is a `SlackWriteError`.

    Every text and block is redacted first: no secret value is ever sent to Slack."""

    def __init__(self, client: AsyncWebClient, *, redactor: Redactor) -> None:
        self.client = client
        self._redactor = redactor

    async def post(
        self,
        channel: str,
        thread_ts: str | None,
        message: Message,
        *,
        slot: tuple[str, str] | None = None,
    ) -> str:
        """Post in a thread (or at the top level); the new ts. `slot` = (task id, slot key)."""
        message = self._redacted(message)
        metadata = None
        if slot is not None:
            payload = {"task_id": slot[0], "slot": slot[1]}
            metadata = {"event_type": SLOT_EVENT, "event_payload": payload}
        response = await _write(
            "chat.postMessage",
            self.client.chat_postMessage(
                channel=channel,
                thread_ts=thread_ts,
                text=message.text,
                blocks=message.blocks or None,
                metadata=metadata,
            ),
        )
        return str(response["ts"])

    async def update(self, channel: str, ts: str, message: Message) -> None:
        """Replace a message in place (buttons cannot be disabled, only replaced)."""
        message = self._redacted(message)
        await _write(
            "chat.update",
            self.client.chat_update(
                channel=channel, ts=ts, text=message.text, blocks=message.blocks
            ),
        )

    async def find_slots(self, channel: str, thread_ts: str) -> dict[tuple[str, str], str]:
        """(task id, slot key) -> ts of every slot message already in the thread."""
        found: dict[tuple[str, str], str] = {}
        cursor = None
        while True:
            page = await _write(
                "conversations.replies",
                self.client.conversations_replies(
                    channel=channel,
                    ts=thread_ts,
                    include_all_metadata=True,
                    limit=200,
                    cursor=cursor,
                ),
            )
            for msg in page.get("messages") or []:
                meta = msg.get("metadata") or {}
                payload = meta.get("event_payload") or {}
                if meta.get("event_type") == SLOT_EVENT and "slot" in payload:
                    found[(str(payload.get("task_id")), str(payload["slot"]))] = str(msg["ts"])
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return found

    async def whisper(
        self, channel: str, user: str, thread_ts: str | None, message: Message
    ) -> None:
        """An ephemeral message only `user` sees."""
        message = self._redacted(message)
        await _write(
            "chat.postEphemeral",
            self.client.chat_postEphemeral(
                channel=channel, user=user, thread_ts=thread_ts, text=message.text
            ),
        )

    async def say(self, channel: str, thread_ts: str | None, message: Message) -> None:
        """Post a reply nothing depends on: a failure is logged (the person can ask again)."""
        try:
            await self.post(channel, thread_ts, message)
        except SlackWriteError as err:
            log.error("a reply in %s was not posted: %s", channel, err)

    def _redacted(self, message: Message) -> Message:
        return Message(
            self._redactor.redact(message.text), _redact_json(message.blocks, self._redactor)
        )


async def _write(method: str, call: Any) -> Any:
    """Await a Web API call, mapping every way it can fail to `SlackWriteError`."""
    try:
        return await call
    except SlackApiError as err:
        response = err.response
        error = str(response.get("error") or f"HTTP {response.status_code}")
        retry_after = None
        if response.status_code == 429:
            retry_after = _seconds(
                response.headers.get("Retry-After") or response.headers.get("retry-after")
            )
        raise SlackWriteError(
            method,
            error,
            retry_after=retry_after,
            is_transient=error in _TRANSIENT,
            is_unsure=response.status_code >= 500,
        ) from None
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise SlackWriteError(method, type(exc).__name__, is_unsure=True) from None


def _seconds(value: Any) -> float:
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        return 1.0


def _redact_json(value: Any, redactor: Redactor) -> Any:
    """Every string inside a Block Kit payload, redacted."""
    if isinstance(value, str):
        return redactor.redact(value)
    if isinstance(value, list):
        return [_redact_json(v, redactor) for v in value]
    if isinstance(value, dict):
        return {k: _redact_json(v, redactor) for k, v in value.items()}
    return value


# A notify message that starts with a channel link (<#C123> or <#C123|name>) goes to that channel.
_TO_CHANNEL = re.compile(r"^\s*<#([A-Z0-9]+)(?:\|[^>]*)?>\s*(.*)$", re.DOTALL)


class SlackNotifier:
    """The orchestrator's notify action: a message in the task's thread, or in a linked channel.

    The orchestrator rates a message to another channel `external`, so a person confirms it first.
    """

    def __init__(self, threads: SlackThreads, *, has_live_user_mentions: bool = False) -> None:
        """`has_live_user_mentions`: plain user mentions may ping (ORCH_NOTIFY_USER_MENTIONS)."""
        self._threads = threads
        self._has_live_user_mentions = has_live_user_mentions

    async def notify(self, task: Task, message: str) -> None:
        target = _TO_CHANNEL.match(message)
        if target:
            channel, thread_ts, text = target[1], None, target[2] or message
        else:
            channel, thread_ts, text = task.meta["channel"], task.meta["thread_ts"], message
        # The model wrote it: only the routing link above is obeyed; the words are sanitised.
        shown = render.notification(text, has_live_user_mentions=self._has_live_user_mentions)
        try:
            await self._threads.post(channel, thread_ts, shown)
        except SlackWriteError as err:
            raise StepError(f"Slack refused the message: {err.error}") from None
