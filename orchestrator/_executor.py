"""Runs approved tasks: steps in dependency order and in parallel, to a terminal phase."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol

from ._actions import ActionRunner
from ._config import OrchestratorConfig
from ._errors import NotPendingError, OrchestratorError, PlanningError
from ._events import EventBus, PlanReplaced
from ._graph import ready_steps
from ._models import SYSTEM, Step, Task
from ._phases import Action, Phase, StepState
from ._planner import Planner
from ._retry import with_retries
from ._run import TaskRun
from ._sandbox import old_run_note
from ._slots import Slots
from ._steps import StepWriter
from ._store import Store
from ._thread import replan_slots

log = logging.getLogger(__name__)
Outcome = tuple[Phase, str | None]
Finisher = Callable[[str], Awaitable[None]]


class PhaseWriter(Protocol):
    """Writes a task's phase; with `ended` (the task as its run left it), closes it as well."""

    async def __call__(
        self,
        task_id: str,
        old: Phase,
        new: Phase,
        actor: str,
        reason: str | None,
        *,
        ended: Task | None = None,
    ) -> None: ...


class Executor:
    """Owns every executing task's run; the only writer of step states."""

    def __init__(
        self,
        *,
        store: Store,
        bus: EventBus,
        steps: StepWriter,
        planner: Planner,
        actions: ActionRunner,
        config: OrchestratorConfig,
        write_phase: PhaseWriter,
        on_finished: Finisher,
        has_outbox: bool,
    ) -> None:
        self._store = store
        self._bus = bus
        self._steps = steps
        self._planner = planner
        self._actions = actions
        self._config = config
        self._write_phase = write_phase
        self._on_finished = on_finished
        self._has_outbox = has_outbox
        self._runs: dict[str, TaskRun] = {}

    def is_running(self, task_id: str) -> bool:
        return task_id in self._runs

    def start(self, task: Task, *, started_at: float) -> None:
        """Run an executing task in the background."""
        run = TaskRun.of(task, started_at=started_at)
        self._runs[task.id] = run
        run.main = asyncio.create_task(self._main(run), name=f"task-{task.id}")

    async def resume(self, task: Task, *, started_at: float) -> None:
        """Start a task a crash interrupted: LLM steps re-run, side effects ask first."""
        run = TaskRun.of(task, started_at=started_at)
        reason = "interrupted by a restart"
        for step in run.in_state(StepState.RUNNING):
            if step.has_side_effects:
                why = f"{reason}; it may have run already"
                if step.action in (Action.SHELL, Action.IMPLEMENT):  # its reason: how it was held
                    why += f"; {old_run_note(step.reason)}"
                await self._steps.ask(run, step.id, why)
            else:
                await self._steps.move(
                    run, step.id, StepState.PENDING, reason=f"{reason}; runs again"
                )
        self._runs[task.id] = run
        run.main = asyncio.create_task(self._main(run), name=f"task-{task.id}")

    async def stop(self, task_id: str) -> None:
        """Interrupt a cancelled task's work and wait until its steps are closed."""
        run = self._runs.get(task_id)
        if run is None or run.main is None:
            return
        if run.drive is not None:
            run.drive.cancel()
        await asyncio.wait({run.main})

    async def shutdown(self) -> None:
        """Stop every run without touching its stored state, so recovery picks it up."""
        runs = list(self._runs.values())
        for run in runs:
            run.is_shutdown = True
            if run.main is not None:
                run.main.cancel()
        await asyncio.gather(*(r.main for r in runs if r.main), return_exceptions=True)

    async def wait_idle(self, task_id: str) -> None:
        """Return once the task's run (if any) has closed its steps and reported."""
        run = self._runs.get(task_id)
        if run is not None and run.main is not None:
            await asyncio.wait({run.main})

    def confirm(self, task_id: str, step_id: str, *, actor: str, is_run: bool) -> None:
        """Hand a person's Run/Skip answer to the waiting step."""
        run = self._runs.get(task_id)
        step = run.steps.get(step_id) if run else None
        if run is None or step is None or step.state is not StepState.AWAITING_CONFIRMATION:
            state = step.state.value if step else "unknown"
            raise NotPendingError(
                f"step {step_id} is not waiting for confirmation ({state})",
                task_id=task_id,
                step_id=step_id,
            )
        future = run.confirmation(step_id)
        if future.done():
            raise NotPendingError(
                f"step {step_id} was already answered", task_id=task_id, step_id=step_id
            )
        future.set_result((actor, is_run))

    async def _main(self, run: TaskRun) -> None:
        task_id = run.task.id
        try:
            run.drive = asyncio.create_task(self._drive_within_budget(run))
            try:
                phase, reason = await run.drive
            except asyncio.CancelledError:
                if run.is_shutdown or not run.drive.cancelled():
                    raise
                phase, reason = Phase.CANCELLED, None
            if phase is not Phase.CANCELLED:
                # A completed run wrote every step move itself, so the task as it holds it is
                # the stored one: it ends and closes in one write. (After steps were cancelled
                # a late write may have landed unseen: the task ends, then closes from a read.)
                ended = run.ended(phase, reason) if phase is Phase.COMPLETED else None
                try:
                    await self._write_phase(
                        task_id, Phase.EXECUTING, phase, SYSTEM, reason, ended=ended
                    )
                except NotPendingError:  # a cancel won the race; its phase stands
                    ended = None
                if ended is not None:
                    return
            await self._on_finished(task_id)
        except asyncio.CancelledError:
            if not run.is_shutdown:
                raise
        except Exception:
            log.exception("task %s crashed", task_id)
            await self._end_crashed(run)
        finally:
            self._runs.pop(task_id, None)

    async def _end_crashed(self, run: TaskRun) -> None:
        """Whatever happened, the task ends in a terminal phase with its steps closed."""
        task_id = run.task.id
        with contextlib.suppress(NotPendingError):
            await self._write_phase(
                task_id, Phase.EXECUTING, Phase.FAILED, SYSTEM, "internal error"
            )
        await self._on_finished(task_id)

    async def _drive_within_budget(self, run: TaskRun) -> Outcome:
        limit = self._config.task_timeout_s
        try:
            async with asyncio.timeout(max(0.0, run.started_at + limit - time.time())):
                return await self._drive(run)
        except TimeoutError:
            return Phase.FAILED, f"budget exceeded: the task ran longer than {limit:g}s"

    async def _drive(self, run: TaskRun) -> Outcome:
        slots = Slots(self._config.max_parallel)
        try:
            while True:
                for step in self._startable(run):
                    run.running[step.id] = asyncio.create_task(self._step(run, step.id, slots))
                if not run.running:
                    break
                done, _ = await asyncio.wait(
                    run.running.values(), return_when=asyncio.FIRST_COMPLETED
                )
                self._reap(run, done)
                if run.budget_error:
                    return Phase.FAILED, run.budget_error
                failed = run.in_state(StepState.FAILED)
                if failed:
                    await self._settle(run)
                    # A failed implement step went through every coding agent: a person is next.
                    escalated = [s for s in failed if s.action is Action.IMPLEMENT]
                    if escalated or run.replans >= self._config.max_replans:
                        first = (escalated or failed)[0]
                        return Phase.FAILED, f"step {first.id} failed: {first.reason}"
                    try:
                        await self._replan(run, failed)
                    except PlanningError as err:
                        return Phase.FAILED, f"replanning failed: {err.reason}"
        finally:
            await _cancel_all(run.running.values())
            run.running.clear()
        return Phase.COMPLETED, None

    def _startable(self, run: TaskRun) -> list[Step]:
        waiting = run.in_state(StepState.AWAITING_CONFIRMATION)
        return [s for s in [*ready_steps(run.plan), *waiting] if s.id not in run.running]

    def _reap(self, run: TaskRun, done: Iterable[asyncio.Task[None]]) -> None:
        for step_id, task in list(run.running.items()):
            if task in done:
                del run.running[step_id]
                task.result()  # a bug in _step surfaces here, not silently

    async def _settle(self, run: TaskRun) -> None:
        """Let running siblings finish; steps not yet started will be replanned or skipped."""
        for step_id, task in run.running.items():
            if run.steps[step_id].state is not StepState.RUNNING:
                task.cancel()
        if run.running:
            done, _ = await asyncio.wait(run.running.values())
            for task in done:
                if not task.cancelled():
                    task.result()
        run.running.clear()
        for future in run.confirmations.values():
            future.cancel()
        run.confirmations.clear()

    async def _step(self, run: TaskRun, step_id: str, slots: Slots) -> None:
        step = run.steps[step_id]
        actor = SYSTEM
        # A recovered side effect waits in AWAITING_CONFIRMATION whatever its tier.
        if step.tier.needs_confirmation or step.state is StepState.AWAITING_CONFIRMATION:
            decided_by = await self._confirmed_by(run, step_id)
            if decided_by is None:
                return
            actor = decided_by
        async with slots:
            if not self._within_budgets(run):
                return
            attempts = run.steps[step_id].attempts + 1
            decision = "run" if actor != SYSTEM else None
            note = self._actions.running_note(run.steps[step_id])
            if not await self._steps.move(
                run,
                step_id,
                StepState.RUNNING,
                actor=actor,
                reason=note,
                attempts=attempts,
                decision=decision,
            ):
                return
            run.steps_run += 1
            await self._attempt(run, run.steps[step_id])

    async def _attempt(self, run: TaskRun, step: Step) -> None:
        cfg = self._config
        inputs = [run.steps[d] for d in step.depends_on]
        tries = _Tries()
        timeout_s = self._actions.timeout_s(step)
        # Retries ride out an outage for as long as the step and the task may still run.
        budget_s = min(timeout_s, run.started_at + cfg.task_timeout_s - time.time())
        try:
            async with asyncio.timeout(timeout_s):
                outcome = await with_retries(
                    self._actions.run,
                    run.task,
                    step,
                    inputs,
                    budget_s=budget_s,
                    base_s=cfg.retry_base_s,
                    cap_s=cfg.retry_max_s,
                    on_retry=tries.note,
                )
        except TimeoutError:
            why = f"timed out after {timeout_s:g}s"
            if tries.last is not None:
                why += f" (tried {tries.count + 1} times; the last error: {tries.last.reason})"
            await self._steps.fail(run, step.id, why)
        except OrchestratorError as err:
            await self._steps.fail(run, step.id, err.reason)
        except Exception as exc:
            log.exception("step %s of task %s crashed", step.id, run.task.id)
            await self._steps.fail(run, step.id, f"internal error: {type(exc).__name__}")
        else:
            run.tokens += outcome.tokens
            await self._steps.move(
                run,
                step.id,
                StepState.COMPLETED,
                output=outcome.output,
                tokens=outcome.tokens,
                attempts=step.attempts + tries.count,
            )
            self._within_budgets(run)

    def _within_budgets(self, run: TaskRun) -> bool:
        cfg = self._config
        if run.steps_run >= cfg.step_budget:
            run.budget_error = run.budget_error or (
                f"budget exceeded: {run.steps_run} steps run, at most {cfg.step_budget}"
            )
        elif run.tokens > cfg.token_budget:
            run.budget_error = run.budget_error or (
                f"budget exceeded: {run.tokens} tokens used, at most {cfg.token_budget}"
            )
        return run.budget_error is None

    async def _confirmed_by(self, run: TaskRun, step_id: str) -> str | None:
        """Wait for a person to run the step: who did, or None when skipped or expired."""
        step = run.steps[step_id]
        if step.state is StepState.PENDING:
            deadline = await self._steps.ask(run, step_id, f"{step.tier.value} step: run or skip?")
        else:
            deadline = step.confirm_deadline or time.time() + self._config.confirm_timeout_s
        future = run.confirmation(step_id)
        try:
            async with asyncio.timeout(max(0.0, deadline - time.time())):
                actor, is_run = await asyncio.shield(future)
        except TimeoutError:
            future.cancel()  # a late answer now finds the step closed
            timeout = self._config.confirm_timeout_s
            reason = f"confirmation expired: nobody answered within {timeout:g}s"
            await self._steps.move(
                run, step_id, StepState.SKIPPED, reason=reason, decision="expired"
            )
            await self._steps.skip_dependents(run, step_id, f"needs {step_id}, which was skipped")
            return None
        if is_run:
            return actor
        await self._steps.move(
            run,
            step_id,
            StepState.SKIPPED,
            actor=actor,
            reason=f"skipped by {actor}",
            decision="skip",
        )
        await self._steps.skip_dependents(run, step_id, f"needs {step_id}, which was skipped")
        return None

    async def _replan(self, run: TaskRun, failed: list[Step]) -> None:
        for step in run.in_state(StepState.PENDING, StepState.AWAITING_CONFIRMATION):
            await self._steps.move(run, step.id, StepState.SKIPPED, reason="replaced by a new plan")
        completed = run.in_state(StepState.COMPLETED)
        replaced = [s.id for s in run.plan if s.state is not StepState.COMPLETED]
        version = run.plan_version + 1
        result = await self._planner.replan(
            run.task.request,
            completed=completed,
            failed=failed,
            taken_ids=set(run.steps),
            plan_version=version,
        )
        run.tokens += result.tokens
        offset = max(s.position for s in run.steps.values()) + 1
        steps = [s.evolve(position=offset + s.position) for s in result.steps]
        reason = "replanned after " + ", ".join(f"{s.id} failed" for s in failed)
        await self._store.save_plan(
            run.task.id,
            steps,
            plan_version=version,
            replaced=replaced,
            actor=SYSTEM,
            reason=reason,
            tokens=result.tokens,
            outbox=replan_slots(version) if self._has_outbox else (),
        )
        for step_id in replaced:
            run.steps[step_id] = run.steps[step_id].evolve(is_superseded=True)
        run.steps.update({s.id: s for s in steps})
        run.replanned()
        run.replans += 1
        run.plan_version = version
        self._bus.publish(PlanReplaced(run.task.id, version, reason))
        self._within_budgets(run)


class _Tries:
    """The retries one attempt of a step made: how many, and the last error."""

    __slots__ = ("count", "last")

    def __init__(self) -> None:
        self.count = 0
        self.last: OrchestratorError | None = None

    def note(self, err: OrchestratorError, _attempt: int) -> None:
        self.count += 1
        self.last = err


async def _cancel_all(tasks: Iterable[asyncio.Task[None]]) -> None:
    pending = [t for t in tasks if not t.done()]
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending)
