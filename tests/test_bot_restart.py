"""`python -m bot` as a real process: killed or stopped and started again on the same database."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from tests.bot_steps import Person, SocketDelivery, plan_in, said
from tests.fakes.openai_server import FakeOpenAI, Reply, Router
from tests.fakes.slack_server import FakeSlack
from tests.helpers import step

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.timeout(60)


class BotProcess:
    """One `python -m bot` process in Socket Mode against the fakes, logging to a file."""

    def __init__(self, slack: FakeSlack, llm: FakeOpenAI, tmp_path: Path) -> None:
        self.slack = slack
        self.log = tmp_path / "bot.log"
        clean = {
            k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "OPENAI_", "ORCH_"))
        }
        self.env = {
            **clean,
            "PYTHONPATH": str(ROOT),
            "SLACK_BOT_TOKEN": "xoxb-secret-bot-token",
            "SLACK_APP_TOKEN": "xapp-secret-app-token",
            "SLACK_API_URL": slack.api_url.rstrip("/"),  # the bot adds the slash
            "OPENAI_API_KEY": "sk-secret-llm-key",
            "OPENAI_BASE_URL": llm.base_url,
            "ORCH_MODEL": "fake-model",
            "DATABASE_URL": f"sqlite:///{tmp_path}/bot.db",
        }
        self.cwd = tmp_path
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        before = self.slack.connections
        with self.log.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", cwd=self.cwd, env=self.env, stdout=log, stderr=log
            )
        await self.slack.wait_until(lambda: self.slack.connections > before, timeout=20)

    async def stop(self, sig: signal.Signals) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        code = await asyncio.wait_for(self.proc.wait(), 15)
        await self.slack.wait_until(lambda: self.slack.connections == 0, timeout=10)
        return code


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
    for secret in ("xoxb-secret-bot-token", "xapp-secret-app-token", "sk-secret-llm-key"):
        assert secret not in log
        assert all(secret not in str(c.args) for c in fake_slack.calls)
