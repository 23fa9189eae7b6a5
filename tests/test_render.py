"""Rendering stays inside Slack's limits for any plan, and never drops a step."""

from __future__ import annotations

import json
import time

from hypothesis import given
from hypothesis import strategies as st

from bot import mrkdwn, render
from orchestrator import Action, Phase, Step, StepState, Task, Tier
from tests.slack_checks import HOSTILE, assert_nothing_live, assert_valid_message

HOSTILE_TEXT = "<!channel> <!here> <!everyone> see <https://evil.example|click here> & <@U2>"


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
        assert_nothing_live({"text": message.text, "blocks": message.blocks})
        assert len(message.text) <= render.MAX_TEXT  # measured escaped, as Slack counts it
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


def test_hostile_text_is_escaped_in_every_messages_plain_text_too() -> None:
    task = _task([HOSTILE_TEXT], request=HOSTILE_TEXT)
    done = task.__class__(**{**task.__dict__, "phase": Phase.FAILED, "reason": HOSTILE_TEXT})
    step = task.steps[0]
    hostile_step = step.evolve(reason=HOSTILE_TEXT)
    messages = [
        render.planning(task),
        render.plan(task),
        render.decided_plan(task, verb="approved", actor="U1", at=1_700_000_000),
        render.phase(done),
        render.progress(task),
        render.confirmation(task, step, HOSTILE_TEXT),
        render.confirmation_closed(step, render.confirmation_outcome(None, hostile_step)),
        render.replanned(task, 1, HOSTILE_TEXT),
        render.planning_failed(done),
        render.summary(done),
        render.pending_list([task, task]),
        render.failure(HOSTILE_TEXT),
        render.step_not_waiting(HOSTILE_TEXT),
    ]
    for message in messages:
        assert_nothing_live({"text": message.text, "blocks": message.blocks})
    assert "&lt;!channel&gt;" in render.plan(task).text
    assert "&lt;@U2&gt;" in render.summary(done).text  # a person named in the text is not pinged


def test_step_ids_from_the_model_are_escaped_where_they_are_shown() -> None:
    task = _task(["a"])
    hostile = task.steps[0].evolve(id="<!here>")
    task = task.__class__(**{**task.__dict__, "steps": (hostile,)})
    for message in (render.plan(task), render.progress(task), render.summary(task)):
        assert_nothing_live({"text": message.text, "blocks": message.blocks})
        assert "[&lt;!here&gt;]" in message.text


@given(st.text(max_size=200), st.integers(min_value=1, max_value=60))
def test_a_cut_never_splits_an_entity_and_stays_within_its_limit(text: str, limit: int) -> None:
    out = mrkdwn.cut(text, limit)
    assert len(out) <= max(limit, 2)
    assert not set("<>") & set(out)
    assert "&" not in out.replace("&amp;", "").replace("&lt;", "").replace("&gt;", "")


@given(st.text())
def test_unescape_undoes_exactly_what_escape_did(text: str) -> None:
    assert mrkdwn.unescape(mrkdwn.escape(text)) == text


def test_the_pending_list_mentions_each_requester_live_and_escapes_the_request() -> None:
    message = render.pending_list([_task(["a"], request="<!here> ship it")] * 2)
    rows = [b["text"]["text"] for b in message.blocks[1:]]
    assert rows == ["<@U1>: &lt;!here&gt; ship it"] * 2
    assert "&lt;@U1&gt;" not in str(message.blocks)
    assert_nothing_live({"text": message.text, "blocks": message.blocks})


def test_every_mrkdwn_text_is_verbatim_so_slack_links_nothing_by_itself() -> None:
    task = _task(["see https://example.com and #general"])
    for message in (render.plan(task), render.progress(task), render.pending_list([task] * 2)):
        assert_valid_message({"text": message.text, "blocks": message.blocks})


def test_a_hostile_notify_message_is_escaped_and_user_mentions_live_only_when_allowed() -> None:
    strict = render.notification(HOSTILE_TEXT, has_live_user_mentions=False)
    allowed = render.notification(HOSTILE_TEXT + " <@U3|bob>", has_live_user_mentions=True)
    for message in (strict, allowed):
        assert_valid_message({"text": message.text, "blocks": message.blocks})
        assert not [h for h in HOSTILE if h in message.text + str(message.blocks)]
    assert strict.text.endswith("&amp; &lt;@U2&gt;")
    assert allowed.text.endswith("&amp; <@U2> &lt;@U3|bob&gt;")


def test_a_long_notify_message_is_cut_to_fit_slack() -> None:
    message = render.notification("<b>" * 5000, has_live_user_mentions=False)
    assert_valid_message({"text": message.text, "blocks": message.blocks})
    assert message.text.startswith("&lt;b&gt;")


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


def _tool_task(arguments: str, earlier_output: str) -> Task:
    task = _task(["find it"])
    call = Step(
        id="call",
        description="call the tool",
        action=Action.TOOL,
        input=arguments,
        depends_on=("s0",),
        tier=Tier.DESTRUCTIVE,
        position=1,
        state=StepState.AWAITING_CONFIRMATION,
        tool="fake.record",
    )
    done = task.steps[0].evolve(output=earlier_output)
    return task.__class__(**{**task.__dict__, "steps": (done, call)})


def test_a_tool_step_shows_its_call_in_the_plan_escaped_and_cut_to_fit() -> None:
    short = _tool_task(json.dumps({"text": "{{s0}} <!here>"}), "x")
    assert '— fake.record({"text": "{{s0}} &lt;!here&gt;"})' in render.plan(short).text
    long = _tool_task(json.dumps({"text": "y" * 9000}), "x")
    for message in (render.plan(long), render.replanned(long, 1, None)):
        assert_valid_message({"text": message.text, "blocks": message.blocks})
        assert 'call the tool — fake.record({"text": "yyy' in message.text


def test_a_tool_prompt_shows_the_exact_call_after_filling_and_says_when_it_is_cut() -> None:
    task = _tool_task(json.dumps({"text": "from s0: {{s0}}", "n": 2}), "two  spaces\n<!channel>")
    ask = render.confirmation(task, task.step("call"), None)
    assert ask.text.startswith(
        'Step call (tool, destructive) wants to run: fake.record({"text": "from s0: two  spaces'
        '\\n&lt;!channel&gt;", "n": 2})'
    )
    assert_nothing_live({"text": ask.text, "blocks": ask.blocks})
    huge = _tool_task(json.dumps({"text": "{{s0}}"}), "z" * 5000)
    ask = render.confirmation(huge, huge.step("call"), "destructive step: run or skip?")
    assert_valid_message({"text": ask.text, "blocks": ask.blocks})
    assert "(the call is cut here: 5025 characters in all)" in ask.text
