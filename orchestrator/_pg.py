"""The PostgreSQL store: psycopg 3 over a connection pool, each write one transaction.

Several processes (bot replicas) may share one database: every change is a compare-and-set,
and a message key is unique, so one Slack event delivered to two replicas makes one task.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import psycopg
from psycopg import AsyncConnection
from psycopg.abc import Buffer
from psycopg.conninfo import conninfo_to_dict
from psycopg.types.string import StrDumperUnknown
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from . import _rows
from ._errors import DuplicateMessageError, StoreError, TaskNotFoundError
from ._heartbeat import Replica
from ._models import Closing, Step, Task, Transition
from ._pg_schema import MIGRATIONS
from ._phases import Phase, StepState
from ._thread import SUMMARY, ThreadUpdate
from ._writer import as_store_error

T = TypeVar("T")
Conn = AsyncConnection[tuple[Any, ...]]
_MIGRATION_LOCK = 0x6F726368  # any number every replica agrees on: "orch"
_OPEN_TIMEOUT_S = 10

_TASK_ORDER = "ORDER BY t.created_at, t.n, s.position"  # n: the order tasks were added
_pg = _rows.pg
_ONE_TASK = _pg(_rows.SELECT_TASKS + _rows.ONE_TASK)
_INSERT_TASK, _INSERT_STEP = _pg(_rows.INSERT_TASK), _pg(_rows.INSERT_STEP)
_SUPERSEDE, _SET_PLAN = _pg(_rows.SUPERSEDE), _pg(_rows.SET_PLAN)
_SET_PHASE, _SET_STEP = _pg(_rows.SET_PHASE), _pg(_rows.SET_STEP)
_LOG, _HISTORY, _TOUCH, _UNSENT = map(_pg, (_rows.LOG, _rows.HISTORY, _rows.TOUCH, _rows.UNSENT))
_OPEN_STEPS, _CLOSE_STEP = _pg(_rows.OPEN_STEPS), _pg(_rows.CLOSE_STEP)
_CLOSE_TASK, _BUMP_SLOTS = _pg(_rows.CLOSE_TASK), _pg(_rows.BUMP_SLOTS)


class _NulSafeStr(StrDumperUnknown):
    """Text as PostgreSQL takes it: a NUL (which a command's output may hold, and SQLite
    keeps) becomes U+FFFD, where PostgreSQL would refuse the whole write."""

    def dump(self, obj: str) -> Buffer | None:
        return super().dump(obj.replace("\x00", "\ufffd"))


class _KeyTaken(Exception):
    """A message key was recorded by another transaction: roll this one back."""


class PgStore:
    """`Store` on a PostgreSQL database, shared by any number of processes."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self._url = url
        self._pool_size = pool_size
        self._pool: AsyncConnectionPool[Conn] | None = None
        self._writes: set[asyncio.Task[Any]] = set()
        self.replica_id = uuid.uuid4().hex[:12]

    @property
    def where(self) -> str:
        """The database as an operator knows it, without its password."""
        return describe(self._url)

    async def open(self) -> None:
        """Connect and migrate to the latest schema (one replica at a time)."""
        pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
            self._url, min_size=1, max_size=self._pool_size, open=False, configure=_configure
        )
        try:
            # One connection first: the pool would retry until its timeout and then say only
            # that it timed out, where this says why (refused, no such database, password).
            async with await AsyncConnection.connect(
                self._url, connect_timeout=_OPEN_TIMEOUT_S
            ) as conn:
                await _migrate(conn)
            await pool.open(wait=True, timeout=_OPEN_TIMEOUT_S)
        except (psycopg.Error, PoolTimeout, StoreError) as exc:
            await pool.close()
            reason = exc.reason if isinstance(exc, StoreError) else str(exc) or type(exc).__name__
            raise StoreError(f"cannot open the database {self.where}: {reason}") from exc
        self._pool = pool

    async def close(self) -> None:
        """Let writes in flight commit, then close the pool."""
        pool, self._pool = self._pool, None
        if self._writes:
            await asyncio.wait(self._writes)
        if pool is not None:
            await pool.close()

    async def schema_version(self) -> int:
        """The schema version the database is at."""
        rows = await self._fetch("SELECT version FROM schema_version", ())
        return int(rows[0][0])

    async def beat(self) -> None:
        async def op(conn: Conn) -> None:
            await conn.execute(
                "INSERT INTO replicas (id, host, pid) VALUES (%s, %s, %s) "
                "ON CONFLICT (id) DO UPDATE SET beat_at = clock_timestamp()",
                (self.replica_id, socket.gethostname(), os.getpid()),
            )

        await self._write(op)

    async def leave(self) -> None:
        async def op(conn: Conn) -> None:
            await conn.execute("DELETE FROM replicas WHERE id = %s", (self.replica_id,))

        await self._write(op)

    async def replicas(self, ttl_s: float) -> list[Replica]:
        rows = await self._fetch(
            "SELECT id, host, pid, EXTRACT(EPOCH FROM clock_timestamp() - beat_at)::float8 "
            "FROM replicas WHERE beat_at > clock_timestamp() - make_interval(secs => %s) "
            "ORDER BY started_at, id",
            (ttl_s,),
        )
        return [Replica(*row) for row in rows]

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[Conn]:
        # The pool commits when the block ends, and rolls back when it raises.
        if self._pool is None:
            raise StoreError("the store is closed")
        try:
            async with self._pool.connection() as conn:
                yield conn
        except psycopg.Error as exc:
            raise StoreError(f"the database failed: {type(exc).__name__}: {exc}") from exc

    async def _fetch(self, query: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        async with self._connection() as conn:
            cur = await conn.execute(query, params)
            return await cur.fetchall()

    async def _write(self, op: Callable[[Conn], Awaitable[T]]) -> T:
        """`op` in one transaction. A cancelled caller cancels only its wait: the write lands
        (or fails) regardless, as with SQLite's writer."""
        if self._pool is None:
            raise StoreError("the store is closed")

        async def transaction() -> T:
            try:
                async with self._connection() as conn:
                    return await op(conn)
            except _KeyTaken:
                raise
            except Exception as exc:  # a caller's bug met in the write fails that write alone
                raise as_store_error(exc) from exc

        task = asyncio.create_task(transaction())
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)
        return await asyncio.shield(task)

    async def create_task(
        self, task: Task, *, message_keys: Sequence[str] = (), outbox: Sequence[str] = ()
    ) -> None:
        keys = list(dict.fromkeys(message_keys))

        async def op(conn: Conn) -> None:
            await conn.execute(_INSERT_TASK, _rows.task_row(task))
            for key in keys:
                # A racing transaction with the same key makes this wait for its commit.
                cur = await conn.execute(
                    "INSERT INTO inbound_messages (key, task_id, at) VALUES (%s, %s, %s) "
                    "ON CONFLICT (key) DO NOTHING",
                    (key, task.id, task.created_at),
                )
                if cur.rowcount != 1:
                    raise _KeyTaken
            await _log(conn, task.id, None, "phase", None, task.phase.value, task.requester, None)
            await _touch(conn, task.id, outbox)

        try:
            await self._write(op)
        except _KeyTaken:
            rows = await self._fetch(
                "SELECT task_id FROM inbound_messages WHERE key = ANY(%s) "
                "ORDER BY task_id IS NULL LIMIT 1",
                (keys,),
            )
            existing = rows[0][0] if rows else None
            raise DuplicateMessageError(
                "this message was already turned into a task", task_id=existing
            ) from None

    async def claim_messages(self, keys: Sequence[str]) -> bool:
        unique = list(dict.fromkeys(keys))

        async def op(conn: Conn) -> bool:
            claimed = 0
            for key in unique:
                cur = await conn.execute(
                    "INSERT INTO inbound_messages (key, task_id, at) VALUES (%s, NULL, %s) "
                    "ON CONFLICT (key) DO NOTHING",
                    (key, time.time()),
                )
                claimed += cur.rowcount
            return claimed == len(unique)

        return await self._write(op)

    async def get_task(self, task_id: str) -> Task:
        tasks = _rows.tasks_from_rows(await self._fetch(_ONE_TASK, (task_id,)))
        if not tasks:
            raise TaskNotFoundError(f"no task {task_id}", task_id=task_id)
        return tasks[0]

    async def get_phase(self, task_id: str) -> Phase:
        rows = await self._fetch("SELECT phase FROM tasks WHERE id = %s", (task_id,))
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
        clause, params = _rows.task_filter(scope, scope_prefix, phases)
        return await self._select_tasks(_pg(clause), params)

    async def _select_tasks(self, clause: str, params: Sequence[Any]) -> list[Task]:
        # One statement, so tasks and their steps come from one snapshot of the database.
        rows = await self._fetch(f"{_rows.SELECT_TASKS} {clause} {_TASK_ORDER}", params)
        return _rows.tasks_from_rows(rows)

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
        return await self._write(lambda conn: _set_phase(conn, row, actor, outbox))

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

        async def op(conn: Conn) -> bool:
            if phase is not None:
                cur = await conn.execute(
                    "SELECT phase FROM tasks WHERE id = %s FOR UPDATE", (task_id,)
                )
                if await cur.fetchone() != (phase[0].value,):
                    return False
            async with conn.cursor() as cur:
                await cur.executemany(_SUPERSEDE, [(task_id, step_id) for step_id in replaced])
                await cur.executemany(_INSERT_STEP, rows)
            now = time.time()
            await conn.execute(
                _SET_PLAN, (plan_version, 1 if plan_version > 1 else 0, tokens, now, task_id)
            )
            await _log(conn, task_id, None, "plan", None, f"v{plan_version}", actor, reason)
            await _touch(conn, task_id, outbox)
            if phase is not None:  # the row is locked since the read above: it is set
                moved = _rows.set_phase_values(task_id, *phase, None, now)
                await _set_phase(conn, moved, actor, ())
            return True

        return await self._write(op)

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
        return await self._write(lambda conn: _set_step(conn, row, key, actor, decision, outbox))

    async def close_task(
        self, task_id: str, closing: Closing, *, actor: str, outbox: bool
    ) -> list[Transition]:
        return await self._write(lambda conn: _close(conn, task_id, closing, actor, outbox))

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

        async def op(conn: Conn) -> list[Transition] | None:
            if not await _set_phase(conn, row, actor, outbox):
                return None
            return await _close(conn, task_id, closing, actor, has_outbox)

        return await self._write(op)

    async def list_unclosed(self) -> list[Task]:
        return await self._select_tasks(_pg(_rows.UNCLOSED), _rows.TERMINAL)

    async def updates(self, task_id: str | None = None) -> list[ThreadUpdate]:
        if task_id is None:
            rows = await self._fetch(f"{_UNSENT} ORDER BY seq", ())
        else:
            rows = await self._fetch(f"{_UNSENT} AND task_id = %s ORDER BY seq", (task_id,))
        return [ThreadUpdate(*row) for row in rows]

    async def mark_sent(
        self, task_id: str, slot: str, *, version: int, ref: str, digest: str
    ) -> None:
        async def op(conn: Conn) -> None:
            await conn.execute(
                "UPDATE outbox SET sent_version = GREATEST(sent_version, %s), ref = %s, "
                "digest = %s WHERE task_id = %s AND slot = %s",
                (version, ref, digest, task_id, slot),
            )

        await self._write(op)

    async def set_meta(self, task_id: str, key: str, value: str) -> None:
        async def op(conn: Conn) -> None:
            cur = await conn.execute("SELECT meta FROM tasks WHERE id = %s FOR UPDATE", (task_id,))
            row = await cur.fetchone()
            if row is None:
                raise TaskNotFoundError(f"no task {task_id}", task_id=task_id)
            meta = {**json.loads(row[0]), key: value}
            await conn.execute(
                "UPDATE tasks SET meta = %s WHERE id = %s", (json.dumps(meta), task_id)
            )

        await self._write(op)

    async def history(self, task_id: str) -> list[Transition]:
        return [Transition(*row) for row in await self._fetch(_HISTORY, (task_id,))]


def describe(url: str) -> str:
    """`url` without its password (which may be in the URL or given as a parameter)."""
    try:
        info = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "postgresql://(an unreadable URL)"
    user = f"{info['user']}@" if info.get("user") else ""
    port = f":{info['port']}" if info.get("port") else ""
    return f"postgresql://{user}{info.get('host') or ''}{port}/{info.get('dbname') or ''}"


async def _configure(conn: Conn) -> None:
    conn.adapters.register_dumper(str, _NulSafeStr)


async def _migrate(conn: Conn) -> None:
    # Replicas starting together migrate one at a time; the lock ends with the transaction.
    await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
    await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    cur = await conn.execute("SELECT version FROM schema_version")
    row = await cur.fetchone()
    if row is None:
        await conn.execute("INSERT INTO schema_version (version) VALUES (0)")
    version = int(row[0]) if row else 0
    if version > len(MIGRATIONS):
        raise StoreError(f"the database schema v{version} is newer than this program knows")
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        await conn.execute(script)  # several statements: no parameters
        await conn.execute("UPDATE schema_version SET version = %s", (number,))


async def _set_phase(conn: Conn, row: tuple[Any, ...], actor: str, outbox: Sequence[str]) -> bool:
    if (await conn.execute(_SET_PHASE, row)).rowcount != 1:
        return False
    new, reason, _, task_id, old = row
    await _log(conn, task_id, None, "phase", old, new, actor, reason)
    await _touch(conn, task_id, outbox)
    return True


async def _set_step(
    conn: Conn,
    row: tuple[Any, ...],
    key: tuple[str, str, str],
    actor: str,
    decision: str | None,
    outbox: Sequence[str],
) -> bool:
    if (await conn.execute(_SET_STEP, row + key)).rowcount != 1:
        return False
    task_id, step_id, old = key
    reason = row[1]
    if decision is not None:
        await _log(conn, task_id, step_id, "decision", None, decision, actor, reason)
    await _log(conn, task_id, step_id, "step", old, row[0], actor, reason)
    await _touch(conn, task_id, outbox)
    return True


async def _close(
    conn: Conn, task_id: str, closing: Closing, actor: str, outbox: bool
) -> list[Transition]:
    # The task's row is locked first, so two processes closing one task close it once.
    await conn.execute("SELECT 1 FROM tasks WHERE id = %s FOR UPDATE", (task_id,))
    cur = await conn.execute(_OPEN_STEPS, (task_id, *_rows.OPEN_STATES))
    now = time.time()
    moves = []
    for step_id, state in await cur.fetchall():
        new, reason = closing[StepState(state)]
        await conn.execute(_CLOSE_STEP, (new.value, reason, task_id, step_id))
        await _log(conn, task_id, step_id, "step", state, new.value, actor, reason)
        moves.append(Transition(task_id, "step", state, new.value, actor, now, step_id, reason))
    await conn.execute(_CLOSE_TASK, (now, now, task_id))
    if outbox:
        await conn.execute(_BUMP_SLOTS, (task_id,))
        await _touch(conn, task_id, (SUMMARY,))
    return moves


async def _log(
    conn: Conn,
    task_id: str,
    step_id: str | None,
    kind: str,
    old: str | None,
    new: str,
    actor: str,
    reason: str | None,
) -> None:
    await conn.execute(_LOG, (task_id, step_id, kind, old, new, actor, reason, time.time()))


async def _touch(conn: Conn, task_id: str, slots: Sequence[str]) -> None:
    """Bump each slot's version, adding the slots that are new (in order, after the others)."""
    for slot in slots:
        await conn.execute(_TOUCH, (task_id, slot))
