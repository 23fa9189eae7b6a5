"""The public scripted LLM drives a whole task with no server, as a user's test would."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator import Orchestrator, OrchestratorConfig, Phase, SqliteStore, StepState
from orchestrator._graph import dependents
from orchestrator.testing import ScriptedLLM
from tests.helpers import step


async def test_a_scripted_llm_plans_and_answers_steps(tmp_path: Path) -> None:
    llm = ScriptedLLM([{"steps": [step("a"), step("b", "a")]}], answers={"a": "alpha"})
    async with Orchestrator(store=SqliteStore(tmp_path / "x.db"), llm=llm) as orch:
        task = await orch.submit("x", requester="U1", scope="s")
        await orch.wait(task.id, {Phase.AWAITING_APPROVAL}, timeout=5)
        await orch.approve(task.id, user="U1")
        done = await orch.wait(task.id, {Phase.COMPLETED, Phase.FAILED}, timeout=5)
    assert done.phase is Phase.COMPLETED
    assert [s.output for s in done.steps] == ["alpha", "done: b"]
    assert "alpha" in llm.calls[-1][-1]["content"]  # b saw a's output


async def test_many_tasks_waited_on_at_once_each_see_their_plan(tmp_path: Path) -> None:
    # Overlapping reads once shared a stale snapshot: some waits never saw their plan arrive.
    plans = [{"steps": [step("a")]}] * 60
    async with Orchestrator(store=SqliteStore(tmp_path / "x.db"), llm=ScriptedLLM(plans)) as orch:
        tasks = [await orch.submit(f"r{i}", requester="U1", scope="s") for i in range(60)]
        waits = [orch.wait(t.id, {Phase.AWAITING_APPROVAL}, timeout=5) for t in tasks]
        done = await asyncio.gather(*waits)
    assert {t.phase for t in done} == {Phase.AWAITING_APPROVAL}


@st.composite
def plans_with_failures(draw: st.DrawFn) -> tuple[list[dict[str, Any]], set[str]]:
    """A random DAG of up to 8 steps and a random set of steps that fail."""
    count = draw(st.integers(min_value=1, max_value=8))
    steps = []
    for i in range(count):
        deps = draw(st.sets(st.sampled_from([f"s{j}" for j in range(i)]))) if i else set()
        steps.append(step(f"s{i}", *sorted(deps)))
    failing = draw(st.sets(st.sampled_from([s["id"] for s in steps])))
    return steps, failing


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(plans_with_failures())
async def test_every_task_ends_terminal_with_exactly_the_dependents_of_failures_skipped(
    tmp_path: Path, case: tuple[list[dict[str, Any]], set[str]]
) -> None:
    steps, failing = case
    llm = ScriptedLLM([{"steps": steps}], failing=failing)
    config = OrchestratorConfig(max_replans=0, max_parallel=3)
    db = tmp_path / f"{uuid.uuid4().hex}.db"
    async with Orchestrator(store=SqliteStore(db), llm=llm, config=config) as orch:
        task = await orch.submit("x", requester="U1", scope="s")
        await orch.wait(task.id, {Phase.AWAITING_APPROVAL}, timeout=5)
        await orch.approve(task.id, user="U1")
        done = await orch.wait(task.id, {Phase.COMPLETED, Phase.FAILED}, timeout=10)
    assert done.phase is (Phase.FAILED if failing else Phase.COMPLETED)
    assert all(s.state.is_terminal for s in done.steps), done.steps
    failed = {s.id for s in done.steps if s.state is StepState.FAILED}
    assert failed <= failing
    assert not any(s.state is StepState.COMPLETED for s in done.steps if s.id in failing)
    for step_id in failed:
        for dep in dependents(done.steps, step_id):
            assert done.step(dep).state is StepState.SKIPPED, done.step(dep)
    if failing:
        assert failed, "a failing step was run and failed"
    else:
        assert {s.state for s in done.steps} == {StepState.COMPLETED}
