"""Buttons: Approve / Reject on a plan, Run step / Skip on a risky step."""

from __future__ import annotations

import re
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext

from .. import render
from ..conversation import Conversation, Reply
from ..render import APPROVE, REJECT, RUN_STEP, SKIP_STEP
from ..slack_io import SlackThreads
from .replies import send
from .workspaces import Workspaces

_OUTSIDER = Reply(render.other_workspace(), is_ephemeral=True)  # someone the bot does not serve


def register(
    app: AsyncApp, conv: Conversation, threads: SlackThreads, workspaces: Workspaces
) -> None:
    """One listener per action_id; the button's value names the task (or task|step)."""

    @app.action(APPROVE)
    async def on_approve(
        ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        await ack()
        if not workspaces.admits(body, context):
            await _answer(threads, body, _OUTSIDER)
            return
        reply = await conv.decide("approve", action["value"], user=body["user"]["id"])
        await _answer(threads, body, reply)

    @app.action(REJECT)
    async def on_reject(
        ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        await ack()
        if not workspaces.admits(body, context):
            await _answer(threads, body, _OUTSIDER)
            return
        reply = await conv.decide("reject", action["value"], user=body["user"]["id"])
        await _answer(threads, body, reply)

    @app.action(RUN_STEP)
    async def on_run(
        ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        await ack()
        if not workspaces.admits(body, context):
            await _answer(threads, body, _OUTSIDER)
            return
        await _confirm(conv, threads, body, action, run=True)

    @app.action(SKIP_STEP)
    async def on_skip(
        ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        await ack()
        if not workspaces.admits(body, context):
            await _answer(threads, body, _OUTSIDER)
            return
        await _confirm(conv, threads, body, action, run=False)

    # Registered last, so it only sees buttons of an older version: acked (or Slack shows an
    # error and, over Socket Mode, redelivers) and answered, never silence.
    @app.block_action(re.compile(".*"))
    async def on_retired(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        await _answer(threads, body, Reply(render.retired_button(), is_ephemeral=True))


async def _confirm(
    conv: Conversation,
    threads: SlackThreads,
    body: dict[str, Any],
    action: dict[str, Any],
    *,
    run: bool,
) -> None:
    task_id, _, step_id = str(action["value"]).partition("|")
    reply = await conv.confirm(task_id, step_id, user=body["user"]["id"], run=run)
    await _answer(threads, body, reply)


async def _answer(threads: SlackThreads, body: dict[str, Any], reply: Reply | None) -> None:
    container = body.get("container", {})
    message = body.get("message", {})
    thread_ts = container.get("thread_ts") or message.get("thread_ts") or message.get("ts", "")
    channel = body.get("channel", {}).get("id") or container.get("channel_id", "")
    await send(threads, reply, channel=channel, thread_ts=thread_ts, user=body["user"]["id"])
