"""`python -m bot` as a real process: killed or stopped and started again on the same database."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.bot_process import SECRETS, BotProcess
from tests.bot_steps import Person, SocketDelivery, plan_in, said
from tests.fakes.openai_server import FakeOpenAI, Reply, Router
from tests.fakes.slack_server import FakeSlack
from tests.helpers import step

pytestmark = pytest.mark.timeout(60)


async def test_every_button_still_works_after_the_bot_is_killed_and_started_again(
    fake_slack: FakeSlack, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    fake_openai.responder = Router([Reply.plan(step("a"))])
    bot = BotProcess(fake_slack, fake_openai, tmp_path)
    await bot.start()
    alice = Person(fake_slack, SocketDelivery(fake_slack))
    ts = await alice.mention("do a")
    plan = await plan_in(fake_slack, ts)
    await bot.stop(signal.SIGKILL)

    await bot.start()
    await alice.press("approve_plan", plan)
    await said(fake_slack, ts, "completed")
    await alice.say("status", thread_ts=ts)
    await fake_slack.wait_until(
        lambda: sum(m["text"].startswith("completed") for m in fake_slack.thread("C1", ts)) == 2
    )
    await bot.stop(signal.SIGTERM)


async def test_sigterm_mid_step_exits_cleanly_and_the_next_start_finishes_the_work(
    fake_slack: FakeSlack, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    router = Router(
        [Reply.plan(step("slow"), step("after", "slow"))],
        {"slow": [Reply("first try", delay_s=30), Reply("second try")]},
    )
    fake_openai.responder = router
    bot = BotProcess(fake_slack, fake_openai, tmp_path)
    await bot.start()
    alice = Person(fake_slack, SocketDelivery(fake_slack))
    ts = await alice.mention("slow work")
    plan = await plan_in(fake_slack, ts)
    await alice.press("approve_plan", plan)
    await fake_slack.wait_until(lambda: fake_openai.in_flight == 1, timeout=10)
    assert await bot.stop(signal.SIGTERM) == 0

    await bot.start()
    summary = await said(
        fake_slack,
        ts,
        "completed",
    )
    assert "[slow] completed: second try" in summary["text"]
    assert router.step_calls == ["slow", "slow", "after"]
    await bot.stop(signal.SIGTERM)
    log = bot.log.read_text()
    for secret in SECRETS:
        assert secret not in log
        assert all(secret not in str(c.args) for c in fake_slack.calls)
