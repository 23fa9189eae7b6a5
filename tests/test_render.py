"""Rendering stays inside Slack's limits for any plan, and never drops a step."""

from __future__ import annotations

import time

from hypothesis import given
from hypothesis import strategies as st

from bot import render
from orchestrator import Action, Phase, Step, StepState, Task, Tier
from tests.slack_checks import assert_valid_message


def _task(
    descriptions: list[str], *, request: str = "do things", phase: Phase = Phase.AWAITING_APPROVAL
) -> Task:
    steps = tuple(
        Step(
            id=f"s{i}",
            description=d or "x",
            action=Action.RESEARCH,
            input=d or "x",
            depends_on=(f"s{i - 1}",) if i else (),
            tier=Tier.READ,
            position=i,
            state=StepState.COMPLETED,
            output=d * 3,
        )
        for i, d in enumerate(descriptions)
    )
    now = time.time()
    return Task(
        id="t1", scope="C1:1", requester="U1", request=request, phase=phase,
        created_at=now, updated_at=now, plan_version=1, steps=steps,
    )  # fmt: skip


texts = st.text(alphabet=st.characters(codec="utf-8"), min_size=0, max_size=3000)


@given(st.lists(texts, min_size=1, max_size=40), texts)
def test_every_message_fits_slack_and_keeps_every_step(
    descriptions: list[str], request: str
) -> None:
    task = _task(descriptions, request=request or "r")
    messages = [
        render.plan(task),
        render.decided_plan(task, verb="approved", actor="U1", at=time.time()),
        render.progress(task),
        render.summary(task.__class__(**{**task.__dict__, "phase": Phase.COMPLETED})),
        render.replanned(task, 1, "s1 failed"),
        render.pending_list([task] * 60),
        render.planning(task),
        render.planning_failed(task.__class__(**{**task.__dict__, "reason": request * 3})),
        render.executing(task),
        render.confirmation(task, task.steps[0], request),
        render.confirmation_closed(task.steps[0], render.confirmation_outcome(None, task.steps[0])),
    ]
    for message in messages:
        assert_valid_message({"text": message.text, "blocks": message.blocks})
    plan_text = render.plan(task).text
    for step in task.steps:
        assert f"[{step.id}]" in plan_text


def test_a_long_plan_is_split_into_sections_not_rejected() -> None:
    task = _task(["word " * 400] * 20)
    message = render.plan(task)
    sections = [b for b in message.blocks if b["type"] == "section"]
    assert len(sections) >= 2
    assert message.blocks[-1]["type"] == "actions"
    assert [e["action_id"] for e in message.blocks[-1]["elements"]] == [
        "approve_plan",
        "reject_plan",
    ]
    assert all(e["value"] == "t1" for e in message.blocks[-1]["elements"])


def test_user_text_cannot_ping_or_link() -> None:
    task = _task(["<!channel> see <http://evil|here>"], request="<@U999> hi")
    blocks_text = str(render.plan(task).blocks)
    assert "<!channel>" not in blocks_text
    assert "&lt;!channel&gt;" in blocks_text


def test_a_decided_plan_has_no_buttons_and_says_who_and_when() -> None:
    message = render.decided_plan(_task(["a"]), verb="approved", actor="U7", at=1_700_000_000)
    assert all(b["type"] != "actions" for b in message.blocks)
    assert "Approved by <@U7> at <!date^1700000000^" in str(message.blocks)
    assert message.text.endswith("Approved by U7")


def test_a_failed_task_names_the_phase_and_reason_first() -> None:
    task = _task(["a"], phase=Phase.FAILED)
    task = task.__class__(**{**task.__dict__, "reason": "step s0 failed: boom"})
    assert render.summary(task).text.startswith("failed: step s0 failed: boom. Summary:")
    assert render.phase(task).text == "failed: step s0 failed: boom"
