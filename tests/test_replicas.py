"""Replicas sharing a PostgreSQL database: each beats in its own row, by the database's clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from orchestrator import Orchestrator, OrchestratorConfig, PgStore, ReplicaStore, open_store
from orchestrator.testing import ScriptedLLM
from tests.postgres import BACKEND, database_url

pytestmark = [
    pytest.mark.timeout(20),
    pytest.mark.skipif(BACKEND != "postgres", reason="replicas share PostgreSQL (its own pass)"),
]
FAST = OrchestratorConfig(heartbeat_s=0.05, lease_ttl_s=1.0)


@pytest.fixture
async def watcher(tmp_path: Path) -> AsyncIterator[PgStore]:
    """The database as a third process sees it (it never beats)."""
    store = open_store(database_url(tmp_path, "shared"))
    assert isinstance(store, PgStore)
    await store.open()
    yield store
    await store.close()


def replica(tmp_path: Path) -> tuple[Orchestrator, str]:
    """An orchestrator on the shared database, and the id its heartbeat row has."""
    store = open_store(database_url(tmp_path, "shared"))
    assert isinstance(store, PgStore)
    return Orchestrator(store=store, llm=ScriptedLLM([]), config=FAST), store.replica_id


async def test_each_replica_beats_while_it_runs_and_leaves_when_it_closes(
    tmp_path: Path, watcher: PgStore
) -> None:
    (first, first_id), (second, second_id) = replica(tmp_path), replica(tmp_path)
    async with first:
        async with second:
            ids = [r.id for r in await watcher.replicas(ttl_s=1.0)]
            assert sorted(ids) == sorted([first_id, second_id])
            await asyncio.sleep(0.4)  # several beats: each is younger than a short lease
            assert len(await watcher.replicas(ttl_s=0.3)) == 2
        # The one that closed is gone at once, not after its lease.
        assert [r.id for r in await watcher.replicas(ttl_s=1.0)] == [first_id]
    assert await watcher.replicas(ttl_s=1.0) == []


async def test_a_replica_that_stops_beating_is_not_live_once_its_lease_is_over(
    tmp_path: Path, watcher: PgStore
) -> None:
    stopped = open_store(database_url(tmp_path, "shared"))
    assert isinstance(stopped, ReplicaStore)
    await stopped.open()
    try:
        await stopped.beat()  # then nothing, as from a process that died
        (seen,) = await watcher.replicas(ttl_s=0.3)
        assert seen.id == stopped.replica_id
        assert 0 <= seen.beat_age_s < 0.3
        await asyncio.sleep(0.4)
        assert await watcher.replicas(ttl_s=0.3) == []
        assert len(await watcher.replicas(ttl_s=5.0)) == 1  # still there: dead, not gone
    finally:
        await stopped.close()
