"""The outbox: what a task's thread must show is written with the change it reports."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from orchestrator import (
    Orchestrator,
    OrchestratorConfig,
    Phase,
    Slot,
    SlotKind,
    SqliteStore,
    StepState,
    Store,
    open_store,
    plan_decision,
    step_decisions,
)
from orchestrator._schema import MIGRATIONS
from orchestrator.testing import ScriptedLLM
from tests.conftest import MakeOrchestrator
from tests.fakes.openai_server import FakeOpenAI, Reply, Router
from tests.helpers import eventually_step, make_task, planned, run_to_end, step, with_plan
from tests.postgres import database_url

pytestmark = pytest.mark.timeout(20)
TERMINAL = {Phase.COMPLETED, Phase.FAILED, Phase.CANCELLED}


async def test_a_write_touches_its_slots_and_a_new_slot_comes_after_the_others(
    store: Store,
) -> None:
    await store.create_task(make_task("t1"), outbox=("plan",))
    await store.set_phase(
        "t1", old=Phase.PLANNING, new=Phase.AWAITING_APPROVAL, actor="x", reason=None,
        outbox=("plan",),
    )  # fmt: skip
    await store.set_phase(
        "t1", old=Phase.AWAITING_APPROVAL, new=Phase.EXECUTING, actor="U1", reason=None,
        outbox=("plan", "executing", "progress"),
    )  # fmt: skip

    updates = await store.updates("t1")
    assert [(u.slot, u.version, u.ref) for u in updates] == [
        ("plan", 3, None),
        ("executing", 1, None),
        ("progress", 1, None),
    ]
    assert [u.seq for u in updates] == sorted(u.seq for u in updates)


async def test_a_sent_version_is_hidden_until_the_next_change_which_keeps_the_message_ref(
    store: Store,
) -> None:
    await store.create_task(make_task("t1"), outbox=("plan",))
    (plan,) = await store.updates("t1")
    await store.mark_sent("t1", "plan", version=plan.version, ref="1.1", digest="d1")
    assert await store.updates("t1") == []

    await store.set_phase(
        "t1", old=Phase.PLANNING, new=Phase.AWAITING_APPROVAL, actor="x", reason=None,
        outbox=("plan",),
    )  # fmt: skip
    (again,) = await store.updates()
    assert (again.slot, again.version, again.ref, again.digest) == ("plan", 2, "1.1", "d1")


async def test_marking_an_older_version_sent_never_hides_a_newer_change(
    store: Store,
) -> None:
    await store.create_task(make_task("t1"), outbox=("plan",))
    (old,) = await store.updates("t1")
    await store.set_phase(
        "t1", old=Phase.PLANNING, new=Phase.AWAITING_APPROVAL, actor="x", reason=None,
        outbox=("plan",),
    )  # fmt: skip
    await store.mark_sent("t1", "plan", version=old.version, ref="1.1", digest="d")
    assert [u.version for u in await store.updates("t1")] == [2]


async def test_closing_a_task_closes_its_open_steps_renders_every_slot_again_and_adds_the_summary(
    store: Store,
) -> None:
    await with_plan(store, "t1", "s1", "s2", "s3")
    await store.set_step("t1", "s1", old=StepState.PENDING, new=StepState.RUNNING, actor="e")
    await store.set_step("t1", "s2", old=StepState.PENDING, new=StepState.RUNNING, actor="e")
    await store.set_step("t1", "s2", old=StepState.RUNNING, new=StepState.COMPLETED, actor="e")
    await store.set_phase(
        "t1", old=Phase.PLANNING, new=Phase.FAILED, actor="x", reason="boom",
        outbox=("plan", "progress"),
    )  # fmt: skip
    for update in await store.updates("t1"):
        await store.mark_sent("t1", update.slot, version=update.version, ref="r", digest="d")
    assert [t.id for t in await store.list_unclosed()] == ["t1"]

    closing = {
        StepState.PENDING: (StepState.SKIPPED, "not run: boom"),
        StepState.AWAITING_CONFIRMATION: (StepState.SKIPPED, "not run: boom"),
        StepState.RUNNING: (StepState.CANCELLED, "boom"),
    }
    moves = await store.close_task("t1", closing, actor="orchestrator", outbox=True)

    assert [(m.step_id, m.old, m.new, m.reason) for m in moves] == [
        ("s1", "running", "cancelled", "boom"),
        ("s3", "pending", "skipped", "not run: boom"),
    ]
    task = await store.get_task("t1")
    assert {s.id: s.state for s in task.steps} == {
        "s1": StepState.CANCELLED,
        "s2": StepState.COMPLETED,
        "s3": StepState.SKIPPED,
    }
    assert [u.slot for u in await store.updates("t1")] == ["plan", "progress", "summary"]
    assert await store.list_unclosed() == []


async def test_ending_a_task_sets_its_phase_and_closes_it_in_one_write_or_writes_nothing(
    store: Store,
) -> None:
    await with_plan(store, "t1", "s1", "s2")
    await store.set_step("t1", "s1", old=StepState.PENDING, new=StepState.RUNNING, actor="e")
    skip_all = {state: (StepState.SKIPPED, "not run") for state in StepState}
    kw: dict[str, Any] = {"actor": "x", "reason": None, "closing": skip_all, "has_outbox": True}

    # Not in the phase the caller thinks: nothing at all is written.
    before = await store.history("t1")
    assert await store.end_task("t1", old=Phase.EXECUTING, new=Phase.COMPLETED, **kw) is None
    assert await store.history("t1") == before
    assert (await store.get_task("t1")).phase is Phase.PLANNING

    moves = await store.end_task("t1", old=Phase.PLANNING, new=Phase.FAILED, outbox=("plan",), **kw)
    assert moves is not None
    assert [(m.step_id, m.old, m.new) for m in moves] == [
        ("s1", "running", "skipped"),
        ("s2", "pending", "skipped"),
    ]
    task = await store.get_task("t1")
    assert task.phase is Phase.FAILED
    assert {s.state for s in task.steps} == {StepState.SKIPPED}
    assert await store.list_unclosed() == []  # closed in the same write
    assert [u.slot for u in await store.updates("t1")] == ["plan", "summary"]


async def test_a_v1_database_migrates_with_its_ended_tasks_counted_as_closed(db: Path) -> None:
    with closing(sqlite3.connect(db)) as conn:
        conn.executescript(f"BEGIN; {MIGRATIONS[0]}; PRAGMA user_version=1; COMMIT;")
        for task_id, phase in (("t1", "completed"), ("t2", "executing")):
            conn.execute(
                "INSERT INTO tasks (id, scope, requester, request, phase, created_at, updated_at) "
                "VALUES (?, 'C1:1', 'U1', 'r', ?, 1, 1)",
                (task_id, phase),
            )
        conn.commit()
    store = SqliteStore(db)
    await store.open()
    try:
        assert await store.list_unclosed() == []
        assert (await store.get_task("t2")).phase is Phase.EXECUTING
        assert await store.updates() == []
    finally:
        await store.close()


async def test_a_task_fills_its_outbox_in_thread_order_and_the_summary_comes_last(
    tmp_path: Path,
) -> None:
    plan = {
        "steps": [
            step("a"),
            step("b", "a", tier="destructive"),
        ]
    }
    orch = Orchestrator(
        store=open_store(database_url(tmp_path, "o")),
        llm=ScriptedLLM([plan]),
        config=OrchestratorConfig(approvers=frozenset({"U2"})),
        has_outbox=True,
    )
    async with orch:
        task = await planned(orch, "two steps")
        await orch.approve(task.id, user="U1")
        await eventually_step(orch, task.id, "b", StepState.AWAITING_CONFIRMATION)
        await orch.confirm_step(task.id, "b", user="U2", run=True)
        done = await orch.wait(task.id, TERMINAL, timeout=5)
        updates = await orch.updates(task.id)
        history = await orch.history(task.id)

    assert done.phase is Phase.COMPLETED
    assert [u.slot for u in updates] == ["plan", "executing", "progress", "confirm:b:1", "summary"]
    assert Slot.parse("confirm:b:1") == Slot(SlotKind.CONFIRM, "b", 1)
    decision = plan_decision(history)
    assert decision is not None and (decision.actor, decision.reason) == ("U1", "approved")
    assert [(d.new, d.actor) for d in step_decisions(history, "b")] == [("run", "U2")]


async def test_without_an_outbox_nothing_is_recorded_for_threads(
    make_orchestrator: MakeOrchestrator, fake_openai: FakeOpenAI
) -> None:
    fake_openai.responder = Router([Reply.plan(step("a"))])
    orch = await make_orchestrator()
    task = await planned(orch, "x")
    await run_to_end(orch, task)
    assert await orch.updates() == []


async def test_an_ended_task_whose_close_never_committed_is_closed_on_the_next_start(
    tmp_path: Path,
) -> None:
    url = database_url(tmp_path, "o")
    store = open_store(url)
    await store.open()
    await with_plan(store, "t1", "s1", "s2")
    await store.set_step("t1", "s1", old=StepState.PENDING, new=StepState.RUNNING, actor="e")
    # The phase moved on; the process died before the close that follows it.
    await store.set_phase("t1", old=Phase.PLANNING, new=Phase.CANCELLED, actor="U1", reason=None)
    await store.close()

    orch = Orchestrator(store=open_store(url), llm=ScriptedLLM([]), has_outbox=True)
    async with orch, orch.subscribe():
        task = await orch.get_task("t1")
        updates = await orch.updates("t1")
    assert {s.id: s.state for s in task.steps} == {
        "s1": StepState.CANCELLED,
        "s2": StepState.CANCELLED,
    }
    assert [u.slot for u in updates] == ["summary"]
