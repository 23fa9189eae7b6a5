"""A process that starts three tasks and parks them mid-flight, for the test to SIGKILL it.

Usage: python -m tests.fakes.crash_worker DATABASE_URL OPENAI_BASE_URL
Prints one JSON line {"shell": id, "llm": id, "pending": id} once every task is where it should be.
"""

from __future__ import annotations

import asyncio
import json
import sys

import openai

from orchestrator import OpenAILLM, Orchestrator, OrchestratorConfig, Phase, StepState, open_store
from tests.helpers import eventually

SHELL_REQUEST = "run the slow command"
LLM_REQUEST = "think slowly"
PENDING_REQUEST = "wait for me"


async def _until_running(orch: Orchestrator, task_id: str, step_id: str) -> None:
    async def is_running() -> bool:
        return (await orch.get_task(task_id)).step(step_id).state is StepState.RUNNING

    await eventually(is_running, timeout=10)


async def main(database_url: str, base_url: str) -> None:
    client = openai.AsyncOpenAI(api_key="test-key", base_url=base_url, max_retries=0)
    config = OrchestratorConfig(model="fake-model", shell_allow=frozenset({"sleep"}))
    store = open_store(database_url)
    orch = Orchestrator(store=store, llm=OpenAILLM(client, model="m"), config=config)
    await orch.start()
    ids = {}
    for name, request in (
        ("shell", SHELL_REQUEST),
        ("llm", LLM_REQUEST),
        ("pending", PENDING_REQUEST),
    ):
        task = await orch.submit(request, requester="U1", scope="C1:1")
        await orch.wait(task.id, {Phase.AWAITING_APPROVAL}, timeout=10)
        ids[name] = task.id
    await orch.approve(ids["shell"], user="U1")
    await orch.approve(ids["llm"], user="U1")
    await _until_running(orch, ids["shell"], "cmd")
    await _until_running(orch, ids["llm"], "ponder")
    print(json.dumps(ids), flush=True)
    await asyncio.Event().wait()  # parked until killed


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
