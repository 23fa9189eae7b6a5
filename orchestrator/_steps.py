"""The one writer of step states: every step move goes through `StepWriter.move`."""

from __future__ import annotations

import logging
import time

from ._config import OrchestratorConfig
from ._events import ConfirmationRequested, EventBus, StepChanged
from ._graph import dependents
from ._phases import STEP_TRANSITIONS, Phase, StepState, check_state
from ._run import TaskRun
from ._store import Store

log = logging.getLogger(__name__)
SYSTEM = "orchestrator"


class StepWriter:
    """Checks each move against the table, compare-and-sets it in the store, mirrors, publishes."""

    def __init__(self, store: Store, bus: EventBus, config: OrchestratorConfig) -> None:
        self._store = store
        self._bus = bus
        self._config = config

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

    async def close_steps(self, run: TaskRun, phase: Phase, reason: str | None) -> None:
        """Give every unfinished step of an ended task its final state."""
        for step_id in [s.id for s in run.plan]:
            # A second try: a step cancelled mid-write may be further along in the store than
            # in the mirror (a failed move reloads it), and its final state depends on which.
            for _ in range(2):
                state = run.steps[step_id].state
                if state.is_terminal:
                    break
                why: str | None = f"not run: {reason}"
                new = StepState.SKIPPED
                if state is StepState.RUNNING or phase is Phase.CANCELLED:
                    new = StepState.CANCELLED
                    why = "the task was cancelled" if phase is Phase.CANCELLED else reason
                if await self.move(run, step_id, new, reason=why):
                    break

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
    ) -> bool:
        """The one writer of step states: check the table, compare-and-set, mirror, publish."""
        # Outputs and reasons carry what commands and models said: no secret is stored or shown.
        reason, output = self._config.redactor.redact(reason), self._config.redactor.redact(output)
        step = run.steps[step_id]
        check_state(step.state, new)
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
        )
        if not is_set:
            return await self._retry_move(run, step_id, new, actor=actor, reason=reason)
        run.steps[step_id] = step.evolve(
            state=new,
            reason=reason,
            output=output if output is not None else step.output,
            attempts=attempts if attempts is not None else step.attempts,
            confirm_deadline=confirm_deadline,
        )
        self._bus.publish(StepChanged(run.task.id, step_id, step.state, new, actor, reason))
        return True

    async def _retry_move(
        self, run: TaskRun, step_id: str, new: StepState, *, actor: str, reason: str | None
    ) -> bool:
        """The stored state differs from the mirror (a write landed for a cancelled caller)."""
        stored = (await self._store.get_task(run.task.id)).step(step_id)
        log.info("step %s of task %s is %s in the store", step_id, run.task.id, stored.state.value)
        run.steps[step_id] = stored
        if stored.state is new or new not in STEP_TRANSITIONS[stored.state]:
            return False
        return await self.move(run, step_id, new, actor=actor, reason=reason)
