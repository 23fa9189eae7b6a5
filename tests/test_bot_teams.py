"""Only the installed workspace (and those ORCH_ALLOWED_TEAMS names) may ask or decide."""

from __future__ import annotations

import asyncio

import pytest

from bot.listeners.workspaces import acting_team
from tests.bot_steps import Person, buttons, plan_in, said
from tests.conftest import OpenBot
from tests.fakes.openai_server import FakeOpenAI, Reply, Router
from tests.fakes.slack_server import FakeSlack, block_action, event_callback, mention, new_ts
from tests.helpers import step

pytestmark = pytest.mark.timeout(30)


def refusals(slack: FakeSlack, user: str) -> list[str]:
    return [c["text"] for c in slack.calls_to("chat.postEphemeral") if c["user"] == user]


async def test_a_mention_from_another_workspace_is_turned_away_and_nothing_is_planned(
    open_bot: OpenBot, fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    fake_openai.responder = Router([Reply.plan(step("a"))])
    bot = await open_bot()
    event = mention("do a", user="UX1", ts=new_ts(), team="T2")
    assert event["user_team"] == "T2"
    assert await bot.event(event)
    assert await bot.event(event, retry_attempt=1)  # Slack's retry: turned away once, not twice
    await fake_slack.wait_until(lambda: refusals(fake_slack, "UX1"))
    await Person(fake_slack, bot, "UX1", team="T2").mention("approve")
    await fake_slack.wait_until(lambda: len(refusals(fake_slack, "UX1")) == 2)
    await asyncio.sleep(0.3)
    assert (
        refusals(fake_slack, "UX1")
        == ["Sorry, I only take requests from people in this workspace."] * 2
    )
    assert fake_openai.requests == []
    assert fake_slack.calls_to("chat.postMessage") == []


async def test_typed_commands_and_clicks_from_another_workspace_change_nothing(
    open_bot: OpenBot, fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    fake_openai.responder = Router([Reply.plan(step("a"))])
    bot = await open_bot(orch_approvers="UX1")  # even an approver's id, from outside, is refused
    alice, stranger = Person(fake_slack, bot), Person(fake_slack, bot, "UX1", team="T2")
    ts = await alice.mention("do a")
    plan = await plan_in(fake_slack, ts)
    await stranger.say("nice plan", thread_ts=ts)  # chatter: ignored, as anyone's is
    await stranger.say("approve", thread_ts=ts)
    await stranger.press("approve_plan", plan)
    await stranger.press("reject_plan", plan)
    await fake_slack.wait_until(lambda: len(refusals(fake_slack, "UX1")) == 3)
    await asyncio.sleep(0.3)
    assert len(refusals(fake_slack, "UX1")) == 3
    assert buttons(fake_slack.message_at("C1", plan["ts"]))  # still pending, buttons intact
    assert len(fake_openai.requests) == 1  # the plan only; nothing ran


async def test_a_workspace_named_in_orch_allowed_teams_may_ask_and_decide(
    open_bot: OpenBot, fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    fake_openai.responder = Router([Reply.plan(step("a"))])
    bot = await open_bot(orch_allowed_teams="T2, T3")
    partner = Person(fake_slack, bot, "UX1", team="T2")
    ts = await partner.mention("do a")
    await partner.press("approve_plan", await plan_in(fake_slack, ts))
    await said(fake_slack, ts, "completed")
    assert refusals(fake_slack, "UX1") == []


def test_the_acting_team_is_the_senders_not_the_receiving_workspaces() -> None:
    shared = event_callback(mention("hi", team="T2"))
    assert (shared["team_id"], acting_team(shared)) == ("T1", "T2")
    plain = event_callback({**mention("hi", team="T2"), "user_team": None})
    assert acting_team(plain) == "T2"  # an event with only `team`
    click = block_action("approve_plan", "t1", message_ts=new_ts(), team="T2")
    click["team"] = {"id": "T1", "domain": "test"}
    assert acting_team(click) == "T2"  # the user's team decides, not the payload's
    assert acting_team({"type": "block_actions", "user": {"id": "U1"}}) is None
