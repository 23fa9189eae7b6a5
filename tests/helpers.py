"""Small helpers shared by the scenario tests."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from orchestrator import (
    Action,
    Agent,
    ConfigError,
    Isolation,
    Orchestrator,
    Phase,
    Step,
    StepState,
    Store,
    Task,
    Tier,
    detect_isolation,
)


def step(
    id: str, *deps: str, action: str = "research", tier: str = "read", **kw: str
) -> dict[str, Any]:
    """One step of a plan as the LLM would send it; `input` defaults to the id."""
    return {
        "id": id,
        "description": kw.get("description", f"do {id}"),
        "action": action,
        "input": kw.get("input", id),
        "depends_on": list(deps),
        "tier": tier,
        **({"tool": kw["tool"]} if "tool" in kw else {}),
    }


def tool_step(
    id: str, tool: str, arguments: dict[str, Any], *deps: str, tier: str = "read"
) -> dict[str, Any]:
    """A tool step of a plan as the LLM would send it: its arguments as a JSON string."""
    return step(id, *deps, action="tool", tier=tier, tool=tool, input=json.dumps(arguments))


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    """Return once `check()` is true; polls, since what it watches publishes no event."""
    async with asyncio.timeout(timeout):
        while not await check():  # noqa: ASYNC110 - the state polled has no event to wait on
            await asyncio.sleep(0.01)


async def eventually_step(
    orch: Orchestrator, task_id: str, step_id: str, state: StepState, timeout: float = 5.0
) -> Task:
    """The task once `step_id` is in `state` (polls the store; fails after `timeout`)."""

    async def is_there() -> bool:
        task = await orch.get_task(task_id)
        return any(s.id == step_id and s.state is state for s in task.steps)

    await eventually(is_there, timeout)
    return await orch.get_task(task_id)


async def planned(orch: Orchestrator, request: str, **kw: Any) -> Task:
    """Submit a request and return its task once the plan awaits approval."""
    task = await orch.submit(request, requester=kw.pop("requester", "U1"), scope="C1:1", **kw)
    task = await orch.wait(task.id, {Phase.AWAITING_APPROVAL}, timeout=5)
    assert task.phase is Phase.AWAITING_APPROVAL, task.reason
    return task


async def run_to_end(orch: Orchestrator, task: Task, user: str = "U1") -> Task:
    """Approve and return the task once it is terminal, its steps closed."""
    await orch.approve(task.id, user=user)
    return await orch.wait(task.id, {Phase.COMPLETED, Phase.FAILED, Phase.CANCELLED}, timeout=10)


def states(task: Task) -> dict[str, str]:
    """Step id -> state wire name, for readable assertions."""
    return {s.id: s.state.value for s in task.steps}


def make_task(task_id: str = "t1", *, scope: str = "C1:1", **fields: Any) -> Task:
    now = fields.pop("created_at", time.time())
    return Task(
        id=task_id,
        scope=scope,
        requester="U1",
        request=f"do {task_id}",
        phase=fields.pop("phase", Phase.PLANNING),
        created_at=now,
        updated_at=now,
        **fields,
    )


def make_step(step_id: str, *deps: str, position: int = 0, **fields: Any) -> Step:
    return Step(
        id=step_id,
        description=f"do {step_id}",
        action=fields.pop("action", Action.RESEARCH),
        input=step_id,
        depends_on=deps,
        tier=fields.pop("tier", Tier.READ),
        position=position,
        **fields,
    )


async def with_plan(store: Store, task_id: str = "t1", *step_ids: str) -> Task:
    await store.create_task(make_task(task_id))
    steps = [make_step(s, position=i) for i, s in enumerate(step_ids or ("s1", "s2"))]
    await store.save_plan(task_id, steps, plan_version=1, actor="planner")
    return await store.get_task(task_id)


def alive_with(marker: str) -> list[int]:
    """Pids of live processes (not zombies) with `marker` among their arguments, ours excepted."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker.encode() in args and state not in {"Z", "X"} and int(proc.name) != os.getpid():
            found.append(int(proc.name))
    return found


async def bwrap_works() -> bool:
    """Whether this machine can run shell steps in the bwrap sandbox."""
    try:
        return await detect_isolation("bwrap") is Isolation.BWRAP
    except ConfigError:
        return False


FAKE_AGENT = Path(__file__).resolve().parent / "fakes" / "coding_agent.py"


def fake_agent(
    name: str, then: str, *, style: str = "claude", record: Path, delay: float = 0.0, **kw: Any
) -> Agent:
    """A coding agent run by tests/fakes/coding_agent.py; it records what it got in `record`."""
    config = fake_agent_config(then, style=style, record=record, delay=delay)
    return Agent(name=name, command=config["command"], args=tuple(config["args"]), **kw)


def fake_agent_config(
    then: str, *, style: str = "claude", record: Path, delay: float = 0.0, **kw: Any
) -> dict[str, Any]:
    """The fake agent as an entry of the hands file's "agents" (see `fake_agent`)."""
    args = ["--style", style, "--then", then, "--record", str(record), "--delay", str(delay)]
    return {"command": sys.executable, "args": [str(FAKE_AGENT), *args, "--", "{spec}"], **kw}


def init_repo(path: Path) -> Path:
    """A real git work tree at `path` with one commit (README.md)."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "README.md").write_text("a project\n")
    for args in (
        ["init", "-q"],
        ["add", "README.md"],
        ["-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "start"],
    ):
        subprocess.run(["git", *args], cwd=path, check=True, capture_output=True)
    return path


async def appears(path: Path, timeout: float = 10.0) -> None:
    """Return once `path` exists (a fake agent's `started`, say)."""

    async def exists() -> bool:
        return await asyncio.to_thread(path.exists)

    await eventually(exists, timeout)


def records(path: Path) -> list[dict[str, Any]]:
    """What each run of the fake agent got (spec, stdin, environment), in order."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


FAKE_MCP_SERVER = Path(__file__).resolve().parent / "fakes" / "mcp_server.py"


def fake_mcp(log: Path, **keys: Any) -> dict[str, Any]:
    """The hands file's entry for the tests' own MCP server over stdio, logging calls to `log`."""
    return {
        "command": sys.executable,
        "args": [str(FAKE_MCP_SERVER)],
        "env": {"FAKE_MCP_LOG": str(log)},
        **keys,
    }


def time_mcp(**keys: Any) -> dict[str, Any]:
    """The hands file's entry for mcp-server-time (read-only tools), in UTC."""
    return {
        "command": sys.executable,
        "args": ["-m", "mcp_server_time", "--local-timezone", "UTC"],
        **keys,
    }


def hands_file(folder: Path, servers: dict[str, Any]) -> Path:
    """A hands file (ORCH_MCP_CONFIG) naming `servers`."""
    path = folder / "mcp.json"
    path.write_text(json.dumps({"mcpServers": servers}), encoding="utf-8")
    return path


@asynccontextmanager
async def http_mcp(log: Path, token: str | None = None) -> AsyncIterator[str]:
    """The tests' own MCP server over Streamable HTTP on a free port; yields its URL."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(FAKE_MCP_SERVER),
        "--http",
        *([token] if token else []),
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "FAKE_MCP_LOG": str(log)},
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(15):
            url = (await proc.stdout.readline()).decode().strip()
        yield url
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


def logged(log: Path) -> list[str]:
    """What the tests' own MCP server logged: one `pid event` line per start and call."""
    return log.read_text(encoding="utf-8").splitlines() if log.exists() else []
