"""Hostile words in requests, plans and step outputs never ping or link in Slack."""

from __future__ import annotations

import pytest

from tests.bot_steps import Person, plan_in, said, thread
from tests.conftest import OpenBot
from tests.fakes.openai_server import FakeOpenAI, Reply, Router
from tests.fakes.slack_server import FakeSlack
from tests.helpers import step
from tests.slack_checks import assert_nothing_live

pytestmark = pytest.mark.timeout(30)

PINGS = "<!channel> <!here> <!everyone>"
LINK = "<https://evil.example|click here>"
HOSTILE = f"{PINGS} see {LINK} & <@U2>"


def assert_nothing_posted_live(slack: FakeSlack) -> None:
    """Every message and edit the bot sent, and every ephemeral, holds nothing live."""
    for method in ("chat.postMessage", "chat.update", "chat.postEphemeral"):
        for args in slack.calls_to(method):
            assert_nothing_live(args)


async def test_a_hostile_request_plan_and_step_outputs_are_shown_escaped_everywhere(
    open_bot: OpenBot, fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    fake_openai.responder = Router(
        [Reply.plan(step("a", description=HOSTILE), step("b", "a", action="write"))],
        {"a": Reply(HOSTILE), "b": Reply.error(400, HOSTILE)},
    )
    bot = await open_bot(orch_max_replans=0)
    alice = Person(fake_slack, bot)
    ts = await alice.mention(HOSTILE)
    plan = await plan_in(fake_slack, ts)
    assert "Plan: &lt;!channel&gt; &lt;!here&gt; &lt;!everyone&gt; see" in plan["text"]
    await alice.press("approve_plan", plan)
    summary = await said(fake_slack, ts, "failed: step b failed")
    assert "answered 400: &lt;!channel&gt;" in summary["text"]
    assert "[a] completed: &lt;!channel&gt;" in summary["text"]
    assert "&lt;https://evil.example|click here&gt; &amp; &lt;@U2&gt;" in summary["text"]
    await alice.say("status", thread_ts=ts)  # the summary again, from the store
    await fake_slack.wait_until(
        lambda: sum(m["text"].startswith("failed") for m in thread(fake_slack, ts)) == 2
    )
    assert_nothing_posted_live(fake_slack)
