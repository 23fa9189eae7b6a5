"""The one place that writes to Slack's Web API: posts, in-place updates and ephemerals."""

from __future__ import annotations

import logging
import re
from typing import Any

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


def build_client(token: str, base_url: str) -> AsyncWebClient:
    """A Web API client that waits out 429s (Retry-After) and retries 5xx with backoff."""
    client = AsyncWebClient(token=token, base_url=base_url)
    # slack_sdk retries only connection errors by default.
    client.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=3))
    client.retry_handlers.append(AsyncServerErrorRetryHandler(max_retry_count=3))
    return client


class SlackThreads:
    """Posts into a task's thread and edits its messages; failures are logged, never raised.

    Every text and block is redacted first: no secret value is ever sent to Slack."""

    def __init__(self, client: AsyncWebClient, *, redactor: Redactor) -> None:
        self.client = client
        self._redactor = redactor

    async def post(self, channel: str, thread_ts: str | None, message: Message) -> str | None:
        """Post in a thread (or at the top of the channel); the new ts, or None if refused."""
        message = self._redacted(message)
        try:
            response = await self.client.chat_postMessage(
                channel=channel,
                thread_ts=thread_ts,
                text=message.text,
                blocks=message.blocks or None,
            )
        except SlackApiError as err:
            log.error("chat.postMessage in %s failed: %s", channel, err.response.get("error"))
            return None
        return str(response["ts"])

    async def update(self, channel: str, ts: str, message: Message) -> bool:
        """Replace a message in place (buttons cannot be disabled, only replaced)."""
        message = self._redacted(message)
        try:
            await self.client.chat_update(
                channel=channel, ts=ts, text=message.text, blocks=message.blocks
            )
        except SlackApiError as err:
            log.error("chat.update of %s failed: %s", ts, err.response.get("error"))
            return False
        return True

    async def whisper(
        self, channel: str, user: str, thread_ts: str | None, message: Message
    ) -> None:
        """An ephemeral message only `user` sees."""
        message = self._redacted(message)
        try:
            await self.client.chat_postEphemeral(
                channel=channel, user=user, thread_ts=thread_ts, text=message.text
            )
        except SlackApiError as err:
            log.error("chat.postEphemeral in %s failed: %s", channel, err.response.get("error"))

    def _redacted(self, message: Message) -> Message:
        return Message(
            self._redactor.redact(message.text), _redact_json(message.blocks, self._redactor)
        )

    async def close_plan(self, task: Task, *, verb: str, actor: str, at: float) -> None:
        """The plan message with its buttons replaced by who decided and when."""
        plan_ts = task.meta.get("plan_ts")
        if plan_ts:
            message = render.decided_plan(task, verb=verb, actor=actor, at=at)
            await self.update(task.meta["channel"], plan_ts, message)


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

    def __init__(self, threads: SlackThreads) -> None:
        self._threads = threads

    async def notify(self, task: Task, message: str) -> None:
        target = _TO_CHANNEL.match(message)
        if target:
            channel, thread_ts, text = target[1], None, target[2] or message
        else:
            channel, thread_ts, text = task.meta["channel"], task.meta["thread_ts"], message
        if await self._threads.post(channel, thread_ts, Message(text)) is None:
            raise StepError("Slack refused the message")
