"""The plan's dependency graph: order, cycles, readiness, reach and validation."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator._errors import PlanValidationError
from orchestrator._graph import (
    dependents,
    find_cycle,
    ready_steps,
    topological_order,
    validate_graph,
)
from orchestrator._phases import StepState

PROPERTY = settings(max_examples=200, deadline=None)

IDS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-", min_size=1, max_size=6)


@dataclass(frozen=True)
class Step:
    """The least a graph function needs: an id, the ids it depends on, and a state."""

    id: str
    depends_on: tuple[str, ...] = ()
    state: StepState = StepState.PENDING


# --- strategies and brute-force references -------------------------------------------------


@st.composite
def dags(draw: st.DrawFn, *, min_size: int = 0, max_size: int = 10) -> list[Step]:
    """A DAG in shuffled order: each node depends only on nodes generated before it."""
    ids = draw(st.lists(IDS, unique=True, min_size=min_size, max_size=max_size))
    nodes = []
    for i, node_id in enumerate(ids):
        earlier = ids[:i]
        deps = draw(st.lists(st.sampled_from(earlier), unique=True)) if earlier else []
        nodes.append(Step(node_id, tuple(deps)))
    return draw(st.permutations(nodes))


@st.composite
def stateful_dags(draw: st.DrawFn) -> list[Step]:
    """A DAG whose nodes are in random step states."""
    nodes = draw(dags())
    return [replace(n, state=draw(st.sampled_from(StepState))) for n in nodes]


@st.composite
def digraphs(draw: st.DrawFn) -> list[Step]:
    """Any graph: a node may depend on any node, itself, or an id that is not in the graph."""
    ids = draw(st.lists(IDS, unique=True, max_size=8))
    targets = st.sampled_from([*ids, "outside"]) if ids else st.just("outside")
    return [Step(i, tuple(draw(st.lists(targets, unique=True, max_size=4)))) for i in ids]


@st.composite
def dags_with_back_edge(draw: st.DrawFn) -> tuple[list[Step], tuple[str, str]]:
    """A DAG plus one edge from an ancestor to one of its descendants, which closes a cycle.

    Returns the nodes (shuffled) and the added edge as (user, dependency).
    """
    nodes = draw(dags(min_size=2))
    users = [n for n in nodes if n.depends_on]
    if not users:  # give the DAG an edge to reverse; any pair keeps it acyclic, both are roots
        first, second = nodes[0], nodes[1]
        nodes[1] = second = replace(second, depends_on=(first.id,))
        users = [second]
    descendant = draw(st.sampled_from(users))
    ancestor_id = draw(st.sampled_from(sorted(_needs(nodes, descendant.id))))
    at = nodes.index(next(n for n in nodes if n.id == ancestor_id))
    ancestor = nodes[at]
    slot = draw(st.integers(0, len(ancestor.depends_on)))
    deps = (*ancestor.depends_on[:slot], descendant.id, *ancestor.depends_on[slot:])
    nodes[at] = replace(ancestor, depends_on=deps)
    return nodes, (ancestor_id, descendant.id)


def _needs(nodes: Iterable[Step], start: str) -> set[str]:
    """Every id reachable from `start` by following depends_on one or more times."""
    deps = {n.id: n.depends_on for n in nodes}
    seen: set[str] = set()
    todo = list(deps.get(start, ()))
    while todo:
        node_id = todo.pop()
        if node_id not in seen:
            seen.add(node_id)
            todo.extend(deps.get(node_id, ()))
    return seen


def _reference_order(nodes: Sequence[Step]) -> list[Step]:
    """Repeatedly take the first node, in input order, whose dependencies are all placed."""
    known = {n.id for n in nodes}
    placed: set[str] = set()
    order: list[Step] = []
    rest = list(nodes)
    while rest:
        node = next(n for n in rest if all(d in placed for d in n.depends_on if d in known))
        order.append(node)
        placed.add(node.id)
        rest.remove(node)
    return order


def _is_acyclic(nodes: Sequence[Step]) -> bool:
    return all(n.id not in _needs(nodes, n.id) for n in nodes)


def _assert_closed_path_of_edges(nodes: Sequence[Step], cycle: list[str]) -> None:
    by_id = {n.id: n for n in nodes}
    assert len(cycle) >= 2
    assert cycle[0] == cycle[-1]
    for user, dep in pairwise(cycle):
        assert dep in by_id[user].depends_on, f"{user!r} does not depend on {dep!r}"


# --- topological_order ---------------------------------------------------------------------


@PROPERTY
@given(dags())
def test_topological_order_puts_every_dependency_before_its_user(nodes: list[Step]) -> None:
    order = topological_order(nodes)
    position = {n.id: i for i, n in enumerate(order)}
    for node in order:
        for dep in node.depends_on:
            assert position[dep] < position[node.id]


@PROPERTY
@given(dags())
def test_topological_order_returns_every_node_exactly_once(nodes: list[Step]) -> None:
    order = topological_order(nodes)
    assert len(order) == len(nodes)
    assert {n.id for n in order} == {n.id for n in nodes}


@PROPERTY
@given(dags())
def test_topological_order_breaks_ties_by_the_given_order(nodes: list[Step]) -> None:
    assert topological_order(nodes) == _reference_order(nodes)


def test_topological_order_keeps_independent_steps_in_the_given_order() -> None:
    nodes = [Step("c"), Step("a"), Step("b")]
    assert topological_order(nodes) == nodes


def test_topological_order_ignores_dependencies_on_steps_outside_the_list() -> None:
    nodes = [Step("b", ("a", "elsewhere")), Step("a")]
    assert [n.id for n in topological_order(nodes)] == ["a", "b"]


@PROPERTY
@given(dags_with_back_edge())
def test_topological_order_refuses_a_graph_with_a_cycle(
    graph: tuple[list[Step], tuple[str, str]],
) -> None:
    nodes, _ = graph
    with pytest.raises(PlanValidationError, match="cycle"):
        topological_order(nodes)


# --- find_cycle ----------------------------------------------------------------------------


@PROPERTY
@given(dags())
def test_find_cycle_finds_nothing_in_a_dag(nodes: list[Step]) -> None:
    assert find_cycle(nodes) is None


@PROPERTY
@given(dags_with_back_edge())
def test_find_cycle_returns_a_closed_path_through_the_added_back_edge(
    graph: tuple[list[Step], tuple[str, str]],
) -> None:
    nodes, (user, dep) = graph
    cycle = find_cycle(nodes)
    assert cycle is not None
    _assert_closed_path_of_edges(nodes, cycle)
    # The DAG had no cycle, so every cycle now runs through the one added edge.
    assert (user, dep) in pairwise(cycle)


@PROPERTY
@given(digraphs())
def test_find_cycle_finds_a_cycle_exactly_when_the_graph_has_one(nodes: list[Step]) -> None:
    cycle = find_cycle(nodes)
    if _is_acyclic(nodes):
        assert cycle is None
    else:
        assert cycle is not None
        _assert_closed_path_of_edges(nodes, cycle)


def test_find_cycle_reports_a_step_that_depends_on_itself_as_a_one_step_loop() -> None:
    assert find_cycle([Step("a"), Step("b", ("a", "b"))]) == ["b", "b"]


# --- ready_steps ---------------------------------------------------------------------------


@PROPERTY
@given(stateful_dags())
def test_ready_steps_are_the_pending_steps_whose_dependencies_all_completed(
    nodes: list[Step],
) -> None:
    completed = {n.id for n in nodes if n.state is StepState.COMPLETED}
    expected = [
        n
        for n in nodes
        if n.state is StepState.PENDING and all(d in completed for d in n.depends_on)
    ]
    assert ready_steps(nodes) == expected


def test_ready_steps_accepts_a_one_shot_iterator() -> None:
    nodes = [Step("a", state=StepState.COMPLETED), Step("b", ("a",)), Step("c", ("b",))]
    assert ready_steps(iter(nodes)) == [nodes[1]]


@pytest.mark.parametrize("state", [s for s in StepState if s is not StepState.COMPLETED])
def test_a_step_is_not_ready_while_a_dependency_has_not_completed(state: StepState) -> None:
    nodes = [Step("a", state=state), Step("b", ("a",))]
    assert ready_steps(nodes) == ([nodes[0]] if state is StepState.PENDING else [])


def test_a_step_that_depends_on_an_unknown_id_is_never_ready() -> None:
    assert ready_steps([Step("a", ("ghost",))]) == []


# --- dependents ----------------------------------------------------------------------------


@PROPERTY
@given(dags(), st.data())
def test_dependents_are_the_steps_from_which_the_step_is_reachable(
    nodes: list[Step], data: st.DataObject
) -> None:
    step_id = data.draw(st.sampled_from([*(n.id for n in nodes), "ghost"]))
    expected = {n.id for n in nodes if step_id in _needs(nodes, n.id)}
    assert dependents(nodes, step_id) == expected


@PROPERTY
@given(digraphs(), st.data())
def test_dependents_match_reachability_in_any_graph(nodes: list[Step], data: st.DataObject) -> None:
    step_id = data.draw(st.sampled_from([*(n.id for n in nodes), "outside"]))
    expected = {n.id for n in nodes if step_id in _needs(nodes, n.id)}
    assert dependents(nodes, step_id) == expected


def test_dependents_of_a_leaf_is_empty() -> None:
    assert dependents([Step("a"), Step("b", ("a",))], "b") == set()


# --- validate_graph ------------------------------------------------------------------------


@PROPERTY
@given(dags())
def test_validate_graph_accepts_every_dag_within_the_size_limit(nodes: list[Step]) -> None:
    validate_graph(nodes, max_steps=len(nodes))


@PROPERTY
@given(dags_with_back_edge())
def test_validate_graph_refuses_a_cycle_and_says_so(
    graph: tuple[list[Step], tuple[str, str]],
) -> None:
    nodes, _ = graph
    with pytest.raises(PlanValidationError, match="cycle"):
        validate_graph(nodes, max_steps=len(nodes))


def test_validate_graph_names_the_steps_of_a_cycle() -> None:
    nodes = [Step("a", ("b",)), Step("b", ("a",))]
    with pytest.raises(PlanValidationError, match="cycle") as caught:
        validate_graph(nodes, max_steps=10)
    assert "a -> b -> a" in caught.value.reason


def test_validate_graph_refuses_a_duplicate_id() -> None:
    with pytest.raises(PlanValidationError, match=r"'a' is used more than once"):
        validate_graph([Step("a"), Step("b"), Step("a")], max_steps=10)


def test_validate_graph_names_the_step_and_the_unknown_id_it_depends_on() -> None:
    with pytest.raises(PlanValidationError) as caught:
        validate_graph([Step("a"), Step("b", ("a", "ghost"))], max_steps=10)
    assert "step 'b' depends on unknown step 'ghost'" in caught.value.reason


def test_validate_graph_refuses_a_step_that_depends_on_itself() -> None:
    with pytest.raises(PlanValidationError, match=r"step 'a' depends on itself"):
        validate_graph([Step("a", ("a",))], max_steps=10)


def test_validate_graph_refuses_more_steps_than_max_steps() -> None:
    nodes = [Step("a"), Step("b"), Step("c")]
    validate_graph(nodes, max_steps=3)
    with pytest.raises(PlanValidationError, match=r"3 steps; at most 2 are allowed"):
        validate_graph(nodes, max_steps=2)


def test_validate_graph_lets_a_step_depend_on_an_existing_outside_step() -> None:
    validate_graph([Step("new", ("old",))], max_steps=10, outside_ids={"old"})


def test_validate_graph_forbids_reusing_the_id_of_an_existing_outside_step() -> None:
    with pytest.raises(PlanValidationError, match=r"'old' is used more than once"):
        validate_graph([Step("old")], max_steps=10, outside_ids={"old"})


def test_validate_graph_reports_several_problems_together() -> None:
    nodes = [Step("a"), Step("a"), Step("b", ("ghost",)), Step("c", ("c",))]
    with pytest.raises(PlanValidationError) as caught:
        validate_graph(nodes, max_steps=2)
    reason = caught.value.reason
    assert "4 steps; at most 2 are allowed" in reason
    assert "'a' is used more than once" in reason
    assert "step 'b' depends on unknown step 'ghost'" in reason
    assert "step 'c' depends on itself" in reason
