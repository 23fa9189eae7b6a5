"""What a person does in Slack, and what they see, for the bot's scenario tests."""

from __future__ import annotations

from typing import Any, Protocol

from tests.fakes.slack_server import (
    TEAM_ID,
    FakeSlack,
    action_body,
    event_body,
    mention,
    message,
    new_ts,
    post_signed,
)
from tests.slack_checks import assert_valid_message

SIGNING_SECRET = "test-signing-secret"


class Delivery(Protocol):
    """How Slack hands the bot an event or a click: Socket Mode or signed HTTP."""

    async def event(
        self, event: dict[str, Any], *, event_id: str | None = None, retry_attempt: int = 0
    ) -> bool:
        """Deliver an event; True when the bot acknowledged it."""
        ...

    async def action(self, payload: dict[str, Any]) -> bool:
        """Deliver an interaction; True when the bot acknowledged it."""
        ...


class SocketDelivery:
    """Over the fake's Socket Mode websocket; acknowledged = the envelope was acked."""

    def __init__(self, slack: FakeSlack) -> None:
        self.slack = slack

    async def event(
        self, event: dict[str, Any], *, event_id: str | None = None, retry_attempt: int = 0
    ) -> bool:
        ack = await self.slack.send_events_api(
            event, event_id=event_id, retry_attempt=retry_attempt
        )
        return "envelope_id" in ack

    async def action(self, payload: dict[str, Any]) -> bool:
        return "envelope_id" in await self.slack.send_interactive(payload)


class HttpDelivery:
    """Signed POSTs to the bot's /slack/events; acknowledged = HTTP 200."""

    def __init__(self, url: str) -> None:
        self.url = url

    async def event(
        self, event: dict[str, Any], *, event_id: str | None = None, retry_attempt: int = 0
    ) -> bool:
        retry = {"X-Slack-Retry-Num": str(retry_attempt), "X-Slack-Retry-Reason": "timeout"}
        status, _ = await post_signed(
            self.url,
            event_body(event, event_id=event_id),
            "application/json",
            SIGNING_SECRET,
            headers=retry if retry_attempt else None,
        )
        return status == 200

    async def action(self, payload: dict[str, Any]) -> bool:
        form = "application/x-www-form-urlencoded"
        status, _ = await post_signed(self.url, action_body(payload), form, SIGNING_SECRET)
        return status == 200


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
    """A Slack user in channel C1 talking to the bot; `team` other than T1: from another
    workspace, through a channel shared with it (Slack Connect)."""

    def __init__(
        self,
        slack: FakeSlack,
        delivery: Delivery,
        user: str = "U1",
        channel: str = "C1",
        *,
        team: str = TEAM_ID,
    ) -> None:
        self.slack = slack
        self.delivery = delivery
        self.user = user
        self.channel = channel
        self.team = team

    async def mention(self, text: str, *, thread_ts: str | None = None) -> str:
        """`@bot text`; returns the message's ts (the thread the bot answers in)."""
        ts = new_ts()
        event = mention(
            text, user=self.user, channel=self.channel, ts=ts, thread_ts=thread_ts, team=self.team
        )
        assert await self.delivery.event(event)
        return ts

    async def say(self, text: str, *, thread_ts: str | None) -> str:
        ts = new_ts()
        event = message(
            text, user=self.user, channel=self.channel, ts=ts, thread_ts=thread_ts, team=self.team
        )
        assert await self.delivery.event(event)
        return ts

    async def press(self, action_id: str, shown: dict[str, Any]) -> None:
        """Click the button `action_id` on a message as it looks now."""
        await self.click(action_id, buttons(shown)[action_id], message_ts=shown["ts"])

    async def click(self, action_id: str, value: str, *, message_ts: str) -> None:
        payload = self.slack.block_action(
            action_id,
            value,
            message_ts=message_ts,
            user=self.user,
            channel=self.channel,
            team=self.team,
        )
        assert await self.delivery.action(payload)


def shown(slack: FakeSlack, ts: str, channel: str = "C1") -> dict[str, Any]:
    """The bot's message at `ts` as it looks now (it must exist)."""
    found = slack.message_at(channel, ts)
    assert found is not None, ts
    return found


def thread(slack: FakeSlack, thread_ts: str, channel: str = "C1") -> list[dict[str, Any]]:
    return slack.thread(channel, thread_ts)


async def plan_in(
    slack: FakeSlack, thread_ts: str, channel: str = "C1", *, timeout: float = 5.0
) -> dict[str, Any]:
    """The thread's plan message once it shows Approve / Reject."""

    def plan() -> dict[str, Any] | None:
        return next(
            (m for m in thread(slack, thread_ts, channel) if "approve_plan" in buttons(m)), None
        )

    await slack.wait_until(plan, timeout=timeout)
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
