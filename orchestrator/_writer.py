"""Group commit: one writer connection, on its own thread, commits every write that arrived
together in one transaction and one trip to that thread.

aiosqlite would cost a thread hop per statement, which at a thousand tasks in flight is the
bottleneck (bench/bench_store.py); a whole batch here costs one hop and one fsync.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from ._errors import OrchestratorError, StoreError

log = logging.getLogger(__name__)
T = TypeVar("T")
Op = Callable[[sqlite3.Connection], Any]
_MAX_BATCH = 512  # bounds a transaction's size and the latency of the last write in it
_Outcome = tuple[bool, Any]  # (is_ok, result or exception)
_Write = tuple[Callable[..., Any], tuple[Any, ...], "asyncio.Future[Any]"]  # op, its args, waiter


class GroupWriter:
    """Queues write operations and runs each batch in one transaction on the writer thread.

    Every caller waits for the commit that holds its own write. A batch that fails is rolled back
    and its operations retried one by one, so one bad write never sinks its neighbours.
    """

    def __init__(self, connect: Callable[[], sqlite3.Connection], *, max_batch: int) -> None:
        self._connect = connect
        self._max_batch = max_batch
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-writer")
        self._conn: sqlite3.Connection | None = None
        # A deque and one wake-up future, not an asyncio.Queue: a task queues some twenty writes,
        # and the queue's bookkeeping (sizes, waiters, a join event) is work nobody here needs.
        self._queue: deque[_Write] = deque()
        self._wake: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._is_closing = False

    async def start(self, prepare: Op) -> None:
        """Connect on the writer thread, run `prepare` (migrations) there, then take writes."""
        self._conn = await self._in_thread(self._connect)
        await self._in_thread(prepare, self._conn)
        self._task = asyncio.create_task(self._run(), name="store-writer")

    async def stop(self) -> None:
        """Refuse new writes, commit what is queued, close the connection."""
        self._is_closing = True
        try:
            if self._task is not None:
                self._wake_up()
                await self._task
        finally:
            if self._conn is not None:
                await self._in_thread(self._conn.close)
            self._thread.shutdown(wait=False)
            self._task = self._conn = None

    def submit(self, op: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Queue `op(conn, *args)` for the next transaction; await the result, there once it
        is committed. (A future, not a coroutine: one object fewer on every write.)"""
        if self._task is None or self._is_closing:
            raise StoreError("the store is closed")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append((op, args, future))
        self._wake_up()
        # A cancelled caller cancels only its wait: the write is queued and lands regardless
        # (the batch skips a future that is done), so no shield is needed.
        return future

    def _wake_up(self) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    async def _in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    async def _run(self) -> None:
        queue, loop = self._queue, asyncio.get_running_loop()
        while True:
            if not queue:
                if self._is_closing:
                    return
                self._wake = loop.create_future()
                await self._wake
                continue
            n = min(len(queue), self._max_batch)
            await self._settle([queue.popleft() for _ in range(n)])

    async def _settle(self, batch: list[_Write]) -> None:
        try:
            outcomes = await self._in_thread(self._commit, batch)
        except Exception as exc:  # the writer thread itself failed: fail this batch, keep serving
            outcomes = [(False, exc)] * len(batch)
        for (_, _, future), (is_ok, value) in zip(batch, outcomes, strict=True):
            if future.done():
                continue
            if is_ok:
                future.set_result(value)
            else:
                future.set_exception(as_store_error(value))

    def _commit(self, batch: list[_Write]) -> list[_Outcome]:
        """On the writer thread: all of `batch` in one transaction, else each in its own."""
        conn = self._conn
        assert conn is not None
        try:
            conn.execute("BEGIN IMMEDIATE")
            results = [op(conn, *args) for op, args, _ in batch]
            conn.execute("COMMIT")
        except Exception as exc:
            _rollback(conn)
            if len(batch) == 1:
                return [(False, exc)]
            return [outcome for write in batch for outcome in self._commit([write])]
        return [(True, r) for r in results]


def _rollback(conn: sqlite3.Connection) -> None:
    try:
        conn.execute("ROLLBACK")
    except sqlite3.Error:
        log.debug("rollback found no open transaction")


def as_store_error(exc: BaseException) -> OrchestratorError:
    """A failed write as the caller sees it: our own errors as they are, others as StoreError."""
    if isinstance(exc, OrchestratorError):
        return exc
    return StoreError(f"the database write failed: {type(exc).__name__}: {exc}")
