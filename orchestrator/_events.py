"""Events the orchestrator publishes after each committed change, and the bus that fans them out."""

from __future__ import annotations

import asyncio
import logging
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
        self._queues: set[asyncio.Queue[Event]] = set()
        self._by_task: dict[str, set[asyncio.Queue[Event]]] = {}

    def publish(self, event: Event) -> None:
        """Hand the event to every subscriber of all events and of its task."""
        for queue in self._queues:
            queue.put_nowait(event)
        for queue in self._by_task.get(event.task_id, ()):
            queue.put_nowait(event)

    @asynccontextmanager
    async def subscribe(self, task_id: str | None = None) -> AsyncIterator[AsyncIterator[Event]]:
        """`async with bus.subscribe() as events: async for e in events: ...`; with `task_id`,
        that task's events only."""
        queue: asyncio.Queue[Event] = asyncio.Queue()
        queues = self._queues if task_id is None else self._by_task.setdefault(task_id, set())

        async def events() -> AsyncIterator[Event]:
            while True:
                yield await queue.get()

        queues.add(queue)
        try:
            yield events()
        finally:
            queues.discard(queue)
            if task_id is not None and not queues:
                del self._by_task[task_id]
