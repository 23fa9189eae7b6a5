"""The public scripted LLM drives a whole task with no server, as a user's test would."""

from __future__ import annotations

import asyncio
from pathlib import Path

from orchestrator import Orchestrator, Phase, SqliteStore
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
