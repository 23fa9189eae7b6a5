"""Rows to models and back, and the statements every store runs: one column order, one
decoding, one text of each statement (in SQLite's `?` placeholders; `pg` turns them into
psycopg's)."""

from __future__ import annotations

import functools
import json
from collections.abc import Collection
from typing import Any

from ._models import Step, Task
from ._phases import Action, Phase, StepState, Tier

TASK_COLUMNS = (
    "id, scope, requester, request, phase, reason, created_at, updated_at, plan_version, "
    "replans, tokens_used, steps_run, meta"
)
STEP_COLUMNS = (
    "task_id, id, position, plan_version, description, action, input, depends_on, tier, "
    "state, output, reason, attempts, is_superseded, confirm_deadline, asks, tool"
)
TERMINAL = tuple(p.value for p in Phase if p.is_terminal)
OPEN_STATES = tuple(s.value for s in StepState if not s.is_terminal)
N_TASK = len(TASK_COLUMNS.split(","))
N_STEP = len(STEP_COLUMNS.split(","))

SELECT_TASKS = (
    "SELECT "
    + ", ".join(f"t.{c.strip()}" for c in TASK_COLUMNS.split(","))
    + ", "
    + ", ".join(f"s.{c.strip()}" for c in STEP_COLUMNS.split(","))
    + ", s.tokens, s.runs FROM tasks t LEFT JOIN steps s ON s.task_id = t.id"
)


ONE_TASK = " WHERE t.id = ? ORDER BY s.position"
INSERT_TASK = f"INSERT INTO tasks ({TASK_COLUMNS}) VALUES ({', '.join('?' * N_TASK)})"
INSERT_STEP = f"INSERT INTO steps ({STEP_COLUMNS}) VALUES ({', '.join('?' * N_STEP)})"
SUPERSEDE = "UPDATE steps SET is_superseded = 1 WHERE task_id = ? AND id = ?"
SET_PLAN = (
    "UPDATE tasks SET plan_version = ?, replans = replans + ?, "
    "tokens_used = tokens_used + ?, updated_at = ? WHERE id = ?"
)
SET_PHASE = "UPDATE tasks SET phase = ?, reason = ?, updated_at = ? WHERE id = ? AND phase = ?"
# The step counts its own runs and tokens (the task's totals are summed when read): one row
# written per move, not the task's row as well.
SET_STEP = (
    "UPDATE steps SET state = ?, reason = ?, output = COALESCE(?, output), "
    "attempts = COALESCE(?, attempts), confirm_deadline = ?, asks = COALESCE(?, asks), "
    "tokens = tokens + ?, runs = runs + ? "
    "WHERE task_id = ? AND id = ? AND state = ?"
)


def set_phase_values(
    task_id: str, old: Phase, new: Phase, reason: str | None, at: float
) -> tuple[Any, ...]:
    """SET_PHASE's values: the new phase, why, when; where the task is in the old one."""
    return (new.value, reason, at, task_id, old.value)


def set_step_values(
    new: StepState,
    reason: str | None,
    output: str | None,
    attempts: int | None,
    confirm_deadline: float | None,
    asks: int | None,
    tokens: int,
) -> tuple[Any, ...]:
    """SET_STEP's values up to its key (task, step, old state); a move to running is a run."""
    started = 1 if new is StepState.RUNNING else 0
    return (new.value, reason, output, attempts, confirm_deadline, asks, tokens, started)


LOG = (
    "INSERT INTO transitions (task_id, step_id, kind, old, new, actor, reason, at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
HISTORY = (
    "SELECT task_id, kind, old, new, actor, at, step_id, reason FROM transitions "
    "WHERE task_id = ? ORDER BY seq"
)
# A slot's version is bumped; a slot that is new is added (in order, after the others).
TOUCH = (
    "INSERT INTO outbox (task_id, slot) VALUES (?, ?) "
    "ON CONFLICT (task_id, slot) DO UPDATE SET version = outbox.version + 1"
)
UNSENT = "SELECT task_id, slot, seq, version, ref, digest FROM outbox WHERE version > sent_version"
OPEN_STEPS = (
    "SELECT id, state FROM steps WHERE task_id = ? AND is_superseded = 0 "
    f"AND state IN ({', '.join('?' * len(OPEN_STATES))}) ORDER BY plan_version, position"
)
CLOSE_STEP = (
    "UPDATE steps SET state = ?, reason = ?, confirm_deadline = NULL WHERE task_id = ? AND id = ?"
)
CLOSE_TASK = "UPDATE tasks SET closed_at = ?, updated_at = ? WHERE id = ?"
# Everything is rendered once more at the end: a prompt or plan still showing buttons loses
# them, and the summary is added after every other slot.
BUMP_SLOTS = "UPDATE outbox SET version = version + 1 WHERE task_id = ?"
UNCLOSED = f"WHERE t.closed_at IS NULL AND t.phase IN ({', '.join('?' * len(TERMINAL))})"


def task_filter(
    scope: str | None, scope_prefix: str | None, phases: Collection[Phase] | None
) -> tuple[str, tuple[Any, ...]]:
    """The WHERE clause (and its values) of `Store.list_tasks`."""
    where: list[str] = []
    params: list[Any] = []
    if scope is not None:
        where.append("t.scope = ?")
        params.append(scope)
    if scope_prefix is not None:
        # substr, not LIKE: scopes may hold % or _, which LIKE would treat as wildcards.
        where.append("substr(t.scope, 1, ?) = ?")
        params += [len(scope_prefix), scope_prefix]
    if phases is not None:
        # No phase asked for matches no task; PostgreSQL refuses an empty IN list.
        where.append(f"t.phase IN ({', '.join('?' * len(phases))})" if phases else "1 = 0")
        params.extend(p.value for p in phases)
    return ("WHERE " + " AND ".join(where)) if where else "", tuple(params)


def pg(statement: str) -> str:
    """A statement in psycopg's placeholders (none of ours holds a literal `?` or `%`)."""
    return statement.replace("?", "%s")


def tasks_from_rows(rows: list[Any]) -> list[Task]:
    heads: dict[str, Any] = {}
    steps: dict[str, list[Step]] = {}
    counts: dict[str, list[int]] = {}  # task -> [tokens, runs] of its steps
    for row in rows:
        task_id = row[0]
        if task_id not in heads:
            heads[task_id] = row[:N_TASK]
            steps[task_id] = []
            counts[task_id] = [0, 0]
        if row[N_TASK] is not None:
            steps[task_id].append(step_from_row(row[N_TASK : N_TASK + N_STEP]))
            counts[task_id][0] += row[-2]
            counts[task_id][1] += row[-1]
    return [
        task_from_row(head, steps[task_id], *counts[task_id]) for task_id, head in heads.items()
    ]


def task_row(t: Task) -> tuple[Any, ...]:
    return (
        t.id, t.scope, t.requester, t.request, t.phase.value, t.reason, t.created_at,
        t.updated_at, t.plan_version, t.replans, t.tokens_used, t.steps_run,
        json.dumps(dict(t.meta)),
    )  # fmt: skip


# Stored values to members by dict: calling an Enum is three Python calls, and a task read
# converts three per step.
PHASES = {p.value: p for p in Phase}
STATES = {s.value: s for s in StepState}
ACTIONS = {a.value: a for a in Action}
TIERS = {t.value: t for t in Tier}


def task_from_row(row: Any, steps: list[Step], step_tokens: int, step_runs: int) -> Task:
    # The task row counts planning's tokens; its steps count their own runs and tokens.
    return Task(
        id=row[0], scope=row[1], requester=row[2], request=row[3], phase=PHASES[row[4]],
        reason=row[5], created_at=row[6], updated_at=row[7], plan_version=row[8],
        replans=row[9], tokens_used=row[10] + step_tokens, steps_run=row[11] + step_runs,
        steps=tuple(steps),
        meta=json.loads(row[12]),
    )  # fmt: skip


def step_row(task_id: str, s: Step) -> tuple[Any, ...]:
    return (
        task_id, s.id, s.position, s.plan_version, s.description, s.action.value, s.input,
        depends_json(s.depends_on), s.tier.value, s.state.value, s.output, s.reason,
        s.attempts, int(s.is_superseded), s.confirm_deadline, s.asks, s.tool,
    )  # fmt: skip


@functools.lru_cache(maxsize=4096)
def depends_json(depends_on: tuple[str, ...]) -> str:
    return json.dumps(list(depends_on))


@functools.lru_cache(maxsize=4096)
def depends_on(stored: str) -> tuple[str, ...]:
    # Plans repeat the same few lists ("[]", ["a", "b"]): decoded once each, shared (a tuple).
    return tuple(json.loads(stored))


def step_from_row(r: Any) -> Step:
    return Step(
        id=r[1], position=r[2], plan_version=r[3], description=r[4], action=ACTIONS[r[5]],
        input=r[6], depends_on=depends_on(r[7]), tier=TIERS[r[8]], state=STATES[r[9]],
        output=r[10], reason=r[11], attempts=r[12], is_superseded=bool(r[13]),
        confirm_deadline=r[14], asks=r[15], tool=r[16],
    )  # fmt: skip
