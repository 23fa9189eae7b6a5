"""Orchestrator events -> messages in each task's thread, coalesced under Slack's rate limits."""

from __future__ import annotations

import asyncio
import logging
import time

from orchestrator import (
    ConfirmationRequested,
    Event,
    Orchestrator,
    Phase,
    PhaseChanged,
    PlanReplaced,
    StepChanged,
    StepState,
    Task,
    TaskFinished,
    TaskSubmitted,
)

from . import render
from .slack_io import SlackThreads

log = logging.getLogger(__name__)
# Slack: chat.update is rate limited (Tier 3, about 50 a minute per workspace). One edit per
# progress message per second at most, and progress edits of all tasks spaced to fit 50 a minute.
UPDATE_INTERVAL_S = 1.0
EDIT_SPACING_S = 60 / 50


class Relay:
    """Subscribes to the orchestrator and keeps every task's thread current, one worker per task."""

    def __init__(
        self,
        orch: Orchestrator,
        threads: SlackThreads,
        *,
        update_interval_s: float = UPDATE_INTERVAL_S,
    ) -> None:
        """`update_interval_s` spaces edits of one progress message (0: on every change)."""
        self._orch = orch
        self._threads = threads
        self._interval = update_interval_s
        self._edits = _Spacing(EDIT_SPACING_S if update_interval_s else 0.0)
        self._queues: dict[str, asyncio.Queue[Event]] = {}
        self._workers: set[asyncio.Task[None]] = set()
        self._ready = asyncio.Event()

    async def run(self) -> None:
        """Route events to per-task workers until cancelled."""
        async with self._orch.subscribe() as events:
            self._ready.set()
            async for event in events:
                queue = self._queues.get(event.task_id)
                if queue is None:
                    queue = self._queues[event.task_id] = asyncio.Queue()
                    worker = asyncio.create_task(self._work(event.task_id, queue))
                    self._workers.add(worker)
                    worker.add_done_callback(self._workers.discard)
                queue.put_nowait(event)

    async def wait_ready(self) -> None:
        """Return once the relay listens, so no event of a new task is missed."""
        await self._ready.wait()

    async def close(self) -> None:
        """Stop the workers (their threads are refreshed by the next event after a restart)."""
        for worker in list(self._workers):
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)

    async def _work(self, task_id: str, queue: asyncio.Queue[Event]) -> None:
        thread = _ThreadState(self._interval)
        try:
            while True:
                timeout = thread.flush_due - time.monotonic() if thread.is_dirty else None
                try:
                    async with asyncio.timeout(timeout):
                        event = await queue.get()
                except TimeoutError:
                    await self._flush_progress(task_id, thread)
                    continue
                try:
                    await self._handle(event, thread)
                except Exception:
                    log.exception("relaying %s failed", type(event).__name__)
                if isinstance(event, TaskFinished):
                    return
        finally:
            self._queues.pop(task_id, None)

    async def _handle(self, event: Event, thread: _ThreadState) -> None:
        task = await self._orch.get_task(event.task_id)
        channel, thread_ts = task.meta.get("channel"), task.meta.get("thread_ts")
        if not channel or not thread_ts:
            return  # not a Slack task (the shell, another client)
        if isinstance(event, TaskSubmitted):
            ts = await self._threads.post(channel, thread_ts, render.planning(task))
            if ts:
                await self._orch.set_meta(task.id, "plan_ts", ts)
        elif isinstance(event, PhaseChanged):
            await self._phase_changed(task, event, thread)
        elif isinstance(event, StepChanged):
            await self._step_changed(task, event, thread)
        elif isinstance(event, ConfirmationRequested):
            message = render.confirmation(task, task.step(event.step_id), event.reason)
            ts = await self._threads.post(channel, thread_ts, message)
            if ts:
                await self._orch.set_meta(task.id, f"confirm:{event.step_id}", ts)
        elif isinstance(event, PlanReplaced):
            await self._threads.post(channel, thread_ts, render.replanned(task, event.reason))
            thread.mark_dirty()
        elif isinstance(event, TaskFinished):
            if thread.is_dirty:  # the final states, before the summary that follows them
                await self._flush_progress(task.id, thread)
            await self._threads.post(channel, thread_ts, render.summary(task))

    async def _phase_changed(self, task: Task, event: PhaseChanged, thread: _ThreadState) -> None:
        channel, thread_ts = task.meta["channel"], task.meta["thread_ts"]
        if event.new is Phase.AWAITING_APPROVAL:
            message = render.plan(task)
            plan_ts = task.meta.get("plan_ts")
            if not plan_ts or not await self._threads.update(channel, plan_ts, message):
                ts = await self._threads.post(channel, thread_ts, message)
                if ts:
                    await self._orch.set_meta(task.id, "plan_ts", ts)
        elif event.new is Phase.EXECUTING:
            await self._threads.post(channel, thread_ts, render.phase(task))
            thread.mark_dirty()  # the progress message follows, with the steps' first moves
        # Terminal phases are named by the summary that TaskFinished brings.

    async def _step_changed(self, task: Task, event: StepChanged, thread: _ThreadState) -> None:
        thread.mark_dirty()
        confirm_ts = task.meta.get(f"confirm:{event.step_id}")
        if event.old is StepState.AWAITING_CONFIRMATION and confirm_ts:
            outcome = render.confirmation_outcome(event.new, event.actor, event.reason)
            message = render.confirmation_closed(task.step(event.step_id), outcome)
            await self._threads.update(task.meta["channel"], confirm_ts, message)

    async def _flush_progress(self, task_id: str, thread: _ThreadState) -> None:
        """Post the progress message, or edit it in its turn (edits are spaced workspace-wide)."""
        thread.flushed()
        task = await self._orch.get_task(task_id)
        channel, progress_ts = task.meta["channel"], task.meta.get("progress_ts")
        if not progress_ts:
            ts = await self._threads.post(channel, task.meta["thread_ts"], render.progress(task))
            if ts:
                await self._orch.set_meta(task.id, "progress_ts", ts)
            return
        if await self._edits.wait_turn():
            task = await self._orch.get_task(task_id)  # the latest, after waiting for the turn
        await self._threads.update(channel, progress_ts, render.progress(task))


class _ThreadState:
    """When the progress message last changed and whether it is behind."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self.is_dirty = False
        self.last_update = 0.0

    @property
    def flush_due(self) -> float:
        return self.last_update + self.interval_s

    def mark_dirty(self) -> None:
        self.is_dirty = True

    def flushed(self) -> None:
        self.is_dirty = False
        self.last_update = time.monotonic()


class _Spacing:
    """Hands out turns at least `interval_s` apart, in the order they were asked for."""

    def __init__(self, interval_s: float) -> None:
        self._interval = interval_s
        self._next = 0.0

    async def wait_turn(self) -> bool:
        """Sleep until this caller's turn; True when it had to wait."""
        now = time.monotonic()
        turn = max(now, self._next)
        self._next = turn + self._interval
        if turn <= now:
            return False
        await asyncio.sleep(turn - now)
        return True
