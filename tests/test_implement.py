"""Implement steps through the orchestrator: planned, run by coding agents, escalated, reported.

A real orchestrator with the fake OpenAI server (or the scripted LLM), fake agent CLIs as real
processes, and a real git work tree.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import openai
import pytest

from orchestrator import (
    Action,
    Agent,
    Isolation,
    OpenAILLM,
    Orchestrator,
    Phase,
    PlanValidationError,
    StepState,
    Tier,
    detect_isolation,
    open_store,
    summary_text,
)
from orchestrator._agents import CodingAgents
from orchestrator._planner import Planner, plan_schema
from orchestrator.testing import ScriptedLLM
from tests.conftest import TEST_CONFIG, MakeOrchestrator
from tests.fakes.openai_server import FakeOpenAI, Reply
from tests.helpers import (
    alive_with,
    appears,
    eventually_step,
    fake_agent,
    init_repo,
    planned,
    records,
    run_to_end,
    states,
    step,
)
from tests.postgres import database_url

pytestmark = pytest.mark.timeout(30)
TERMINAL = {Phase.COMPLETED, Phase.FAILED, Phase.CANCELLED}
SPEC = "Add a changelog line saying hello"


def implement(step_id: str = "s1", *deps: str, tier: str = "execute") -> dict[str, object]:
    return step(step_id, *deps, action="implement", input=SPEC, tier=tier)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return init_repo(tmp_path / "repo")


@pytest.fixture
def record(tmp_path: Path) -> Path:
    return tmp_path / "record.jsonl"


async def test_the_first_agent_fails_the_second_succeeds_and_the_summary_says_recovered_via_it(
    make_orchestrator: MakeOrchestrator, fake_openai: FakeOpenAI, repo: Path, record: Path
) -> None:
    fake_openai.script(Reply.plan(implement()))
    agents = [
        fake_agent("first", "crash", record=record, cwd=str(repo)),
        fake_agent("second", "edit", style="codex", record=record, cwd=str(repo)),
    ]
    orch = await make_orchestrator(agents=agents)
    task = await run_to_end(orch, await planned(orch, "add a changelog line"))
    assert task.phase is Phase.COMPLETED, task.reason
    output = task.step("s1").output or ""
    assert output.startswith("recovered via second (first: exited with code 1: ")
    assert "Added the change to CHANGES.md." in output
    assert "git diff --stat:" in output
    assert "recovered via second" in summary_text(task)
    assert (repo / "CHANGES.md").exists()


async def test_when_every_agent_fails_the_task_fails_escalated_to_a_person_without_a_replan(
    make_orchestrator: MakeOrchestrator, fake_openai: FakeOpenAI, repo: Path, record: Path
) -> None:
    fake_openai.script(Reply.plan(implement(), step("after", "s1")))
    agents = [
        fake_agent("first", "error", style="codex", record=record, cwd=str(repo)),
        fake_agent("second", "deny", record=record, cwd=str(repo)),
    ]
    orch = await make_orchestrator(agents=agents, max_replans=2)
    task = await run_to_end(orch, await planned(orch, "add a changelog line"))
    assert task.phase is Phase.FAILED
    assert (task.reason or "").startswith(
        "step s1 failed: escalated to a person: first: exited 0 but reported an error: "
    )
    assert "; second: exited 0 but changed nothing in the work tree" in (task.reason or "")
    assert states(task) == {"s1": "failed", "after": "skipped"}
    assert len(fake_openai.requests) == 1  # the plan; no replan: a person is next
    assert len(records(record)) == 2  # each agent ran once, never retried


async def test_a_scripted_task_hands_its_spec_to_the_agents(
    tmp_path: Path, repo: Path, record: Path
) -> None:
    llm = ScriptedLLM([{"steps": [implement()]}])
    agents = [fake_agent("only", "edit", record=record, cwd=str(repo))]
    async with Orchestrator(
        store=open_store(database_url(tmp_path, "x")), llm=llm, agents=agents, config=TEST_CONFIG
    ) as orch:
        task = await run_to_end(orch, await planned(orch, "add a changelog line"))
    assert task.phase is Phase.COMPLETED, task.reason
    assert (task.step("s1").output or "").startswith("implemented by only\n")
    assert [r["spec"] for r in records(record)] == [SPEC]
    assert len(llm.calls) == 1  # the plan; the agent, not the model, did the step


async def test_cancel_kills_a_sleeping_agent_within_two_seconds(
    make_orchestrator: MakeOrchestrator,
    fake_openai: FakeOpenAI,
    repo: Path,
    record: Path,
    tmp_path: Path,
) -> None:
    fake_openai.script(Reply.plan(implement()))
    orch = await make_orchestrator(
        agents=[fake_agent("first", "sleep", record=record, cwd=str(repo))]
    )
    task = await planned(orch, "add a changelog line")
    await orch.approve(task.id, user="U1")
    await eventually_step(orch, task.id, "s1", StepState.RUNNING)
    await appears(tmp_path / "started")
    started = time.monotonic()
    await orch.cancel(task.id, user="U1")
    task = await orch.wait(task.id, TERMINAL, timeout=5)
    assert time.monotonic() - started < 2.0
    assert task.phase is Phase.CANCELLED
    assert alive_with(str(record)) == []


async def test_an_implement_step_may_outlast_the_step_timeout_within_its_agents_timeouts(
    make_orchestrator: MakeOrchestrator, fake_openai: FakeOpenAI, repo: Path, record: Path
) -> None:
    fake_openai.script(Reply.plan(implement()))
    agent = fake_agent("first", "edit", record=record, cwd=str(repo), delay=0.8, timeout_s=10)
    orch = await make_orchestrator(agents=[agent], step_timeout_s=0.3)
    task = await run_to_end(orch, await planned(orch, "add a changelog line"))
    assert task.phase is Phase.COMPLETED, task.reason


async def test_an_interrupted_implement_step_asks_again_after_a_restart(
    make_orchestrator: MakeOrchestrator,
    fake_openai: FakeOpenAI,
    repo: Path,
    record: Path,
    tmp_path: Path,
) -> None:
    fake_openai.script(Reply.plan(implement()))
    agents = [fake_agent("first", "sleep", record=record, cwd=str(repo))]
    orch = await make_orchestrator(agents=agents)
    task = await planned(orch, "add a changelog line")
    await orch.approve(task.id, user="U1")
    await appears(tmp_path / "started")
    await orch.close()  # as a stop would: the step stays running in the store
    assert alive_with(str(record)) == []

    again = await make_orchestrator(agents=agents)
    task = await eventually_step(again, task.id, "s1", StepState.AWAITING_CONFIRMATION)
    reason = task.step("s1").reason or ""
    assert reason.startswith("interrupted by a restart; it may have run already; ")
    if await detect_isolation("none") is Isolation.PDEATHSIG:  # how agents are held here
        assert "the old run is over: its process was stopped with the bot" in reason
    await again.confirm_step(task.id, "s1", user="U1", run=False)
    task = await again.wait(task.id, TERMINAL, timeout=5)
    assert states(task) == {"s1": "skipped"}


async def test_an_agent_of_a_risky_tier_makes_implement_steps_ask_before_they_run(
    make_orchestrator: MakeOrchestrator, fake_openai: FakeOpenAI, repo: Path, record: Path
) -> None:
    fake_openai.script(Reply.plan(implement(tier="read")))
    agents = [
        fake_agent("first", "edit", record=record, cwd=str(repo)),
        fake_agent("pusher", "edit", record=record, cwd=str(repo), tier=Tier.DESTRUCTIVE),
    ]
    orch = await make_orchestrator(agents=agents)
    task = await planned(orch, "add a changelog line")
    assert task.step("s1").tier is Tier.DESTRUCTIVE
    await orch.approve(task.id, user="U1")
    await eventually_step(orch, task.id, "s1", StepState.AWAITING_CONFIRMATION)
    assert records(record) == []  # nothing ran before a person said so
    await orch.confirm_step(task.id, "s1", user="U1", run=True)
    task = await orch.wait(task.id, TERMINAL, timeout=10)
    assert task.phase is Phase.COMPLETED, task.reason


async def test_an_implement_step_is_at_least_execute(
    openai_client: openai.AsyncOpenAI,
) -> None:
    agents = CodingAgents([Agent("a", "a", tier=Tier.WRITE)])
    planner = Planner(OpenAILLM(openai_client, model="m"), TEST_CONFIG, agents=agents)
    [s1] = planner.parse_plan(json.dumps({"steps": [implement(tier="read")]}))
    assert s1.tier is Tier.EXECUTE


async def test_without_agents_the_planner_does_not_offer_implement(
    openai_client: openai.AsyncOpenAI,
) -> None:
    llm = OpenAILLM(openai_client, model="m")
    without, with_agents = (
        Planner(llm, TEST_CONFIG),
        Planner(llm, TEST_CONFIG, agents=CodingAgents([Agent("a", "a")])),
    )
    assert Action.IMPLEMENT not in without.actions
    assert Action.IMPLEMENT in with_agents.actions
    enum = plan_schema(without.actions)["properties"]["steps"]["items"]["properties"]["action"]
    assert "implement" not in enum["enum"]
    plan = '{"steps": [{"id": "s1", "description": "d", "action": "implement", "input": "x"}]}'
    with pytest.raises(PlanValidationError, match="'implement'; use one of"):
        without.parse_plan(plan)
    assert with_agents.parse_plan(plan)[0].action is Action.IMPLEMENT
