"""Task phases, step states, actions and risk tiers, and the allowed transitions as data.

The tables below are the whole state machine: `check_phase` and `check_state` consult them and
nothing else decides whether a move is legal.
"""

from __future__ import annotations

from enum import StrEnum

from ._errors import TransitionError


class Phase(StrEnum):
    """Where a task is in its life; the value is the wire name."""

    PLANNING = "planning"
    AWAITING_APPROVAL = "awaiting_approval"
    EXECUTING = "executing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return not PHASE_TRANSITIONS[self]


class StepState(StrEnum):
    """Where a step is in its life; the value is the wire name."""

    PENDING = "pending"
    RUNNING = "running"
    AWAITING_CONFIRMATION = "awaiting_confirmation"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return not STEP_TRANSITIONS[self]


class Action(StrEnum):
    """What a step does."""

    RESEARCH = "research"
    WRITE = "write"
    REVIEW = "review"
    SHELL = "shell"
    NOTIFY = "notify"
    TOOL = "tool"
    IMPLEMENT = "implement"  # a coding agent carries out a specification (see `_agents`)

    @property
    def is_llm(self) -> bool:
        return self in (Action.RESEARCH, Action.WRITE, Action.REVIEW)

    @property
    def has_side_effects(self) -> bool:
        """Whether running it twice could do something twice (so recovery asks first)."""
        return not self.is_llm


class Tier(StrEnum):
    """Risk tier, in rising order of risk."""

    READ = "read"
    WRITE = "write"
    EXECUTE = "execute"
    EXTERNAL = "external"
    DESTRUCTIVE = "destructive"

    @property
    def rank(self) -> int:
        return _TIER_RANKS[self]

    @property
    def needs_confirmation(self) -> bool:
        return self in (Tier.EXTERNAL, Tier.DESTRUCTIVE)


_TIER_RANKS = {tier: rank for rank, tier in enumerate(Tier)}

# Phase transitions. A phase with no way out is terminal and never changes again.
PHASE_TRANSITIONS: dict[Phase, frozenset[Phase]] = {
    Phase.PLANNING: frozenset({Phase.AWAITING_APPROVAL, Phase.FAILED, Phase.CANCELLED}),
    Phase.AWAITING_APPROVAL: frozenset({Phase.EXECUTING, Phase.CANCELLED}),
    Phase.EXECUTING: frozenset({Phase.COMPLETED, Phase.FAILED, Phase.CANCELLED}),
    Phase.COMPLETED: frozenset(),
    Phase.FAILED: frozenset(),
    Phase.CANCELLED: frozenset(),
}

# Step transitions. RUNNING -> PENDING and RUNNING -> AWAITING_CONFIRMATION happen only when
# recovery finds a step that a crash interrupted: an LLM step re-runs, a side effect asks again.
STEP_TRANSITIONS: dict[StepState, frozenset[StepState]] = {
    StepState.PENDING: frozenset(
        {
            StepState.RUNNING,
            StepState.AWAITING_CONFIRMATION,
            StepState.SKIPPED,
            StepState.CANCELLED,
        }
    ),
    StepState.AWAITING_CONFIRMATION: frozenset(
        {StepState.RUNNING, StepState.SKIPPED, StepState.CANCELLED}
    ),
    StepState.RUNNING: frozenset(
        {
            StepState.COMPLETED,
            StepState.FAILED,
            StepState.CANCELLED,
            StepState.PENDING,
            StepState.AWAITING_CONFIRMATION,
        }
    ),
    StepState.COMPLETED: frozenset(),
    StepState.FAILED: frozenset(),
    StepState.SKIPPED: frozenset(),
    StepState.CANCELLED: frozenset(),
}


def check_phase(old: Phase, new: Phase) -> None:
    """Raise `TransitionError` unless the table allows `old -> new`."""
    if new not in PHASE_TRANSITIONS[old]:
        raise TransitionError(f"phase {old.value} -> {new.value} is not allowed", old=old, new=new)


def check_state(old: StepState, new: StepState) -> None:
    """Raise `TransitionError` unless the table allows `old -> new` for a step."""
    if new not in STEP_TRANSITIONS[old]:
        raise TransitionError(f"step {old.value} -> {new.value} is not allowed", old=old, new=new)


def phase_diagram() -> str:
    """The phase table drawn as text lines, one per allowed move (the README shows this)."""
    lines = [
        f"{old.value} -> {new.value}"
        for old in Phase
        for new in sorted(PHASE_TRANSITIONS[old], key=list(Phase).index)
    ]
    return "\n".join(lines)
