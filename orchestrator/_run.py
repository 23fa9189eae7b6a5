"""The in-memory mirror of one executing task, kept by its executor and nobody else."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace

from ._models import Step, Task
from ._phases import Phase, StepState

# A person's answer to a confirmation: who, and whether to run the step.
Decision = tuple[str, bool]


@dataclass
class TaskRun:
    """Steps as last committed, the asyncio tasks running them, and what the budgets have used."""

    task: Task
    steps: dict[str, Step]
    started_at: float
    tokens: int = 0
    steps_run: int = 0
    replans: int = 0
    plan_version: int = 1
    running: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    confirmations: dict[str, asyncio.Future[Decision]] = field(default_factory=dict)
    budget_error: str | None = None
    main: asyncio.Task[None] | None = None
    drive: asyncio.Task[tuple[Phase, str | None]] | None = None
    is_shutdown: bool = False
    # The current plan's step ids in run order: read on every step the executor reaps.
    order: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.replanned()

    @classmethod
    def of(cls, task: Task, *, started_at: float) -> TaskRun:
        return cls(
            task=task,
            steps={s.id: s for s in task.steps},
            started_at=started_at,
            tokens=task.tokens_used,
            steps_run=task.steps_run,
            replans=task.replans,
            plan_version=task.plan_version,
        )

    @property
    def plan(self) -> list[Step]:
        """The current plan's steps in run order."""
        steps = self.steps
        return [steps[step_id] for step_id in self.order]

    def replanned(self) -> None:
        """Take the steps' plan versions and positions as they now are."""
        live = [s for s in self.steps.values() if not s.is_superseded]
        self.order = [s.id for s in sorted(live, key=lambda s: (s.plan_version, s.position))]

    def ended(self, phase: Phase, reason: str | None) -> Task:
        """The task as stored once this run ends it in `phase`: the run is the only writer of
        its steps and counters. (Not after steps were cancelled: a cancelled step's last write
        may have landed unseen.)"""
        steps = sorted(self.steps.values(), key=lambda s: s.position)
        return replace(
            self.task,
            phase=phase,
            reason=reason,
            steps=tuple(steps),
            tokens_used=self.tokens,
            steps_run=self.steps_run,
            replans=self.replans,
            plan_version=self.plan_version,
        )

    def in_state(self, *states: StepState) -> list[Step]:
        """Steps of the current plan in any of `states`."""
        return [s for s in self.plan if s.state in states]

    def confirmation(self, step_id: str) -> asyncio.Future[Decision]:
        """The future a person's answer to this step's confirmation resolves."""
        future = self.confirmations.get(step_id)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self.confirmations[step_id] = future
        return future
