"""Pure: tasks and events -> Slack messages (text + Block Kit). Every sentence users see is here.

Both `text` and blocks are mrkdwn: people's and the model's words are escaped in both, so they
never ping or link; only the bot's own mentions of people and date tokens are live.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    MarkdownTextObject,
    SectionBlock,
)

from orchestrator import (
    Action,
    Phase,
    Step,
    StepError,
    StepState,
    Task,
    Transition,
    fill_arguments,
    final_output,
)

from .mrkdwn import cut, escape, escape_except_user_mentions, fit, shorten

MAX_BLOCKS = 50  # Slack: at most 50 blocks per message
MAX_TEXT = 3900  # Slack: keep a message's text under 4,000 characters
SECTION_CHARS = 3000  # Slack: a section's text is at most 3,000 characters
CALL_CHARS = 2500  # a tool call asking to run, shown whole up to this (one section holds it)

APPROVE, REJECT = "approve_plan", "reject_plan"
RUN_STEP, SKIP_STEP = "run_step", "skip_step"

_STATE_MARKS = {
    StepState.PENDING: "◻️",
    StepState.RUNNING: "⏳",
    StepState.AWAITING_CONFIRMATION: "✋",
    StepState.COMPLETED: "✅",
    StepState.FAILED: "❌",
    StepState.SKIPPED: "⏭️",
    StepState.CANCELLED: "⛔",
}


@dataclass(frozen=True)
class Message:
    """What to post: the text (notification fallback, mrkdwn as the blocks are) and blocks."""

    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)


def _blocks(*blocks: Block) -> list[dict[str, Any]]:
    """Block Kit dicts, validated by slack_sdk's models (to_dict checks their limits)."""
    out = [b.to_dict() for b in blocks]
    if len(out) > MAX_BLOCKS:
        raise ValueError(f"{len(out)} blocks; Slack allows {MAX_BLOCKS}")
    return out


def _mrkdwn(text: str) -> MarkdownTextObject:
    # Slack: verbatim, so it turns no URL, #channel or @word into a link or mention by itself.
    return MarkdownTextObject(text=text, verbatim=True)


def _sections(lines: Sequence[str]) -> list[SectionBlock]:
    """Lines (mrkdwn) packed into as few sections as Slack's section limit allows."""
    sections: list[SectionBlock] = []
    chunk = ""
    for raw in lines:
        line = shorten(raw, SECTION_CHARS)
        if chunk and len(chunk) + 1 + len(line) > SECTION_CHARS:
            sections.append(SectionBlock(text=_mrkdwn(chunk)))
            chunk = ""
        chunk = f"{chunk}\n{line}" if chunk else line
    if chunk:
        sections.append(SectionBlock(text=_mrkdwn(chunk)))
    return sections


def _button(text: str, action_id: str, value: str, style: str | None = None) -> ButtonElement:
    return ButtonElement(text=text, action_id=action_id, value=value, style=style)


def _id(step_id: str) -> str:
    """A step id as shown: the model chose it, so it is escaped like any of its words."""
    return cut(step_id, 40)


def _step_parts(steps: Sequence[Step], *, is_code: bool) -> list[tuple[str, str]]:
    parts = []
    for n, s in enumerate(steps, start=1):
        waits = ", ".join(_id(d) for d in s.depends_on) or "nothing"
        code = "`" if is_code else ""
        action = f"{code}{s.action.value}{code}"
        head = f"{n}. [{_id(s.id)}] {action} · {s.tier.value} · waits for {waits}: "
        body = f"{s.description} — {_tool_call(s)}" if s.action is Action.TOOL else s.description
        parts.append((head, body))
    return parts


def _tool_call(step: Step, outputs: Mapping[str, str | None] | None = None) -> str:
    """A tool step as server.tool(arguments), plain; each {{id}} filled from `outputs`, if given."""
    arguments = step.input
    if outputs is not None:
        with contextlib.suppress(StepError):  # not a JSON object: shown as stored
            arguments = json.dumps(fill_arguments(step.input, outputs), ensure_ascii=False)
    return f"{step.tool}({arguments})"


def _plan_lines(task: Task, *, is_blocks: bool, limit: int = MAX_TEXT) -> list[str]:
    """The plan's lines: the blocks greet the requester and set actions as code; the text not."""
    title = f"Plan for <@{task.requester}>: " if is_blocks else "Plan: "
    return fit([(title, task.request), *_step_parts(task.plan, is_code=is_blocks)], limit)


def planning(task: Task) -> Message:
    """The first reply under a mention, replaced by the plan when it is ready."""
    text = f"Planning… ({cut(task.request, 200)})"
    return Message(text, _blocks(SectionBlock(text=_mrkdwn(text))))


def plan(task: Task) -> Message:
    """The plan with Approve / Reject buttons."""
    buttons = ActionsBlock(
        block_id=f"plan:{task.id}",
        elements=[
            _button("Approve", APPROVE, task.id, "primary"),
            _button("Reject", REJECT, task.id, "danger"),
        ],
    )
    text = "\n".join(_plan_lines(task, is_blocks=False))
    return Message(text, _blocks(*_sections(_plan_lines(task, is_blocks=True)), buttons))


def decided_plan(task: Task, *, verb: str, actor: str, at: float) -> Message:
    """The plan with its buttons replaced by who decided and when."""
    note = f"{verb.capitalize()} by <@{actor}> at {_when(at)}"
    decided = f"{verb.capitalize()} by {escape(actor)}"
    lines = _plan_lines(task, is_blocks=False, limit=MAX_TEXT - len(decided) - 1)
    text = "\n".join([*lines, decided])
    context = ContextBlock(elements=[_mrkdwn(note)])
    return Message(text, _blocks(*_sections(_plan_lines(task, is_blocks=True)), context))


def planning_failed(task: Task) -> Message:
    """The "Planning…" reply once planning gave up: why, with no buttons."""
    text = f"Could not plan this request ({cut(task.request, 200)}): {cut(task.reason or '', 1000)}"
    return Message(text, _blocks(SectionBlock(text=_mrkdwn(text))))


def executing(task: Task) -> Message:
    """The phase transition to executing, named in plain words."""
    return Message(f"executing: {len([s for s in task.steps if s.plan_version == 1])} steps")


def phase(task: Task) -> Message:
    """A phase transition, named in plain words."""
    if task.phase is Phase.FAILED:
        return Message(f"failed: {cut(task.reason or 'unknown reason', 1000)}")
    if task.phase is Phase.EXECUTING:
        return executing(task)
    return Message(task.phase.value)


def progress(task: Task) -> Message:
    """One line per step with its state; kept current in place."""
    done = sum(s.state.is_terminal for s in task.plan)
    parts = [
        (f"{_STATE_MARKS[s.state]} [{_id(s.id)}] {s.state.value}: ", s.description)
        for s in task.plan
    ]
    lines = [f"Progress: {done}/{len(task.plan)} steps finished", *fit(parts, MAX_TEXT - 60)]
    return Message("\n".join(lines), _blocks(*_sections(lines)))


def confirmation(task: Task, step: Step, reason: str | None) -> Message:
    """A risky step asks before it runs: Run step / Skip."""
    value = f"{task.id}|{step.id}"
    ask = f"Step {_id(step.id)} ({step.action.value}, {step.tier.value}) wants to run: "
    if step.action is Action.TOOL:
        # The exact call, after {{…}} substitution: whitespace kept, cut only past a section.
        call = escape(_tool_call(step, {s.id: s.output for s in task.steps}))
        ask += shorten(call, CALL_CHARS)
        if len(call) > CALL_CHARS:
            ask += f"\n(the call is cut here: {len(call)} characters in all)"
    else:
        ask += cut(step.input, 1500)
    if reason:
        ask += f"\n({cut(reason, 300)})"
    buttons = ActionsBlock(
        block_id=f"confirm:{value}",
        elements=[
            _button("Run step", RUN_STEP, value, "danger"),
            _button("Skip", SKIP_STEP, value),
        ],
    )
    return Message(ask, _blocks(*_sections([ask]), buttons))


def confirmation_closed(step: Step, outcome: str) -> Message:
    """A confirmation prompt after it was answered or expired: no buttons, what happened.

    `outcome` is mrkdwn (it may mention who answered), so it is not escaped.
    """
    head = f"Step {_id(step.id)} ({step.action.value}, {step.tier.value}): "
    return Message(head + outcome, _blocks(*_sections([head + outcome])))


def confirmation_outcome(answer: Transition | None, step: Step) -> str:
    """What became of a confirmation prompt: the person's answer, or what ended the wait."""
    if answer is None:
        why = f": {cut(step.reason, 300)}" if step.reason else ""
        return f"{step.state.value}{why}"
    if answer.new == "run":
        return f"run by <@{answer.actor}>"
    if answer.new == "skip":
        return f"skipped by <@{answer.actor}>"
    return f"skipped: {cut(answer.reason or answer.new, 300)}"


def replanned(task: Task, plan_version: int, reason: str | None) -> Message:
    """After a failure the remaining work was planned again (as `plan_version`)."""
    head = f"Replanned ({cut(reason or 'a step failed', 300)}). The new plan:"
    steps = [s for s in task.steps if s.plan_version == plan_version]
    lines = [head, *fit(_step_parts(steps, is_code=False), MAX_TEXT - len(head))]
    return Message("\n".join(lines), _blocks(*_sections(lines)))


def summary(task: Task) -> Message:
    """The closing message: the outcome, each step's result, and the result."""
    head = _outcome(task)
    parts = [
        (f"{n}. [{_id(s.id)}] {s.state.value}: ", _step_result(s))
        for n, s in enumerate(task.steps, 1)
    ]
    result = final_output(task)
    if result:
        parts.append(("Result: ", result))
    lines = [head, *fit(parts, MAX_TEXT - len(head) - 1)]
    return Message("\n".join(lines), _blocks(*_sections(lines)))


def pending_list(tasks: Sequence[Task]) -> Message:
    """Several plans wait: one Approve button each; nothing is approved."""
    head = f"{len(tasks)} plans are waiting for approval; pick the one to approve:"
    shown = tasks[: MAX_BLOCKS - 1]
    rows = [
        SectionBlock(
            text=_mrkdwn(f"<@{t.requester}>: {cut(t.request, 480)}"),
            accessory=_button("Approve", APPROVE, t.id, "primary"),
        )
        for t in shown
    ]
    text = "\n".join([head, *fit([("• ", t.request) for t in tasks], MAX_TEXT - len(head))])
    return Message(text, _blocks(SectionBlock(text=_mrkdwn(head)), *rows))


def notification(text: str, *, has_live_user_mentions: bool) -> Message:
    """A notify step's message made harmless: nothing the model wrote pings or links, except
    plain user mentions (<@U123>) when `has_live_user_mentions`."""
    safe = escape_except_user_mentions(text) if has_live_user_mentions else escape(text)
    body = shorten(safe.strip(), MAX_TEXT)
    return Message(body, _blocks(*_sections(body.splitlines())))


def status(task: Task | None) -> Message:
    """The state of the thread's task."""
    if task is None:
        return Message("There is no task in this thread. Mention me with a request to start one.")
    if task.phase.is_terminal:
        return summary(task)
    if task.phase is Phase.EXECUTING:
        return progress(task)
    return Message(f"This task is {task.phase.value.replace('_', ' ')}.")


def help_text() -> Message:
    """What the bot understands."""
    return Message(
        "Mention me with a request and I will plan it and wait for approval.\n"
        "In a plan's thread: approve, reject, cancel, status, help.\n"
        "@me approve in the channel approves its one pending plan."
    )


def shell_help() -> Message:
    """What the terminal shell understands."""
    return Message(
        "Type a request and I will plan it and wait for approval.\n"
        "Then: approve, reject, cancel, status, help; run <step> or skip <step> when a step asks.\n"
        "End of input (Ctrl-D) quits."
    )


def nothing_pending(verb: str) -> Message:
    """A command found no task to act on."""
    return Message(f"There is no plan here to {verb}.")


def several(verb: str) -> Message:
    """A command that fits more than one task here."""
    return Message(f"Several tasks are open here; say {verb} in the thread of the one you mean.")


def step_not_waiting(reason: str) -> Message:
    """A click on a Run step / Skip button that is no longer waiting."""
    return Message(f"This step is no longer waiting ({cut(reason, 300)}).")


def refused(reason: str) -> Message:
    """An ephemeral refusal to someone who may not act; `reason` is the bot's own mrkdwn."""
    return Message(f"Sorry, you can't do that: {reason}.")


def not_pending(reason: str) -> Message:
    """A click on a plan or step that has moved on; `reason` is the bot's own mrkdwn."""
    return Message(f"This plan is no longer pending ({reason}).")


def other_workspace() -> Message:
    """An ephemeral refusal to someone of a workspace the bot does not serve."""
    return Message("Sorry, I only take requests from people in this workspace.")


def retired_button() -> Message:
    """A click on a button this version of the bot no longer has."""
    return Message("This button is no longer in use; mention me to start again.")


def failure(reason: str) -> Message:
    """An error the bot could not get past, said in the thread."""
    return Message(f"Something went wrong: {cut(reason, 1000)}")


def _outcome(task: Task) -> str:
    """The phase the task ended in, named first, as every phase message is."""
    if task.phase is Phase.CANCELLED and task.reason:
        return f"cancelled ({cut(task.reason, 1000)}). Summary:"
    return f"{phase(task).text}. Summary:"


def _step_result(step: Step) -> str:
    if step.state is StepState.COMPLETED:
        return step.output or "(no output)"
    replaced = " (replaced by a new plan)" if step.is_superseded else ""
    return f"{step.description} — {step.reason or 'no reason given'}{replaced}"


def _when(at: float) -> str:
    """A Slack date token: each reader sees the time in their own zone."""
    return f"<!date^{int(at)}^{{date_short_pretty}} {{time}}|{int(at)}>"
