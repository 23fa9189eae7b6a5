"""The dependency graph of a plan: validation, order, readiness and reach."""

from __future__ import annotations

import heapq
from collections.abc import Collection, Iterable, Sequence
from typing import Protocol, TypeVar

from ._errors import PlanValidationError
from ._phases import StepState


class Node(Protocol):
    """Anything with an id and the ids it depends on."""

    @property
    def id(self) -> str: ...
    @property
    def depends_on(self) -> Sequence[str]: ...


class StatefulNode(Node, Protocol):
    """A node that also has a step state."""

    @property
    def state(self) -> StepState: ...


N = TypeVar("N", bound=Node)
S = TypeVar("S", bound=StatefulNode)


def validate_graph(
    nodes: Sequence[N],
    *,
    max_steps: int,
    outside_ids: Collection[str] = (),
) -> list[N]:
    """The nodes in run order, or `PlanValidationError` listing every problem: ids,
    dependencies, size, cycles.

    `outside_ids` are steps that exist already (a replan may depend on them, not reuse their ids).
    """
    problems: list[str] = []
    if len(nodes) > max_steps:
        problems.append(f"the plan has {len(nodes)} steps; at most {max_steps} are allowed")
    seen: set[str] = set()
    for node in nodes:
        if node.id in seen or node.id in outside_ids:
            problems.append(f"step id {node.id!r} is used more than once")
        seen.add(node.id)
    for node in nodes:
        for dep in node.depends_on:
            if dep == node.id:
                problems.append(f"step {node.id!r} depends on itself")
            elif dep not in seen and dep not in outside_ids:
                problems.append(f"step {node.id!r} depends on unknown step {dep!r}")
    if not problems:
        try:
            return topological_order(nodes)  # names a cycle, if it finds one
        except PlanValidationError as err:
            problems.append(err.reason)
    raise PlanValidationError("; ".join(problems))


def find_cycle(nodes: Sequence[Node]) -> list[str] | None:
    """One dependency cycle as a closed path of ids (first id repeated last), or None."""
    deps = {n.id: list(n.depends_on) for n in nodes}
    colour: dict[str, int] = {}  # 1 = on the current path, 2 = done
    for root, root_deps in deps.items():
        if root in colour:
            continue
        path: list[str] = [root]
        stack = [iter(root_deps)]
        colour[root] = 1
        while stack:
            dep = next(stack[-1], None)
            if dep is None:
                colour[path.pop()] = 2
                stack.pop()
                continue
            if dep not in deps:
                continue
            if colour.get(dep) == 1:
                return [*path[path.index(dep) :], dep]
            if dep not in colour:
                colour[dep] = 1
                path.append(dep)
                stack.append(iter(deps[dep]))
    return None


def topological_order(nodes: Sequence[N]) -> list[N]:
    """Nodes with every dependency first; ties keep the given order. Ids outside are ignored."""
    index = {n.id: i for i, n in enumerate(nodes)}
    waiting = {n.id: {d for d in n.depends_on if d in index} for n in nodes}
    users: dict[str, list[str]] = {n.id: [] for n in nodes}
    for node_id, deps in waiting.items():
        for dep in deps:
            users[dep].append(node_id)
    heap = [index[i] for i, deps in waiting.items() if not deps]
    heapq.heapify(heap)
    order: list[N] = []
    while heap:
        node = nodes[heapq.heappop(heap)]
        order.append(node)
        for user in users[node.id]:
            waiting[user].discard(node.id)
            if not waiting[user]:
                heapq.heappush(heap, index[user])
    if len(order) != len(nodes):
        cycle = find_cycle(nodes) or []
        raise PlanValidationError("the steps form a cycle: " + " -> ".join(cycle))
    return order


def ready_steps(steps: Iterable[S]) -> list[S]:
    """Pending steps whose dependencies have all completed, in the given order."""
    steps = list(steps)
    done = {s.id for s in steps if s.state is StepState.COMPLETED}
    return [s for s in steps if s.state is StepState.PENDING and done.issuperset(s.depends_on)]


def dependents(nodes: Iterable[Node], step_id: str) -> set[str]:
    """Ids of every step that needs `step_id`, directly or through others."""
    users: dict[str, list[str]] = {}
    for n in nodes:
        for dep in n.depends_on:
            users.setdefault(dep, []).append(n.id)
    found: set[str] = set()
    todo = [step_id]
    while todo:
        for user in users.get(todo.pop(), []):
            if user not in found:
                found.add(user)
                todo.append(user)
    return found
