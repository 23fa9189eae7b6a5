"""A process whose one shell step makes a file after a delay, parked mid-step for the test to kill.

Usage: python -m tests.fakes.orphan_worker DB_PATH OPENAI_BASE_URL SANDBOX
The command writes `started` in its working folder at once and `created` after DELAY_S; the
worker prints the task id once the step runs. Plan it with `plan()`.
"""

from __future__ import annotations

import asyncio
import sys

import openai

from orchestrator import (
    OpenAILLM,
    Orchestrator,
    OrchestratorConfig,
    Phase,
    SandboxMode,
    StepState,
    open_store,
)
from tests.fakes.openai_server import Reply
from tests.helpers import eventually_step, step

REQUEST = "make the file later"
STEP = "later"
DELAY_S = 1.5
COMMAND = (
    'python3 -c \'import time; open("started", "w").close(); '
    f'time.sleep({DELAY_S}); open("created", "w").close()\''
)


def plan() -> Reply:
    """The plan the fake model answers REQUEST with: the one shell step (python3: it asks)."""
    return Reply.plan(step(STEP, action="shell", input=COMMAND, tier="execute"))


def config(sandbox: str) -> OrchestratorConfig:
    """The worker's configuration, for the test to restart with."""
    return OrchestratorConfig(
        model="fake-model", shell_allow=frozenset({"python3"}), shell_sandbox=SandboxMode(sandbox)
    )


async def main(database_url: str, base_url: str, sandbox: str) -> None:
    client = openai.AsyncOpenAI(api_key="test-key", base_url=base_url, max_retries=0)
    llm = OpenAILLM(client, model="fake-model")
    orch = Orchestrator(store=open_store(database_url), llm=llm, config=config(sandbox))
    await orch.start()
    task = await orch.submit(REQUEST, requester="U1", scope="C1:1")
    await orch.wait(task.id, {Phase.AWAITING_APPROVAL}, timeout=10)
    await orch.approve(task.id, user="U1")
    await eventually_step(orch, task.id, STEP, StepState.AWAITING_CONFIRMATION, timeout=10)
    await orch.confirm_step(task.id, STEP, user="U1", run=True)
    await eventually_step(orch, task.id, STEP, StepState.RUNNING, timeout=10)
    print(task.id, flush=True)
    await asyncio.Event().wait()  # parked until killed


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
