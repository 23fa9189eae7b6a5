"""Hostile words in requests, plans, step outputs and notify steps never ping or link in Slack."""

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


async def test_a_notify_step_posts_the_models_broadcasts_and_links_escaped(
    open_bot: OpenBot, fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    fake_openai.responder = Router(
        [Reply.plan(step("tell", action="notify", input=f"{PINGS} read {LINK} <@U2>"))]
    )
    bot = await open_bot()
    alice = Person(fake_slack, bot)
    ts = await alice.mention("tell everyone")
    await alice.press("approve_plan", await plan_in(fake_slack, ts))
    ask = await said(fake_slack, ts, "Step tell (notify, external) wants to run")
    assert "wants to run: &lt;!channel&gt;" in ask["text"]
    await alice.press("run_step", ask)
    posted = await said(fake_slack, ts, "&lt;!channel&gt;")
    assert posted["text"] == (
        "&lt;!channel&gt; &lt;!here&gt; &lt;!everyone&gt; read "
        "&lt;https://evil.example|click here&gt; &lt;@U2&gt;"
    )
    await said(fake_slack, ts, "completed")
    assert_nothing_posted_live(fake_slack)


async def test_a_notify_to_a_linked_channel_may_mention_people_when_the_setting_allows(
    open_bot: OpenBot, fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    message = f"<#C2|ops> <!here> <@U2> look at {LINK}, <@U3|bob>"
    fake_openai.responder = Router([Reply.plan(step("tell", action="notify", input=message))])
    bot = await open_bot(orch_notify_user_mentions=True)
    alice = Person(fake_slack, bot)
    ts = await alice.mention("tell ops")
    await alice.press("approve_plan", await plan_in(fake_slack, ts))
    await alice.press("run_step", await said(fake_slack, ts, "Step tell"))
    await said(fake_slack, ts, "completed")
    posted = [m for m in fake_slack.messages if m["channel"] == "C2"]
    assert [m["text"] for m in posted] == [
        "&lt;!here&gt; <@U2> look at &lt;https://evil.example|click here&gt;, &lt;@U3|bob&gt;"
    ]
    assert "<@U2>" in posted[0]["blocks"][0]["text"]["text"]
    assert posted[0]["blocks"][0]["text"]["verbatim"] is True
