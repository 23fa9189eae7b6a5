"""The SQLite store: WAL, one group-committing writer connection, one aiosqlite reader."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import time
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import aiosqlite

from . import _rows
from ._errors import DuplicateMessageError, StoreError, TaskNotFoundError
from ._models import Closing, Step, Task, Transition
from ._phases import Phase, StepState
from ._schema import MIGRATIONS
from ._thread import SUMMARY, ThreadUpdate
from ._writer import GroupWriter

_BUSY_TIMEOUT_MS = 5000


class SqliteStore:
    """`Store` on one SQLite file."""

    def __init__(self, path: str | Path, *, max_batch: int = 512) -> None:
        """`max_batch` caps the writes per commit; 1 turns group commit off (for comparison)."""
        self._path = str(path)
        self._max_batch = max_batch
        self._read: aiosqlite.Connection | None = None
        self._point: sqlite3.Connection | None = None
        self._writer: GroupWriter | None = None

    @property
    def where(self) -> str:
        """The database as an operator knows it."""
        return f"sqlite at {os.path.abspath(self._path)}"

    async def schema_version(self) -> int:
        """The schema version the database is at."""
        return int((await self._fetch_now("PRAGMA user_version", ()))[0][0])

    async def open(self) -> None:
        """Connect, switch to WAL and migrate to the latest schema."""
        self._writer = GroupWriter(self._connect_writer, max_batch=self._max_batch)
        try:
            await self._writer.start(prepare=_migrate)
            self._read = await aiosqlite.connect(self._path, isolation_level=None)
            await self._read.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
            await self._read.execute("PRAGMA query_only=ON")
            self._point = sqlite3.connect(self._path, isolation_level=None)
            self._point.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
            self._point.execute("PRAGMA query_only=ON")
        except (sqlite3.Error, OSError, StoreError) as exc:
            await self.close()
            reason = exc.reason if isinstance(exc, StoreError) else str(exc)
            raise StoreError(f"cannot open the database {self._path}: {reason}") from exc

    async def close(self) -> None:
        """Commit what is queued and close both connections."""
        writer, self._writer = self._writer, None
        read, self._read = self._read, None
        point, self._point = self._point, None
        try:
            if writer is not None:
                await writer.stop()
        finally:
            if point is not None:
                point.close()
            if read is not None:
                await read.close()

    def _connect_writer(self) -> sqlite3.Connection:
        # isolation_level=None: the writer issues BEGIN/COMMIT so one transaction spans a batch.
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    @property
    def _reader(self) -> aiosqlite.Connection:
        if self._read is None:
            raise StoreError("the store is closed")
        return self._read

    async def _fetch(self, query: str, params: tuple[Any, ...]) -> list[Any]:
        # execute_fetchall runs and finishes the statement in one trip to aiosqlite's thread. Two
        # cursors left open at once would keep the reader's snapshot alive, and overlapping
        # reads would then never see new commits.
        return list(await self._reader.execute_fetchall(query, params))

    async def _fetch_now(self, query: str, params: tuple[Any, ...]) -> list[Any]:
        """A read by key, on the event loop: a few tens of microseconds in WAL (readers never
        wait for the writer), where a trip to a reader thread costs more than the read."""
        # Still a turn of the loop first, as every store call is: a caller polling in a loop
        # must not starve the others.
        await asyncio.sleep(0)
        if self._point is None:
            raise StoreError("the store is closed")
        try:
            return self._point.execute(query, params).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"the database read failed: {type(exc).__name__}: {exc}") from exc

    @property
    def _w(self) -> GroupWriter:
        if self._writer is None:
            raise StoreError("the store is closed")
        return self._writer

    async def create_task(
        self, task: Task, *, message_keys: Sequence[str] = (), outbox: Sequence[str] = ()
    ) -> None:
        keys = list(dict.fromkeys(message_keys))

        def op(conn: sqlite3.Connection) -> str | None:
            for key in keys:
                row = conn.execute(
                    "SELECT task_id FROM inbound_messages WHERE key = ?", (key,)
                ).fetchone()
                if row is not None:
                    return str(row[0] or "")
            conn.execute(_rows.INSERT_TASK, _rows.task_row(task))
            conn.executemany(
                "INSERT INTO inbound_messages (key, task_id, at) VALUES (?, ?, ?)",
                [(key, task.id, task.created_at) for key in keys],
            )
            _log(conn, task.id, None, "phase", None, task.phase.value, task.requester, None)
            _touch(conn, task.id, outbox)
            return None

        existing = await self._w.submit(op)
        if existing is not None:
            raise DuplicateMessageError(
                "this message was already turned into a task", task_id=existing or None
            )

    async def claim_messages(self, keys: Sequence[str]) -> bool:
        unique = list(dict.fromkeys(keys))

        def op(conn: sqlite3.Connection) -> bool:
            cur = conn.executemany(
                "INSERT OR IGNORE INTO inbound_messages (key, task_id, at) VALUES (?, NULL, ?)",
                [(key, time.time()) for key in unique],
            )
            return cur.rowcount == len(unique)

        return await self._w.submit(op)

    async def get_task(self, task_id: str) -> Task:
        tasks = _rows.tasks_from_rows(
            await self._fetch_now(_rows.SELECT_TASKS + _rows.ONE_TASK, (task_id,))
        )
        if not tasks:
            raise TaskNotFoundError(f"no task {task_id}", task_id=task_id)
        return tasks[0]

    async def get_phase(self, task_id: str) -> Phase:
        rows = await self._fetch_now("SELECT phase FROM tasks WHERE id = ?", (task_id,))
        if not rows:
            raise TaskNotFoundError(f"no task {task_id}", task_id=task_id)
        return _rows.PHASES[rows[0][0]]

    async def list_tasks(
        self,
        *,
        scope: str | None = None,
        scope_prefix: str | None = None,
        phases: Collection[Phase] | None = None,
    ) -> list[Task]:
        return await self._select_tasks(*_rows.task_filter(scope, scope_prefix, phases))

    async def _select_tasks(self, clause: str, params: tuple[Any, ...]) -> list[Task]:
        # One statement, so tasks and their steps come from one snapshot of the database.
        return _rows.tasks_from_rows(
            await self._fetch(f"{_rows.SELECT_TASKS} {clause} {_TASK_ORDER}", params)
        )

    async def set_phase(
        self,
        task_id: str,
        *,
        old: Phase,
        new: Phase,
        actor: str,
        reason: str | None,
        outbox: Sequence[str] = (),
    ) -> bool:
        row = _rows.set_phase_values(task_id, old, new, reason, time.time())
        return await self._w.submit(_set_phase, row, actor, outbox)

    async def save_plan(
        self,
        task_id: str,
        steps: Sequence[Step],
        *,
        plan_version: int,
        replaced: Collection[str] = (),
        actor: str,
        reason: str | None = None,
        tokens: int = 0,
        outbox: Sequence[str] = (),
        phase: tuple[Phase, Phase] | None = None,
    ) -> bool:
        rows = [_rows.step_row(task_id, s) for s in steps]

        def op(conn: sqlite3.Connection) -> bool:
            if phase is not None:
                stored = conn.execute("SELECT phase FROM tasks WHERE id = ?", (task_id,))
                if stored.fetchone() != (phase[0].value,):
                    return False
            conn.executemany(_rows.SUPERSEDE, [(task_id, step_id) for step_id in replaced])
            conn.executemany(_rows.INSERT_STEP, rows)
            now = time.time()
            conn.execute(
                _rows.SET_PLAN, (plan_version, 1 if plan_version > 1 else 0, tokens, now, task_id)
            )
            _log(conn, task_id, None, "plan", None, f"v{plan_version}", actor, reason)
            _touch(conn, task_id, outbox)
            if phase is not None:  # the row was read above, in this transaction: it is set
                _set_phase(conn, _rows.set_phase_values(task_id, *phase, None, now), actor, ())
            return True

        return await self._w.submit(op)

    async def set_step(
        self,
        task_id: str,
        step_id: str,
        *,
        old: StepState,
        new: StepState,
        actor: str,
        reason: str | None = None,
        output: str | None = None,
        attempts: int | None = None,
        confirm_deadline: float | None = None,
        tokens: int = 0,
        asks: int | None = None,
        decision: str | None = None,
        outbox: Sequence[str] = (),
    ) -> bool:
        row = _rows.set_step_values(new, reason, output, attempts, confirm_deadline, asks, tokens)
        key = (task_id, step_id, old.value)
        return await self._w.submit(_set_step, row, key, actor, decision, outbox)

    async def close_task(
        self, task_id: str, closing: Closing, *, actor: str, outbox: bool
    ) -> list[Transition]:
        return await self._w.submit(_close, task_id, closing, actor, outbox)

    async def end_task(
        self,
        task_id: str,
        *,
        old: Phase,
        new: Phase,
        actor: str,
        reason: str | None,
        closing: Closing,
        outbox: Sequence[str] = (),
        has_outbox: bool = False,
    ) -> list[Transition] | None:
        row = _rows.set_phase_values(task_id, old, new, reason, time.time())
        return await self._w.submit(_end, row, actor, outbox, closing, has_outbox)

    async def list_unclosed(self) -> list[Task]:
        return await self._select_tasks(_rows.UNCLOSED, _rows.TERMINAL)

    async def updates(self, task_id: str | None = None) -> list[ThreadUpdate]:
        if task_id is None:  # every task's: a scan, off the event loop
            rows = await self._fetch(f"{_rows.UNSENT} ORDER BY seq", ())
        else:
            rows = await self._fetch_now(f"{_rows.UNSENT} AND task_id = ? ORDER BY seq", (task_id,))
        return [ThreadUpdate(*row) for row in rows]

    async def mark_sent(
        self, task_id: str, slot: str, *, version: int, ref: str, digest: str
    ) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE outbox SET sent_version = MAX(sent_version, ?), ref = ?, digest = ? "
                "WHERE task_id = ? AND slot = ?",
                (version, ref, digest, task_id, slot),
            )

        await self._w.submit(op)

    async def set_meta(self, task_id: str, key: str, value: str) -> None:
        # Read-modify-write inside the writer's transaction: any key, no JSON-path quoting rules.
        def op(conn: sqlite3.Connection) -> None:
            row = conn.execute("SELECT meta FROM tasks WHERE id = ?", (task_id,)).fetchone()
            if row is None:
                raise TaskNotFoundError(f"no task {task_id}", task_id=task_id)
            meta = {**json.loads(row[0]), key: value}
            conn.execute("UPDATE tasks SET meta = ? WHERE id = ?", (json.dumps(meta), task_id))

        await self._w.submit(op)

    async def history(self, task_id: str) -> list[Transition]:
        return [Transition(*row) for row in await self._fetch_now(_rows.HISTORY, (task_id,))]


# The writes made on every step and phase move are module functions given their values, not
# closures: a closure over a dozen arguments is a dozen cells per queued write.


def _set_phase(
    conn: sqlite3.Connection, row: tuple[Any, ...], actor: str, outbox: Sequence[str]
) -> bool:
    if conn.execute(_rows.SET_PHASE, row).rowcount != 1:
        return False
    new, reason, _, task_id, old = row
    _log(conn, task_id, None, "phase", old, new, actor, reason)
    _touch(conn, task_id, outbox)
    return True


def _set_step(
    conn: sqlite3.Connection,
    row: tuple[Any, ...],
    key: tuple[str, str, str],
    actor: str,
    decision: str | None,
    outbox: Sequence[str],
) -> bool:
    if conn.execute(_rows.SET_STEP, row + key).rowcount != 1:
        return False
    task_id, step_id, old = key
    reason = row[1]
    if decision is not None:
        _log(conn, task_id, step_id, "decision", None, decision, actor, reason)
    _log(conn, task_id, step_id, "step", old, row[0], actor, reason)
    _touch(conn, task_id, outbox)
    return True


_TASK_ORDER = "ORDER BY t.created_at, t.rowid, s.position"


def _close(
    conn: sqlite3.Connection, task_id: str, closing: Closing, actor: str, outbox: bool
) -> list[Transition]:
    open_steps = conn.execute(_rows.OPEN_STEPS, (task_id, *_rows.OPEN_STATES)).fetchall()
    now = time.time()
    moves = []
    for step_id, state in open_steps:
        new, reason = closing[StepState(state)]
        conn.execute(_rows.CLOSE_STEP, (new.value, reason, task_id, step_id))
        _log(conn, task_id, step_id, "step", state, new.value, actor, reason)
        moves.append(Transition(task_id, "step", state, new.value, actor, now, step_id, reason))
    conn.execute(_rows.CLOSE_TASK, (now, now, task_id))
    if outbox:
        conn.execute(_rows.BUMP_SLOTS, (task_id,))
        _touch(conn, task_id, (SUMMARY,))
    return moves


def _end(
    conn: sqlite3.Connection,
    row: tuple[Any, ...],
    actor: str,
    outbox: Sequence[str],
    closing: Closing,
    has_outbox: bool,
) -> list[Transition] | None:
    if not _set_phase(conn, row, actor, outbox):
        return None
    return _close(conn, row[3], closing, actor, has_outbox)


def _migrate(conn: sqlite3.Connection) -> None:
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > len(MIGRATIONS):
        raise StoreError(f"the database schema v{version} is newer than this program knows")
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        conn.executescript(f"BEGIN; {script}; PRAGMA user_version={number}; COMMIT;")


def _log(
    conn: sqlite3.Connection,
    task_id: str,
    step_id: str | None,
    kind: str,
    old: str | None,
    new: str,
    actor: str,
    reason: str | None,
) -> None:
    conn.execute(_rows.LOG, (task_id, step_id, kind, old, new, actor, reason, time.time()))


def _touch(conn: sqlite3.Connection, task_id: str, slots: Sequence[str]) -> None:
    """Bump each slot's version, adding the slots that are new (in order, after the others)."""
    if not slots:  # no outbox: a statement saved on every write
        return
    conn.executemany(_rows.TOUCH, [(task_id, slot) for slot in slots])
