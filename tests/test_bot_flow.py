"""The bot end to end over Socket Mode: real Bolt app, real clients, fake Slack and fake OpenAI."""

from __future__ import annotations

import asyncio

import pytest

from tests.bot_steps import (
    Person,
    assert_all_payloads_valid,
    buttons,
    plan_in,
    said,
    shown,
    thread,
)
from tests.conftest import OpenBot
from tests.fakes.openai_server import FakeOpenAI, Reply, Router
from tests.fakes.slack_server import FakeSlack, mention, message_changed, message_deleted, new_ts
from tests.helpers import step

pytestmark = pytest.mark.timeout(30)


async def test_a_mention_gets_planning_then_the_plan_then_runs_on_approve_to_a_summary(
    open_bot: OpenBot, fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    fake_openai.responder = Router(
        [Reply.plan(step("a", description="find facts"), step("b", "a", action="write"))],
        {"a": Reply("the facts")},
    )
    bot = await open_bot()
    alice = Person(fake_slack, bot)
    ts = await alice.mention("summarise the release")
    planning = await fake_slack.wait_for_call("chat.postMessage")
    assert planning["thread_ts"] == ts
    assert planning["text"].startswith("Planning…")
    plan = await plan_in(fake_slack, ts)
    assert plan["ts"] == planning.get("ts", plan["ts"])  # the same message, replaced in place
    assert "1. [a] research · read · waits for nothing: find facts" in plan["text"]
    task_id = buttons(plan)["approve_plan"]

    await alice.click("approve_plan", task_id, message_ts=plan["ts"])
    summary = await said(fake_slack, ts, "completed")
    assert "[a] completed: the facts" in summary["text"]
    decided = fake_slack.message_at("C1", plan["ts"])
    assert buttons(decided) == {}
    assert "Approved by <@U1>" in str(decided)
    texts = [m["text"] for m in thread(fake_slack, ts)]
    assert any(t.startswith("executing") for t in texts)
    progress = next(m for m in thread(fake_slack, ts) if m["text"].startswith("Progress"))
    assert "Progress: 2/2 steps finished" in progress["text"]
    assert_all_payloads_valid(fake_slack)


async def test_typed_approve_in_the_thread_approves_its_plan(
    open_bot: OpenBot, fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    fake_openai.responder = Router([Reply.plan(step("a"))])
    bot = await open_bot()
    alice = Person(fake_slack, bot)
    ts = await alice.mention("do a")
    plan = await plan_in(fake_slack, ts)
    await alice.say("approve", thread_ts=ts)
    await said(fake_slack, ts, "completed")
    assert buttons(fake_slack.message_at("C1", plan["ts"])) == {}


async def test_a_bare_approve_at_channel_level_picks_the_one_pending_plan_or_lists_several(
    open_bot: OpenBot, fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    fake_openai.responder = Router([Reply.plan(step("a"))] * 3)
    bot = await open_bot()
    alice = Person(fake_slack, bot)
    none_ts = await alice.mention("approve")
    await said(fake_slack, none_ts, "There is no plan here to approve")

    first = await alice.mention("first job")
    await plan_in(fake_slack, first)
    second = await alice.mention("second job")
    await plan_in(fake_slack, second)
    ask = await alice.mention("approve")
    listing = await said(fake_slack, ask, "2 plans are waiting")
    assert len(buttons(listing)) == 1  # one action_id, one button per plan:
    assert str(listing["blocks"]).count("approve_plan") == 2
    assert all(buttons(m).get("approve_plan") for m in [await plan_in(fake_slack, first)])

    await alice.say("reject", thread_ts=second)
    await said(fake_slack, second, "cancelled")
    one = await alice.mention("approve")
    await said(fake_slack, first, "completed")
    assert not [m for m in thread(fake_slack, one) if "plans are waiting" in m["text"]]


async def test_reject_by_button_discards_the_plan_and_says_who(
    open_bot: OpenBot, fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    fake_openai.responder = Router([Reply.plan(step("a"))])
    bot = await open_bot()
    alice = Person(fake_slack, bot)
    ts = await alice.mention("do a")
    plan = await plan_in(fake_slack, ts)
    await alice.press("reject_plan", plan)
    await said(fake_slack, ts, "cancelled (rejected)")
    assert "Rejected by <@U1>" in str(fake_slack.message_at("C1", plan["ts"]))
    assert len(fake_openai.requests) == 1  # nothing ran


async def test_someone_else_gets_an_ephemeral_refusal_and_nothing_changes(
    open_bot: OpenBot, fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    fake_openai.responder = Router([Reply.plan(step("a"))])
    bot = await open_bot()
    alice, mallory = Person(fake_slack, bot, "U1"), Person(fake_slack, bot, "U666")
    ts = await alice.mention("do a")
    plan = await plan_in(fake_slack, ts)
    await mallory.press("approve_plan", plan)
    refusal = await fake_slack.wait_for_call("chat.postEphemeral")
    assert refusal["user"] == "U666"
    assert "only <@U1> or an approver" in refusal["text"]
    await mallory.say("cancel", thread_ts=ts)
    await fake_slack.wait_until(lambda: len(fake_slack.calls_to("chat.postEphemeral")) == 2)
    assert buttons(fake_slack.message_at("C1", plan["ts"]))  # still pending, buttons intact


async def test_an_approver_may_approve_anyones_plan(
    open_bot: OpenBot, fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    fake_openai.responder = Router([Reply.plan(step("a"))])
    bot = await open_bot(orch_approvers="UBOSS")
    ts = await Person(fake_slack, bot, "U1").mention("do a")
    plan = await plan_in(fake_slack, ts)
    await Person(fake_slack, bot, "UBOSS").press("approve_plan", plan)
    await said(fake_slack, ts, "completed")


async def test_a_second_click_is_harmless_and_says_who_decided(
    open_bot: OpenBot, fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    router = Router([Reply.plan(step("a"))])
    fake_openai.responder = router
    bot = await open_bot()
    alice = Person(fake_slack, bot)
    ts = await alice.mention("do a")
    plan = await plan_in(fake_slack, ts)
    task_id = buttons(plan)["approve_plan"]
    await asyncio.gather(
        alice.click("approve_plan", task_id, message_ts=plan["ts"]),
        alice.click("approve_plan", task_id, message_ts=plan["ts"]),
    )
    await said(fake_slack, ts, "completed")
    await alice.click("approve_plan", task_id, message_ts=plan["ts"])
    await fake_slack.wait_until(lambda: len(fake_slack.calls_to("chat.postEphemeral")) == 2)
    notes = [c["text"] for c in fake_slack.calls_to("chat.postEphemeral")]
    assert all("no longer pending (approved by <@U1>)" in n for n in notes)
    assert router.step_calls == ["a"]


async def test_a_click_on_an_unknown_plan_is_answered(
    open_bot: OpenBot, fake_slack: FakeSlack
) -> None:
    bot = await open_bot()
    ts = new_ts()
    await Person(fake_slack, bot).click("approve_plan", "no-such-task", message_ts=ts)
    note = await fake_slack.wait_for_call("chat.postEphemeral")
    assert "no longer pending (unknown plan)" in note["text"]


async def test_cancel_typed_in_the_thread_stops_the_work(
    open_bot: OpenBot, fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    fake_openai.responder = Router([Reply.plan(step("slow"))], {"slow": Reply("x", delay_s=30)})
    bot = await open_bot()
    alice = Person(fake_slack, bot)
    ts = await alice.mention("slow work")
    plan = await plan_in(fake_slack, ts)
    await alice.press("approve_plan", plan)
    await said(fake_slack, ts, "executing")
    await fake_slack.wait_until(lambda: fake_openai.in_flight == 1)
    await alice.say("cancel", thread_ts=ts)
    summary = await said(fake_slack, ts, "cancelled")
    assert "[slow] cancelled" in summary["text"]


async def test_status_and_help_answer_in_the_thread(
    open_bot: OpenBot, fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    fake_openai.responder = Router([Reply.plan(step("a"))])
    bot = await open_bot()
    alice = Person(fake_slack, bot)
    ts = await alice.mention("do a")
    await plan_in(fake_slack, ts)
    await alice.say("status", thread_ts=ts)
    await said(fake_slack, ts, "This task is awaiting approval")
    await alice.say("help", thread_ts=ts)
    await said(fake_slack, ts, "Mention me with a request")


async def test_chatter_edits_deletions_and_other_bots_never_trigger_anything(
    open_bot: OpenBot, fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    bot = await open_bot()
    alice = Person(fake_slack, bot)
    await alice.say("approve", thread_ts=None)  # channel chatter, no mention
    await alice.say("approve", thread_ts=new_ts())  # a thread with no task
    await alice.say("what do you think?", thread_ts=new_ts())
    acks = [
        await bot.event(message_changed("C1", new_ts(), "edited", user="U1", bot_id=None)),
        await bot.event(message_deleted("C1", new_ts())),
        await bot.event(
            {
                **mention("approve", ts=new_ts()),
                "type": "message",
                "bot_id": "BOTHER",
                "subtype": "bot_message",
            }
        ),
        await bot.event({"type": "member_joined_channel", "user": "U2", "channel": "C1"}),
    ]
    assert all(acks)  # everything is acked, so Slack never retries
    await asyncio.sleep(0.3)
    assert fake_slack.calls_to("chat.postMessage") == []
    assert fake_slack.calls_to("chat.postEphemeral") == []
    assert fake_openai.requests == []


async def test_one_message_delivered_twice_and_retried_makes_exactly_one_plan(
    open_bot: OpenBot, fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    fake_openai.responder = Router([Reply.plan(step("a"))] * 3)
    bot = await open_bot()
    ts = new_ts()
    event = mention("do a", ts=ts)
    await bot.event(event, event_id="Ev1")
    await bot.event({**event, "type": "message"}, event_id="Ev2")
    await bot.event(event, event_id="Ev1", retry_attempt=1)
    await bot.event(event, event_id="Ev3", retry_attempt=2)
    await plan_in(fake_slack, ts)
    await asyncio.sleep(0.3)
    assert len([r for r in fake_openai.requests if "planner" in r["messages"][0]["content"]]) == 1
    assert len([m for m in thread(fake_slack, ts) if m["text"].startswith("Plan")]) == 1


async def test_a_planning_failure_is_said_in_the_thread_and_the_bot_keeps_serving(
    open_bot: OpenBot, fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(*[Reply.error(401, "invalid api key")])
    fake_openai.responder = Router([Reply.plan(step("a"))])
    bot = await open_bot()
    alice = Person(fake_slack, bot)
    bad = await alice.mention("first")
    failed = await said(fake_slack, bad, "failed: could not get a plan from the model")
    assert "answered 401" in failed["text"]
    assert "test-key" not in str(fake_slack.calls)
    good = await alice.mention("second")
    await plan_in(fake_slack, good)


async def test_a_risky_step_asks_with_run_and_skip_buttons_and_runs_when_confirmed(
    open_bot: OpenBot, fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    fake_openai.responder = Router(
        [Reply.plan(step("post", action="notify", input="#ops deploy done"))]
    )
    bot = await open_bot()
    alice = Person(fake_slack, bot)
    ts = await alice.mention("tell ops")
    plan = await plan_in(fake_slack, ts)
    await alice.press("approve_plan", plan)
    ask = await said(fake_slack, ts, "Step post (notify, external) wants to run")
    value = buttons(ask)["run_step"]
    assert buttons(ask)["skip_step"] == value
    await Person(fake_slack, bot, "U666").click("run_step", value, message_ts=ask["ts"])
    await fake_slack.wait_for_call("chat.postEphemeral")
    await alice.click("run_step", value, message_ts=ask["ts"])
    await said(fake_slack, ts, "#ops deploy done")  # the notify step posted in the thread
    await said(fake_slack, ts, "completed")
    closed = shown(fake_slack, ask["ts"])
    assert buttons(closed) == {}
    assert "run by <@U1>" in closed["text"]


async def test_an_unanswered_step_is_skipped_at_its_deadline_and_the_thread_says_so(
    open_bot: OpenBot, fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    fake_openai.responder = Router([Reply.plan(step("post", action="notify", input="#ops hi"))])
    bot = await open_bot(orch_confirm_timeout_s=0.3)
    alice = Person(fake_slack, bot)
    ts = await alice.mention("tell ops")
    plan = await plan_in(fake_slack, ts)
    await alice.press("approve_plan", plan)
    ask = await said(fake_slack, ts, "Step post")
    summary = await said(fake_slack, ts, "completed")
    assert "confirmation expired" in summary["text"]
    assert "skipped: confirmation expired" in shown(fake_slack, ask["ts"])["text"]


async def test_slack_429_and_500_are_retried_and_the_reply_still_arrives(
    open_bot: OpenBot, fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    # Planning outlasts the 429's Retry-After, so "Planning…" is posted first and then edited.
    slow_plan = Reply.plan(step("a"))
    slow_plan.delay_s = 1.5
    fake_openai.responder = Router([slow_plan])
    bot = await open_bot()
    fake_slack.fail_next("chat.postMessage", 429, retry_after=1)
    fake_slack.fail_next("chat.update", 500)
    ts = await Person(fake_slack, bot).mention("do a")
    await plan_in(fake_slack, ts)
    faulted = [c for c in fake_slack.calls if c.status != 200]
    assert [(c.method, c.status) for c in faulted] == [
        ("chat.postMessage", 429),
        ("chat.update", 500),
    ]


async def test_a_six_step_plan_costs_at_most_twenty_slack_writes(
    open_bot: OpenBot, fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    fake_openai.responder = Router(
        [Reply.plan(*[step(f"s{i}", *([f"s{i - 1}"] if i else [])) for i in range(6)])],
        {f"s{i}": Reply(f"out {i}", delay_s=0.05) for i in range(6)},
    )
    bot = await open_bot()
    alice = Person(fake_slack, bot)
    ts = await alice.mention("six steps")
    plan = await plan_in(fake_slack, ts)
    await alice.press("approve_plan", plan)
    await said(fake_slack, ts, "completed")
    await asyncio.sleep(1.2)  # any coalesced progress edit still due lands now
    writes = len(fake_slack.calls_to("chat.postMessage")) + len(fake_slack.calls_to("chat.update"))
    assert writes <= 20
    progress = next(m for m in thread(fake_slack, ts) if m["text"].startswith("Progress"))
    assert progress["text"].startswith("Progress: 6/6 steps finished")


async def test_a_notify_to_another_channel_asks_first_then_posts_there(
    open_bot: OpenBot, fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    fake_openai.responder = Router(
        [Reply.plan(step("tell", action="notify", input="<#C2|ops> deploy done", tier="read"))]
    )
    bot = await open_bot()
    alice = Person(fake_slack, bot)
    ts = await alice.mention("tell ops the deploy is done")
    await alice.press("approve_plan", await plan_in(fake_slack, ts))
    ask = await said(fake_slack, ts, "Step tell (notify, external) wants to run")
    assert fake_slack.calls_to("chat.postMessage")[-1]["channel"] == "C1"  # nothing sent yet
    await alice.press("run_step", ask)
    await said(fake_slack, ts, "completed")
    posted = [m for m in fake_slack.messages if m["channel"] == "C2"]
    assert [(m["text"], m["thread_ts"]) for m in posted] == [("deploy done", None)]


async def test_a_failed_step_is_replanned_and_the_thread_shows_the_new_plan(
    open_bot: OpenBot, fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    fake_openai.responder = Router(
        [Reply.plan(step("a"), step("b", "a")), Reply.plan(step("a2", description="try again"))],
        {"a": Reply.error(400, "the model refused")},
    )
    bot = await open_bot()
    alice = Person(fake_slack, bot)
    ts = await alice.mention("do a then b")
    await alice.press("approve_plan", await plan_in(fake_slack, ts))
    replanned = await said(fake_slack, ts, "Replanned (replanned after a failed)")
    assert "[a2] research · read · waits for nothing: try again" in replanned["text"]
    summary = await said(fake_slack, ts, "completed")
    assert "[a] failed: do a — the model server answered 400: the model refused" in summary["text"]
    assert "[b] skipped: do b — needs a, which failed (replaced by a new plan)" in summary["text"]


async def test_a_request_keeps_the_people_it_names_and_the_plan_names_them_without_a_ping(
    open_bot: OpenBot, fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    fake_openai.responder = Router([Reply.plan(step("a"))])
    bot = await open_bot()
    ts = await Person(fake_slack, bot).mention("ask <@U2> to review <@UBOT|orchestrator> docs")
    plan = await plan_in(fake_slack, ts)
    planner_prompt = fake_openai.requests[0]["messages"][-1]["content"]
    assert "ask <@U2> to review docs" in planner_prompt
    assert "Plan: ask &lt;@U2&gt; to review docs" in plan["text"]
    assert "<@U2>" not in str(plan)


async def test_a_click_on_a_button_this_version_no_longer_has_is_acked_and_answered(
    open_bot: OpenBot, fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    bot = await open_bot()
    await Person(fake_slack, bot).click("retry_plan", "t-old", message_ts=new_ts())
    note = await fake_slack.wait_for_call("chat.postEphemeral")
    assert note["user"] == "U1"
    assert "no longer in use" in note["text"]
    assert fake_openai.requests == []
