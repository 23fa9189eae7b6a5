"""`python -m bot` as a real process, attacked by its own shell steps: no secret ever gets out."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest

from orchestrator import open_store
from tests.bot_process import SECRETS as PROCESS_SECRETS
from tests.bot_process import BotProcess
from tests.bot_steps import Person, SocketDelivery, buttons, plan_in, thread
from tests.fakes.openai_server import FakeOpenAI, Reply, Router
from tests.fakes.slack_server import FakeSlack
from tests.helpers import bwrap_works, step

DOTENV_SECRET = "dotenv-signing-secret-0123456789"  # only in the bot's .env, not its environment
SECRETS = (*PROCESS_SECRETS, DOTENV_SECRET)
READ_PARENT = "open('/proc/%d/environ' % os.getppid()).read()"
PRINT_PARENT_ENV = f'python3 -c "import os; print({READ_PARENT}.replace(chr(0), chr(10)))"'
FAIL_WITH_PARENT_ENV = f'python3 -c "import os, sys; sys.exit({READ_PARENT})"'


async def stored_outputs(url: str) -> dict[str, str]:
    """Step id -> its output and reason as the bot stored them (the last task's, per id)."""
    store = open_store(url)
    await store.open()
    try:
        tasks = await store.list_tasks()
    finally:
        await store.close()
    return {s.id: f"{s.output} {s.reason}" for t in tasks for s in t.steps}


async def run_task(slack: FakeSlack, channel: str, request: str) -> dict[str, Any]:
    """Mention in `channel`, approve, press Run step on every risky step; the summary once it is
    posted. (A channel each: Slack's one post a second per channel would only slow the test.)"""
    person = Person(slack, SocketDelivery(slack), channel=channel)
    ts = await person.mention(request)
    await person.press("approve_plan", await plan_in(slack, ts, channel))
    pressed: set[str] = set()

    def next_thing() -> dict[str, Any] | None:
        for message in thread(slack, ts, channel):
            if message["text"].startswith(("completed", "failed")):
                return message
            if "run_step" in buttons(message) and message["ts"] not in pressed:
                return message
        return None

    while True:
        await slack.wait_until(next_thing, timeout=20)
        message = next_thing()
        assert message is not None
        if "run_step" not in buttons(message):
            return message
        pressed.add(message["ts"])
        await person.press("run_step", message)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("sandbox", ["bwrap", "none"])
async def test_no_secret_reaches_the_thread_the_log_or_the_model_whatever_a_step_reads(
    sandbox: str, fake_slack: FakeSlack, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    if sandbox == "bwrap" and not await bwrap_works():
        pytest.skip("bwrap cannot run here")
    dotenv = tmp_path / ".env"  # the bot's folder is its working directory
    dotenv.write_text(f"SLACK_SIGNING_SECRET={DOTENV_SECRET}\n")
    fake_openai.responder = Router(
        [
            Reply.plan(
                step("environ", action="shell", input=PRINT_PARENT_ENV, tier="read"),
                step("sum", "environ"),
            ),
            Reply.plan(step("dotenv", action="shell", input="cat .env", tier="read")),
            Reply.plan(step("dotenv", action="shell", input=f"cat {dotenv}", tier="read")),
            Reply.plan(step("crash", action="shell", input=FAIL_WITH_PARENT_ENV, tier="read")),
        ]
    )
    bot = BotProcess(fake_slack, fake_openai, tmp_path)
    bot.env.update(ORCH_SHELL_ALLOW="python3,cat", ORCH_SHELL_SANDBOX=sandbox, ORCH_MAX_REPLANS="0")
    await bot.start()
    environ = await run_task(fake_slack, "C1", "show me your environment")
    relative = await run_task(fake_slack, "C2", "show me your .env")
    absolute = await run_task(fake_slack, "C3", "show me the .env by its full path")
    crash = await run_task(fake_slack, "C4", "fail with your environment")
    assert await bot.stop(signal.SIGTERM) == 0

    assert environ["text"].startswith("completed")
    assert relative["text"].startswith("failed")  # the step ran in a fresh folder, not the bot's
    assert ".env: No such file or directory" in relative["text"]
    assert crash["text"].startswith("failed")
    outputs = await stored_outputs(bot.database_url)
    if sandbox == "bwrap":  # the bot's process and folder are out of sight
        assert "SLACK_" not in outputs["environ"]
        assert absolute["text"].startswith("failed")
    else:  # they are in sight: what was read is masked
        assert "SLACK_BOT_TOKEN=[redacted]" in outputs["environ"]
        assert "SLACK_SIGNING_SECRET=[redacted]" in outputs["dotenv"]
        assert "[redacted]" in outputs["crash"]
    sent = [str(call.args) for call in fake_slack.calls]
    log = bot.log.read_text()
    model = [str(body) for body in fake_openai.requests]
    for secret in SECRETS:
        assert all(secret not in text for text in sent), secret
        assert secret not in log
        assert all(secret not in text for text in model), secret
