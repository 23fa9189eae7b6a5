"""The outbox -> each task's Slack thread: post or edit every slot, in order, until it is shown.

The orchestrator writes what a thread must show in the same transaction as the change; events
only say which task to look at. A slot is rendered from the task's current state, so a retry or
a restart shows the latest, and a message already shown is edited, never posted twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
import time
from dataclasses import dataclass, field

from orchestrator import Orchestrator, Slot, SlotKind, Task, ThreadUpdate

from .render import Message
from .slack_io import SlackThreads, SlackWriteError
from .thread_view import needs_history, render_slot

log = logging.getLogger(__name__)
# Slack: chat.update is rate limited (Tier 3, about 50 a minute per workspace). One edit per
# progress message per second at most, and progress edits of running tasks spaced to fit 50 a
# minute. Only those edits wait: a plan, a prompt, a summary or a final progress never does.
UPDATE_INTERVAL_S = 1.0
EDIT_SPACING_S = 60 / 50
# Slack: chat.postMessage about 1 a second per channel, short bursts allowed (how short is not
# said; six is a plan, its executing note, progress and a few prompts). New messages in a
# channel are paced to that; a message held back is shown as it is when its turn comes (the
# plan itself, say, instead of "Planning…" and an edit).
POST_BURST, POST_EVERY_S = 6, 1.0
# After a refusal without Retry-After (5xx, a lost connection), a channel waits this long, doubled
# per refusal in a row, with full jitter.
BACKOFF_BASE_S = 0.5
BACKOFF_MAX_S = 30.0


class Relay:
    """Keeps every task's thread equal to its outbox: one worker per task, one pause per channel."""

    def __init__(
        self,
        orch: Orchestrator,
        threads: SlackThreads,
        *,
        update_interval_s: float = UPDATE_INTERVAL_S,
        backoff_base_s: float = BACKOFF_BASE_S,
    ) -> None:
        """`update_interval_s` spaces edits of one progress message (0: on every change)."""
        self._orch = orch
        self._threads = threads
        self._interval = update_interval_s
        self._spacing = _Spacing(EDIT_SPACING_S if update_interval_s else 0.0)
        self._backoff_base_s = backoff_base_s
        self._workers: dict[str, _Worker] = {}
        self._channels: dict[str, _Channel] = {}
        # chat.update's limit is the workspace's, not a channel's: once Slack refuses an edit
        # with 429, no edit anywhere goes until it said to come back.
        self._edits_paused_until = 0.0
        # Slots whose post may have landed without us learning its ts: look before posting.
        self._unsure: set[tuple[str, str]] = set()
        self._ready = asyncio.Event()
        # Nothing is shown before `recover` knows which slots a dead process may have posted.
        self._recovered = asyncio.Event()

    async def run(self) -> None:
        """Wake the worker of every task an event names, until cancelled."""
        async with self._orch.subscribe() as events:
            self._ready.set()
            async for event in events:
                self._wake(event.task_id)

    async def wait_ready(self) -> None:
        """Return once the relay listens, so no change of a new task goes unnoticed."""
        await self._ready.wait()

    async def recover(self) -> None:
        """After a start, before anything is shown: deliver whatever the outbox still holds,
        finished tasks included, looking first for posts a dead process may have made."""
        for update in await self._orch.updates():
            if update.ref is None:  # posted, maybe, by a process that died before recording it
                self._unsure.add((update.task_id, update.slot))
            self._wake(update.task_id)
        self._recovered.set()

    async def close(self) -> None:
        """Stop the workers; what they had not shown stays in the outbox for the next start."""
        workers = [w.task for w in self._workers.values() if w.task is not None]
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)

    def _wake(self, task_id: str) -> None:
        worker = self._workers.get(task_id)
        if worker is None:
            worker = _Worker(task_id)
            worker.task = asyncio.create_task(self._work(worker), name=f"relay-{task_id}")
            self._workers[task_id] = worker
        worker.poked.set()

    async def _work(self, worker: _Worker) -> None:
        try:
            await self._recovered.wait()
            while True:
                worker.poked.clear()
                try:
                    wake_at = await self._deliver(worker)
                except Exception:
                    log.exception("showing task %s in Slack failed", worker.task_id)
                    wake_at = time.monotonic() + BACKOFF_MAX_S
                if wake_at is None:
                    if not worker.poked.is_set():
                        return
                    continue
                delay = wake_at - time.monotonic()
                if delay > 0:
                    try:
                        async with asyncio.timeout(delay):
                            await worker.poked.wait()
                    except TimeoutError:
                        pass
        finally:
            self._workers.pop(worker.task_id, None)

    async def _deliver(self, worker: _Worker) -> float | None:
        """Show what the task's outbox holds; when to look again (None: all shown)."""
        # The updates first, then the task: its state is at least as new as each version read.
        updates = await self._orch.updates(worker.task_id)
        if not updates:
            return None
        task = await self._orch.get_task(worker.task_id)
        channel, thread_ts = task.meta.get("channel"), task.meta.get("thread_ts")
        if not channel or not thread_ts:  # not a Slack task (the shell, another client)
            for update in updates:
                await self._orch.mark_sent(update, ref="", digest="")
            return None
        lane = self._channels.setdefault(
            channel, _Channel(_Budget(POST_BURST, POST_EVERY_S if self._interval else 0.0))
        )
        if lane.paused_until > time.monotonic():
            return lane.paused_until
        slots = [Slot.parse(u.slot) for u in updates]
        history = (
            await self._orch.history(task.id) if any(needs_history(s, task) for s in slots) else []
        )
        wake_at: float | None = None
        for update, slot in zip(updates, slots, strict=True):
            turn = self._progress_turn(worker, slot, update, task)
            if turn is not None:
                wake_at = turn if wake_at is None else min(wake_at, turn)
                continue
            held = self._held_until(lane, update)
            if held is not None:  # what follows in the thread waits behind it
                return held if wake_at is None else min(wake_at, held)
            try:
                await self._show(task, update, render_slot(slot, task, history), thread_ts)
            except SlackWriteError as err:
                if not err.is_transient:
                    log.error("task %s: Slack refused %s for good: %s", task.id, update.slot, err)
                    await self._orch.mark_sent(update, ref=update.ref or "", digest="")
                    continue
                if err.method == "chat.update" and err.retry_after is not None:
                    until = time.monotonic() + err.retry_after
                    self._edits_paused_until = max(self._edits_paused_until, until)
                    log.warning("Slack limits edits; none goes for %.1fs", err.retry_after)
                    return self._edits_paused_until
                return lane.refused(err, self._backoff_base_s)
            lane.refusals = 0
            if slot.kind is SlotKind.PROGRESS:
                worker.progress_shown(self._interval)
        return wake_at

    def _held_until(self, lane: _Channel, update: ThreadUpdate) -> float | None:
        """When Slack's limits let this write go (None: now, and a new message spends its
        channel's budget): posts by channel, edits by workspace."""
        now = time.monotonic()
        if update.ref is None:
            wait = lane.posts.wait(now)
            if wait > 0:
                return now + wait
            lane.posts.take()
            return None
        return self._edits_paused_until if self._edits_paused_until > now else None

    def _progress_turn(
        self, worker: _Worker, slot: Slot, update: ThreadUpdate, task: Task
    ) -> float | None:
        """When a live progress edit may go; None when it may go now (or is no such edit)."""
        if slot.kind is not SlotKind.PROGRESS or update.ref is None or task.phase.is_terminal:
            return None
        if worker.turn is None:
            worker.turn = self._spacing.reserve(not_before=worker.next_edit)
        return worker.turn if worker.turn > time.monotonic() else None

    async def _show(
        self, task: Task, update: ThreadUpdate, message: Message, thread_ts: str
    ) -> None:
        """Post the slot's message, or edit it in place, and record that it is shown."""
        channel = task.meta["channel"]
        digest = _digest(message)
        ref = update.ref
        if ref and digest == update.digest:
            pass  # this very message is up already
        elif ref:
            try:
                await self._threads.update(channel, ref, message)
            except SlackWriteError as err:
                if not err.is_gone:
                    raise
                ref = None  # someone deleted it: post it again
        if not ref:
            key = (task.id, update.slot)
            if key in self._unsure:
                ref = (await self._threads.find_slots(channel, thread_ts)).get(key)
            if ref:
                await self._threads.update(channel, ref, message)
            else:
                try:
                    ref = await self._threads.post(channel, thread_ts, message, slot=key)
                except SlackWriteError as err:
                    if err.is_unsure:
                        self._unsure.add(key)
                    raise
            self._unsure.discard(key)
        await self._orch.mark_sent(update, ref=ref, digest=digest)


@dataclass
class _Worker:
    """One task's delivery: its asyncio task, the poke that wakes it, its progress edit turns."""

    task_id: str
    task: asyncio.Task[None] | None = None
    poked: asyncio.Event = field(default_factory=asyncio.Event)
    turn: float | None = None  # the progress edit's reserved turn (monotonic)
    next_edit: float = 0.0  # no progress edit before this (monotonic)

    def progress_shown(self, interval_s: float) -> None:
        self.turn = None
        self.next_edit = time.monotonic() + interval_s


@dataclass
class _Channel:
    """A channel's budget of new messages, and its pause after Slack refused a write there;
    other channels go on."""

    posts: _Budget
    paused_until: float = 0.0
    refusals: int = 0

    def refused(self, err: SlackWriteError, base_s: float) -> float:
        self.refusals += 1
        if err.retry_after is not None:
            delay = err.retry_after
        else:
            delay = random.uniform(0, min(BACKOFF_MAX_S, base_s * 2**self.refusals))
        self.paused_until = max(self.paused_until, time.monotonic() + delay)
        log.warning("Slack refused a write (%s); the channel waits %.1fs", err.error, delay)
        return self.paused_until


class _Budget:
    """One of Slack's limits as a token bucket: `burst` calls at once, then one every `every_s`
    seconds (0: no limit)."""

    def __init__(self, burst: int, every_s: float) -> None:
        self._burst = float(burst)
        self._every_s = every_s
        self._tokens = float(burst)
        self._stamp = time.monotonic()

    def wait(self, now: float) -> float:
        """Seconds until a call may go (0: now)."""
        if not self._every_s:
            return 0.0
        self._refill(now)
        return max(0.0, (1 - self._tokens) * self._every_s)

    def take(self) -> None:
        """Spend one call."""
        if self._every_s:
            self._refill(time.monotonic())
            self._tokens -= 1

    def _refill(self, now: float) -> None:
        self._tokens = min(self._burst, self._tokens + (now - self._stamp) / self._every_s)
        self._stamp = now


class _Spacing:
    """Hands out turns at least `interval_s` apart, in the order they were asked for."""

    def __init__(self, interval_s: float) -> None:
        self._interval = interval_s
        self._next = 0.0

    def reserve(self, *, not_before: float) -> float:
        """The next free turn at or after `not_before` (monotonic seconds)."""
        turn = max(time.monotonic(), self._next, not_before)
        self._next = turn + self._interval
        return turn


def _digest(message: Message) -> str:
    """What a message shows, in 16 hex digits: an edit to the same is skipped."""
    raw = json.dumps([message.text, message.blocks], sort_keys=True).encode()
    return hashlib.sha256(raw).hexdigest()[:16]
