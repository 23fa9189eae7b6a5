"""SQLite schema migrations, applied in order and tracked with PRAGMA user_version."""

from __future__ import annotations

# Each entry moves the schema from version i to i + 1. Append; never edit a released one.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE tasks (
        id TEXT PRIMARY KEY,
        scope TEXT NOT NULL,
        requester TEXT NOT NULL,
        request TEXT NOT NULL,
        phase TEXT NOT NULL,
        reason TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        plan_version INTEGER NOT NULL DEFAULT 0,
        replans INTEGER NOT NULL DEFAULT 0,
        tokens_used INTEGER NOT NULL DEFAULT 0,
        steps_run INTEGER NOT NULL DEFAULT 0,
        meta TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX tasks_by_phase ON tasks (phase, scope);
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
        confirm_deadline REAL,
        PRIMARY KEY (task_id, id)
    );
    CREATE TABLE transitions (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        task_id TEXT NOT NULL,
        step_id TEXT,
        kind TEXT NOT NULL,
        old TEXT,
        new TEXT NOT NULL,
        actor TEXT NOT NULL,
        reason TEXT,
        at REAL NOT NULL
    );
    CREATE INDEX transitions_by_task ON transitions (task_id, seq);
    CREATE TABLE inbound_messages (
        key TEXT PRIMARY KEY,
        task_id TEXT,
        at REAL NOT NULL
    );
    """,
    # v2: the outbox (what each task's thread must show), asks per step, and the close marker.
    """
    ALTER TABLE steps ADD COLUMN asks INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE tasks ADD COLUMN closed_at REAL;
    UPDATE tasks SET closed_at = updated_at
        WHERE phase IN ('completed', 'failed', 'cancelled');
    CREATE INDEX tasks_unclosed ON tasks (id)
        WHERE closed_at IS NULL AND phase IN ('completed', 'failed', 'cancelled');
    CREATE TABLE outbox (
        seq INTEGER PRIMARY KEY,
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
    # v3: the tool a tool step calls ("server.tool").
    """
    ALTER TABLE steps ADD COLUMN tool TEXT NOT NULL DEFAULT '';
    """,
    # v4: a step counts its own runs and tokens, so a step move writes no task row.
    """
    ALTER TABLE steps ADD COLUMN tokens INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE steps ADD COLUMN runs INTEGER NOT NULL DEFAULT 0;
    """,
)
