"""A process killed with SIGKILL mid-task loses nothing: a new process picks every task up."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator import Isolation, Phase, StepState, Task, detect_isolation, open_store
from tests.conftest import MakeOrchestrator
from tests.fakes import crash_worker, orphan_worker
from tests.fakes.openai_server import FakeOpenAI, Reply, step_request
from tests.helpers import bwrap_works, eventually, eventually_step, states, step
from tests.postgres import database_url

ROOT = Path(__file__).resolve().parent.parent
SLEEP_ARGS = "37.5"  # an unusual duration, so the orphaned sleep is easy to find and reap
TERMINAL = {Phase.COMPLETED, Phase.FAILED, Phase.CANCELLED}


class Scripted:
    """Plans by request text; counts how often each step was asked for."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        self.plans = {
            crash_worker.SHELL_REQUEST: Reply.plan(
                step("first"),
                step("cmd", "first", action="shell", input=f"sleep {SLEEP_ARGS}", tier="execute"),
            ),
            crash_worker.LLM_REQUEST: Reply.plan(step("ponder")),
            crash_worker.PENDING_REQUEST: Reply.plan(step("w")),
        }

    def __call__(self, body: dict[str, Any]) -> Reply:
        step_input = step_request(body)
        if step_input is None:
            return self.plans[body["messages"][-1]["content"]]
        self.calls[step_input] = self.calls.get(step_input, 0) + 1
        if step_input == "ponder" and self.calls["ponder"] == 1:
            return Reply("too late", delay_s=60)  # the worker dies while this is in flight
        return Reply(f"{step_input} done")


@pytest.fixture
def reap_orphans() -> Iterator[None]:
    yield
    for pid in os.listdir("/proc"):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if len(cmdline) >= 2 and cmdline[0].endswith(b"sleep") and cmdline[1] == b"37.5":
            os.kill(int(pid), signal.SIGKILL)


@pytest.mark.timeout(60)
async def test_a_task_killed_mid_step_is_recovered_without_redoing_or_losing_work(
    make_orchestrator: MakeOrchestrator,
    fake_openai: FakeOpenAI,
    tmp_path: Path,
    reap_orphans: None,
) -> None:
    script = Scripted()
    fake_openai.responder = script
    worker = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.fakes.crash_worker",
        database_url(tmp_path, "orchestrator"),
        fake_openai.base_url,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    assert worker.stdout is not None
    async with asyncio.timeout(30):
        ids = json.loads(await worker.stdout.readline())
    worker.send_signal(signal.SIGKILL)
    await worker.wait()

    orch = await make_orchestrator(shell_allow=frozenset({"sleep"}))

    # The shell step was interrupted: it may have run, so it waits for a person first.
    shell = await eventually_step(orch, ids["shell"], "cmd", StepState.AWAITING_CONFIRMATION)
    assert shell.phase is Phase.EXECUTING
    assert shell.step("first").state is StepState.COMPLETED
    assert "interrupted by a restart" in (shell.step("cmd").reason or "")
    await orch.confirm_step(ids["shell"], "cmd", user="U1", run=False)
    shell = await orch.wait(ids["shell"], TERMINAL, timeout=10)
    assert states(shell) == {"first": "completed", "cmd": "skipped"}

    # The interrupted LLM step ran again; the completed one never did.
    llm = await orch.wait(ids["llm"], TERMINAL, timeout=10)
    assert llm.phase is Phase.COMPLETED
    assert llm.step("ponder").output == "ponder done"
    assert script.calls == {"first": 1, "ponder": 2}

    # The plan that was awaiting approval is still approvable.
    pending = await orch.get_task(ids["pending"])
    assert pending.phase is Phase.AWAITING_APPROVAL
    await orch.approve(ids["pending"], user="U1")
    pending = await orch.wait(ids["pending"], TERMINAL, timeout=10)
    assert pending.phase is Phase.COMPLETED

    assert len(await orch.list_tasks()) == 3


async def test_a_request_recorded_but_not_yet_planned_is_planned_after_a_restart(
    make_orchestrator: MakeOrchestrator, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    store = open_store(database_url(tmp_path, "orchestrator"))
    await store.open()
    now = time.time()
    task = Task(
        id="t1", scope="C1:1", requester="U1", request="x", phase=Phase.PLANNING,
        created_at=now, updated_at=now,
    )  # fmt: skip
    await store.create_task(task)  # the process died before planning it
    await store.close()
    fake_openai.script(Reply.plan(step("a")))
    orch = await make_orchestrator()
    planned = await orch.wait("t1", {Phase.AWAITING_APPROVAL}, timeout=5)
    assert planned.phase is Phase.AWAITING_APPROVAL
    assert [s.id for s in planned.steps] == ["a"]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("sandbox", ["bwrap", "none"])
async def test_a_shell_step_dies_with_the_process_and_recovery_says_the_old_run_is_over(
    sandbox: str, make_orchestrator: MakeOrchestrator, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    if sandbox == "bwrap" and not await bwrap_works():
        pytest.skip("bwrap cannot run here")
    if sandbox == "none" and await detect_isolation("none") is not Isolation.PDEATHSIG:
        pytest.skip("setpriv --pdeathsig is not available here")
    fake_openai.script(orphan_worker.plan())
    work = tmp_path / "work"  # where the worker's runs get their folders
    work.mkdir()
    worker = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.fakes.orphan_worker",
        database_url(tmp_path, "orchestrator"),
        fake_openai.base_url,
        sandbox,
        cwd=ROOT,
        env={**os.environ, "TMPDIR": str(work)},
        stdout=asyncio.subprocess.PIPE,
    )
    assert worker.stdout is not None
    async with asyncio.timeout(30):
        task_id = (await worker.stdout.readline()).decode().strip()

    async def has_started() -> bool:
        return any(work.glob("*/started"))

    await eventually(has_started, timeout=10)
    worker.send_signal(signal.SIGKILL)
    await worker.wait()
    await asyncio.sleep(orphan_worker.DELAY_S + 1.0)
    assert not any(work.glob("*/created")), "the command outlived the process that ran it"

    config = orphan_worker.config(sandbox)
    orch = await make_orchestrator(shell_allow=config.shell_allow, shell_sandbox=sandbox)
    task = await eventually_step(orch, task_id, "later", StepState.AWAITING_CONFIRMATION)
    reason = task.step("later").reason or ""
    assert reason.startswith("interrupted by a restart; it may have run already; ")
    assert "the old run is over" in reason
    await orch.confirm_step(task_id, "later", user="U1", run=False)
    task = await orch.wait(task_id, TERMINAL, timeout=10)
    assert states(task) == {"later": "skipped"}
