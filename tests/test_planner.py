"""The planner against the fake OpenAI server, through the real openai client."""

from __future__ import annotations

import json
import re
import time
from dataclasses import replace
from typing import Any

import openai
import pytest

from orchestrator import Action, OpenAILLM, OrchestratorConfig, PlanningError, StepState, Tier
from orchestrator._planner import Planner, PlanResult, extract_json
from tests.conftest import TEST_CONFIG
from tests.fakes.openai_server import FakeOpenAI, Reply
from tests.helpers import step


@pytest.fixture
def planner(openai_client: openai.AsyncOpenAI) -> Planner:
    return Planner(OpenAILLM(openai_client, model="fake-model"), TEST_CONFIG)


async def test_a_valid_plan_comes_back_in_dependency_order(
    planner: Planner, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(Reply.plan(step("b", "a"), step("a"), step("c")))
    result = await planner.build_plan("summarise the release notes")
    assert [s.id for s in result.steps] == ["a", "b", "c"]
    assert all(s.state is StepState.PENDING for s in result.steps)
    assert result.tokens == 10
    sent = fake_openai.requests[0]
    assert sent["response_format"]["type"] == "json_schema"
    assert sent["messages"][-1]["content"] == "summarise the release notes"


@pytest.mark.parametrize(
    ("bad_reply", "error_words"),
    [
        pytest.param("this is not json at all", "not a JSON object", id="malformed-json"),
        pytest.param('{"steps": [{"id": 1}]}', "steps.0", id="wrong-types"),
        pytest.param(
            json.dumps({"steps": [step("a", "ghost")]}), "unknown step 'ghost'", id="unknown-dep"
        ),
        pytest.param(json.dumps({"steps": [step("a", "b"), step("b", "a")]}), "cycle", id="cycle"),
        pytest.param(
            json.dumps({"steps": [step(f"s{i}") for i in range(13)]}),
            "at most 12",
            id="too-many-steps",
        ),
        pytest.param(
            json.dumps({"steps": [step("a", action="shell", input="ls")]}),
            "action 'shell'",
            id="shell-while-off",
        ),
        pytest.param(json.dumps({"steps": [step("a"), step("a")]}), "more than once", id="dup"),
    ],
)
async def test_an_invalid_plan_is_repaired_on_the_second_try(
    planner: Planner, fake_openai: FakeOpenAI, bad_reply: str, error_words: str
) -> None:
    fake_openai.script(Reply(bad_reply), Reply.plan(step("a")))
    result = await planner.build_plan("do it")
    assert [s.id for s in result.steps] == ["a"]
    repair = fake_openai.requests[1]["messages"]
    assert repair[-2] == {"role": "assistant", "content": bad_reply}
    assert error_words in repair[-1]["content"]


async def test_a_plan_never_repaired_is_a_clear_planning_error(
    planner: Planner, fake_openai: FakeOpenAI
) -> None:
    cycle = json.dumps({"steps": [step("a", "b"), step("b", "a")]})
    fake_openai.script(Reply(cycle), Reply(cycle), Reply(cycle), Reply.plan(step("a")))
    with pytest.raises(PlanningError, match=r"still invalid after 2 repairs: .*cycle: a -> b -> a"):
        await planner.build_plan("do it")
    assert len(fake_openai.requests) == 3


async def test_a_server_that_rejects_json_schema_gets_json_object_with_the_schema(
    planner: Planner, fake_openai: FakeOpenAI
) -> None:
    fake_openai.rejects_json_schema = True
    fake_openai.script(Reply.plan(step("a")), Reply.plan(step("b")))
    assert [s.id for s in (await planner.build_plan("one")).steps] == ["a"]
    assert [s.id for s in (await planner.build_plan("two")).steps] == ["b"]
    formats = [r["response_format"]["type"] for r in fake_openai.requests]
    # json_schema is tried once, then the planner remembers the server cannot do it.
    assert formats == ["json_schema", "json_object", "json_object"]
    assert "JSON schema" in fake_openai.requests[1]["messages"][-1]["content"]


async def test_a_plan_in_a_markdown_fence_with_prose_is_accepted(
    planner: Planner, fake_openai: FakeOpenAI
) -> None:
    fenced = "Sure! Here it is:\n```json\n" + json.dumps({"steps": [step("a")]}) + "\n```\nBye"
    fake_openai.script(Reply(fenced))
    assert [s.id for s in (await planner.build_plan("x")).steps] == ["a"]


async def test_transient_errors_are_retried_then_the_plan_arrives(
    planner: Planner, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(
        Reply.error(429, "slow down", **{"retry-after": "0"}),
        Reply.error(500),
        Reply.plan(step("a")),
    )
    assert [s.id for s in (await planner.build_plan("x")).steps] == ["a"]
    assert len(fake_openai.requests) == 3


def planner_with(openai_client: openai.AsyncOpenAI, **config: Any) -> Planner:
    return Planner(OpenAILLM(openai_client, model="fake-model"), replace(TEST_CONFIG, **config))


async def test_planning_rides_out_an_outage_of_many_transient_errors(
    planner: Planner, fake_openai: FakeOpenAI
) -> None:
    errors = [Reply.error(429, "slow down"), Reply.error(500), Reply.error(503)] * 4
    fake_openai.script(*errors, Reply.plan(step("a")))
    assert [s.id for s in (await planner.build_plan("x")).steps] == ["a"]
    assert len(fake_openai.requests) == 13


async def test_a_model_that_stays_down_fails_naming_the_last_error_and_how_long_it_was_tried(
    openai_client: openai.AsyncOpenAI, fake_openai: FakeOpenAI
) -> None:
    fake_openai.default = Reply.error(503, "overloaded")
    planner = planner_with(openai_client, planning_timeout_s=0.5)
    started = time.monotonic()
    with pytest.raises(PlanningError) as caught:
        await planner.build_plan("x")
    assert 0.3 < time.monotonic() - started < 1.0  # the budget, not a count, ended it
    assert len(fake_openai.requests) > 3
    assert re.fullmatch(
        r"could not get a plan from the model: the model server answered 503: overloaded "
        r"\(tried \d+ times over 0\.\d+s\)",
        caught.value.reason,
    )


@pytest.mark.parametrize(
    "header", [{"retry-after": "0.4"}, {"retry-after-ms": "400"}], ids=["seconds", "ms"]
)
async def test_a_retry_after_longer_than_the_backoff_cap_is_honoured(
    header: dict[str, str], planner: Planner, fake_openai: FakeOpenAI
) -> None:
    assert TEST_CONFIG.retry_max_s < 0.4
    fake_openai.script(Reply.error(429, "slow down", **header), Reply.plan(step("a")))
    assert [s.id for s in (await planner.build_plan("x")).steps] == ["a"]
    first, second = fake_openai.request_times
    assert second - first >= 0.4


async def test_a_retry_after_past_the_budget_fails_at_once_saying_so(
    openai_client: openai.AsyncOpenAI, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(Reply.error(429, "slow down", **{"retry-after": "30"}))
    planner = planner_with(openai_client, planning_timeout_s=2.0)
    started = time.monotonic()
    with pytest.raises(PlanningError, match=r"asked to wait 30s, more than the 2\.0s left"):
        await planner.build_plan("x")
    assert time.monotonic() - started < 1.0
    assert len(fake_openai.requests) == 1


async def test_an_auth_error_is_not_retried_and_does_not_leak_the_key(
    planner: Planner, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(Reply.error(401, "bad key"))
    with pytest.raises(PlanningError) as caught:
        await planner.build_plan("x")
    assert len(fake_openai.requests) == 1
    assert "test-key" not in str(caught.value)


async def test_the_llm_tier_is_never_lowered_and_unknown_tiers_are_destructive(
    openai_client: openai.AsyncOpenAI, fake_openai: FakeOpenAI
) -> None:
    config = OrchestratorConfig(**{**TEST_CONFIG.__dict__, "shell_allow": frozenset({"ls", "rm"})})
    planner = Planner(OpenAILLM(openai_client, model="m"), config)
    fake_openai.script(
        Reply.plan(
            step("a", action="shell", input="rm -rf build", tier="read"),
            step("b", action="shell", input="ls -la", tier="read"),
            step("c", tier="catastrophic"),
            step("d", action="write", tier="external"),
        )
    )
    tiers = {s.id: s.tier for s in (await planner.build_plan("x")).steps}
    assert tiers == {
        "a": Tier.DESTRUCTIVE,
        "b": Tier.EXECUTE,
        "c": Tier.DESTRUCTIVE,
        "d": Tier.EXTERNAL,
    }


async def test_a_shell_step_outside_the_allowlist_is_sent_back_for_repair(
    openai_client: openai.AsyncOpenAI, fake_openai: FakeOpenAI
) -> None:
    config = OrchestratorConfig(**{**TEST_CONFIG.__dict__, "shell_allow": frozenset({"ls"})})
    planner = Planner(OpenAILLM(openai_client, model="m"), config)
    fake_openai.script(
        Reply.plan(step("a", action="shell", input="curl http://x")),
        Reply.plan(step("a", action="shell", input="ls")),
    )
    result = await planner.build_plan("x")
    assert result.steps[0].action is Action.SHELL
    assert "curl" in fake_openai.requests[1]["messages"][-1]["content"]


async def test_a_replan_may_depend_on_completed_steps_but_not_reuse_their_ids(
    planner: Planner, fake_openai: FakeOpenAI
) -> None:
    first = (await _plan(planner, fake_openai, step("a"), step("b", "a"))).steps
    done = first[0].evolve(state=StepState.COMPLETED, output="facts")
    failed = first[1].evolve(state=StepState.FAILED, reason="model refused")
    fake_openai.script(Reply.plan(step("a")), Reply.plan(step("b2", "a")))
    result = await planner.replan(
        "x", completed=[done], failed=[failed], taken_ids={"a", "b"}, plan_version=2
    )
    assert [(s.id, s.depends_on, s.plan_version) for s in result.steps] == [("b2", ("a",), 2)]
    prompt = fake_openai.requests[-2]["messages"][-1]["content"]
    assert "b: do b: model refused" in prompt
    assert "more than once" in fake_openai.requests[-1]["messages"][-1]["content"]


async def _plan(planner: Planner, fake: FakeOpenAI, *steps: dict[str, Any]) -> PlanResult:
    fake.script(Reply.plan(*steps))
    return await planner.build_plan("x")


def test_json_is_found_bare_fenced_or_in_prose() -> None:
    assert extract_json('{"a": 1}') == {"a": 1}
    assert extract_json('text ```json\n{"a": 2}\n``` more') == {"a": 2}
    assert extract_json('I think {"a": 3} is right') == {"a": 3}
