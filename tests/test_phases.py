"""The state machine as data: every phase and step move, wire names and tier order."""

from __future__ import annotations

from itertools import product
from typing import TypeVar

import pytest

from orchestrator._errors import TransitionError
from orchestrator._phases import (
    PHASE_TRANSITIONS,
    STEP_TRANSITIONS,
    Phase,
    StepState,
    Tier,
    check_phase,
    check_state,
    phase_diagram,
)

E = TypeVar("E", Phase, StepState)

TERMINAL_PHASES = {Phase.COMPLETED, Phase.FAILED, Phase.CANCELLED}
TERMINAL_STATES = {StepState.COMPLETED, StepState.FAILED, StepState.SKIPPED, StepState.CANCELLED}


def _reachable(table: dict[E, frozenset[E]], start: E) -> set[E]:
    seen = {start}
    todo = [start]
    while todo:
        for nxt in table[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


@pytest.mark.parametrize(("old", "new"), list(product(Phase, Phase)), ids=lambda p: p.value)
def test_check_phase_refuses_exactly_the_moves_the_table_leaves_out(old: Phase, new: Phase) -> None:
    if new in PHASE_TRANSITIONS[old]:
        check_phase(old, new)
        return
    with pytest.raises(TransitionError) as caught:
        check_phase(old, new)
    assert old.value in caught.value.reason
    assert new.value in caught.value.reason
    assert (caught.value.old, caught.value.new) == (old, new)


@pytest.mark.parametrize(("old", "new"), list(product(StepState, StepState)), ids=lambda s: s.value)
def test_check_state_refuses_exactly_the_moves_the_table_leaves_out(
    old: StepState, new: StepState
) -> None:
    if new in STEP_TRANSITIONS[old]:
        check_state(old, new)
        return
    with pytest.raises(TransitionError) as caught:
        check_state(old, new)
    assert old.value in caught.value.reason
    assert new.value in caught.value.reason
    assert (caught.value.old, caught.value.new) == (old, new)


def test_the_tables_cover_every_phase_and_every_state() -> None:
    assert set(PHASE_TRANSITIONS) == set(Phase)
    assert set(STEP_TRANSITIONS) == set(StepState)


@pytest.mark.parametrize("phase", [Phase.COMPLETED, Phase.FAILED, Phase.CANCELLED], ids=str)
def test_a_terminal_phase_has_no_way_out(phase: Phase) -> None:
    assert phase.is_terminal
    assert PHASE_TRANSITIONS[phase] == frozenset()
    for new in Phase:
        with pytest.raises(TransitionError):
            check_phase(phase, new)


def test_only_completed_failed_and_cancelled_are_terminal_phases() -> None:
    assert {p for p in Phase if p.is_terminal} == TERMINAL_PHASES


def test_only_completed_failed_skipped_and_cancelled_are_terminal_step_states() -> None:
    assert {s for s in StepState if s.is_terminal} == TERMINAL_STATES


def test_every_live_phase_can_be_cancelled() -> None:
    for phase in Phase:
        if not phase.is_terminal:
            check_phase(phase, Phase.CANCELLED)


def test_every_live_step_state_can_be_cancelled() -> None:
    for state in StepState:
        if not state.is_terminal:
            check_state(state, StepState.CANCELLED)


def test_every_phase_is_reachable_from_planning() -> None:
    assert _reachable(PHASE_TRANSITIONS, Phase.PLANNING) == set(Phase)


def test_every_step_state_is_reachable_from_pending() -> None:
    assert _reachable(STEP_TRANSITIONS, StepState.PENDING) == set(StepState)


def test_phase_wire_names_are_lower_snake() -> None:
    assert [p.value for p in Phase] == [
        "planning",
        "awaiting_approval",
        "executing",
        "completed",
        "failed",
        "cancelled",
    ]
    assert all(p.name == p.value.upper() for p in Phase)


def test_step_state_wire_names_are_lower_snake() -> None:
    assert [s.value for s in StepState] == [
        "pending",
        "running",
        "awaiting_confirmation",
        "completed",
        "failed",
        "skipped",
        "cancelled",
    ]
    assert all(s.name == s.value.upper() for s in StepState)


def test_tiers_rise_from_read_to_destructive() -> None:
    ladder = [Tier.READ, Tier.WRITE, Tier.EXECUTE, Tier.EXTERNAL, Tier.DESTRUCTIVE]
    assert [t.rank for t in ladder] == [0, 1, 2, 3, 4]
    assert sorted(Tier, key=lambda t: t.rank) == ladder
    assert [t.value for t in ladder] == ["read", "write", "execute", "external", "destructive"]


def test_only_external_and_destructive_tiers_need_confirmation() -> None:
    assert {t for t in Tier if t.needs_confirmation} == {Tier.EXTERNAL, Tier.DESTRUCTIVE}


def test_the_phase_diagram_draws_one_line_per_allowed_move() -> None:
    lines = phase_diagram().splitlines()
    expected = {
        f"{old.value} -> {new.value}" for old, news in PHASE_TRANSITIONS.items() for new in news
    }
    assert len(lines) == len(expected)
    assert set(lines) == expected
