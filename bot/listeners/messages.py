"""Mentions (new requests, or commands to the bot) and words typed in a task's thread."""

from __future__ import annotations

import re
from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncBoltContext

from .. import render
from ..conversation import (
    Conversation,
    Reply,
    Where,
    message_key,
    parse_command,
    thread_scope,
)
from ..slack_io import SlackThreads
from .replies import send
from .workspaces import Workspaces


def register(
    app: AsyncApp, conv: Conversation, threads: SlackThreads, workspaces: Workspaces
) -> None:
    """Add the message listeners, then a catch-all that acks every other event."""

    @app.event("app_mention")
    async def on_mention(
        event: dict[str, Any], body: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        await _mention(
            conv,
            threads,
            event,
            event_id=str(body.get("event_id", "")),
            bot_user_id=context.bot_user_id or "",
            is_admitted=workspaces.admits(body, context),
        )

    @app.event("message")
    async def on_message(
        event: dict[str, Any], body: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        await _thread_message(
            conv,
            threads,
            event,
            bot_user_id=context.bot_user_id or "",
            is_admitted=workspaces.admits(body, context),
        )

    # Slack redelivers what nobody acks; every other event (edits, deletions, joins) is acked here.
    @app.event(re.compile(".*"))
    async def ignore_the_rest() -> None:
        return None


def _without_bot(text: str, bot_user_id: str) -> str:
    """The request minus the bot's own mention; the people it names stay (shown escaped)."""
    return re.sub(rf"<@{re.escape(bot_user_id)}(\|[^>]*)?>\s*", "", text).strip()


async def _mention(
    conv: Conversation,
    threads: SlackThreads,
    event: dict[str, Any],
    *,
    event_id: str,
    bot_user_id: str,
    is_admitted: bool,
) -> None:
    channel, ts, user = event["channel"], event["ts"], event.get("user", "")
    thread_ts = event.get("thread_ts")
    text = _without_bot(event.get("text", ""), bot_user_id)
    reply_ts = thread_ts or ts
    if not is_admitted:
        await _turn_away(conv, threads, channel, ts, thread_ts=reply_ts, user=user)
        return
    word = parse_command(text) if text else "help"
    if word is not None:
        if await conv.claim(channel, ts):
            reply = await conv.command(word, user=user, where=Where(channel, thread_ts))
            await send(threads, reply, channel=channel, thread_ts=reply_ts, user=user)
        return
    await conv.request(
        text,
        user=user,
        scope=thread_scope(channel, reply_ts),
        message_keys=[message_key(channel, ts), f"event:{event_id}"],
        meta={"channel": channel, "thread_ts": reply_ts},
    )


async def _thread_message(
    conv: Conversation,
    threads: SlackThreads,
    event: dict[str, Any],
    *,
    bot_user_id: str,
    is_admitted: bool,
) -> None:
    # Edits, deletions, joins and other bots' messages carry a subtype or a bot_id: never acted on.
    if event.get("subtype") or event.get("bot_id") or "thread_ts" not in event:
        return
    text = event.get("text", "")
    if f"<@{bot_user_id}>" in text:
        return  # a mention: the app_mention listener handles it
    word = parse_command(text)
    channel, thread_ts, user = event["channel"], event["thread_ts"], event.get("user", "")
    if word is None or not await conv.has_tasks(thread_scope(channel, thread_ts)):
        return  # ordinary chatter, or a thread the bot has no task in
    if not is_admitted:
        await _turn_away(conv, threads, channel, event["ts"], thread_ts=thread_ts, user=user)
        return
    if await conv.claim(channel, event["ts"]):
        reply: Reply | None = await conv.command(word, user=user, where=Where(channel, thread_ts))
        await send(threads, reply, channel=channel, thread_ts=thread_ts, user=user)


async def _turn_away(
    conv: Conversation, threads: SlackThreads, channel: str, ts: str, *, thread_ts: str, user: str
) -> None:
    """Say why, only to the person from another workspace, once however often Slack retries."""
    if await conv.claim(channel, ts):
        reply = Reply(render.other_workspace(), is_ephemeral=True)
        await send(threads, reply, channel=channel, thread_ts=thread_ts, user=user)
