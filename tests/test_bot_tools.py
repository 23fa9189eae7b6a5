"""Tool steps end to end: the real bot, fake Slack and OpenAI, real MCP servers over stdio."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import pytest

from bot.check import run_check
from tests.bot_steps import Person, SocketDelivery, plan_in, said, shown, thread
from tests.conftest import StartBot, bot_settings
from tests.fakes.openai_server import FakeOpenAI, Reply, Router
from tests.fakes.slack_server import FakeSlack
from tests.helpers import (
    eventually,
    fake_mcp,
    hands_file,
    http_mcp,
    logged,
    step,
    time_mcp,
    tool_step,
)

pytestmark = pytest.mark.timeout(60)


async def _alice(
    start_bot: StartBot, fake_slack: FakeSlack, hands: Path, **settings: Any
) -> Person:
    await start_bot(orch_mcp_config=str(hands), **settings)
    return Person(fake_slack, SocketDelivery(fake_slack))


async def test_a_read_only_tool_runs_unasked_and_a_destructive_one_asks_with_its_arguments(
    start_bot: StartBot, fake_slack: FakeSlack, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    log = tmp_path / "mcp.log"
    fake_openai.responder = Router(
        [
            Reply.plan(
                step("zone", description="find the office's zone"),
                tool_step("now", "time.get_current_time", {"timezone": "{{zone}}"}, "zone"),
                tool_step("keep", "fake.record", {"text": "office in {{zone}} & co"}, "zone"),
            )
        ],
        {"zone": Reply("Europe/Paris")},
    )
    hands = hands_file(tmp_path, {"time": time_mcp(), "fake": fake_mcp(log)})
    alice = await _alice(start_bot, fake_slack, hands)
    ts = await alice.mention("what time is it at the office? note it")
    plan = await plan_in(fake_slack, ts)
    assert (
        '[now] tool · read · waits for zone: do now — time.get_current_time({"timezone": '
        '"{{zone}}"})'
    ) in plan["text"]
    assert "[keep] tool · destructive · waits for zone" in plan["text"]
    await alice.press("approve_plan", plan)

    ask = await said(fake_slack, ts, "Step keep (tool, destructive) wants to run: ")
    assert 'fake.record({"text": "office in Europe/Paris &amp; co"})' in ask["text"]
    assert not [m for m in thread(fake_slack, ts) if m["text"].startswith("Step now")]
    assert not [line for line in logged(log) if " record " in line]  # nothing ran unasked
    await alice.press("run_step", ask)
    summary = await said(fake_slack, ts, "completed")
    assert '"timezone": "Europe/Paris"' in summary["text"]
    assert "[keep] completed: recorded: office in Europe/Paris &amp; co" in summary["text"]
    assert "run by <@U1>" in shown(fake_slack, ask["ts"])["text"]
    assert [line.split(" ", 1)[1] for line in logged(log)] == [
        "start",
        "record office in Europe/Paris & co",
    ]


async def test_a_plan_naming_an_unknown_tool_is_repaired_by_the_models_second_answer(
    start_bot: StartBot, fake_slack: FakeSlack, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    fake_openai.responder = Router(
        [
            Reply.plan(tool_step("t", "time.what_time", {"timezone": "UTC"})),
            Reply.plan(tool_step("t", "time.get_current_time", {"timezone": "UTC"})),
        ]
    )
    alice = await _alice(start_bot, fake_slack, hands_file(tmp_path, {"time": time_mcp()}))
    ts = await alice.mention("the time in UTC")
    plan = await plan_in(fake_slack, ts)
    assert 'time.get_current_time({"timezone": "UTC"})' in plan["text"]
    repair = fake_openai.requests[1]["messages"][-1]["content"]
    assert "step 't' names tool 'time.what_time', which is not one of the tools listed" in repair


async def test_a_plan_with_bad_arguments_is_repaired_by_the_models_second_answer(
    start_bot: StartBot, fake_slack: FakeSlack, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    fake_openai.responder = Router(
        [
            Reply.plan(tool_step("t", "time.get_current_time", {"timezone": 7})),
            Reply.plan(tool_step("t", "time.get_current_time", {"timezone": "UTC"})),
        ]
    )
    alice = await _alice(start_bot, fake_slack, hands_file(tmp_path, {"time": time_mcp()}))
    ts = await alice.mention("the time in UTC")
    await alice.press("approve_plan", await plan_in(fake_slack, ts))
    await said(fake_slack, ts, "completed")
    repair = fake_openai.requests[1]["messages"][-1]["content"]
    assert "the arguments do not fit time.get_current_time: timezone: 7 is not of type" in repair


async def test_a_server_that_cannot_start_leaves_the_bot_serving_without_its_tools(
    start_bot: StartBot, fake_slack: FakeSlack, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    fake_openai.responder = Router([Reply.plan(step("a"))])
    hands = hands_file(tmp_path, {"broken": {"command": str(tmp_path / "no-such-server")}})
    alice = await _alice(start_bot, fake_slack, hands)
    ts = await alice.mention("do a")
    await alice.press("approve_plan", await plan_in(fake_slack, ts))
    await said(fake_slack, ts, "completed")
    prompt = fake_openai.requests[0]["messages"][0]["content"]
    assert prompt.rstrip().endswith("Tools a tool step may call:\nnone")


async def test_a_server_killed_mid_call_fails_its_step_clearly(
    start_bot: StartBot, fake_slack: FakeSlack, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    log = tmp_path / "mcp.log"
    fake_openai.responder = Router([Reply.plan(tool_step("end", "fake.die", {}))])
    hands = hands_file(tmp_path, {"fake": fake_mcp(log)})
    alice = await _alice(start_bot, fake_slack, hands, orch_max_replans=0)
    ts = await alice.mention("end it")
    await alice.press("approve_plan", await plan_in(fake_slack, ts))
    summary = await said(fake_slack, ts, "failed: ")
    assert (
        "1. [end] failed: do end — MCP server fake stopped during the call to die, and again "
        "after a restart"
    ) in summary["text"]
    assert [line.split()[1] for line in logged(log)].count("die") == 2


async def test_cancel_during_a_slow_tool_ends_the_task_within_two_seconds(
    start_bot: StartBot, fake_slack: FakeSlack, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    log = tmp_path / "mcp.log"
    fake_openai.responder = Router([Reply.plan(tool_step("w", "fake.slow", {"seconds": 30}))])
    alice = await _alice(start_bot, fake_slack, hands_file(tmp_path, {"fake": fake_mcp(log)}))
    ts = await alice.mention("wait a while")
    await alice.press("approve_plan", await plan_in(fake_slack, ts))

    async def calling() -> bool:
        return any(line.endswith(" slow 30.0") for line in logged(log))

    await eventually(calling, timeout=10)
    began = time.monotonic()
    await alice.say("cancel", thread_ts=ts)
    summary = await said(fake_slack, ts, "cancelled")
    assert time.monotonic() - began < 2.0
    assert "[w] cancelled" in summary["text"]


async def test_check_lists_each_server_with_its_tools_and_fails_when_one_cannot_start(
    fake_slack: FakeSlack, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    async with http_mcp(tmp_path / "mcp.log") as url:
        hands = hands_file(
            tmp_path,
            {
                "time": time_mcp(tiers={"convert_time": "write"}),
                "web": {"url": url, "tools": ["record", "post"]},
                "broken": {"command": str(tmp_path / "no-such-server")},
            },
        )
        settings = bot_settings(fake_slack, fake_openai, tmp_path, orch_mcp_config=str(hands))
        out = io.StringIO()
        assert await run_check(settings, out) == 1
    lines = [line for line in out.getvalue().splitlines() if line.startswith("mcp")]
    assert lines == [
        "mcp time: started; 2 tools",
        "mcp   time.get_current_time: read",
        "mcp   time.convert_time: write (set in the file)",
        "mcp web: started; 2 tools",
        "mcp   web.record: destructive",
        "mcp   web.post: external",
        f"mcp broken: cannot start: No such file or directory: {tmp_path}/no-such-server",
    ]
    [problem] = [line for line in out.getvalue().splitlines() if line.startswith("problem:")]
    assert problem.startswith("problem: ORCH_MCP_CONFIG: MCP server broken cannot start")


async def test_check_without_a_hands_file_says_there_are_no_servers(
    fake_slack: FakeSlack, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    out = io.StringIO()
    assert await run_check(bot_settings(fake_slack, fake_openai, tmp_path), out) == 0
    assert "mcp: no servers (ORCH_MCP_CONFIG names none)" in out.getvalue()
