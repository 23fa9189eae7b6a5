"""The SQLite store: WAL, one group-committing writer connection, one reader connection."""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import aiosqlite

from ._errors import DuplicateMessageError, StoreError, TaskNotFoundError
from ._models import Step, Task, Transition
from ._phases import Action, Phase, StepState, Tier
from ._schema import MIGRATIONS
from ._writer import GroupWriter

_BUSY_TIMEOUT_MS = 5000
_STEP_COLUMNS = (
    "task_id, id, position, plan_version, description, action, input, depends_on, tier, "
    "state, output, reason, attempts, is_superseded, confirm_deadline"
)
_TASK_COLUMNS = (
    "id, scope, requester, request, phase, reason, created_at, updated_at, plan_version, "
    "replans, tokens_used, steps_run, meta"
)


class SqliteStore:
    """`Store` on one SQLite file."""

    def __init__(self, path: str | Path, *, max_batch: int = 512) -> None:
        """`max_batch` caps the writes per commit; 1 turns group commit off (for comparison)."""
        self._path = str(path)
        self._max_batch = max_batch
        self._write: aiosqlite.Connection | None = None
        self._read: aiosqlite.Connection | None = None
        self._writer: GroupWriter | None = None

    async def open(self) -> None:
        """Connect, switch to WAL and migrate to the latest schema."""
        try:
            self._write = await self._connect()
            await self._write.execute("PRAGMA journal_mode=WAL")
            await self._migrate(self._write)
            self._read = await self._connect()
            await self._read.execute("PRAGMA query_only=ON")
        except Exception as exc:
            await self.close()
            raise StoreError(f"cannot open the database {self._path}: {exc}") from exc
        self._writer = GroupWriter(self._write, max_batch=self._max_batch)
        self._writer.start()

    async def close(self) -> None:
        """Commit what is queued and close both connections."""
        if self._writer is not None:
            await self._writer.stop()
            self._writer = None
        for conn in (self._read, self._write):
            if conn is not None:
                await conn.close()
        self._read = self._write = None

    async def _connect(self) -> aiosqlite.Connection:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves so one transaction spans a batch.
        conn = await aiosqlite.connect(self._path, isolation_level=None)
        await conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
        await conn.execute("PRAGMA foreign_keys=ON")
        return conn

    async def _migrate(self, conn: aiosqlite.Connection) -> None:
        async with conn.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        version = int(row[0]) if row else 0
        if version > len(MIGRATIONS):
            raise StoreError(f"the database schema v{version} is newer than this program knows")
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            await conn.executescript(f"BEGIN; {script}; PRAGMA user_version={number}; COMMIT;")

    @property
    def _reader(self) -> aiosqlite.Connection:
        if self._read is None:
            raise StoreError("the store is not open")
        return self._read

    @property
    def _w(self) -> GroupWriter:
        if self._writer is None:
            raise StoreError("the store is not open")
        return self._writer

    async def create_task(self, task: Task, *, message_keys: Sequence[str] = ()) -> None:
        async def op(conn: aiosqlite.Connection) -> str | None:
            for key in message_keys:
                async with conn.execute(
                    "SELECT task_id FROM inbound_messages WHERE key = ?", (key,)
                ) as cur:
                    row = await cur.fetchone()
                if row is not None:
                    return str(row[0] or "")
            await conn.execute(
                f"INSERT INTO tasks ({_TASK_COLUMNS}) VALUES ({_marks(13)})", _task_row(task)
            )
            await conn.executemany(
                "INSERT INTO inbound_messages (key, task_id, at) VALUES (?, ?, ?)",
                [(key, task.id, task.created_at) for key in message_keys],
            )
            await _log(conn, task.id, None, "phase", None, task.phase.value, task.requester, None)
            return None

        existing = await self._w.submit(op)
        if existing is not None:
            raise DuplicateMessageError(
                "this message was already turned into a task", task_id=existing or None
            )

    async def claim_messages(self, keys: Sequence[str]) -> bool:
        async def op(conn: aiosqlite.Connection) -> bool:
            cur = await conn.executemany(
                "INSERT OR IGNORE INTO inbound_messages (key, task_id, at) VALUES (?, NULL, ?)",
                [(key, time.time()) for key in keys],
            )
            return cur.rowcount == len(keys)

        return await self._w.submit(op)

    async def get_task(self, task_id: str) -> Task:
        tasks = await self._select_tasks("WHERE id = ?", (task_id,))
        if not tasks:
            raise TaskNotFoundError(f"no task {task_id}", task_id=task_id)
        return tasks[0]

    async def list_tasks(
        self,
        *,
        scope: str | None = None,
        scope_prefix: str | None = None,
        phases: Collection[Phase] | None = None,
    ) -> list[Task]:
        where: list[str] = []
        params: list[Any] = []
        if scope is not None:
            where.append("scope = ?")
            params.append(scope)
        if scope_prefix is not None:
            # substr, not LIKE: scopes may hold % or _, which LIKE would treat as wildcards.
            where.append("substr(scope, 1, ?) = ?")
            params += [len(scope_prefix), scope_prefix]
        if phases is not None:
            where.append(f"phase IN ({_marks(len(phases))})")
            params.extend(p.value for p in phases)
        clause = ("WHERE " + " AND ".join(where)) if where else ""
        return await self._select_tasks(clause, tuple(params))

    async def _select_tasks(self, clause: str, params: tuple[Any, ...]) -> list[Task]:
        query = f"SELECT {_TASK_COLUMNS} FROM tasks {clause} ORDER BY created_at, rowid"
        async with self._reader.execute(query, params) as cur:
            rows = list(await cur.fetchall())
        if not rows:
            return []
        ids = [row[0] for row in rows]
        steps: dict[str, list[Step]] = {i: [] for i in ids}
        step_query = (
            f"SELECT {_STEP_COLUMNS} FROM steps WHERE task_id IN ({_marks(len(ids))}) "
            "ORDER BY task_id, position"
        )
        async with self._reader.execute(step_query, ids) as cur:
            for srow in await cur.fetchall():
                steps[srow[0]].append(_step_from_row(srow))
        return [_task_from_row(row, steps[row[0]]) for row in rows]

    async def set_phase(
        self, task_id: str, *, old: Phase, new: Phase, actor: str, reason: str | None
    ) -> bool:
        async def op(conn: aiosqlite.Connection) -> bool:
            cur = await conn.execute(
                "UPDATE tasks SET phase = ?, reason = ?, updated_at = ? WHERE id = ? AND phase = ?",
                (new.value, reason, time.time(), task_id, old.value),
            )
            if cur.rowcount != 1:
                return False
            await _log(conn, task_id, None, "phase", old.value, new.value, actor, reason)
            return True

        return await self._w.submit(op)

    async def save_plan(
        self,
        task_id: str,
        steps: Sequence[Step],
        *,
        plan_version: int,
        replaced: Collection[str] = (),
        actor: str,
        reason: str | None = None,
    ) -> None:
        async def op(conn: aiosqlite.Connection) -> None:
            await conn.executemany(
                "UPDATE steps SET is_superseded = 1 WHERE task_id = ? AND id = ?",
                [(task_id, step_id) for step_id in replaced],
            )
            await conn.executemany(
                f"INSERT INTO steps ({_STEP_COLUMNS}) VALUES ({_marks(15)})",
                [_step_row(task_id, s) for s in steps],
            )
            await conn.execute(
                "UPDATE tasks SET plan_version = ?, replans = replans + ?, updated_at = ? "
                "WHERE id = ?",
                (plan_version, 1 if plan_version > 1 else 0, time.time(), task_id),
            )
            await _log(conn, task_id, None, "plan", None, f"v{plan_version}", actor, reason)

        await self._w.submit(op)

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
    ) -> bool:
        async def op(conn: aiosqlite.Connection) -> bool:
            cur = await conn.execute(
                "UPDATE steps SET state = ?, reason = ?, output = COALESCE(?, output), "
                "attempts = COALESCE(?, attempts), confirm_deadline = ? "
                "WHERE task_id = ? AND id = ? AND state = ?",
                (
                    new.value,
                    reason,
                    output,
                    attempts,
                    confirm_deadline,
                    task_id,
                    step_id,
                    old.value,
                ),
            )
            if cur.rowcount != 1:
                return False
            started = 1 if new is StepState.RUNNING else 0
            await conn.execute(
                "UPDATE tasks SET tokens_used = tokens_used + ?, steps_run = steps_run + ?, "
                "updated_at = ? WHERE id = ?",
                (tokens, started, time.time(), task_id),
            )
            await _log(conn, task_id, step_id, "step", old.value, new.value, actor, reason)
            return True

        return await self._w.submit(op)

    async def add_tokens(self, task_id: str, tokens: int) -> None:
        async def op(conn: aiosqlite.Connection) -> None:
            await conn.execute(
                "UPDATE tasks SET tokens_used = tokens_used + ? WHERE id = ?", (tokens, task_id)
            )

        await self._w.submit(op)

    async def record_decision(
        self, task_id: str, decision: str, *, actor: str, step_id: str | None, reason: str | None
    ) -> None:
        async def op(conn: aiosqlite.Connection) -> None:
            await _log(conn, task_id, step_id, "decision", None, decision, actor, reason)

        await self._w.submit(op)

    async def set_meta(self, task_id: str, key: str, value: str) -> None:
        async def op(conn: aiosqlite.Connection) -> None:
            await conn.execute(
                "UPDATE tasks SET meta = json_set(meta, ?, ?) WHERE id = ?",
                (f'$."{key}"', value, task_id),
            )

        await self._w.submit(op)

    async def history(self, task_id: str) -> list[Transition]:
        query = (
            "SELECT task_id, kind, old, new, actor, at, step_id, reason FROM transitions "
            "WHERE task_id = ? ORDER BY seq"
        )
        async with self._reader.execute(query, (task_id,)) as cur:
            return [Transition(*row) for row in await cur.fetchall()]


async def _log(
    conn: aiosqlite.Connection,
    task_id: str,
    step_id: str | None,
    kind: str,
    old: str | None,
    new: str,
    actor: str,
    reason: str | None,
) -> None:
    await conn.execute(
        "INSERT INTO transitions (task_id, step_id, kind, old, new, actor, reason, at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (task_id, step_id, kind, old, new, actor, reason, time.time()),
    )


def _marks(n: int) -> str:
    return ", ".join("?" * n)


def _task_row(t: Task) -> tuple[Any, ...]:
    return (
        t.id, t.scope, t.requester, t.request, t.phase.value, t.reason, t.created_at,
        t.updated_at, t.plan_version, t.replans, t.tokens_used, t.steps_run,
        json.dumps(dict(t.meta)),
    )  # fmt: skip


def _task_from_row(row: Any, steps: list[Step]) -> Task:
    return Task(
        id=row[0], scope=row[1], requester=row[2], request=row[3], phase=Phase(row[4]),
        reason=row[5], created_at=row[6], updated_at=row[7], plan_version=row[8],
        replans=row[9], tokens_used=row[10], steps_run=row[11], steps=tuple(steps),
        meta=json.loads(row[12]),
    )  # fmt: skip


def _step_row(task_id: str, s: Step) -> tuple[Any, ...]:
    return (
        task_id, s.id, s.position, s.plan_version, s.description, s.action.value, s.input,
        json.dumps(list(s.depends_on)), s.tier.value, s.state.value, s.output, s.reason,
        s.attempts, int(s.is_superseded), s.confirm_deadline,
    )  # fmt: skip


def _step_from_row(r: Any) -> Step:
    return Step(
        id=r[1], position=r[2], plan_version=r[3], description=r[4], action=Action(r[5]),
        input=r[6], depends_on=tuple(json.loads(r[7])), tier=Tier(r[8]), state=StepState(r[9]),
        output=r[10], reason=r[11], attempts=r[12], is_superseded=bool(r[13]),
        confirm_deadline=r[14],
    )  # fmt: skip
