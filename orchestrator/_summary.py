"""Plain-text renderings of a plan and of a finished task, for any chat or terminal."""

from __future__ import annotations

from ._models import Step, Task
from ._phases import Phase, StepState

# Each step's output is cut to this many characters in the summary; the step is never dropped.
OUTPUT_CHARS = 400


def cut(text: str, limit: int) -> str:
    """`text` shortened to `limit` characters, marking the cut with an ellipsis."""
    text = text.strip()
    return text if len(text) <= limit else text[: max(0, limit - 1)].rstrip() + "…"


def step_line(number: int, step: Step) -> str:
    """One plan line: number, id, action, tier, what it waits for, and its description."""
    waits = ", ".join(step.depends_on) or "nothing"
    return (
        f"{number}. [{step.id}] {step.action.value} ({step.tier.value}; waits for {waits}): "
        f"{step.description}"
    )


def plan_text(task: Task) -> str:
    """The plan as numbered lines under the request."""
    lines = [f"Plan for: {task.request}"]
    lines += [step_line(i, s) for i, s in enumerate(task.plan, start=1)]
    return "\n".join(lines)


def outcome_line(task: Task) -> str:
    """One sentence naming the task's terminal phase and why."""
    if task.phase is Phase.COMPLETED:
        return "Task completed."
    reason = f": {task.reason}" if task.reason else ""
    return f"Task {task.phase.value}{reason}."


def summary_text(task: Task) -> str:
    """What each step did, what failed and why, and the result."""
    lines = [outcome_line(task)]
    for i, step in enumerate(task.steps, start=1):
        lines.append(f"{i}. [{step.id}] {step.description} — {_step_result(step)}")
    result = _result(task)
    if result:
        lines.append(f"Result: {result}")
    return "\n".join(lines)


def _step_result(step: Step) -> str:
    replaced = " (replaced by a new plan)" if step.is_superseded else ""
    if step.state is StepState.COMPLETED:
        return f"completed: {cut(step.output or '', OUTPUT_CHARS)}"
    reason = f": {step.reason}" if step.reason else ""
    return f"{step.state.value}{reason}{replaced}"


def final_output(task: Task) -> str | None:
    """The output of the last completed step of the plan: what the work came to."""
    done = [s.output for s in task.plan if s.state is StepState.COMPLETED and s.output]
    return done[-1] if done else None


def _result(task: Task) -> str | None:
    output = final_output(task)
    return cut(output, OUTPUT_CHARS * 2) if output else None
