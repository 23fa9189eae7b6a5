"""Implement steps as a person in Slack sees them, with coding agents from the hands file.

The real bot (in this process, or `python -m bot`) against the fake Slack and OpenAI, fake agent
CLIs as real processes, and a real git work tree.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bot.check import run_check
from orchestrator import Isolation, detect_isolation
from tests.bot_process import SECRETS, BotProcess
from tests.bot_steps import Person, SocketDelivery, buttons, plan_in, said, shown
from tests.conftest import OpenBot, bot_settings
from tests.fakes.openai_server import FakeOpenAI, Reply, Router
from tests.fakes.slack_server import FakeSlack
from tests.helpers import (
    alive_with,
    appears,
    eventually,
    fake_agent_config,
    init_repo,
    records,
    step,
)
from tests.test_bot_shell import _start as start_terminal

pytestmark = pytest.mark.timeout(60)
ROOT = Path(__file__).resolve().parent.parent
SPEC = "Add a changelog line saying hello"


def write_hands(path: Path, agents: dict[str, dict[str, Any]]) -> Path:
    path.write_text(json.dumps({"agents": agents}))
    return path


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return init_repo(tmp_path / "repo")


@pytest.fixture
def record(tmp_path: Path) -> Path:
    return tmp_path / "record.jsonl"


def implement_plan() -> Reply:
    return Reply.plan(step("s1", action="implement", input=SPEC, tier="read"))


async def test_a_failed_agent_is_escalated_and_the_summary_says_which_one_recovered(
    open_bot: OpenBot, fake_slack: FakeSlack, fake_openai: FakeOpenAI, tmp_path: Path, repo: Path
) -> None:
    record = tmp_path / "record.jsonl"
    hands = write_hands(
        tmp_path / "hands.json",
        {
            "first": fake_agent_config("crash", record=record, cwd=str(repo)),
            "second": fake_agent_config("edit", style="codex", record=record, cwd=str(repo)),
        },
    )
    fake_openai.responder = Router([implement_plan()])
    bot = await open_bot(orch_mcp_config=str(hands))
    alice = Person(fake_slack, bot)
    ts = await alice.mention("add a changelog line")
    plan = await plan_in(fake_slack, ts)
    assert "1. [s1] implement · execute · waits for nothing: do s1" in plan["text"]
    await alice.press("approve_plan", plan)
    summary = await said(fake_slack, ts, "completed")
    assert "[s1] completed: recovered via second (first: exited with code 1: " in summary["text"]
    assert "Added the change to CHANGES.md." in summary["text"]
    assert (repo / "CHANGES.md").read_text() == f"{SPEC}\n"


async def test_when_every_agent_fails_the_thread_says_it_was_escalated_to_a_person(
    open_bot: OpenBot, fake_slack: FakeSlack, fake_openai: FakeOpenAI, tmp_path: Path, repo: Path
) -> None:
    record = tmp_path / "record.jsonl"
    hands = write_hands(
        tmp_path / "hands.json",
        {
            "first": fake_agent_config("error", style="codex", record=record, cwd=str(repo)),
            "second": fake_agent_config("deny", record=record, cwd=str(repo)),
        },
    )
    fake_openai.responder = Router([implement_plan()])
    bot = await open_bot(orch_mcp_config=str(hands))
    alice = Person(fake_slack, bot)
    ts = await alice.mention("add a changelog line")
    await alice.press("approve_plan", await plan_in(fake_slack, ts))
    failed = await said(fake_slack, ts, "failed: step s1 failed: escalated to a person: ")
    assert "first: exited 0 but reported an error: stream disconnected" in failed["text"]
    assert "; second: exited 0 but changed nothing in the work tree" in failed["text"]
    assert "\n1. [s1] failed: do s1 — escalated to a person: first: " in failed["text"]


@pytest.mark.timeout(90)
async def test_an_agent_sees_no_secret_dies_with_the_bot_and_the_step_asks_again_after_a_restart(
    fake_slack: FakeSlack, fake_openai: FakeOpenAI, tmp_path: Path, repo: Path, record: Path
) -> None:
    if await detect_isolation("none") is not Isolation.PDEATHSIG:
        pytest.skip("setpriv --pdeathsig is not available here")
    hands = write_hands(
        tmp_path / "hands.json",
        {"sleepy": fake_agent_config("sleep", record=record, cwd=str(repo), env={"MINE": "1"})},
    )
    fake_openai.responder = Router([implement_plan()])
    bot = BotProcess(fake_slack, fake_openai, tmp_path, ORCH_MCP_CONFIG=str(hands))
    await bot.start()
    alice = Person(fake_slack, SocketDelivery(fake_slack))
    ts = await alice.mention("add a changelog line")
    await alice.press("approve_plan", await plan_in(fake_slack, ts))
    await appears(tmp_path / "started")
    [got] = records(record)
    assert got["env"]["MINE"] == "1"
    for secret in SECRETS:
        assert secret not in json.dumps(got), secret
    assert not any(name.startswith(("SLACK_", "OPENAI_")) for name in got["env"])

    await bot.stop(signal.SIGKILL)

    async def is_gone() -> bool:
        return not alive_with(str(record))

    await eventually(is_gone, timeout=3)  # SIGKILLed with the bot (setpriv --pdeathsig)

    await bot.start()
    ask = await said(fake_slack, ts, "Step s1 (implement, execute) wants to run")
    assert "interrupted by a restart; it may have run already" in ask["text"]
    await alice.press("skip_step", ask)
    await said(fake_slack, ts, "completed")
    assert buttons(shown(fake_slack, ask["ts"])) == {}
    assert await bot.stop(signal.SIGTERM) == 0


async def test_the_terminal_shell_hands_implement_steps_to_the_agents(
    fake_openai: FakeOpenAI, tmp_path: Path, repo: Path, record: Path
) -> None:
    hands = write_hands(
        tmp_path / "hands.json", {"only": fake_agent_config("edit", record=record, cwd=str(repo))}
    )
    fake_openai.responder = Router([implement_plan()])
    term = await start_terminal(fake_openai, tmp_path, ORCH_MCP_CONFIG=str(hands))
    await term.type("add a changelog line")
    await term.read_until("Type approve or reject.")
    await term.type("approve")
    out = await term.read_until("completed. Summary:")
    assert "[s1] completed: implemented by only" in out
    assert term.proc.stdin is not None
    term.proc.stdin.close()
    assert await asyncio.wait_for(term.proc.wait(), 10) == 0


async def test_check_lists_each_agent_with_its_command_and_tier(
    fake_slack: FakeSlack, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    hands = write_hands(
        tmp_path / "hands.json",
        {
            "claude": {"command": sys.executable, "args": ["-p", "{spec}"], "tier": "destructive"},
            "codex": {"command": "no-such-codex", "args": ["exec", "{spec}"]},
        },
    )
    settings = bot_settings(fake_slack, fake_openai, tmp_path, orch_mcp_config=str(hands))
    out = io.StringIO()
    assert await run_check(settings, out) == 1
    lines = out.getvalue().splitlines()
    assert f"agent claude: {sys.executable} (found at {sys.executable}); tier destructive" in lines
    assert (
        "agent codex: no-such-codex (NOT found on /usr/local/bin:/usr/bin:/bin); tier execute"
        in lines
    )
    [problem] = [line for line in lines if line.startswith("problem:")]
    assert problem.startswith("problem: ORCH_MCP_CONFIG: agent codex: no-such-codex is not found")


async def test_check_says_when_there_are_no_agents_and_names_a_bad_hands_file(
    fake_slack: FakeSlack, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    out = io.StringIO()
    assert await run_check(bot_settings(fake_slack, fake_openai, tmp_path), out) == 0
    assert "agents: none (implement steps are off)" in out.getvalue().splitlines()
    bad = tmp_path / "hands.json"
    bad.write_text('{"agents": {"x": {"args": []}}}')
    settings = bot_settings(fake_slack, fake_openai, tmp_path, orch_mcp_config=str(bad))
    out = io.StringIO()
    assert await run_check(settings, out) == 1
    assert f"problem: ORCH_MCP_CONFIG ({bad}): agents.x.command: Field required" in out.getvalue()


def test_a_bad_hands_file_stops_start_up_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "hands.json"
    bad.write_text('{"agents": {"x": {"command": "x", "tier": "scary"}}}')
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "OPENAI_", "ORCH_"))
    }
    env = {
        **clean,
        "PYTHONPATH": str(ROOT),
        "SLACK_BOT_TOKEN": "xoxb-test",
        "SLACK_APP_TOKEN": "xapp-test",
        "OPENAI_API_KEY": "test-key",
        "DATABASE_URL": "sqlite:///:memory:",
        "ORCH_MCP_CONFIG": str(bad),
    }
    for command in ("run", "shell"):
        result = subprocess.run(
            [sys.executable, "-m", "bot", command],
            cwd=ROOT / "tests",
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert result.returncode == 2
        [line] = result.stderr.splitlines()
        assert line.startswith(f"ORCH_MCP_CONFIG ({bad}): agents.x.tier: ")
