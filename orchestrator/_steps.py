"""The one writer of step states: every step move goes through `StepWriter.move`."""

from __future__ import annotations

import logging
import time
from dataclasses import replace

from ._config import OrchestratorConfig
from ._events import ConfirmationRequested, EventBus, StepChanged
from ._graph import dependents
from ._models import SYSTEM, Closing, Task, Transition
from ._phases import STEP_TRANSITIONS, Phase, StepState, check_state
from ._run import TaskRun
from ._store import Store
from ._thread import step_slots

log = logging.getLogger(__name__)


class StepWriter:
    """Checks each move against the table, compare-and-sets it in the store, mirrors, publishes."""

    def __init__(
        self, store: Store, bus: EventBus, config: OrchestratorConfig, *, has_outbox: bool
    ) -> None:
        self._store = store
        self._bus = bus
        self._config = config
        self._has_outbox = has_outbox

    async def fail(self, run: TaskRun, step_id: str, reason: str) -> None:
        """A step failed for good: record why and skip everything that needed it."""
        await self.move(run, step_id, StepState.FAILED, reason=reason)
        await self.skip_dependents(run, step_id, f"needs {step_id}, which failed")

    async def skip_dependents(self, run: TaskRun, step_id: str, reason: str) -> None:
        """Skip every pending step that needs `step_id`, directly or not."""
        for dep_id in sorted(dependents(run.plan, step_id)):
            if run.steps[dep_id].state is StepState.PENDING:
                await self.move(run, dep_id, StepState.SKIPPED, reason=reason)

    async def ask(self, run: TaskRun, step_id: str, reason: str) -> float:
        """Move a step to awaiting confirmation and announce it; returns the deadline."""
        deadline = time.time() + self._config.confirm_timeout_s
        await self.move(
            run, step_id, StepState.AWAITING_CONFIRMATION, reason=reason, confirm_deadline=deadline
        )
        self._bus.publish(ConfirmationRequested(run.task.id, step_id, deadline, reason))
        return deadline

    async def close(self, task: Task) -> Task:
        """Give every open step of an ended task its final state, in one write, and announce it;
        the task as it is then.

        The store decides which steps are open, so a write that landed for a cancelled caller
        is never overwritten by a stale mirror."""
        if not task.phase.is_terminal:
            return task
        moves = await self._store.close_task(
            task.id, closing_for(task.phase, task.reason), actor=SYSTEM, outbox=self._has_outbox
        )
        return self.closed(task, moves)

    def closed(self, task: Task, moves: list[Transition]) -> Task:
        """Announce the step moves that closed `task`; the task with them."""
        closed = {m.step_id: m for m in moves}
        for m in moves:
            assert m.step_id is not None and m.old is not None
            self._bus.publish(
                StepChanged(
                    task.id, m.step_id, StepState(m.old), StepState(m.new), m.actor, m.reason
                )
            )
        steps = tuple(
            s.evolve(state=StepState(closed[s.id].new), reason=closed[s.id].reason)
            if s.id in closed
            else s
            for s in task.steps
        )
        return replace(task, steps=steps)

    async def move(
        self,
        run: TaskRun,
        step_id: str,
        new: StepState,
        *,
        actor: str = SYSTEM,
        reason: str | None = None,
        output: str | None = None,
        attempts: int | None = None,
        confirm_deadline: float | None = None,
        tokens: int = 0,
        decision: str | None = None,
    ) -> bool:
        """The one writer of step states: check the table, compare-and-set, mirror, publish.

        `decision` is a person's answer (run, skip) or "expired", logged with the move."""
        # Outputs and reasons carry what commands and models said: no secret is stored or shown.
        reason, output = self._config.redactor.redact(reason), self._config.redactor.redact(output)
        step = run.steps[step_id]
        check_state(step.state, new)
        asks = step.asks + 1 if new is StepState.AWAITING_CONFIRMATION else step.asks
        is_set = await self._store.set_step(
            run.task.id,
            step_id,
            old=step.state,
            new=new,
            actor=actor,
            reason=reason,
            output=output,
            attempts=attempts,
            confirm_deadline=confirm_deadline,
            tokens=tokens,
            asks=asks,
            decision=decision,
            outbox=step_slots(step.state, new, step_id, asks) if self._has_outbox else (),
        )
        if not is_set:
            return await self._retry_move(
                run, step_id, new, actor=actor, reason=reason, decision=decision
            )
        run.steps[step_id] = step.evolve(
            state=new,
            reason=reason,
            output=output if output is not None else step.output,
            attempts=attempts if attempts is not None else step.attempts,
            confirm_deadline=confirm_deadline,
            asks=asks,
        )
        self._bus.publish(StepChanged(run.task.id, step_id, step.state, new, actor, reason))
        return True

    async def _retry_move(
        self,
        run: TaskRun,
        step_id: str,
        new: StepState,
        *,
        actor: str,
        reason: str | None,
        decision: str | None,
    ) -> bool:
        """The stored state differs from the mirror (a write landed for a cancelled caller)."""
        stored = (await self._store.get_task(run.task.id)).step(step_id)
        log.info("step %s of task %s is %s in the store", step_id, run.task.id, stored.state.value)
        run.steps[step_id] = stored
        if stored.state is new or new not in STEP_TRANSITIONS[stored.state]:
            return False
        return await self.move(run, step_id, new, actor=actor, reason=reason, decision=decision)


def closing_for(phase: Phase, reason: str | None) -> Closing:
    """What each open step becomes when its task ends in `phase` for `reason`."""
    if phase is Phase.CANCELLED:
        why = f"the task was {reason or 'cancelled'}"
        return {state: (StepState.CANCELLED, why) for state in _OPEN}
    not_run = (StepState.SKIPPED, f"not run: {reason or phase.value}")
    return {
        StepState.PENDING: not_run,
        StepState.AWAITING_CONFIRMATION: not_run,
        StepState.RUNNING: (StepState.CANCELLED, reason),
    }


_OPEN = tuple(s for s in StepState if not s.is_terminal)
