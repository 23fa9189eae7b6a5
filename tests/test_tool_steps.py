"""Tool steps through the orchestrator: planned, repaired, run, asked, timed out and resumed."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from orchestrator import Action, Phase, Step, StepState, Tier, open_store
from tests.conftest import MakeOrchestrator, OpenToolbox
from tests.fakes.openai_server import FakeOpenAI, Reply, Router
from tests.helpers import (
    eventually,
    eventually_step,
    fake_mcp,
    logged,
    make_step,
    make_task,
    planned,
    run_to_end,
    states,
    step,
    time_mcp,
    tool_step,
)
from tests.postgres import database_url

pytestmark = pytest.mark.timeout(60)
TERMINAL = {Phase.COMPLETED, Phase.FAILED, Phase.CANCELLED}


def _planning_requests(fake: FakeOpenAI) -> list[dict[str, Any]]:
    return [r for r in fake.requests if "planner" in str(r["messages"][0])]


async def test_a_tool_step_gets_an_earlier_steps_output_in_its_arguments(
    make_orchestrator: MakeOrchestrator, open_toolbox: OpenToolbox, fake_openai: FakeOpenAI
) -> None:
    fake_openai.responder = Router(
        [
            Reply.plan(
                step("zone", description="find the office's zone"),
                tool_step("now", "time.get_current_time", {"timezone": "{{zone}}"}, "zone"),
            )
        ],
        {"zone": Reply("Asia/Tokyo")},
    )
    toolbox = await open_toolbox({"time": time_mcp()})
    orch = await make_orchestrator(toolbox=toolbox)
    task = await planned(orch, "what time is it in the Tokyo office?")
    now = task.step("now")
    assert (now.tool, now.tier, json.loads(now.input)) == (
        "time.get_current_time",
        Tier.READ,
        {"timezone": "{{zone}}"},
    )
    task = await run_to_end(orch, task)
    assert task.phase is Phase.COMPLETED
    assert json.loads(task.step("now").output or "")["timezone"] == "Asia/Tokyo"


async def test_the_planner_is_told_the_tools_and_may_choose_the_tool_action(
    make_orchestrator: MakeOrchestrator, open_toolbox: OpenToolbox, fake_openai: FakeOpenAI
) -> None:
    fake_openai.responder = Router([Reply.plan(step("a"))])
    toolbox = await open_toolbox({"time": time_mcp()})
    orch = await make_orchestrator(toolbox=toolbox)
    await planned(orch, "anything")
    [request] = _planning_requests(fake_openai)
    prompt = str(request["messages"])
    assert "- time.get_current_time (tier read): Get current time" in prompt
    assert "timezone (string, required): IANA timezone name" in prompt
    schema = request["response_format"]["json_schema"]["schema"]
    item = schema["properties"]["steps"]["items"]
    assert "tool" in item["properties"]["action"]["enum"]
    assert set(item["required"]) == set(item["properties"])  # strict mode: every key required


async def test_without_a_running_server_no_plan_may_use_the_tool_action(
    make_orchestrator: MakeOrchestrator,
    open_toolbox: OpenToolbox,
    fake_openai: FakeOpenAI,
    tmp_path: Path,
) -> None:
    fake_openai.responder = Router([Reply.plan(step("a"))])
    toolbox = await open_toolbox({"gone": {"command": str(tmp_path / "no-such-server")}})
    orch = await make_orchestrator(toolbox=toolbox)
    await planned(orch, "anything")
    [request] = _planning_requests(fake_openai)
    schema = request["response_format"]["json_schema"]["schema"]
    assert "tool" not in schema["properties"]["steps"]["items"]["properties"]["action"]["enum"]


async def test_an_unknown_tool_and_then_bad_arguments_go_back_to_the_model(
    make_orchestrator: MakeOrchestrator, open_toolbox: OpenToolbox, fake_openai: FakeOpenAI
) -> None:
    fake_openai.responder = Router(
        [
            Reply.plan(tool_step("t", "time.get_time", {"timezone": "UTC"})),
            Reply.plan(tool_step("t", "time.get_current_time", {"zone": "UTC"})),
            Reply.plan(tool_step("t", "time.get_current_time", {"timezone": "UTC"})),
        ]
    )
    toolbox = await open_toolbox({"time": time_mcp()})
    orch = await make_orchestrator(toolbox=toolbox)
    task = await planned(orch, "the time in UTC")
    assert task.step("t").tool == "time.get_current_time"
    first, second, _ = _planning_requests(fake_openai)
    said_first = second["messages"][-1]["content"]
    assert "step 't' names tool 'time.get_time', which is not one of the tools listed" in said_first
    said_second = _planning_requests(fake_openai)[2]["messages"][-1]["content"]
    assert "the arguments do not fit time.get_current_time" in said_second
    assert "'timezone' is a required property" in said_second
    assert first["messages"][-1]["content"] == "the time in UTC"


async def test_an_unannotated_tool_asks_first_and_runs_once_with_its_filled_arguments(
    make_orchestrator: MakeOrchestrator,
    open_toolbox: OpenToolbox,
    fake_openai: FakeOpenAI,
    tmp_path: Path,
) -> None:
    log = tmp_path / "mcp.log"
    fake_openai.responder = Router(
        [
            Reply.plan(
                step("draft"),
                tool_step("keep", "fake.record", {"text": "draft: {{draft}}"}, "draft"),
            )
        ],
        {"draft": Reply("all good")},
    )
    toolbox = await open_toolbox({"fake": fake_mcp(log)})
    orch = await make_orchestrator(toolbox=toolbox)
    task = await planned(orch, "keep a record")
    assert task.step("keep").tier is Tier.DESTRUCTIVE  # the model said read; the server, nothing
    await orch.approve(task.id, user="U1")
    await eventually_step(orch, task.id, "keep", StepState.AWAITING_CONFIRMATION)
    assert not [line for line in logged(log) if " record" in line]
    await orch.confirm_step(task.id, "keep", user="U1", run=True)
    task = await orch.wait(task.id, TERMINAL, timeout=10)
    assert task.step("keep").output == "recorded: draft: all good"
    assert [line.split(" ", 1)[1] for line in logged(log)] == ["start", "record draft: all good"]


async def test_a_tool_answering_an_error_fails_its_step_in_its_words_without_a_retry(
    make_orchestrator: MakeOrchestrator,
    open_toolbox: OpenToolbox,
    fake_openai: FakeOpenAI,
    tmp_path: Path,
) -> None:
    log = tmp_path / "mcp.log"
    fake_openai.responder = Router([Reply.plan(tool_step("f", "fake.fail", {"message": "quota"}))])
    orch = await make_orchestrator(
        toolbox=await open_toolbox({"fake": fake_mcp(log)}), max_replans=0
    )
    task = await run_to_end(orch, await planned(orch, "fail"))
    assert task.phase is Phase.FAILED
    assert (
        task.step("f").reason
        == "fake.fail answered with an error: Error executing tool fail: quota"
    )
    assert [line.split()[1] for line in logged(log)].count("fail") == 1


async def test_the_step_timeout_reaches_the_tool_call(
    make_orchestrator: MakeOrchestrator,
    open_toolbox: OpenToolbox,
    fake_openai: FakeOpenAI,
    tmp_path: Path,
) -> None:
    log = tmp_path / "mcp.log"
    fake_openai.responder = Router([Reply.plan(tool_step("w", "fake.slow", {"seconds": 30}))])
    toolbox = await open_toolbox({"fake": fake_mcp(log)})
    orch = await make_orchestrator(toolbox=toolbox, step_timeout_s=0.5, max_replans=0)
    began = time.monotonic()
    task = await run_to_end(orch, await planned(orch, "wait"))
    assert time.monotonic() - began < 5
    assert task.step("w").reason == "timed out after 0.5s"

    async def heard() -> bool:
        return any(line.endswith(" slow cancelled") for line in logged(log))

    await eventually(heard)


async def test_cancel_during_a_slow_tool_ends_the_task_within_two_seconds(
    make_orchestrator: MakeOrchestrator,
    open_toolbox: OpenToolbox,
    fake_openai: FakeOpenAI,
    tmp_path: Path,
) -> None:
    fake_openai.responder = Router([Reply.plan(tool_step("w", "fake.slow", {"seconds": 30}))])
    toolbox = await open_toolbox({"fake": fake_mcp(tmp_path / "mcp.log")})
    orch = await make_orchestrator(toolbox=toolbox)
    task = await planned(orch, "wait")
    await orch.approve(task.id, user="U1")
    await eventually_step(orch, task.id, "w", StepState.RUNNING)
    began = time.monotonic()
    await orch.cancel(task.id, user="U1")
    task = await orch.wait(task.id, TERMINAL, timeout=5)
    assert time.monotonic() - began < 2.0
    assert states(task) == {"w": "cancelled"}


async def test_after_a_restart_a_read_tool_runs_again_and_any_other_asks_first(
    make_orchestrator: MakeOrchestrator,
    open_toolbox: OpenToolbox,
    tmp_path: Path,
) -> None:
    log = tmp_path / "mcp.log"
    store = open_store(database_url(tmp_path, "orchestrator"))
    await store.open()
    await store.create_task(make_task("t1", phase=Phase.EXECUTING))
    steps = [
        _tool("clock", "time.get_current_time", '{"timezone": "UTC"}', Tier.READ, 0),
        _tool("keep", "fake.record", '{"text": "once"}', Tier.WRITE, 1),
    ]
    await store.save_plan("t1", steps, plan_version=1, actor="planner")
    for s in steps:
        await store.set_step("t1", s.id, old=StepState.PENDING, new=StepState.RUNNING, actor="x")
    await store.close()

    toolbox = await open_toolbox({"time": time_mcp(), "fake": fake_mcp(log)})
    orch = await make_orchestrator(toolbox=toolbox)
    task = await eventually_step(orch, "t1", "keep", StepState.AWAITING_CONFIRMATION)
    assert "interrupted by a restart; it may have run already" in (task.step("keep").reason or "")
    task = await eventually_step(orch, "t1", "clock", StepState.COMPLETED)
    assert json.loads(task.step("clock").output or "")["timezone"] == "UTC"
    await orch.confirm_step("t1", "keep", user="U1", run=True)
    task = await orch.wait("t1", TERMINAL, timeout=10)
    assert task.step("keep").output == "recorded: once"


def _tool(step_id: str, tool: str, arguments: str, tier: Tier, position: int) -> Step:
    step = make_step(step_id, position=position, action=Action.TOOL, tier=tier, tool=tool)
    return step.evolve(input=arguments)
