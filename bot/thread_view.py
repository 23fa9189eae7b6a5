"""Pure: one outbox slot of a task's thread -> the message it shows now, from the task's state."""

from __future__ import annotations

from collections.abc import Sequence

from orchestrator import (
    Phase,
    Slot,
    SlotKind,
    StepState,
    Task,
    Transition,
    plan_decision,
    replan_reason,
    step_decisions,
)

from . import render
from .render import Message


def needs_history(slot: Slot, task: Task) -> bool:
    """Whether the slot's message shows who decided or why (read from the task's log): a plan
    that is still being made or awaits approval does not."""
    if slot.kind is SlotKind.PLAN:
        return task.phase not in (Phase.PLANNING, Phase.AWAITING_APPROVAL)
    return slot.kind in (SlotKind.CONFIRM, SlotKind.REPLAN)


def render_slot(slot: Slot, task: Task, history: Sequence[Transition]) -> Message:
    """What `slot` of `task`'s thread shows, given the task's transition log."""
    if slot.kind is SlotKind.PLAN:
        return _plan(task, history)
    if slot.kind is SlotKind.EXECUTING:
        return render.executing(task)
    if slot.kind is SlotKind.PROGRESS:
        return render.progress(task)
    if slot.kind is SlotKind.CONFIRM:
        return _confirmation(slot, task, history)
    if slot.kind is SlotKind.REPLAN:
        return render.replanned(task, slot.number, replan_reason(history, slot.number))
    return render.summary(task)


def _plan(task: Task, history: Sequence[Transition]) -> Message:
    if task.phase is Phase.PLANNING:
        return render.planning(task)
    if task.phase is Phase.AWAITING_APPROVAL:
        return render.plan(task)
    decision = plan_decision(history)
    if decision is None:  # planning failed: nobody was asked
        return render.planning_failed(task)
    verb = decision.reason or decision.new
    return render.decided_plan(task, verb=verb, actor=decision.actor, at=decision.at)


def _confirmation(slot: Slot, task: Task, history: Sequence[Transition]) -> Message:
    step = task.step(slot.step_id or "")
    if step.state is StepState.AWAITING_CONFIRMATION and step.asks == slot.number:
        return render.confirmation(task, step, step.reason)
    answers = step_decisions(history, step.id)
    answer = answers[slot.number - 1] if len(answers) >= slot.number else None
    return render.confirmation_closed(step, render.confirmation_outcome(answer, step))
