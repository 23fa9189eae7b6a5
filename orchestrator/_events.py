"""Events the orchestrator publishes after each committed change, and the bus that fans them out."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from ._phases import Phase, StepState

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaskSubmitted:
    """A request was recorded and its planning begins (the first event of every task)."""

    task_id: str


@dataclass(frozen=True)
class PhaseChanged:
    """A task moved to another phase."""

    task_id: str
    old: Phase
    new: Phase
    actor: str
    reason: str | None = None


@dataclass(frozen=True)
class StepChanged:
    """A step moved to another state."""

    task_id: str
    step_id: str
    old: StepState
    new: StepState
    actor: str
    reason: str | None = None


@dataclass(frozen=True)
class ConfirmationRequested:
    """A risky step waits for a person to run or skip it before `deadline` (epoch seconds)."""

    task_id: str
    step_id: str
    deadline: float
    reason: str | None = None


@dataclass(frozen=True)
class PlanReplaced:
    """The remaining work of a task was replanned after a failure."""

    task_id: str
    plan_version: int
    reason: str


@dataclass(frozen=True)
class TaskFinished:
    """A task reached a terminal phase; `summary` is the closing text."""

    task_id: str
    phase: Phase
    summary: str


Event = (
    TaskSubmitted | PhaseChanged | StepChanged | ConfirmationRequested | PlanReplaced | TaskFinished
)


class EventBus:
    """Fan-out of events to subscribers' own queues; a slow subscriber never blocks others.

    A subscriber to one task gets only that task's events, so a thousand waits on a thousand
    tasks cost one queue put per event, not a thousand."""

    def __init__(self) -> None:
        self._inboxes: set[Inbox] = set()
        self._by_task: dict[str, set[Inbox]] = {}

    def publish(self, event: Event) -> None:
        """Hand the event to every subscriber of all events and of its task."""
        for inbox in self._inboxes:
            inbox.put(event)
        for inbox in self._by_task.get(event.task_id, ()):
            inbox.put(event)

    @asynccontextmanager
    async def subscribe(self, task_id: str | None = None) -> AsyncIterator[AsyncIterator[Event]]:
        """`async with bus.subscribe() as events: async for e in events: ...`; with `task_id`,
        that task's events only."""
        inbox = self.watch(task_id)

        async def events() -> AsyncIterator[Event]:
            while True:
                yield await inbox.get()

        try:
            yield events()
        finally:
            self.unwatch(inbox, task_id)

    def watch(self, task_id: str | None, *, only: type[Event] | None = None) -> Inbox:
        """A queue of every event from now on (of one task, with `task_id`; of one kind, with
        `only`); `unwatch` it."""
        inbox = Inbox(only)
        if task_id is None:
            self._inboxes.add(inbox)
        else:
            self._by_task.setdefault(task_id, set()).add(inbox)
        return inbox

    def unwatch(self, inbox: Inbox, task_id: str | None) -> None:
        """Stop filling `inbox`."""
        if task_id is None:
            self._inboxes.discard(inbox)
            return
        inboxes = self._by_task.get(task_id)
        if inboxes is not None:
            inboxes.discard(inbox)
            if not inboxes:
                del self._by_task[task_id]


class Inbox:
    """One subscriber's unbounded queue: a deque and a future to wake its reader.

    Not an asyncio.Queue: every change of every task passes through one of these, and the
    queue's bookkeeping (sizes, putters, a join event) is work nobody here needs."""

    __slots__ = ("_events", "_only", "_wake")

    def __init__(self, only: type[Event] | None = None) -> None:
        self._events: deque[Event] = deque()
        self._only = only
        self._wake: asyncio.Future[None] | None = None

    def put(self, event: Event) -> None:
        # A reader of one kind is not woken by the others (a wait for a phase, say, by each of
        # the task's step moves).
        if self._only is not None and not isinstance(event, self._only):
            return
        self._events.append(event)
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    async def get(self) -> Event:
        while not self._events:
            self._wake = asyncio.get_running_loop().create_future()
            await self._wake
        return self._events.popleft()
