"""Planning never waits for a connection that running steps hold."""

from __future__ import annotations

from pathlib import Path

import httpx2
import openai
import pytest

from orchestrator import OpenAILLM, Orchestrator, open_store
from tests.conftest import TEST_CONFIG
from tests.fakes.openai_server import FakeOpenAI, Reply, Router
from tests.helpers import eventually, planned, step
from tests.postgres import database_url

pytestmark = pytest.mark.timeout(30)


async def test_a_new_request_is_planned_while_running_steps_hold_every_step_connection(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    fake_openai.responder = Router(
        [Reply.plan(step("slow")), Reply.plan(step("b"))], {"slow": Reply("late", delay_s=60)}
    )
    # The steps' client has one connection (openai's default pool has 1,000, which a thousand
    # running steps fill the same way).
    one = openai.DefaultAsyncHttpx2Client(limits=httpx2.Limits(max_connections=1))
    steps = openai.AsyncOpenAI(
        api_key="k", base_url=fake_openai.base_url, max_retries=0, http_client=one
    )
    plans = openai.AsyncOpenAI(api_key="k", base_url=fake_openai.base_url, max_retries=0)
    orch = Orchestrator(
        store=open_store(database_url(tmp_path, "o")),
        llm=OpenAILLM(steps, model="m"),
        planning_llm=OpenAILLM(plans, model="m"),
        config=TEST_CONFIG,
    )
    try:
        async with orch:
            first = await planned(orch, "one")
            await orch.approve(first.id, user="U1")

            async def step_holds_the_connection() -> bool:
                return fake_openai.in_flight == 1

            await eventually(step_holds_the_connection)
            second = await planned(orch, "two")  # would wait for the 60 s step on one client
            assert [s.id for s in second.steps] == ["b"]
    finally:
        await steps.close()
        await plans.close()
