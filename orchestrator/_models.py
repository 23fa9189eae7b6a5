"""The plan schema the LLM returns (pydantic, at the boundary) and the task records inside."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ._phases import Action, Phase, StepState, Tier

SYSTEM = "orchestrator"  # the actor of every change no person made


class StepSpec(BaseModel):
    """One step as the LLM proposes it. Action and tier stay strings until the graph checks."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    id: str = Field(min_length=1, max_length=64)
    description: str = Field(min_length=1)
    action: str
    input: str = ""
    depends_on: list[str] = Field(default_factory=list)
    tier: str | None = None
    tool: str = ""  # "server.tool" for a tool step


class PlanSpec(BaseModel):
    """The whole plan as the LLM returns it."""

    model_config = ConfigDict(extra="ignore")

    steps: list[StepSpec] = Field(min_length=1)


@dataclass(frozen=True, slots=True)
class Step:
    """A step of a task's plan, as stored."""

    id: str
    description: str
    action: Action
    input: str
    depends_on: tuple[str, ...]
    tier: Tier
    state: StepState = StepState.PENDING
    output: str | None = None
    reason: str | None = None
    attempts: int = 0
    plan_version: int = 1
    position: int = 0
    is_superseded: bool = False
    confirm_deadline: float | None = None
    asks: int = 0  # how many times it has asked a person to run or skip it
    tool: str = ""  # "server.tool" for a tool step, else empty

    @property
    def has_side_effects(self) -> bool:
        """Whether running it twice could do something twice: a read-only tool cannot."""
        if self.action is Action.TOOL and self.tier is Tier.READ:
            return False
        return self.action.has_side_effects

    def evolve(self, **changes: Any) -> Step:
        """A copy with some fields changed."""
        # Not dataclasses.replace, which looks the fields up and runs __init__ again: the
        # executor copies a step on each of its moves. Unknown names are refused all the same.
        if not changes.keys() <= _STEP_FIELDS:
            raise TypeError(f"Step has no field {', '.join(sorted(changes.keys() - _STEP_FIELDS))}")
        copy = object.__new__(Step)
        for name in _STEP_SLOTS:
            _set(copy, name, changes[name] if name in changes else getattr(self, name))
        return copy


# Slots, not a __dict__ each: a thousand tasks in flight hold twenty thousand steps, and every
# garbage collection walks each object they are made of.
_STEP_SLOTS = tuple(f.name for f in fields(Step))
_STEP_FIELDS = frozenset(_STEP_SLOTS)
_set = object.__setattr__


@dataclass(frozen=True)
class Task:
    """A request, its plan and where it stands."""

    id: str
    scope: str
    requester: str
    request: str
    phase: Phase
    created_at: float
    updated_at: float
    reason: str | None = None
    plan_version: int = 0
    replans: int = 0
    tokens_used: int = 0
    steps_run: int = 0
    steps: tuple[Step, ...] = ()
    meta: Mapping[str, str] = field(default_factory=dict)

    @property
    def plan(self) -> tuple[Step, ...]:
        """The steps of the current plan: all but those a replan replaced."""
        return tuple(s for s in self.steps if not s.is_superseded)

    def step(self, step_id: str) -> Step:
        """The step with this id (raises KeyError when there is none)."""
        for s in self.steps:
            if s.id == step_id:
                return s
        raise KeyError(step_id)


@dataclass(frozen=True)
class Transition:
    """One row of the append-only log: a phase or step change, or a decision, with who and why."""

    task_id: str
    kind: str  # "phase" | "step" | "decision"
    old: str | None
    new: str
    actor: str
    at: float
    step_id: str | None = None
    reason: str | None = None


# For each open step state, the state and reason a step in it gets when its task closes.
Closing = Mapping[StepState, tuple[StepState, str | None]]


@dataclass(frozen=True)
class Completion:
    """What one LLM call returned."""

    text: str
    tokens: int
