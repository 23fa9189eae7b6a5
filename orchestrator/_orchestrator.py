"""The facade: the public verbs, and `_set_phase`, the one writer of a task's phase."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from types import TracebackType

from ._actions import ActionRunner, LogNotifier, Notifier
from ._agents import Agent, CodingAgents
from ._config import OrchestratorConfig
from ._errors import NotAllowedError, NotPendingError, OrchestratorError
from ._events import Event, EventBus, PhaseChanged, TaskFinished, TaskSubmitted
from ._executor import Executor
from ._heartbeat import Heartbeat, ReplicaStore
from ._llm import LLM
from ._models import SYSTEM, Task, Transition
from ._phases import Phase, check_phase
from ._planner import Planner, PlanResult
from ._sandbox import Isolation, detect_isolation
from ._steps import StepWriter, closing_for
from ._store import Store
from ._summary import summary_text
from ._thread import PLAN, ThreadUpdate, phase_slots
from ._tools import Toolbox

log = logging.getLogger(__name__)


class Orchestrator:
    """Plans requests, waits for approval, runs plans and reports, durably."""

    def __init__(
        self,
        *,
        store: Store,
        llm: LLM,
        config: OrchestratorConfig | None = None,
        notifier: Notifier | None = None,
        has_outbox: bool = False,
        toolbox: Toolbox | None = None,
        agents: Sequence[Agent] = (),
        planning_llm: LLM | None = None,
    ) -> None:
        """`has_outbox`: record what each task's thread must show (see `updates`), for a chat
        client that delivers it durably; without it, events are all there is. `toolbox`: the
        tools `tool` steps may call (started and closed by the caller). `agents`: the coding
        agents implement steps escalate through, in order (none: no implement steps).
        `planning_llm`: the model plans are asked of, when it should not share `llm`'s
        connections (a thousand running steps would otherwise keep a new request waiting)."""
        self.config = config or OrchestratorConfig()
        self._store = store
        self._bus = EventBus()
        self._has_outbox = has_outbox
        coding_agents = CodingAgents(agents, redactor=self.config.redactor)
        self._planner = Planner(
            planning_llm or llm, self.config, toolbox=toolbox, agents=coding_agents
        )
        self._steps = StepWriter(store, self._bus, self.config, has_outbox=has_outbox)
        self._actions = ActionRunner(
            llm, self.config, notifier or LogNotifier(), toolbox=toolbox, agents=coding_agents
        )
        self._executor = Executor(
            store=store,
            bus=self._bus,
            steps=self._steps,
            planner=self._planner,
            actions=self._actions,
            config=self.config,
            write_phase=self._set_phase,
            on_finished=self._finish,
            has_outbox=has_outbox,
        )
        self._planning: dict[str, asyncio.Task[None]] = {}
        self._is_closing = False
        self._heartbeat: Heartbeat | None = None

    async def start(self) -> None:
        """Find the shell isolation, open the store, pick up every task left unfinished.

        `ConfigError` when the sandbox is required (`shell_sandbox` bwrap) and cannot run."""
        self._actions.isolation = await detect_isolation(self.config.shell_sandbox)
        log.info("shell steps: %s", self._actions.isolation.description)
        await self._actions.agents.start()
        await self._store.open()
        if isinstance(self._store, ReplicaStore):
            self._heartbeat = Heartbeat(self._store, self.config.heartbeat_s)
            await self._heartbeat.start()
        for task in await self._store.list_unclosed():
            await self._finish(task.id)  # ended, but a crash came before its steps were closed
        for task in await self._store.list_tasks(phases=(Phase.PLANNING, Phase.EXECUTING)):
            if task.phase is Phase.PLANNING:
                self._plan_in_background(task)
            else:
                await self._executor.resume(task, started_at=await self._started_at(task.id))
        log.info("orchestrator started")

    async def close(self) -> None:
        """Stop taking work and leave what runs recoverable, then close the store."""
        self._is_closing = True
        for planning in self._planning.values():
            planning.cancel()
        await asyncio.gather(*self._planning.values(), return_exceptions=True)
        await self._executor.shutdown()
        if self._heartbeat is not None:
            await self._heartbeat.stop()
        await self._store.close()

    @property
    def isolation(self) -> Isolation | None:
        """How shell steps run here, once `start()` has found it."""
        return self._actions.isolation

    async def __aenter__(self) -> Orchestrator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def submit(
        self,
        request: str,
        *,
        requester: str,
        scope: str,
        message_keys: Sequence[str] = (),
        meta: Mapping[str, str] | None = None,
    ) -> Task:
        """Record a request and plan it in the background; the task comes back in `planning`.

        `message_keys` name the chat message; a key seen before raises `DuplicateMessageError`.
        """
        if self._is_closing:
            raise OrchestratorError("the orchestrator is shutting down; try again shortly")
        now = time.time()
        task = Task(
            id=uuid.uuid4().hex[:12],
            scope=scope,
            requester=requester,
            request=request,
            phase=Phase.PLANNING,
            created_at=now,
            updated_at=now,
            meta=dict(meta or {}),
        )
        await self._store.create_task(
            task, message_keys=message_keys, outbox=(PLAN,) if self._has_outbox else ()
        )
        self._bus.publish(TaskSubmitted(task.id))
        self._plan_in_background(task)
        return task

    async def approve(self, task_id: str, *, user: str) -> Task:
        """Start an awaiting plan. A second approval raises `NotPendingError` naming the first."""
        task = await self._authorized(task_id, user, "approve")
        await self._set_phase(task_id, Phase.AWAITING_APPROVAL, Phase.EXECUTING, user, "approved")
        # What the compare-and-set just wrote; an awaiting plan's steps do not move meanwhile.
        task = replace(task, phase=Phase.EXECUTING, reason="approved")
        if not self._is_closing:  # else the next start() resumes it from the store
            self._executor.start(task, started_at=time.time())
        return task

    async def reject(self, task_id: str, *, user: str) -> Task:
        """Discard an awaiting plan."""
        await self._authorized(task_id, user, "reject")
        await self._set_phase(task_id, Phase.AWAITING_APPROVAL, Phase.CANCELLED, user, "rejected")
        await self._finish(task_id)
        return await self._store.get_task(task_id)

    async def cancel(self, task_id: str, *, user: str) -> Task:
        """Stop a task in any live phase; work in flight is interrupted within two seconds."""
        task = await self._authorized(task_id, user, "cancel")
        if task.phase.is_terminal:
            raise await self._not_pending(task_id, expected=task.phase)
        await self._set_phase(task_id, task.phase, Phase.CANCELLED, user, "cancelled")
        planning = self._planning.get(task_id)
        if planning is not None:
            planning.cancel()
        if self._executor.is_running(task_id):
            await self._executor.stop(task_id)
        else:
            await self._finish(task_id)
        return await self._store.get_task(task_id)

    async def confirm_step(self, task_id: str, step_id: str, *, user: str, run: bool) -> None:
        """A person's answer to a risky step: run it, or skip it."""
        await self._authorized(task_id, user, "confirm steps of")
        self._executor.confirm(task_id, step_id, actor=user, is_run=run)

    async def get_task(self, task_id: str) -> Task:
        """The task and its steps; `TaskNotFoundError` when unknown."""
        return await self._store.get_task(task_id)

    async def pending(self, scope: str) -> list[Task]:
        """Plans awaiting approval in a scope, oldest first."""
        return await self._store.list_tasks(scope=scope, phases=(Phase.AWAITING_APPROVAL,))

    async def list_tasks(
        self,
        *,
        scope: str | None = None,
        scope_prefix: str | None = None,
        phases: Collection[Phase] | None = None,
    ) -> list[Task]:
        """Tasks by scope (exact, or by prefix) and phase, oldest first."""
        return await self._store.list_tasks(scope=scope, scope_prefix=scope_prefix, phases=phases)

    async def history(self, task_id: str) -> list[Transition]:
        """Every phase change, step change and decision of the task, with who, when and why."""
        return await self._store.history(task_id)

    async def claim_message(self, *keys: str) -> bool:
        """Record chat message keys that make no task; False when any was seen before."""
        return await self._store.claim_messages(keys)

    async def set_meta(self, task_id: str, key: str, value: str) -> None:
        """Attach a string to a task (a chat adapter's message ids, say)."""
        await self._store.set_meta(task_id, key, value)

    async def updates(self, task_id: str | None = None) -> list[ThreadUpdate]:
        """What threads must still show (of one task, or all), in order; empty without an outbox."""
        return await self._store.updates(task_id)

    async def mark_sent(self, update: ThreadUpdate, *, ref: str, digest: str) -> None:
        """Record that `update` is shown, as the chat message `ref` whose content has `digest`."""
        await self._store.mark_sent(
            update.task_id, update.slot, version=update.version, ref=ref, digest=digest
        )

    def subscribe(
        self, task_id: str | None = None
    ) -> AbstractAsyncContextManager[AsyncIterator[Event]]:
        """`async with orch.subscribe() as events:` every event published from then on; with
        `task_id`, that task's only (as cheap with 10,000 tasks in flight as with one)."""
        return self._bus.subscribe(task_id)

    def may_act(self, task: Task, user: str) -> bool:
        """Whether `user` may approve, reject, cancel or confirm steps of `task`."""
        return user == task.requester or user in self.config.approvers

    async def wait(self, task_id: str, phases: Collection[Phase], *, timeout: float) -> Task:
        """The task once it is in one of `phases` (a terminal one also ends the wait)."""
        # Before the read, so no change slips between; phase changes only, so the task's step
        # moves do not wake the wait.
        inbox = self._bus.watch(task_id, only=PhaseChanged)
        try:
            async with asyncio.timeout(timeout):
                # The phase, then the events, say where it is: the whole task is read once, to
                # return it (a thousand waits at once are as many reads, not a storm of them).
                phase = await self._store.get_phase(task_id)
                while phase not in phases and not phase.is_terminal:
                    event = await inbox.get()
                    assert isinstance(event, PhaseChanged)
                    phase = event.new
                if phase.is_terminal:
                    # Return after the summary is out, so callers see the steps' final states.
                    await self._executor.wait_idle(task_id)
                return await self._store.get_task(task_id)
        finally:
            self._bus.unwatch(inbox, task_id)

    async def _set_phase(
        self,
        task_id: str,
        old: Phase,
        new: Phase,
        actor: str,
        reason: str | None,
        *,
        plan: PlanResult | None = None,
        ended: Task | None = None,
    ) -> None:
        """The one writer of a task's phase: table check, compare-and-set, then the event.

        In the same write, `plan`: the task's first plan; `ended`: the task exactly as stored
        but for its phase (its run wrote every step), which the write also closes and this
        announces as finished."""
        check_phase(old, new)
        reason = self.config.redactor.redact(reason)  # a failure may quote a step or the model
        slots = phase_slots(old, new) if self._has_outbox else ()
        moves: list[Transition] | None = None
        if plan is not None:
            is_set = await self._store.save_plan(
                task_id,
                plan.steps,
                plan_version=1,
                actor=actor,
                tokens=plan.tokens,
                outbox=slots,
                phase=(old, new),
            )
        elif ended is not None:
            moves = await self._store.end_task(
                task_id,
                old=old,
                new=new,
                actor=actor,
                reason=reason,
                closing=closing_for(new, reason),
                outbox=slots,
                has_outbox=self._has_outbox,
            )
            is_set = moves is not None
        else:
            is_set = await self._store.set_phase(
                task_id, old=old, new=new, actor=actor, reason=reason, outbox=slots
            )
        if not is_set:
            raise await self._not_pending(task_id, expected=old)
        self._bus.publish(PhaseChanged(task_id, old, new, actor, reason))
        if ended is not None and moves is not None:
            task = self._steps.closed(replace(ended, phase=new, reason=reason), moves)
            self._bus.publish(TaskFinished(task_id, new, summary_text(task)))

    async def decision(self, task_id: str) -> Transition | None:
        """The last phase change a person made (approved, rejected, cancelled), if any."""
        moves = [t for t in await self._store.history(task_id) if t.kind == "phase"]
        people = [t for t in moves if t.actor != SYSTEM and t.old is not None]
        return people[-1] if people else None

    async def _not_pending(self, task_id: str, *, expected: Phase) -> NotPendingError:
        task = await self._store.get_task(task_id)
        decision = await self.decision(task_id)
        by = f", {decision.reason} by {decision.actor}" if decision else ""
        err = NotPendingError(
            f"this task is no longer {expected.value} ({task.phase.value}{by})",
            task_id=task_id,
            old=expected,
            new=task.phase,
        )
        err.actor = decision.actor if decision else None
        return err

    async def _authorized(self, task_id: str, user: str, verb: str) -> Task:
        task = await self._store.get_task(task_id)
        if not self.may_act(task, user):
            raise NotAllowedError(
                f"only the requester or an approver may {verb} this task", task_id=task_id
            )
        return task

    async def _finish(self, task_id: str) -> None:
        """Close an ended task's steps (and add its summary to the outbox), then announce it."""
        task = await self._steps.close(await self._store.get_task(task_id))
        self._bus.publish(TaskFinished(task_id, task.phase, summary_text(task)))

    async def _started_at(self, task_id: str) -> float:
        moves = await self._store.history(task_id)
        started = [t.at for t in moves if t.kind == "phase" and t.new == Phase.EXECUTING.value]
        return started[-1] if started else time.time()

    def _plan_in_background(self, task: Task) -> None:
        planning = asyncio.create_task(self._plan(task), name=f"plan-{task.id}")
        self._planning[task.id] = planning
        planning.add_done_callback(lambda _: self._planning.pop(task.id, None))

    async def _plan(self, task: Task) -> None:
        try:
            # The plan and the phase that shows it are one write; a task whose plan was saved
            # by an older version (in a write of its own) only moves on.
            plan = None if task.plan_version else await self._planner.build_plan(task.request)
            await self._set_phase(
                task.id, Phase.PLANNING, Phase.AWAITING_APPROVAL, SYSTEM, None, plan=plan
            )
        except NotPendingError:
            return  # cancelled while planning
        except OrchestratorError as err:
            await self._fail_planning(task.id, err.reason)
        except Exception as exc:
            log.exception("planning task %s crashed", task.id)
            await self._fail_planning(task.id, f"internal error: {type(exc).__name__}")

    async def _fail_planning(self, task_id: str, reason: str) -> None:
        try:
            await self._set_phase(task_id, Phase.PLANNING, Phase.FAILED, SYSTEM, reason)
        except NotPendingError:
            return
        await self._finish(task_id)
