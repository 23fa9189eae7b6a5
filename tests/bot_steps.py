"""What a person does in Slack, and what they see, for the bot's scenario tests."""

from __future__ import annotations

from typing import Any

from tests.fakes.slack_server import FakeSlack, mention, message, new_ts
from tests.slack_checks import assert_valid_message


def buttons(msg: dict[str, Any] | None) -> dict[str, str]:
    """action_id -> value of every button on a message as it looks now."""
    found: dict[str, str] = {}
    for block in (msg or {}).get("blocks") or []:
        elements = block.get("elements", []) + (
            [block["accessory"]] if "accessory" in block else []
        )
        for e in elements:
            if e.get("type") == "button":
                found[e["action_id"]] = e.get("value", "")
    return found


class Person:
    """A Slack user in channel C1 talking to the bot."""

    def __init__(self, slack: FakeSlack, user: str = "U1", channel: str = "C1") -> None:
        self.slack = slack
        self.user = user
        self.channel = channel

    async def mention(self, text: str, *, thread_ts: str | None = None) -> str:
        """`@bot text`; returns the message's ts (the thread the bot answers in)."""
        ts = new_ts()
        event = mention(text, user=self.user, channel=self.channel, ts=ts, thread_ts=thread_ts)
        await self.slack.send_events_api(event)
        return ts

    async def say(self, text: str, *, thread_ts: str | None) -> str:
        ts = new_ts()
        event = message(text, user=self.user, channel=self.channel, ts=ts, thread_ts=thread_ts)
        await self.slack.send_events_api(event)
        return ts

    async def click(self, action_id: str, value: str, *, message_ts: str) -> dict[str, Any]:
        payload = self.slack.block_action(
            action_id, value, message_ts=message_ts, user=self.user, channel=self.channel
        )
        return await self.slack.send_interactive(payload)


def shown(slack: FakeSlack, ts: str, channel: str = "C1") -> dict[str, Any]:
    """The bot's message at `ts` as it looks now (it must exist)."""
    found = slack.message_at(channel, ts)
    assert found is not None, ts
    return found


def thread(slack: FakeSlack, thread_ts: str, channel: str = "C1") -> list[dict[str, Any]]:
    return slack.thread(channel, thread_ts)


async def plan_in(slack: FakeSlack, thread_ts: str, channel: str = "C1") -> dict[str, Any]:
    """The thread's plan message once it shows Approve / Reject."""

    def plan() -> dict[str, Any] | None:
        return next(
            (m for m in thread(slack, thread_ts, channel) if "approve_plan" in buttons(m)), None
        )

    await slack.wait_until(plan)
    found = plan()
    assert found is not None
    return found


async def said(slack: FakeSlack, thread_ts: str, start: str, channel: str = "C1") -> dict[str, Any]:
    """The first message in the thread whose text starts with `start`, waiting for it."""

    def find() -> dict[str, Any] | None:
        return next(
            (m for m in thread(slack, thread_ts, channel) if m["text"].startswith(start)), None
        )

    await slack.wait_until(find, timeout=10)
    found = find()
    assert found is not None
    return found


def assert_all_payloads_valid(slack: FakeSlack) -> None:
    """Every message the bot posted or edited is one Slack accepts."""
    for method in ("chat.postMessage", "chat.update"):
        for args in slack.calls_to(method):
            assert_valid_message(args)
