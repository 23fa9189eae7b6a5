"""build_app: the Bolt app with every listener module registered, and one error path."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncApp

from orchestrator import OrchestratorError

from . import render
from .conversation import Conversation
from .listeners import actions, messages
from .listeners.workspaces import Workspaces
from .slack_io import SlackThreads

log = logging.getLogger(__name__)


def build_app(
    conv: Conversation,
    threads: SlackThreads,
    *,
    signing_secret: str | None,
    allowed_teams: frozenset[str] = frozenset(),
) -> AsyncApp:
    """The AsyncApp over `threads.client`; `signing_secret` None means Socket Mode.

    `allowed_teams`: workspaces whose people may ask and decide, besides the installed one."""
    app = AsyncApp(
        client=threads.client,
        signing_secret=signing_secret or "unused-in-socket-mode",
        request_verification_enabled=signing_secret is not None,
        raise_error_for_unhandled_request=False,
    )
    workspaces = Workspaces(allowed_teams)
    messages.register(app, conv, threads, workspaces)
    actions.register(app, conv, threads, workspaces)

    @app.error
    async def on_error(error: Exception, body: dict[str, Any]) -> None:
        # The one error path: the library's errors are said in the thread, the rest are logged.
        if not isinstance(error, OrchestratorError):
            log.error("listener failed: %s", error, exc_info=error)
            return
        where = _where(body)
        if where is not None:
            await threads.say(*where, render.failure(error.reason))

    return app


def _where(body: dict[str, Any]) -> tuple[str, str] | None:
    event = body.get("event") or {}
    if event.get("channel") and event.get("ts"):
        return event["channel"], event.get("thread_ts") or event["ts"]
    message = body.get("message") or {}
    channel = (body.get("channel") or {}).get("id")
    if channel and message.get("ts"):
        return channel, message.get("thread_ts") or message["ts"]
    return None
