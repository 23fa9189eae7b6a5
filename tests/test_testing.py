"""The public scripted LLM drives a whole task with no server, as a user's test would."""

from __future__ import annotations

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
