"""The relay delivers the outbox: nothing a thread must show is lost to Slack's refusals or queued
behind other threads, a lost answer never makes a second post, and decisions are stored first."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest

from bot.relay import POST_BURST
from orchestrator import Phase
from tests.bot_steps import Person, SocketDelivery, buttons, plan_in, said, shown, thread
from tests.conftest import OpenBot, StartBot
from tests.fakes.openai_server import FakeOpenAI, Reply, Router
from tests.fakes.slack_server import FakeSlack
from tests.helpers import eventually, step

pytestmark = pytest.mark.timeout(40)


async def test_a_post_whose_answer_was_lost_is_found_in_the_thread_not_posted_twice(
    open_bot: OpenBot, fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    fake_openai.responder = Router([Reply.plan(step("a"))])
    bot = await open_bot()
    fake_slack.fail_next("chat.postMessage", 500, after_effect=True)
    ts = await Person(fake_slack, bot).mention("do a")
    await plan_in(fake_slack, ts)
    assert len(thread(fake_slack, ts)) == 1  # "Planning…", edited into the plan: one message
    assert fake_slack.calls_to("conversations.replies")


async def test_a_channel_slack_slows_down_does_not_hold_another_channels_thread(
    open_bot: OpenBot, fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    fake_openai.responder = Router([Reply.plan(step("a"))] * 2)
    bot = await open_bot()
    fake_slack.fail_next("chat.postMessage", 429, retry_after=30, channel="C1")
    busy = await Person(fake_slack, bot, channel="C1").mention("do a")
    await fake_slack.wait_until(lambda: any(c.status == 429 for c in fake_slack.calls))
    calm = await Person(fake_slack, bot, channel="C2").mention("do a")
    await plan_in(fake_slack, calm, channel="C2")
    assert thread(fake_slack, busy, channel="C1") == []


async def test_an_edit_slack_rate_limits_holds_every_channels_edits_not_just_its_own(
    open_bot: OpenBot, fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    # chat.update is limited per workspace: after one 429, edits elsewhere wait it out too.
    plans = [dataclasses.replace(Reply.plan(step("a")), delay_s=0.4 * i) for i in range(4)]
    fake_openai.responder = Router(plans)
    bot = await open_bot()
    fake_slack.rate_limit("chat.update", for_s=2.0)
    people = [Person(fake_slack, bot, channel=f"C{i}") for i in range(4)]
    threads = await asyncio.gather(*(p.mention(f"task {i}") for i, p in enumerate(people)))
    for person, ts in zip(people, threads, strict=True):  # "Planning…", edited into the plan
        await plan_in(fake_slack, ts, channel=person.channel, timeout=10)
    refused = [c for c in fake_slack.calls if c.method == "chat.update" and c.status == 429]
    assert len(refused) == 1, [c.args["channel"] for c in refused]


async def test_with_a_fifth_of_slack_writes_refused_every_thread_still_gets_its_whole_story(
    open_bot: OpenBot, fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    fake_openai.responder = Router([Reply.plan(step("a"), step("b", "a"))] * 4)
    bot = await open_bot()
    fake_slack.be_flaky(0.2, seed=7, retry_after=0.1)
    people = [Person(fake_slack, bot, channel=f"C{i}") for i in range(4)]
    threads = [await p.mention(f"task {i}") for i, p in enumerate(people)]
    for person, ts in zip(people, threads, strict=True):
        # A few refused posts in a row back off for seconds (5xx: up to 1.5 s each), so a plan
        # may take longer than the usual 5 s to show; that it shows whole is what counts here.
        plan = await plan_in(fake_slack, ts, channel=person.channel, timeout=15)
        await person.press("approve_plan", plan)
    for person, ts in zip(people, threads, strict=True):
        summary = await said(fake_slack, ts, "completed", channel=person.channel)
        assert "[b] completed" in summary["text"]
        messages = thread(fake_slack, ts, channel=person.channel)
        assert [m["text"].split(":")[0].split(" ")[0] for m in messages] == [
            "Plan",
            "executing",
            "Progress",
            "completed.",
        ]
        assert "Approved by" in messages[0]["text"]
        assert messages[2]["text"].startswith("Progress: 2/2 steps finished")
    assert any(c.status in (429, 500) for c in fake_slack.calls)


async def test_summaries_are_never_queued_behind_other_tasks_progress_edits(
    open_bot: OpenBot, fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    tasks = 12
    steps = [step(f"s{i}", *([f"s{i - 1}"] if i else [])) for i in range(3)]
    fake_openai.responder = Router(
        [Reply.plan(*steps)] * tasks, {f"s{i}": Reply("ok", delay_s=0.3) for i in range(3)}
    )
    bot = await open_bot()
    # A channel each, as a workspace's teams would: posts in one channel are paced to Slack's
    # one a second, edits are paced workspace-wide, and that is what this is about.
    people = [Person(fake_slack, bot, channel=f"C{i}") for i in range(tasks)]
    threads = [await person.mention(f"task {i}") for i, person in enumerate(people)]
    for person, ts in zip(people, threads, strict=True):
        await person.press("approve_plan", await plan_in(fake_slack, ts, channel=person.channel))
    started = time.monotonic()
    for person, ts in zip(people, threads, strict=True):
        await said(fake_slack, ts, "completed", channel=person.channel)
    # Live progress edits share the workspace's 50 a minute: a summary queued behind them would
    # come a task's worth of edits late (12 tasks x 1.2 s or more).
    assert time.monotonic() - started < 8


async def test_the_plan_loses_its_buttons_only_once_the_approval_is_stored(
    start_bot: StartBot, fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    fake_openai.responder = Router([Reply.plan(step("a", tier="destructive"))])
    service = await start_bot()
    alice = Person(fake_slack, SocketDelivery(fake_slack))
    ts = await alice.mention("do a")
    plan = await plan_in(fake_slack, ts)
    held = fake_slack.hold("chat.update", match=lambda args: args.get("ts") == plan["ts"])
    await alice.press("approve_plan", plan)
    async with asyncio.timeout(5):
        await held.reached.wait()
    task = (await service.orchestrator.list_tasks())[0]
    decision = await service.orchestrator.decision(task.id)
    assert task.phase is Phase.EXECUTING
    assert decision is not None and (decision.actor, decision.reason) == ("U1", "approved")
    assert "Approved by" in held.args["text"]
    held.released.set()  # the edit fails (500); the relay tries again
    await fake_slack.wait_until(
        lambda: "approve_plan" not in buttons(shown(fake_slack, plan["ts"]))
    )


async def test_a_restart_shows_what_the_outbox_still_holds_for_finished_tasks_too(
    start_bot: StartBot, fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    fake_openai.responder = Router([Reply.plan(step("a"))])
    first = await start_bot()
    alice = Person(fake_slack, SocketDelivery(fake_slack))
    ts = await alice.mention("do a")
    plan = await plan_in(fake_slack, ts)
    # Slack refuses everything from now on: set before the click, else a quick run's summary
    # could be shown before it is.
    fake_slack.be_flaky(1.0, retry_after=30)
    await alice.press("approve_plan", plan)

    async def is_finished() -> bool:
        return (await first.orchestrator.list_tasks())[0].phase is Phase.COMPLETED

    await eventually(is_finished)
    await first.stop()
    assert not any(m["text"].startswith("completed") for m in thread(fake_slack, ts))

    fake_slack.calm()
    await start_bot()
    await said(fake_slack, ts, "completed")
    texts = [m["text"] for m in thread(fake_slack, ts)]
    assert sum(t.startswith("Plan") for t in texts) == 1
    assert sum(t.startswith("completed") for t in texts) == 1


async def test_new_messages_in_one_channel_are_paced_to_slacks_one_a_second(
    open_bot: OpenBot, fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    mentions = POST_BURST + 4
    fake_openai.responder = Router([Reply.plan(step("a"))] * mentions)
    bot = await open_bot()
    alice = Person(fake_slack, bot)
    threads = await asyncio.gather(*(alice.mention(f"task {i}") for i in range(mentions)))
    for ts in threads:
        await plan_in(fake_slack, ts, timeout=15)
    posts = [c.at for c in fake_slack.calls if c.method == "chat.postMessage" and c.ok]
    busiest = max(sum(start <= at < start + 1 for at in posts) for start in posts)
    # A short burst, then one a second: never all of them at once.
    assert len(posts) == mentions and busiest <= POST_BURST + 1
    # Held back until its turn, a request shows its plan at once: no "Planning…" to edit.
    assert len(fake_slack.calls_to("chat.update")) < mentions
