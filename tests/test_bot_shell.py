"""`python -m bot shell`: the whole conversation in a terminal, with only an LLM endpoint."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from tests.fakes.openai_server import FakeOpenAI, Reply, Router
from tests.helpers import hands_file, step, time_mcp, tool_step

ROOT = Path(__file__).resolve().parent.parent


class Terminal:
    """A `python -m bot shell` process: type lines, read until some text appears."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.seen = ""

    async def type(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{line}\n".encode())
        await self.proc.stdin.drain()

    async def read_until(self, text: str, timeout: float = 10.0) -> str:
        assert self.proc.stdout is not None
        async with asyncio.timeout(timeout):
            while text not in self.seen:
                chunk = await self.proc.stdout.read(4096)
                if not chunk:
                    break
                self.seen += chunk.decode()
        assert text in self.seen, self.seen
        return self.seen


async def _start(fake: FakeOpenAI, tmp_path: Path, **env: str) -> Terminal:
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "OPENAI_", "ORCH_"))
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "shell",
        cwd=tmp_path,
        env={
            **clean,
            "PYTHONPATH": str(ROOT),
            "OPENAI_BASE_URL": fake.base_url,
            "OPENAI_API_KEY": "test-key",
            "ORCH_MODEL": "fake-model",
            "DATABASE_URL": f"sqlite:///{tmp_path}/shell.db",
            **env,
        },
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    return Terminal(proc)


@pytest.mark.timeout(30)
async def test_a_request_is_planned_approved_run_and_summarised_in_the_terminal(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    fake_openai.responder = Router(
        [Reply.plan(step("a", description="find the facts"), step("b", "a", action="write"))],
        {"a": Reply("the facts")},
    )
    term = await _start(fake_openai, tmp_path)
    await term.read_until("Type a request")
    await term.type("summarise the news")
    out = await term.read_until("Type approve or reject.")
    assert "1. [a] research · read · waits for nothing: find the facts" in out
    await term.type("approve")
    out = await term.read_until("Result: done: b")
    assert "executing: 2 steps" in out
    assert "completed. Summary:" in out
    assert "[a] completed: the facts" in out
    await term.type("status")
    await term.read_until("Result: done: b\n", timeout=5)
    assert term.proc.stdin is not None
    term.proc.stdin.close()
    assert await asyncio.wait_for(term.proc.wait(), 10) == 0


@pytest.mark.timeout(30)
async def test_a_risky_step_asks_in_the_terminal_and_skip_skips_it(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    fake_openai.responder = Router([Reply.plan(step("p", action="notify", input="#ops hi"))])
    term = await _start(fake_openai, tmp_path)
    await term.type("tell ops")
    await term.read_until("Type approve or reject.")
    await term.type("approve")
    await term.read_until("Type run p or skip p.")
    await term.type("skip p")
    out = await term.read_until("do p — skipped by you")
    assert "completed. Summary:" in out
    assert term.proc.stdin is not None
    term.proc.stdin.close()
    assert await asyncio.wait_for(term.proc.wait(), 10) == 0


@pytest.mark.timeout(30)
async def test_the_terminal_shows_angle_brackets_and_ampersands_as_typed(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    fake_openai.responder = Router(
        [Reply.plan(step("a", description="read <b> & <i> tags"))],
        {"a": Reply("use <strong> & <em>; &lt; stays as written")},
    )
    term = await _start(fake_openai, tmp_path)
    await term.type("compare <b> & <i>")
    out = await term.read_until("Type approve or reject.")
    assert "Plan: compare <b> & <i>" in out
    assert "waits for nothing: read <b> & <i> tags" in out
    await term.type("approve")
    out = await term.read_until("Result: ")
    assert "[a] completed: use <strong> & <em>; &lt; stays as written" in out
    assert "&amp;" not in out
    assert term.proc.stdin is not None
    term.proc.stdin.close()
    assert await asyncio.wait_for(term.proc.wait(), 10) == 0


@pytest.mark.timeout(30)
async def test_the_terminal_starts_the_mcp_servers_and_runs_tool_steps(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    fake_openai.responder = Router(
        [Reply.plan(tool_step("now", "time.get_current_time", {"timezone": "Asia/Tokyo"}))]
    )
    hands = hands_file(tmp_path, {"time": time_mcp()})
    term = await _start(fake_openai, tmp_path, ORCH_MCP_CONFIG=str(hands))
    await term.type("the time in Tokyo")
    out = await term.read_until("Type approve or reject.")
    assert 'tool · read · waits for nothing: do now — time.get_current_time({"timezone": ' in out
    await term.type("approve")
    out = await term.read_until("completed. Summary:")
    assert '"timezone": "Asia/Tokyo"' in out
    assert term.proc.stdin is not None
    term.proc.stdin.close()
    assert await asyncio.wait_for(term.proc.wait(), 10) == 0
