"""Group commit: one writer connection commits every write that arrived together in one go."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiosqlite

from ._errors import OrchestratorError, StoreError

log = logging.getLogger(__name__)
T = TypeVar("T")
Op = Callable[[aiosqlite.Connection], Awaitable[Any]]
_MAX_BATCH = 512  # bounds a transaction's size and the latency of the last write in it


class GroupWriter:
    """Queues write operations and runs each batch in one transaction.

    Every caller waits for the commit that holds its own write. A batch that fails is rolled back
    and its operations retried one by one, so one bad write never sinks its neighbours.
    """

    def __init__(self, conn: aiosqlite.Connection, *, max_batch: int = _MAX_BATCH) -> None:
        self._conn = conn
        self._max_batch = max_batch
        self._queue: asyncio.Queue[tuple[Op, asyncio.Future[Any]] | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="store-writer")

    async def stop(self) -> None:
        """Commit what is queued, then stop."""
        if self._task is not None:
            self._queue.put_nowait(None)
            await self._task
            self._task = None

    async def submit(self, op: Callable[[aiosqlite.Connection], Awaitable[T]]) -> T:
        """Run `op` in the next transaction and return its result once committed."""
        if self._task is None:
            raise StoreError("the store is not open")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((op, future))
        # Shielded: a cancelled caller must not leave its write half-known; it lands regardless.
        return await asyncio.shield(future)

    async def _run(self) -> None:
        while True:
            item = await self._queue.get()
            if item is None:
                return
            batch = [item]
            while len(batch) < self._max_batch and not self._queue.empty():
                more = self._queue.get_nowait()
                if more is None:
                    await self._commit(batch)
                    return
                batch.append(more)
            await self._commit(batch)

    async def _commit(self, batch: list[tuple[Op, asyncio.Future[Any]]]) -> None:
        try:
            await self._conn.execute("BEGIN IMMEDIATE")
            results = [await op(self._conn) for op, _ in batch]
            await self._conn.execute("COMMIT")
        except (sqlite3.Error, OrchestratorError, ValueError) as exc:
            await self._rollback()
            if len(batch) > 1:
                for item in batch:
                    await self._commit([item])
                return
            _, future = batch[0]
            if not future.done():
                future.set_exception(_as_store_error(exc))
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)

    async def _rollback(self) -> None:
        try:
            await self._conn.execute("ROLLBACK")
        except sqlite3.Error:
            log.debug("rollback found no open transaction")


def _as_store_error(exc: Exception) -> OrchestratorError:
    if isinstance(exc, OrchestratorError):
        return exc
    return StoreError(f"the database write failed: {exc}")
