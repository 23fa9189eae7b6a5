"""The store interface: everything the orchestrator persists goes through these methods.

A backend (SQLite, PostgreSQL) implements `Store`; nothing else touches the database.
Writes return only once committed, so nothing is acknowledged unwritten. A write's `outbox` names
the thread slots it touches, in the same transaction (see `_thread`).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Protocol

from ._errors import ConfigError
from ._models import Closing, Step, Task, Transition
from ._phases import Phase, StepState
from ._sqlite import SqliteStore
from ._thread import ThreadUpdate


class Store(Protocol):
    """Durable state of tasks, steps, the transition log and seen chat messages."""

    @property
    def where(self) -> str:
        """The database as an operator knows it (never with a password)."""

    async def schema_version(self) -> int:
        """The schema version the database is at (once open)."""

    async def open(self) -> None:
        """Connect and migrate."""

    async def close(self) -> None:
        """Flush pending writes and disconnect."""

    async def create_task(
        self, task: Task, *, message_keys: Sequence[str] = (), outbox: Sequence[str] = ()
    ) -> None:
        """Insert a new task; `DuplicateMessageError` (naming the task) if a key was seen."""

    async def claim_messages(self, keys: Sequence[str]) -> bool:
        """Record chat message keys; False when any was recorded before."""

    async def get_task(self, task_id: str) -> Task:
        """The task with its steps; `TaskNotFoundError` when there is none."""

    async def get_phase(self, task_id: str) -> Phase:
        """Only the task's phase (no steps): a cheap read; `TaskNotFoundError` when none."""

    async def list_tasks(
        self,
        *,
        scope: str | None = None,
        scope_prefix: str | None = None,
        phases: Collection[Phase] | None = None,
    ) -> list[Task]:
        """Tasks in a scope (or scopes starting with a prefix) and/or phases, oldest first."""

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
        """Compare-and-set the phase and log it; False when the stored phase is not `old`."""

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
        """Add a plan's steps, mark `replaced` step ids superseded, set the plan version, and
        count the `tokens` it took to make. With `phase` (old, new), move the task's phase in
        the same transaction (logged after the plan, without a reason); False, with nothing
        written, when it is not `old`."""

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
        """Compare-and-set a step's state (with its output) and log it; False if not `old`.

        `decision` logs a person's answer (run, skip, expired) in the same transaction."""

    async def close_task(
        self, task_id: str, closing: Closing, *, actor: str, outbox: bool
    ) -> list[Transition]:
        """Close an ended task: every open step of its plan moves as `closing` says, it is marked
        closed, and with `outbox` its summary slot is added and every other slot touched.

        Returns the step moves made."""

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
        """`set_phase` to a terminal phase and `close_task`, in one transaction; the step
        moves made, or None when the stored phase is not `old` (nothing written)."""

    async def list_unclosed(self) -> list[Task]:
        """Tasks in a terminal phase whose close never committed (a crash came between)."""

    async def updates(self, task_id: str | None = None) -> list[ThreadUpdate]:
        """Slots not yet shown at their latest version, of one task or of all, in order."""

    async def mark_sent(
        self, task_id: str, slot: str, *, version: int, ref: str, digest: str
    ) -> None:
        """Record that `version` of a slot is shown, as the message `ref` with this `digest`."""

    async def set_meta(self, task_id: str, key: str, value: str) -> None:
        """Attach a string to a task for its client (a chat adapter's message ids, say)."""

    async def history(self, task_id: str) -> list[Transition]:
        """The task's transition log, oldest first."""


def open_store(url: str) -> Store:
    """The store for a `DATABASE_URL`: `sqlite:///relative.db`, `sqlite:////abs/path.db` or
    `postgresql://user:password@host:port/dbname`."""
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        if path:
            return SqliteStore(path)
    if url.startswith(("postgres://", "postgresql://")):
        from ._pg import PgStore  # noqa: PLC0415 - psycopg only for a program that uses it

        return PgStore(url)
    shown = url if "://" not in url else url.split("://", 1)[0] + "://…"
    raise ConfigError(
        f"DATABASE_URL: {shown!r} is not a database URL; use sqlite:///orchestrator.db, "
        "sqlite:////absolute/path.db or postgresql://user:password@host:port/dbname"
    )
