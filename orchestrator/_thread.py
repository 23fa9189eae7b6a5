"""What a task's conversation thread shows, as slots: one message each, posted once, then edited.

A slot is touched (its version bumped) in the same transaction as the change it reports; a client
(the Slack relay) renders the slot from the task's current state and marks that version sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from ._models import SYSTEM, Transition
from ._phases import Phase, StepState


class SlotKind(StrEnum):
    """The kinds of message a task's thread holds, in the order they first appear."""

    PLAN = "plan"  # "Planning…", then the plan with its buttons, then who decided
    EXECUTING = "executing"  # the phase transition to executing
    PROGRESS = "progress"  # every step's state, edited in place
    CONFIRM = "confirm"  # one Run step / Skip prompt per time a step asks
    REPLAN = "replan"  # one message per replanned version of the plan
    SUMMARY = "summary"  # the closing message


@dataclass(frozen=True)
class Slot:
    """A message of a thread: its kind, and for prompts and replans which step or version."""

    kind: SlotKind
    step_id: str | None = None
    number: int = 0

    @property
    def key(self) -> str:
        if self.kind is SlotKind.CONFIRM:
            return f"{self.kind.value}:{self.step_id}:{self.number}"
        if self.kind is SlotKind.REPLAN:
            return f"{self.kind.value}:{self.number}"
        return self.kind.value

    @classmethod
    def parse(cls, key: str) -> Slot:
        """The slot a stored key names (`ValueError` when it names none)."""
        kind, _, rest = key.partition(":")
        slot_kind = SlotKind(kind)
        if slot_kind is SlotKind.CONFIRM:
            step_id, _, number = rest.rpartition(":")
            return cls(slot_kind, step_id, int(number))
        if slot_kind is SlotKind.REPLAN:
            return cls(slot_kind, number=int(rest))
        return cls(slot_kind)


PLAN = Slot(SlotKind.PLAN).key
EXECUTING = Slot(SlotKind.EXECUTING).key
PROGRESS = Slot(SlotKind.PROGRESS).key
SUMMARY = Slot(SlotKind.SUMMARY).key


def confirm_slot(step_id: str, ask: int) -> str:
    """The prompt of a step's `ask`-th confirmation (1 for the first)."""
    return Slot(SlotKind.CONFIRM, step_id, ask).key


def replan_slot(plan_version: int) -> str:
    """The message announcing plan version `plan_version`."""
    return Slot(SlotKind.REPLAN, number=plan_version).key


def step_slots(old: StepState, new: StepState, step_id: str, asks: int) -> tuple[str, ...]:
    """The slots a step move touches: progress, and the prompt it opens or answers."""
    if StepState.AWAITING_CONFIRMATION in (old, new):
        return (PROGRESS, confirm_slot(step_id, asks))
    return (PROGRESS,)


def replan_slots(plan_version: int) -> tuple[str, ...]:
    """The slots a replan touches: its own message, and progress (the steps changed)."""
    return (replan_slot(plan_version), PROGRESS)


def phase_slots(old: Phase, new: Phase) -> tuple[str, ...]:
    """The slots a phase change touches. Terminal phases are shown by the summary, at close."""
    slots: list[str] = []
    if new is Phase.AWAITING_APPROVAL or old in (Phase.PLANNING, Phase.AWAITING_APPROVAL):
        slots.append(PLAN)  # the plan appears, or loses its buttons to who decided
    if new is Phase.EXECUTING:
        slots += [EXECUTING, PROGRESS]
    return tuple(slots)


@dataclass(frozen=True)
class ThreadUpdate:
    """A slot whose latest version is not shown yet: post it (no `ref` yet) or edit it."""

    task_id: str
    slot: str
    seq: int
    version: int
    ref: str | None = None
    digest: str | None = None


def plan_decision(history: Sequence[Transition]) -> Transition | None:
    """The phase change by which a person approved, rejected or cancelled the plan, if any."""
    undecided = (Phase.PLANNING.value, Phase.AWAITING_APPROVAL.value)
    return next(
        (t for t in history if t.kind == "phase" and t.old in undecided and t.actor != SYSTEM),
        None,
    )


def step_decisions(history: Sequence[Transition], step_id: str) -> list[Transition]:
    """A step's answers (run, skip, expired) in order: the n-th answers its n-th prompt."""
    return [t for t in history if t.kind == "decision" and t.step_id == step_id]


def replan_reason(history: Sequence[Transition], plan_version: int) -> str | None:
    """Why plan version `plan_version` was made."""
    new = f"v{plan_version}"
    return next((t.reason for t in history if t.kind == "plan" and t.new == new), None)
