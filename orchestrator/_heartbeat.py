"""A replica's heartbeat: the row that tells the other replicas sharing a database it is alive.

Only a store that several processes share (PostgreSQL) keeps replicas; on SQLite there is one
process and nothing to tell.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ._errors import StoreError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Replica:
    """A process sharing the database, as its last heartbeat left it."""

    id: str
    host: str
    pid: int
    beat_age_s: float  # by the database's clock, when it was read


@runtime_checkable
class ReplicaStore(Protocol):
    """A store that several processes share, each a replica with a heartbeat row."""

    replica_id: str

    async def beat(self) -> None:
        """Stamp this replica's row with the database's time (adding it the first time)."""

    async def leave(self) -> None:
        """Remove this replica's row: it is gone, not dead."""

    async def replicas(self, ttl_s: float) -> list[Replica]:
        """The replicas whose last heartbeat is younger than `ttl_s`, the oldest first."""


class Heartbeat:
    """Beats every `every_s` seconds until stopped; a failed beat is logged and tried again."""

    def __init__(self, store: ReplicaStore, every_s: float) -> None:
        self._store = store
        self._every_s = every_s
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """The first beat, before any work: a replica that cannot beat does not start."""
        await self._store.beat()
        self._task = asyncio.create_task(self._run(), name="heartbeat")

    async def stop(self) -> None:
        """Stop beating and leave, so others need not wait out the lease."""
        if self._task is None:
            return
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._task = None
        try:
            await self._store.leave()
        except StoreError as err:  # the row ages out instead
            log.warning("could not leave the replicas: %s", err.reason)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._every_s)
            try:
                await self._store.beat()
            except StoreError as err:
                log.warning("heartbeat failed: %s", err.reason)
