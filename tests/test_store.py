"""The store through its public methods (SQLite, or PostgreSQL with ORCH_TEST_DATABASE=postgres):
schema, compare-and-set, the log; SQLite's own file, WAL and group commit."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import pytest

from orchestrator import (
    Action,
    ConfigError,
    DuplicateMessageError,
    Phase,
    SqliteStore,
    StepState,
    Store,
    StoreError,
    Task,
    TaskNotFoundError,
    Tier,
    open_store,
)
from orchestrator._schema import MIGRATIONS
from tests.helpers import make_step, make_task, with_plan
from tests.postgres import database_url

pytestmark = pytest.mark.timeout(10)

CONCURRENT_WRITES = 500
TASKS = 5  # CONCURRENT_WRITES steps spread over this many tasks


def peek(db: Path, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Rows as a brand-new connection sees them: only what is committed."""
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute(query, params).fetchall()


def wal_commits(db: Path) -> int:
    """Transactions committed to the WAL since it last restarted.

    Counted from SQLite's documented WAL format (sqlite.org/fileformat.html#the_write_ahead_log):
    a 32-byte header, then frames of a 24-byte header and a page; a frame that ends a commit
    holds the database size in bytes 4-8, other frames hold 0. Frames of this generation carry
    the header's salts.
    """
    data = Path(f"{db}-wal").read_bytes()
    page_size = int.from_bytes(data[8:12], "big")
    salts = data[16:24]
    commits = 0
    for offset in range(32, len(data) - 23, 24 + page_size):
        frame = data[offset : offset + 24]
        if frame[8:16] != salts:
            break
        commits += int.from_bytes(frame[4:8], "big") != 0
    return commits


@contextmanager
def wal_pinned(db: Path) -> Iterator[None]:
    """Hold a read transaction so that no checkpoint restarts the WAL while we count commits."""
    with closing(sqlite3.connect(db)) as conn:
        conn.execute("BEGIN")
        conn.execute("SELECT count(*) FROM tasks").fetchone()
        yield
        conn.rollback()


# Opening, migrating, reopening


async def test_opening_turns_on_wal_and_sets_the_schema_version_to_the_number_of_migrations(
    sqlite_store: SqliteStore, db: Path
) -> None:
    assert peek(db, "PRAGMA journal_mode") == [("wal",)]
    assert peek(db, "PRAGMA user_version") == [(len(MIGRATIONS),)]
    assert await sqlite_store.schema_version() == len(MIGRATIONS)
    assert sqlite_store.where == f"sqlite at {db}"


async def test_a_write_waits_out_a_lock_held_briefly_by_another_connection(
    sqlite_store: SqliteStore, db: Path
) -> None:
    store = sqlite_store
    # Without a busy timeout the write would fail at once with "database is locked".
    await store.create_task(make_task())
    with closing(sqlite3.connect(db, isolation_level=None)) as other:
        other.execute("BEGIN IMMEDIATE")
        write = asyncio.create_task(
            store.set_phase("t1", old=Phase.PLANNING, new=Phase.FAILED, actor="U1", reason=None)
        )
        await asyncio.sleep(0.2)
        assert not write.done()
        other.execute("COMMIT")
    assert await write is True
    assert (await store.get_task("t1")).phase is Phase.FAILED


async def test_reopening_a_database_keeps_its_data_and_does_not_migrate_again(db: Path) -> None:
    first = SqliteStore(db)
    await first.open()
    task = await with_plan(first)
    await first.close()

    again = SqliteStore(db)
    await again.open()  # re-running the migration would fail: its tables already exist
    try:
        assert await again.get_task("t1") == task
        assert len(await again.history("t1")) == 2
    finally:
        await again.close()
    assert peek(db, "PRAGMA user_version") == [(len(MIGRATIONS),)]


async def test_a_database_from_a_newer_version_is_refused_with_a_clear_error(db: Path) -> None:
    newer = len(MIGRATIONS) + 1
    with closing(sqlite3.connect(db)) as conn:
        conn.execute(f"PRAGMA user_version={newer}")
    store = SqliteStore(db)
    with pytest.raises(StoreError) as caught:
        await store.open()
    assert f"v{newer}" in caught.value.reason
    assert "newer" in caught.value.reason
    assert str(db) in caught.value.reason
    assert peek(db, "SELECT name FROM sqlite_master") == []  # left untouched


async def test_a_closed_store_refuses_reads_and_writes_with_store_error(db: Path) -> None:
    store = SqliteStore(db)
    await store.open()
    await store.close()
    with pytest.raises(StoreError):
        await store.create_task(make_task())
    with pytest.raises(StoreError):
        await store.get_task("t1")


# Tasks and message keys


async def test_a_created_task_reads_back_with_every_field(store: Store) -> None:
    task = make_task(
        "t-ünï",
        scope="C9:1700000000.000100",
        phase=Phase.AWAITING_APPROVAL,
        created_at=1_700_000_000.123456,
        reason="why, with 'quotes' and \"more\"",
        plan_version=3,
        replans=1,
        tokens_used=42,
        steps_run=7,
        meta={"thread_ts": "1700000000.000100", "channel": "C9"},
    )
    await store.create_task(task)
    assert await store.get_task(task.id) == task


async def test_getting_an_unknown_task_raises_task_not_found_naming_it(store: Store) -> None:
    with pytest.raises(TaskNotFoundError) as caught:
        await store.get_task("nope")
    assert caught.value.task_id == "nope"


@pytest.mark.parametrize("reused", ["m1", "m2"])
async def test_a_task_from_an_already_used_message_key_is_refused_and_nothing_is_stored(
    store: SqliteStore, reused: str
) -> None:
    await store.create_task(make_task("first"), message_keys=["m1", "m2"])
    with pytest.raises(DuplicateMessageError) as caught:
        await store.create_task(make_task("second"), message_keys=["fresh", reused])
    assert caught.value.task_id == "first"
    with pytest.raises(TaskNotFoundError):
        await store.get_task("second")
    assert await store.history("second") == []
    assert await store.claim_messages(["fresh"]) is True  # the refused task recorded no key


async def test_of_two_tasks_racing_for_one_message_key_exactly_one_is_created(
    store: Store,
) -> None:
    results = await asyncio.gather(
        store.create_task(make_task("a"), message_keys=["m"]),
        store.create_task(make_task("b"), message_keys=["m"]),
        return_exceptions=True,
    )
    assert results[0] is None
    assert isinstance(results[1], DuplicateMessageError)
    assert results[1].task_id == "a"
    assert [t.id for t in await store.list_tasks()] == ["a"]


async def test_a_key_claimed_without_a_task_still_refuses_a_task_for_it(store: Store) -> None:
    assert await store.claim_messages(["m"]) is True
    with pytest.raises(DuplicateMessageError):
        await store.create_task(make_task(), message_keys=["m"])


async def test_claim_messages_is_true_only_when_no_key_was_seen_before(store: Store) -> None:
    assert await store.claim_messages(["a"]) is True
    assert await store.claim_messages(["a"]) is False
    assert await store.claim_messages(["b", "a"]) is False
    assert await store.claim_messages(["c", "d"]) is True
    await store.create_task(make_task(), message_keys=["e"])
    assert await store.claim_messages(["e"]) is False


# Phase compare-and-set


async def test_set_phase_moves_the_phase_and_logs_who_when_and_why(store: Store) -> None:
    await store.create_task(make_task())
    before = time.time()
    moved = await store.set_phase(
        "t1", old=Phase.PLANNING, new=Phase.AWAITING_APPROVAL, actor="planner", reason="planned"
    )
    after = time.time()
    assert moved is True
    task = await store.get_task("t1")
    assert (task.phase, task.reason) == (Phase.AWAITING_APPROVAL, "planned")
    last = (await store.history("t1"))[-1]
    assert (last.kind, last.old, last.new) == ("phase", "planning", "awaiting_approval")
    assert (last.actor, last.reason, last.step_id) == ("planner", "planned", None)
    assert before <= last.at <= after


async def test_set_phase_changes_nothing_when_the_stored_phase_is_not_old(
    store: Store,
) -> None:
    await store.create_task(make_task(phase=Phase.EXECUTING))
    task, log = await store.get_task("t1"), await store.history("t1")
    moved = await store.set_phase(
        "t1", old=Phase.PLANNING, new=Phase.CANCELLED, actor="U1", reason="too late"
    )
    assert moved is False
    assert await store.get_task("t1") == task
    assert await store.history("t1") == log


async def test_set_phase_on_an_unknown_task_is_false(store: Store) -> None:
    assert not await store.set_phase(
        "nope", old=Phase.PLANNING, new=Phase.FAILED, actor="x", reason=None
    )


async def test_of_fifty_concurrent_phase_changes_from_one_phase_exactly_one_wins(
    store: Store,
) -> None:
    await store.create_task(make_task())
    targets = [p for p in Phase if p is not Phase.PLANNING]
    news = [targets[i % len(targets)] for i in range(50)]
    results = await asyncio.gather(
        *(
            store.set_phase("t1", old=Phase.PLANNING, new=new, actor=f"U{i}", reason=None)
            for i, new in enumerate(news)
        )
    )
    assert results.count(True) == 1
    winner = results.index(True)
    assert (await store.get_task("t1")).phase is news[winner]
    moves = [t for t in await store.history("t1") if t.old is not None]
    assert [(t.new, t.actor) for t in moves] == [(news[winner].value, f"U{winner}")]


# Plans and steps


async def test_save_plan_stores_every_field_of_every_step_in_position_order(
    store: Store,
) -> None:
    await store.create_task(make_task())
    steps = [
        make_step("fetch", position=0, tier=Tier.READ),
        make_step("draft", "fetch", position=1, action=Action.WRITE, tier=Tier.WRITE),
        make_step(
            "deploy",
            "fetch",
            "draft",
            position=2,
            action=Action.SHELL,
            tier=Tier.DESTRUCTIVE,
            state=StepState.AWAITING_CONFIRMATION,
            output="partial",
            reason="asked",
            attempts=2,
            confirm_deadline=1_700_000_900.5,
        ),
        make_step("tell", "deploy", position=3, action=Action.NOTIFY, tier=Tier.EXTERNAL),
    ]
    await store.save_plan("t1", list(reversed(steps)), plan_version=1, actor="planner")
    task = await store.get_task("t1")
    assert task.steps == tuple(steps)
    assert (task.plan_version, task.replans) == (1, 0)
    last = (await store.history("t1"))[-1]
    assert (last.kind, last.new, last.actor) == ("plan", "v1", "planner")


async def test_a_replan_supersedes_the_replaced_steps_and_counts_as_a_replan(
    store: Store,
) -> None:
    await with_plan(store, "t1", "a", "b", "c")
    new = [
        make_step("d", "a", position=3, plan_version=2),
        make_step("e", "d", position=4, plan_version=2),
    ]
    await store.save_plan("t1", new, plan_version=2, replaced={"b", "c"}, actor="planner")
    task = await store.get_task("t1")
    assert [s.id for s in task.steps if s.is_superseded] == ["b", "c"]
    assert [s.id for s in task.plan] == ["a", "d", "e"]
    assert (task.plan_version, task.replans) == (2, 1)

    await store.save_plan("t1", [], plan_version=3, replaced={"e"}, actor="planner")
    task = await store.get_task("t1")
    assert (task.plan_version, task.replans) == (3, 2)
    assert [s.id for s in task.plan] == ["a", "d"]


async def test_a_first_plan_and_the_phase_that_shows_it_are_one_write_or_none(
    store: Store,
) -> None:
    await store.create_task(make_task("t1"))
    plan = [make_step("a"), make_step("b", "a", position=1)]
    awaiting = (Phase.PLANNING, Phase.AWAITING_APPROVAL)
    await store.set_phase("t1", old=Phase.PLANNING, new=Phase.CANCELLED, actor="U1", reason=None)

    # Cancelled while it was being planned: neither the plan nor the phase lands.
    assert not await store.save_plan("t1", plan, plan_version=1, actor="p", phase=awaiting)
    task = await store.get_task("t1")
    assert (task.phase, task.steps, task.plan_version) == (Phase.CANCELLED, (), 0)

    await store.create_task(make_task("t2"))
    assert await store.save_plan("t2", plan, plan_version=1, actor="p", tokens=7, phase=awaiting)
    task = await store.get_task("t2")
    assert (task.phase, task.plan_version, task.tokens_used) == (Phase.AWAITING_APPROVAL, 1, 7)
    assert [s.id for s in task.plan] == ["a", "b"]
    assert [(t.kind, t.new) for t in await store.history("t2")] == [
        ("phase", "planning"),
        ("plan", "v1"),
        ("phase", "awaiting_approval"),
    ]


async def test_set_step_stores_output_attempts_and_deadline_and_counts_runs_and_tokens(
    store: Store,
) -> None:
    await with_plan(store, "t1", "s1", "s2")
    assert await store.set_step(
        "t1", "s1", old=StepState.PENDING, new=StepState.RUNNING, actor="engine", attempts=1
    )
    assert await store.set_step(
        "t1",
        "s1",
        old=StepState.RUNNING,
        new=StepState.COMPLETED,
        actor="engine",
        output="the answer",
        tokens=120,
    )
    assert await store.set_step(
        "t1",
        "s2",
        old=StepState.PENDING,
        new=StepState.AWAITING_CONFIRMATION,
        actor="engine",
        reason="destructive",
        confirm_deadline=1_700_000_900.5,
    )
    await store.save_plan("t1", [make_step("s3", position=2)], plan_version=2, actor="p", tokens=30)
    task = await store.get_task("t1")
    s1, s2 = task.step("s1"), task.step("s2")
    assert (s1.state, s1.output, s1.attempts) == (StepState.COMPLETED, "the answer", 1)
    assert (s2.state, s2.reason, s2.confirm_deadline) == (
        StepState.AWAITING_CONFIRMATION,
        "destructive",
        1_700_000_900.5,
    )
    assert (task.steps_run, task.tokens_used) == (1, 150)
    steps_logged = [
        (t.step_id, t.old, t.new) for t in await store.history("t1") if t.kind == "step"
    ]
    assert steps_logged == [
        ("s1", "pending", "running"),
        ("s1", "running", "completed"),
        ("s2", "pending", "awaiting_confirmation"),
    ]


async def test_every_move_to_running_counts_as_a_step_run(store: Store) -> None:
    await with_plan(store, "t1", "s1")
    for old, new in [
        (StepState.PENDING, StepState.RUNNING),
        (StepState.RUNNING, StepState.PENDING),  # recovery re-runs an interrupted LLM step
        (StepState.PENDING, StepState.RUNNING),
    ]:
        assert await store.set_step("t1", "s1", old=old, new=new, actor="engine")
    assert (await store.get_task("t1")).steps_run == 2


async def test_set_step_changes_nothing_when_the_stored_state_is_not_old(
    store: Store,
) -> None:
    task = await with_plan(store, "t1", "s1")
    log = await store.history("t1")
    moved = await store.set_step(
        "t1",
        "s1",
        old=StepState.RUNNING,
        new=StepState.COMPLETED,
        actor="engine",
        output="late",
        attempts=9,
        tokens=500,
    )
    assert moved is False
    assert await store.get_task("t1") == task
    assert await store.history("t1") == log


# The log, meta and listing


async def test_history_is_append_only_in_order_and_decisions_name_their_actor_and_step(
    store: Store,
) -> None:
    await with_plan(store, "t1", "s1", "s2")
    await store.set_phase(
        "t1", old=Phase.PLANNING, new=Phase.AWAITING_APPROVAL, actor="planner", reason=None
    )
    early = await store.history("t1")
    await store.set_phase("t1", old=Phase.PLANNING, new=Phase.FAILED, actor="x", reason=None)
    await store.set_step(
        "t1", "s1", old=StepState.PENDING, new=StepState.AWAITING_CONFIRMATION, actor="engine"
    )
    await store.set_step(
        "t1",
        "s1",
        old=StepState.AWAITING_CONFIRMATION,
        new=StepState.RUNNING,
        actor="U3",
        reason="looks safe",
        decision="run",
    )
    await store.set_step(
        "t1", "s2", old=StepState.PENDING, new=StepState.SKIPPED, actor="U2", decision="skip"
    )
    log = await store.history("t1")

    assert log[: len(early)] == early
    assert [(t.kind, t.new) for t in log] == [
        ("phase", "planning"),
        ("plan", "v1"),
        ("phase", "awaiting_approval"),
        ("step", "awaiting_confirmation"),
        ("decision", "run"),
        ("step", "running"),
        ("decision", "skip"),
        ("step", "skipped"),
    ]
    assert [t.at for t in log] == sorted(t.at for t in log)
    decisions = [(t.actor, t.step_id, t.reason, t.old) for t in log if t.kind == "decision"]
    assert decisions == [("U3", "s1", "looks safe", None), ("U2", "s2", None, None)]
    assert {t.task_id for t in log} == {"t1"}


async def test_set_meta_adds_a_key_and_overwrites_an_existing_one(store: Store) -> None:
    await store.create_task(make_task(meta={"a": "1"}))
    await store.set_meta("t1", "b", "2")
    assert (await store.get_task("t1")).meta == {"a": "1", "b": "2"}
    await store.set_meta("t1", "a", "3")
    assert (await store.get_task("t1")).meta == {"a": "3", "b": "2"}


async def test_list_tasks_filters_by_scope_and_phase_and_lists_oldest_first(
    store: Store,
) -> None:
    for task_id, scope, phase, created in [
        ("new-a", "A", Phase.EXECUTING, 30.0),
        ("old-a", "A", Phase.PLANNING, 10.0),
        ("mid-b", "B", Phase.EXECUTING, 20.0),
        ("done-a", "A", Phase.COMPLETED, 5.0),
    ]:
        await store.create_task(make_task(task_id, scope=scope, phase=phase, created_at=created))

    async def ids(**filters: Any) -> list[str]:
        return [t.id for t in await store.list_tasks(**filters)]

    assert await ids() == ["done-a", "old-a", "mid-b", "new-a"]
    assert await ids(scope="A") == ["done-a", "old-a", "new-a"]
    assert await ids(phases={Phase.EXECUTING, Phase.PLANNING}) == ["old-a", "mid-b", "new-a"]
    assert await ids(scope="A", phases=[Phase.EXECUTING]) == ["new-a"]
    assert await ids(phases=set()) == []
    assert await ids(scope="nowhere") == []


async def test_listed_tasks_carry_their_steps(store: Store) -> None:
    await with_plan(store, "t1", "a", "b")
    await with_plan(store, "t2", "c")
    listed = {t.id: [s.id for s in t.steps] for t in await store.list_tasks()}
    assert listed == {"t1": ["a", "b"], "t2": ["c"]}


# Group commit


async def _run_steps_concurrently(store: SqliteStore, db: Path) -> tuple[list[bool], int]:
    """CONCURRENT_WRITES step moves at once, each checking that a new connection sees it once
    acknowledged; returns their results and the number of transactions they took."""
    per_task = CONCURRENT_WRITES // TASKS
    for t in range(TASKS):
        await with_plan(store, f"t{t}", *(f"s{i}" for i in range(per_task)))

    async def move(task_id: str, step_id: str) -> bool:
        moved = await store.set_step(
            task_id, step_id, old=StepState.PENDING, new=StepState.RUNNING, actor="e", tokens=1
        )
        seen = peek(db, "SELECT state FROM steps WHERE task_id = ? AND id = ?", (task_id, step_id))
        assert seen == [("running",)], f"{task_id}/{step_id} acknowledged before it was committed"
        return moved

    with wal_pinned(db):
        before = wal_commits(db)
        results = await asyncio.gather(
            *(move(f"t{t}", f"s{i}") for t in range(TASKS) for i in range(per_task))
        )
        commits = wal_commits(db) - before
    return results, commits


def _without_clock(tasks: list[Task]) -> list[Task]:
    return [dataclasses.replace(t, created_at=0.0, updated_at=0.0) for t in tasks]


async def test_group_commit_writes_the_same_state_as_commit_per_write_in_fewer_transactions(
    tmp_path: Path,
) -> None:
    outcomes: dict[str, tuple[list[Task], list[tuple[Any, ...]], int]] = {}
    for name, options in [("grouped", {}), ("per_write", {"max_batch": 1})]:
        db = tmp_path / f"{name}.db"
        store = SqliteStore(db, **options)  # grouped: the default, as the bot runs it
        await store.open()
        try:
            moved, commits = await _run_steps_concurrently(store, db)
            assert moved == [True] * CONCURRENT_WRITES
            tasks = await store.list_tasks()
            log = [(t.task_id, t.step_id, t.kind, t.old, t.new) for t in await store.history("t0")]
        finally:
            await store.close()
        outcomes[name] = (_without_clock(tasks), log, commits)

    grouped, per_write = outcomes["grouped"], outcomes["per_write"]
    assert grouped[:2] == per_write[:2]
    assert all(t.steps_run == t.tokens_used == CONCURRENT_WRITES // TASKS for t in grouped[0])
    assert per_write[2] == CONCURRENT_WRITES
    assert grouped[2] < CONCURRENT_WRITES // 10


async def test_a_failing_write_fails_alone_and_the_writes_batched_with_it_commit(
    sqlite_store: SqliteStore, db: Path
) -> None:
    store = sqlite_store
    await with_plan(store, "t1", "s1")
    await with_plan(store, "t2", "s1", "s2")
    # "fresh" would insert before "s1" collides with the step already stored.
    bad_plan = [make_step("fresh", position=5), make_step("s1", position=6)]
    results = await asyncio.gather(
        store.set_phase("t1", old=Phase.PLANNING, new=Phase.EXECUTING, actor="U1", reason=None),
        store.save_plan("t2", bad_plan, plan_version=2, replaced={"s2"}, actor="planner"),
        store.set_step("t2", "s2", old=StepState.PENDING, new=StepState.RUNNING, actor="engine"),
        store.create_task(make_task("t3"), message_keys=["m3"]),
        store.claim_messages(["m4"]),
        return_exceptions=True,
    )
    assert results[0] is True
    assert isinstance(results[1], StoreError)
    assert "UNIQUE" in results[1].reason
    assert list(results[2:]) == [True, None, True]

    t2 = await store.get_task("t2")
    assert [s.id for s in t2.steps] == ["s1", "s2"]  # nothing of the failed plan, not "fresh"
    assert not t2.step("s2").is_superseded
    assert (t2.plan_version, t2.replans) == (1, 0)
    assert [t.new for t in await store.history("t2") if t.kind == "plan"] == ["v1"]
    assert peek(db, "SELECT phase FROM tasks WHERE id = 't1'") == [("executing",)]
    assert peek(db, "SELECT state FROM steps WHERE task_id = 't2' AND id = 's2'") == [("running",)]
    assert peek(db, "SELECT id FROM tasks WHERE id = 't3'") == [("t3",)]
    assert await store.claim_messages(["m3"]) is False
    assert await store.claim_messages(["m4"]) is False
    assert await store.set_phase(  # the writer carries on
        "t3", old=Phase.PLANNING, new=Phase.FAILED, actor="U1", reason=None
    )


async def test_a_write_whose_caller_is_cancelled_still_lands(store: Store) -> None:
    await store.create_task(make_task())
    write = asyncio.create_task(
        store.set_phase("t1", old=Phase.PLANNING, new=Phase.CANCELLED, actor="U1", reason=None)
    )
    await asyncio.sleep(0)  # the write is queued
    write.cancel()
    with pytest.raises(asyncio.CancelledError):
        await write
    await store.set_meta("t1", "after", "the cancelled write")  # queued behind it
    assert (await store.get_task("t1")).phase is Phase.CANCELLED


# DATABASE_URL


@pytest.mark.parametrize("relative", [True, False], ids=["relative", "absolute"])
async def test_open_store_puts_a_sqlite_url_at_the_path_it_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, relative: bool
) -> None:
    monkeypatch.chdir(tmp_path)
    url = "sqlite:///rel.db" if relative else f"sqlite:///{tmp_path / 'abs.db'}"
    assert relative or url.startswith("sqlite:////")
    store = open_store(url)
    assert isinstance(store, SqliteStore)
    await store.open()
    await store.close()
    assert (tmp_path / ("rel.db" if relative else "abs.db")).exists()


@pytest.mark.parametrize(
    "url", ["mysql://u:hunter2@h/db", "nonsense", "sqlite:///", "", "postgresql"]
)
def test_open_store_refuses_other_urls_naming_database_url_and_never_a_password(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        open_store(url)
    assert "DATABASE_URL" in caught.value.reason
    assert "hunter2" not in caught.value.reason


@pytest.mark.parametrize("url", ["postgresql://u:pw@h:5433/db", "postgres://h/db"])
def test_open_store_picks_postgresql_for_its_urls_and_names_it_without_the_password(
    url: str,
) -> None:
    store = open_store(url)
    assert type(store).__name__ == "PgStore"
    assert "pw" not in store.where
    assert store.where.endswith("/db")


async def test_a_write_that_raises_a_bug_fails_alone_and_the_writer_keeps_serving(
    store: Store,
) -> None:
    await store.create_task(make_task("t1"))
    bad = make_task("t2", meta={"k": object()})  # not JSON: a caller's bug, met on the writer
    results = await asyncio.gather(
        store.create_task(bad),
        store.set_phase("t1", old=Phase.PLANNING, new=Phase.FAILED, actor="U1", reason=None),
        return_exceptions=True,
    )
    assert isinstance(results[0], StoreError)
    assert "TypeError" in results[0].reason
    assert results[1] is True
    assert await store.claim_messages(["later"]) is True


async def test_a_write_racing_close_is_refused_or_committed_never_left_hanging(db: Path) -> None:
    store = SqliteStore(db)
    await store.open()
    await store.create_task(make_task("t1"))
    write = store.set_phase("t1", old=Phase.PLANNING, new=Phase.FAILED, actor="U1", reason=None)
    results = await asyncio.wait_for(
        asyncio.gather(store.close(), write, return_exceptions=True), timeout=5
    )
    assert results[1] is True or isinstance(results[1], StoreError)
    with pytest.raises(StoreError, match="closed"):
        await store.claim_messages(["after"])


async def test_meta_keys_may_hold_any_character(store: Store) -> None:
    await store.create_task(make_task("t1"))
    await store.set_meta("t1", 'we"ird.$[0]', "v")
    assert (await store.get_task("t1")).meta == {'we"ird.$[0]': "v"}


async def test_a_key_repeated_in_one_call_counts_once(store: Store) -> None:
    await store.create_task(make_task("t1"), message_keys=["m", "m"])
    assert await store.claim_messages(["k", "k"]) is True
    with pytest.raises(DuplicateMessageError):
        await store.create_task(make_task("t2"), message_keys=["m"])


async def test_reads_overlapping_other_reads_still_see_every_commit(store: Store) -> None:
    # Cursors left open across awaits once kept the reader on one old snapshot for good.
    for i in range(100):
        await store.create_task(make_task(f"t{i}"))
    done = asyncio.Event()

    async def keep_reading() -> None:
        while not done.is_set():
            await store.get_task("t0")

    async def move_then_read(task_id: str) -> Phase:
        await store.set_phase(task_id, old=Phase.PLANNING, new=Phase.FAILED, actor="U", reason=None)
        return (await store.get_task(task_id)).phase

    readers = [asyncio.create_task(keep_reading()) for _ in range(64)]
    try:
        seen = await asyncio.gather(*(move_then_read(f"t{i}") for i in range(100)))
    finally:
        done.set()
        await asyncio.gather(*readers)
    assert set(seen) == {Phase.FAILED}


async def test_text_holding_a_nul_byte_is_stored_not_refused(store: Store) -> None:
    # A command's output may hold NULs (/proc/*/environ does); PostgreSQL's text cannot.
    await with_plan(store, "t1", "s1")
    assert await store.set_step(
        "t1", "s1", old=StepState.PENDING, new=StepState.RUNNING, actor="engine"
    )
    assert await store.set_step(
        "t1", "s1", old=StepState.RUNNING, new=StepState.COMPLETED, actor="engine",
        output="A=1\x00B=2",
    )  # fmt: skip
    kept = "A=1\x00B=2" if isinstance(store, SqliteStore) else "A=1\ufffdB=2"
    assert (await store.get_task("t1")).step("s1").output == kept


async def test_postgresql_is_migrated_once_to_its_latest_schema_and_reopens_without_migrating(
    store: Store, tmp_path: Path
) -> None:
    if isinstance(store, SqliteStore):
        pytest.skip("PostgreSQL's schema (this pass runs on SQLite)")
    from orchestrator._pg_schema import MIGRATIONS as PG_MIGRATIONS  # noqa: PLC0415

    assert await store.schema_version() == len(PG_MIGRATIONS)
    task = await with_plan(store)
    again = open_store(database_url(tmp_path, "x"))  # the same database, a second process
    await again.open()  # migrating again would fail: the tables exist
    try:
        assert await again.get_task("t1") == task
    finally:
        await again.close()


async def test_list_tasks_by_scope_prefix_takes_percent_and_underscore_literally(
    store: Store,
) -> None:
    for task_id, scope in [("t1", "C_%:1"), ("t2", "CX%:1"), ("t3", "C_%2:1")]:
        await store.create_task(make_task(task_id, scope=scope))
    assert [t.id for t in await store.list_tasks(scope_prefix="C_%:")] == ["t1"]
    assert [t.id for t in await store.list_tasks(scope_prefix="C")] == ["t1", "t2", "t3"]
