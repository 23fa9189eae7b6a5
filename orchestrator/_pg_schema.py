"""PostgreSQL schema migrations, applied in order and tracked in `schema_version`.

The tables are SQLite's (the same columns, so one row codec serves both), in PostgreSQL's types.
"""

from __future__ import annotations

# Each entry moves the schema from version i to i + 1. Append; never edit a released one.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE tasks (
        id TEXT PRIMARY KEY,
        n BIGINT GENERATED ALWAYS AS IDENTITY,
        scope TEXT NOT NULL,
        requester TEXT NOT NULL,
        request TEXT NOT NULL,
        phase TEXT NOT NULL,
        reason TEXT,
        created_at DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL,
        plan_version INTEGER NOT NULL DEFAULT 0,
        replans INTEGER NOT NULL DEFAULT 0,
        tokens_used BIGINT NOT NULL DEFAULT 0,
        steps_run INTEGER NOT NULL DEFAULT 0,
        meta TEXT NOT NULL DEFAULT '{}',
        closed_at DOUBLE PRECISION
    );
    CREATE INDEX tasks_by_phase ON tasks (phase, scope);
    CREATE INDEX tasks_unclosed ON tasks (id)
        WHERE closed_at IS NULL AND phase IN ('completed', 'failed', 'cancelled');
    CREATE TABLE steps (
        task_id TEXT NOT NULL REFERENCES tasks (id),
        id TEXT NOT NULL,
        position INTEGER NOT NULL,
        plan_version INTEGER NOT NULL,
        description TEXT NOT NULL,
        action TEXT NOT NULL,
        input TEXT NOT NULL,
        depends_on TEXT NOT NULL,
        tier TEXT NOT NULL,
        state TEXT NOT NULL,
        output TEXT,
        reason TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        is_superseded INTEGER NOT NULL DEFAULT 0,
        confirm_deadline DOUBLE PRECISION,
        asks INTEGER NOT NULL DEFAULT 0,
        tool TEXT NOT NULL DEFAULT '',
        tokens BIGINT NOT NULL DEFAULT 0,
        runs INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (task_id, id)
    );
    CREATE TABLE transitions (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        task_id TEXT NOT NULL,
        step_id TEXT,
        kind TEXT NOT NULL,
        old TEXT,
        new TEXT NOT NULL,
        actor TEXT NOT NULL,
        reason TEXT,
        at DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX transitions_by_task ON transitions (task_id, seq);
    CREATE TABLE inbound_messages (
        key TEXT PRIMARY KEY,
        task_id TEXT,
        at DOUBLE PRECISION NOT NULL
    );
    CREATE TABLE outbox (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        task_id TEXT NOT NULL REFERENCES tasks (id),
        slot TEXT NOT NULL,
        version INTEGER NOT NULL DEFAULT 1,
        sent_version INTEGER NOT NULL DEFAULT 0,
        ref TEXT,
        digest TEXT,
        UNIQUE (task_id, slot)
    );
    CREATE INDEX outbox_unsent ON outbox (task_id, seq) WHERE version > sent_version;
    """,
    # v2: replicas, each with the database time of its last heartbeat.
    """
    CREATE TABLE replicas (
        id TEXT PRIMARY KEY,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        started_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
        beat_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
    );
    """,
)
