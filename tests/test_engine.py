"""The engine end to end: real orchestrator, real openai client, fake OpenAI server."""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import time
from typing import Any

import pytest

from orchestrator import (
    DuplicateMessageError,
    NotAllowedError,
    NotPendingError,
    Phase,
    StepState,
    Task,
    TaskFinished,
    summary_text,
)
from tests.conftest import MakeOrchestrator
from tests.fakes.openai_server import FakeOpenAI, Reply, Router, step_request
from tests.helpers import eventually, eventually_step, planned, run_to_end, states, step

TERMINAL = {Phase.COMPLETED, Phase.FAILED, Phase.CANCELLED}


async def test_independent_steps_overlap_and_a_joining_step_sees_both_outputs(
    make_orchestrator: MakeOrchestrator, fake_openai: FakeOpenAI
) -> None:
    fake_openai.responder = Router(
        [Reply.plan(step("a"), step("b"), step("c", "a", "b"))],
        {"a": Reply("alpha facts", delay_s=0.3), "b": Reply("beta facts", delay_s=0.3)},
    )
    orch = await make_orchestrator()
    task = await run_to_end(orch, await planned(orch, "compare a and b"))
    assert task.phase is Phase.COMPLETED
    assert states(task) == {"a": "completed", "b": "completed", "c": "completed"}
    assert fake_openai.max_in_flight >= 2  # a and b were in the model at the same time
    joining = fake_openai.requests[-1]["messages"][1]["content"]
    assert "alpha facts" in joining
    assert "beta facts" in joining


async def test_parallelism_is_capped_by_max_parallel(
    make_orchestrator: MakeOrchestrator, fake_openai: FakeOpenAI
) -> None:
    ids = [f"s{i}" for i in range(5)]
    fake_openai.responder = Router(
        [Reply.plan(*[step(i) for i in ids])], {i: Reply("ok", delay_s=0.1) for i in ids}
    )
    orch = await make_orchestrator(max_parallel=2)
    task = await run_to_end(orch, await planned(orch, "five things"))
    assert task.phase is Phase.COMPLETED
    assert fake_openai.max_in_flight == 2


async def test_cancel_during_a_slow_llm_call_ends_within_two_seconds(
    make_orchestrator: MakeOrchestrator, fake_openai: FakeOpenAI
) -> None:
    fake_openai.responder = Router(
        [Reply.plan(step("slow"), step("after", "slow"))], {"slow": Reply("x", delay_s=30)}
    )
    orch = await make_orchestrator()
    task = await planned(orch, "slow work")
    await orch.approve(task.id, user="U1")
    await eventually_step(orch, task.id, "slow", StepState.RUNNING)
    await asyncio.sleep(0.1)  # let the request reach the server
    started = time.monotonic()
    await orch.cancel(task.id, user="U1")
    task = await orch.wait(task.id, TERMINAL, timeout=5)
    assert time.monotonic() - started < 2.0
    assert task.phase is Phase.CANCELLED
    assert states(task) == {"slow": "cancelled", "after": "cancelled"}

    async def is_aborted() -> bool:  # the server saw the request go away
        return fake_openai.aborted > 0

    await eventually(is_aborted, timeout=2)


async def test_cancel_during_sleep_60_kills_the_command_within_two_seconds(
    make_orchestrator: MakeOrchestrator, fake_openai: FakeOpenAI
) -> None:
    fake_openai.responder = Router(
        [Reply.plan(step("wait", action="shell", input="sleep 60", tier="execute"))]
    )
    orch = await make_orchestrator(shell_allow=frozenset({"sleep"}))
    task = await planned(orch, "wait a minute")
    await orch.approve(task.id, user="U1")
    await eventually_step(orch, task.id, "wait", StepState.RUNNING)
    started = time.monotonic()
    await orch.cancel(task.id, user="U1")
    task = await orch.wait(task.id, TERMINAL, timeout=5)
    assert time.monotonic() - started < 2.0
    assert task.phase is Phase.CANCELLED
    assert states(task) == {"wait": "cancelled"}


async def test_a_step_past_its_timeout_fails_with_that_reason(
    make_orchestrator: MakeOrchestrator, fake_openai: FakeOpenAI
) -> None:
    fake_openai.responder = Router([Reply.plan(step("a"))], {"a": Reply("late", delay_s=5)})
    orch = await make_orchestrator(step_timeout_s=0.3, max_replans=0)
    task = await run_to_end(orch, await planned(orch, "x"))
    assert task.phase is Phase.FAILED
    assert task.step("a").reason == "timed out after 0.3s"
    assert task.reason == "step a failed: timed out after 0.3s"


async def test_429_and_500_are_retried_then_the_step_succeeds(
    make_orchestrator: MakeOrchestrator, fake_openai: FakeOpenAI
) -> None:
    router = Router(
        [Reply.plan(step("a"))],
        {
            "a": [
                Reply.error(429, "slow down", **{"retry-after": "0"}),
                Reply.error(500),
                Reply("ok"),
            ]
        },
    )
    fake_openai.responder = router
    orch = await make_orchestrator()
    task = await run_to_end(orch, await planned(orch, "x"))
    assert task.phase is Phase.COMPLETED
    assert router.step_calls == ["a", "a", "a"]
    assert task.step("a").attempts == 3
    assert task.step("a").output == "ok"


async def test_a_step_rides_out_a_longer_outage_then_succeeds(
    make_orchestrator: MakeOrchestrator, fake_openai: FakeOpenAI
) -> None:
    errors = [Reply.error(500), Reply.error(429, "slow down"), Reply.error(502)] * 3
    router = Router([Reply.plan(step("a"))], {"a": [*errors, Reply("ok")]})
    fake_openai.responder = router
    orch = await make_orchestrator()
    task = await run_to_end(orch, await planned(orch, "x"))
    assert task.phase is Phase.COMPLETED
    assert router.step_calls == ["a"] * 10
    assert task.step("a").attempts == 10


async def test_a_step_whose_model_stays_down_fails_naming_the_last_error_and_how_long(
    make_orchestrator: MakeOrchestrator, fake_openai: FakeOpenAI
) -> None:
    router = Router([Reply.plan(step("a"))], {"a": Reply.error(500, "boom")})
    fake_openai.responder = router
    orch = await make_orchestrator(step_timeout_s=0.5, max_replans=0)
    task = await planned(orch, "x")
    started = time.monotonic()
    task = await run_to_end(orch, task)
    assert time.monotonic() - started < 2  # the step's timeout ended the retries
    assert len(router.step_calls) > 3
    reason = task.step("a").reason or ""
    assert "the model server answered 500: boom" in reason
    assert re.search(r"tried \d+ times", reason), reason
    assert task.reason == f"step a failed: {reason}"


async def test_step_retries_end_within_the_tasks_wall_time_budget(
    make_orchestrator: MakeOrchestrator, fake_openai: FakeOpenAI
) -> None:
    fake_openai.responder = Router([Reply.plan(step("a"))], {"a": Reply.error(503, "down")})
    orch = await make_orchestrator(task_timeout_s=0.5, step_timeout_s=60, max_replans=0)
    task = await planned(orch, "x")
    started = time.monotonic()
    task = await run_to_end(orch, task)
    assert time.monotonic() - started < 2
    assert task.phase is Phase.FAILED


async def test_tasks_ride_out_a_model_that_fails_two_calls_in_five(
    make_orchestrator: MakeOrchestrator, fake_openai: FakeOpenAI
) -> None:
    rng = random.Random(11)

    def flaky(body: dict[str, Any]) -> Reply:
        if rng.random() < 0.4:
            return Reply.error(rng.choice([429, 500, 503]), "flaky")
        step_input = step_request(body)
        return Reply.plan(step("a"), step("b", "a")) if step_input is None else Reply("ok")

    fake_openai.responder = flaky
    orch = await make_orchestrator()
    tasks = [await orch.submit(f"job {i}", requester="U1", scope=f"C1:{i}") for i in range(12)]
    for task in tasks:
        await orch.wait(task.id, {Phase.AWAITING_APPROVAL}, timeout=10)
        await orch.approve(task.id, user="U1")
    ended = [await orch.wait(t.id, TERMINAL, timeout=10) for t in tasks]
    assert [t.phase for t in ended] == [Phase.COMPLETED] * 12, [t.reason for t in ended]


async def test_a_failed_step_skips_its_dependents_and_a_replan_finishes_the_work(
    make_orchestrator: MakeOrchestrator, fake_openai: FakeOpenAI
) -> None:
    fake_openai.responder = Router(
        [
            Reply.plan(step("a"), step("b", "a"), step("c", "b"), step("d")),
            Reply.plan(step("a2"), step("b2", "a2", "d")),
        ],
        {"a": Reply.error(400, "the model refused")},
    )
    orch = await make_orchestrator()
    async with orch.subscribe() as events:
        task = await run_to_end(orch, await planned(orch, "x"))
        async with asyncio.timeout(5):
            finished = await anext(e async for e in events if isinstance(e, TaskFinished))
    assert task.phase is Phase.COMPLETED
    # The run closes the task from what it wrote, unread: the summary is the stored task's.
    assert finished.summary == summary_text(task)
    assert states(task) == {
        "a": "failed",
        "b": "skipped",
        "c": "skipped",
        "d": "completed",
        "a2": "completed",
        "b2": "completed",
    }
    assert task.step("b").reason == "needs a, which failed"
    assert {s.id for s in task.plan} == {"d", "a2", "b2"}
    assert task.replans == 1
    replan_prompt = fake_openai.requests[-3]["messages"][-1]["content"]
    assert "the model refused" in replan_prompt
    assert "- d: do d" in replan_prompt  # d had settled as completed before the replan


async def test_when_replans_are_spent_the_task_fails_naming_the_step_and_reason(
    make_orchestrator: MakeOrchestrator, fake_openai: FakeOpenAI
) -> None:
    fake_openai.responder = Router(
        [Reply.plan(step("a")), Reply.plan(step("a2"))],
        {"a": Reply.error(400, "nope"), "a2": Reply.error(400, "still nope")},
    )
    orch = await make_orchestrator(max_replans=1)
    task = await run_to_end(orch, await planned(orch, "x"))
    assert task.phase is Phase.FAILED
    assert task.reason is not None
    assert task.reason.startswith("step a2 failed: the model server answered 400")


@pytest.mark.parametrize(
    ("limits", "replies", "reason"),
    [
        pytest.param({"token_budget": 15}, {}, "budget exceeded: 20 tokens", id="tokens"),
        pytest.param({"step_budget": 1}, {}, "budget exceeded: 1 steps run", id="steps"),
        pytest.param(
            {"task_timeout_s": 0.3}, {"b": Reply("x", delay_s=5)}, "ran longer than 0.3s", id="time"
        ),
    ],
)
async def test_a_task_over_budget_fails_with_the_reason(
    make_orchestrator: MakeOrchestrator,
    fake_openai: FakeOpenAI,
    limits: dict[str, Any],
    replies: dict[str, Reply | list[Reply]],
    reason: str,
) -> None:
    fake_openai.responder = Router(
        [Reply.plan(step("a"), step("b", "a"), step("c", "b"), tokens=0)], replies
    )
    orch = await make_orchestrator(**limits)
    task = await run_to_end(orch, await planned(orch, "x"))
    assert task.phase is Phase.FAILED
    assert reason in (task.reason or "")
    assert task.step("c").state is StepState.SKIPPED
    assert all(s.state.is_terminal for s in task.steps)


async def test_two_approvals_at_once_run_the_plan_once(
    make_orchestrator: MakeOrchestrator, fake_openai: FakeOpenAI
) -> None:
    router = Router([Reply.plan(step("a"), step("b"))])
    fake_openai.responder = router
    orch = await make_orchestrator(approvers=frozenset({"U2"}))
    task = await planned(orch, "x")
    results = await asyncio.gather(
        orch.approve(task.id, user="U1"), orch.approve(task.id, user="U2"), return_exceptions=True
    )
    errors = [r for r in results if isinstance(r, Exception)]
    assert len(errors) == 1
    assert isinstance(errors[0], NotPendingError)
    assert "approved by U" in str(errors[0])
    task = await orch.wait(task.id, TERMINAL, timeout=5)
    assert task.phase is Phase.COMPLETED
    assert sorted(router.step_calls) == ["a", "b"]


async def test_cancel_racing_completion_ends_in_one_consistent_terminal_state(
    make_orchestrator: MakeOrchestrator, fake_openai: FakeOpenAI
) -> None:
    outcomes = set()
    orch = await make_orchestrator()
    for delay in (0.0, 0.005, 0.01, 0.02, 0.03, 0.05, 0.08):
        fake_openai.responder = Router([Reply.plan(step("a"))], {"a": Reply("ok", delay_s=0.02)})
        task = await planned(orch, "x")
        await orch.approve(task.id, user="U1")
        await asyncio.sleep(delay)
        with contextlib.suppress(NotPendingError):
            await orch.cancel(task.id, user="U1")
        task = await orch.wait(task.id, TERMINAL, timeout=5)
        outcomes.add(task.phase)
        assert task.phase in (Phase.COMPLETED, Phase.CANCELLED)
        # A cancel may land after the step finished but before the task did: its work stands.
        allowed = {"completed"} if task.phase is Phase.COMPLETED else {"completed", "cancelled"}
        assert task.step("a").state.value in allowed
        terminal_moves = [
            t for t in await orch.history(task.id) if t.kind == "phase" and t.new in TERMINAL
        ]
        assert [t.new for t in terminal_moves] == [task.phase.value]
    assert outcomes == {Phase.COMPLETED, Phase.CANCELLED}


async def test_only_the_requester_and_approvers_may_decide(
    make_orchestrator: MakeOrchestrator, fake_openai: FakeOpenAI
) -> None:
    fake_openai.responder = Router([Reply.plan(step("a"))] * 2)
    orch = await make_orchestrator(approvers=frozenset({"BOSS"}))
    task = await planned(orch, "x", requester="U1")
    for verb in (orch.approve, orch.reject, orch.cancel):
        with pytest.raises(NotAllowedError):
            await verb(task.id, user="MALLORY")
    assert (await orch.get_task(task.id)).phase is Phase.AWAITING_APPROVAL
    await orch.reject(task.id, user="BOSS")
    rejected = await orch.get_task(task.id)
    assert rejected.phase is Phase.CANCELLED
    moves = [t for t in await orch.history(task.id) if t.kind == "phase"]
    assert (moves[-1].new, moves[-1].actor, moves[-1].reason) == ("cancelled", "BOSS", "rejected")
    assert moves[-1].at > 0


async def test_a_risky_step_waits_for_a_person_and_runs_when_confirmed(
    make_orchestrator: MakeOrchestrator, fake_openai: FakeOpenAI
) -> None:
    fake_openai.responder = Router([Reply.plan(step("post", action="notify", input="#ops hi"))])
    orch = await make_orchestrator()
    task = await planned(orch, "tell ops")
    assert task.step("post").tier.value == "external"
    await orch.approve(task.id, user="U1")
    await eventually_step(orch, task.id, "post", StepState.AWAITING_CONFIRMATION)
    with pytest.raises(NotAllowedError):
        await orch.confirm_step(task.id, "post", user="MALLORY", run=True)
    await orch.confirm_step(task.id, "post", user="U1", run=True)
    with pytest.raises(NotPendingError):
        await orch.confirm_step(task.id, "post", user="U1", run=True)  # a double click
    task = await orch.wait(task.id, TERMINAL, timeout=5)
    assert task.phase is Phase.COMPLETED
    assert task.step("post").output == "posted: #ops hi"
    decisions = [(t.new, t.actor) for t in await orch.history(task.id) if t.kind == "decision"]
    assert decisions == [("run", "U1")]


async def test_a_skipped_risky_step_skips_its_dependents_and_the_task_completes(
    make_orchestrator: MakeOrchestrator, fake_openai: FakeOpenAI
) -> None:
    fake_openai.responder = Router(
        [Reply.plan(step("rm", action="notify", input="@channel hi"), step("after", "rm"))]
    )
    orch = await make_orchestrator()
    task = await planned(orch, "x")
    await orch.approve(task.id, user="U1")
    await eventually_step(orch, task.id, "rm", StepState.AWAITING_CONFIRMATION)
    await orch.confirm_step(task.id, "rm", user="U1", run=False)
    task = await orch.wait(task.id, TERMINAL, timeout=5)
    assert task.phase is Phase.COMPLETED
    assert states(task) == {"rm": "skipped", "after": "skipped"}
    assert task.step("rm").reason == "skipped by U1"


async def test_an_unanswered_confirmation_expires_as_skipped_not_as_a_refusal(
    make_orchestrator: MakeOrchestrator, fake_openai: FakeOpenAI
) -> None:
    fake_openai.responder = Router([Reply.plan(step("p", action="notify", input="#ops hi"))])
    orch = await make_orchestrator(confirm_timeout_s=0.2)
    task = await run_to_end(orch, await planned(orch, "x"))
    assert task.phase is Phase.COMPLETED
    assert task.step("p").state is StepState.SKIPPED
    assert (task.step("p").reason or "").startswith("confirmation expired")
    decisions = [(t.new, t.actor) for t in await orch.history(task.id) if t.kind == "decision"]
    assert decisions == [("expired", "orchestrator")]
    with pytest.raises(NotPendingError):
        await orch.confirm_step(task.id, "p", user="U1", run=True)


async def test_a_planning_failure_fails_the_task_with_a_clear_reason_and_a_summary(
    make_orchestrator: MakeOrchestrator, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(*[Reply("not json")] * 3)
    orch = await make_orchestrator()
    async with orch.subscribe() as events:
        task = await orch.submit("x", requester="U1", scope="C1:1")
        async with asyncio.timeout(5):
            finished = await anext(e async for e in events if isinstance(e, TaskFinished))
    assert finished.phase is Phase.FAILED
    assert "not a JSON object" in finished.summary
    stored = await orch.get_task(task.id)
    assert stored.phase is Phase.FAILED
    assert (stored.reason or "").startswith("the model's plan was still invalid")


async def test_one_chat_message_can_never_make_two_tasks(
    make_orchestrator: MakeOrchestrator, fake_openai: FakeOpenAI
) -> None:
    fake_openai.responder = Router([Reply.plan(step("a"))] * 2)
    orch = await make_orchestrator()
    first = await orch.submit("x", requester="U1", scope="C1:1", message_keys=["C1/1.0", "Ev1"])
    with pytest.raises(DuplicateMessageError) as caught:
        await orch.submit("x", requester="U1", scope="C1:1", message_keys=["Ev2", "C1/1.0"])
    assert caught.value.task_id == first.id
    assert len(await orch.list_tasks()) == 1


async def test_the_summary_says_what_each_step_did_and_what_failed(
    make_orchestrator: MakeOrchestrator, fake_openai: FakeOpenAI
) -> None:
    fake_openai.responder = Router(
        [Reply.plan(step("a"), step("b"), step("c", "b"))],
        {"a": Reply("the answer is 42"), "b": Reply.error(400, "refused")},
    )
    orch = await make_orchestrator(max_replans=0)
    async with orch.subscribe() as events:
        task = await run_to_end(orch, await planned(orch, "x"))
        async with asyncio.timeout(5):
            finished = await anext(e async for e in events if isinstance(e, TaskFinished))
    assert task.phase is Phase.FAILED
    lines = finished.summary.splitlines()
    assert lines[0].startswith("Task failed: step b failed")
    assert "[a] do a — completed: the answer is 42" in finished.summary
    assert "[b] do b — failed: the model server answered 400: refused" in finished.summary
    assert "[c] do c — skipped: needs b, which failed" in finished.summary


class RecordingNotifier:
    """A notifier that keeps what it was asked to post."""

    def __init__(self) -> None:
        self.posted: list[tuple[str, str]] = []

    async def notify(self, task: Task, message: str) -> None:
        self.posted.append((task.id, message))


async def test_a_notify_step_posts_through_the_notifier_it_was_given(
    make_orchestrator: MakeOrchestrator, fake_openai: FakeOpenAI
) -> None:
    fake_openai.responder = Router(
        [Reply.plan(step("a"), step("n", "a", action="notify", input="all done", tier="read"))]
    )
    notifier = RecordingNotifier()
    orch = await make_orchestrator(notifier=notifier)
    task = await run_to_end(orch, await planned(orch, "x"))
    assert task.phase is Phase.COMPLETED
    assert task.step("n").tier.value == "write"  # the floor raised the LLM's "read"
    assert notifier.posted == [(task.id, "all done")]


class BrokenNotifier:
    """A notifier with a bug in it."""

    async def notify(self, task: Task, message: str) -> None:
        raise RuntimeError("notifier bug")


async def test_a_bug_inside_an_action_fails_the_step_and_the_task_still_ends(
    make_orchestrator: MakeOrchestrator, fake_openai: FakeOpenAI
) -> None:
    fake_openai.responder = Router(
        [Reply.plan(step("n", action="notify", input="hi"), step("after", "n"))]
    )
    orch = await make_orchestrator(notifier=BrokenNotifier(), max_replans=0)
    task = await run_to_end(orch, await planned(orch, "x"))
    assert task.phase is Phase.FAILED
    assert task.step("n").reason == "internal error: RuntimeError"
    assert states(task) == {"n": "failed", "after": "skipped"}


async def test_tasks_finishing_together_each_report_their_final_state(
    make_orchestrator: MakeOrchestrator, fake_openai: FakeOpenAI
) -> None:
    # Overlapping reads once shared a stale snapshot: a summary could say "executing".
    count = 40
    fake_openai.responder = Router(
        [Reply.plan(step("a"), step("b"), step("c", "a", "b"))] * count,
        {s: Reply(s, delay_s=0.05) for s in "abc"},
    )
    orch = await make_orchestrator()
    tasks = [await orch.submit(f"r{i}", requester="U1", scope=f"C1:{i}") for i in range(count)]
    for task in tasks:
        await orch.wait(task.id, {Phase.AWAITING_APPROVAL}, timeout=10)
    finished: list[TaskFinished] = []
    async with orch.subscribe() as events, asyncio.timeout(20):
        await asyncio.gather(*(orch.approve(t.id, user="U1") for t in tasks))
        async for event in events:
            if isinstance(event, TaskFinished):
                finished.append(event)
                if len(finished) == count:
                    break
    assert {e.phase for e in finished} == {Phase.COMPLETED}
    assert all(e.summary.startswith("Task completed.") for e in finished)
