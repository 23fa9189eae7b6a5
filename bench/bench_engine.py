"""How much running independent steps in parallel buys, on the real engine.

The real Orchestrator, SqliteStore, OpenAILLM and openai client talk over HTTP to the fake OpenAI
server, whose every step reply waits --delay seconds, so wall time is the "model's". Each run has
a fresh database. Times run from the approval to the task's TaskFinished event (planning is not
timed).

Table 1: one task per plan shape, run with max_parallel=1 and with max_parallel=4. The ideal
speed-up counts rounds of unit-time steps under the executor's own rule (start every ready step
while a slot is free): steps / rounds at 4.
Table 2: K tasks of one three-step plan (a and b, then c after both), max_parallel=4, all approved
at once; each task alone would take 2 x delay. The fake server shares this process's event loop,
so at high K its CPU is part of what is measured. The last column counts TaskFinished events whose
phase is not `completed` although the task completed (a stale read once caused that; it is 0).

From the repository root:
    .venv/bin/python -m bench.bench_engine [--delay 0.2] [--tasks 10,50,100] [--dir D]
(`.venv/bin/python bench/bench_engine.py` works too).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai

ROOT = Path(__file__).resolve().parent.parent
if __package__ in (None, ""):  # run as a file: make `orchestrator` importable from the repo root
    sys.path.insert(0, str(ROOT))

from bench import _cli  # noqa: E402
from orchestrator import (  # noqa: E402
    OpenAILLM,
    Orchestrator,
    OrchestratorConfig,
    Phase,
    SqliteStore,
    Task,
    TaskFinished,
)
from tests.fakes.openai_server import FakeOpenAI, Reply, Router  # noqa: E402
from tests.helpers import step  # noqa: E402

Plan = list[dict[str, Any]]
SERIAL, PARALLEL = 1, 4  # max_parallel: one step at a time, and the default
# Fast retries, as in the tests; nothing here should retry at all.
CONFIG = OrchestratorConfig(model="fake-model", retry_base_s=0.01, retry_max_s=0.05)


def independent(n: int) -> Plan:
    return [step(f"s{i}") for i in range(n)]


def chain(n: int) -> Plan:
    return [step("s0"), *(step(f"s{i}", f"s{i - 1}") for i in range(1, n))]


def diamond(width: int) -> Plan:
    """One root, `width` steps that need it, one step that needs them all."""
    middle = [step(f"m{i}", "root") for i in range(width)]
    return [step("root"), *middle, step("join", *(s["id"] for s in middle))]


def fan_in(width: int) -> Plan:
    """`width` independent steps, then one that needs them all."""
    leaves = independent(width)
    return [*leaves, step("join", *(s["id"] for s in leaves))]


SHAPES: list[tuple[str, Callable[[int], Plan], int]] = [
    ("independent", independent, 4),
    ("independent", independent, 8),
    ("independent", independent, 12),
    ("chain", chain, 4),
    ("chain", chain, 8),
    ("chain", chain, 12),
    ("diamond 1-6-1", diamond, 6),
    ("fan-in 8-1", fan_in, 8),
]
FLEET_PLAN = [step("a"), step("b"), step("c", "a", "b")]


def rounds(plan: Plan, parallel: int) -> int:
    """Rounds of unit-time steps, starting up to `parallel` ready steps (plan order) per round."""
    needs = {s["id"]: set(s["depends_on"]) for s in plan}
    done: set[str] = set()
    count = 0
    while len(done) < len(needs):
        ready = [i for i, deps in needs.items() if i not in done and deps <= done]
        done.update(ready[:parallel])
        count += 1
    return count


@dataclass(frozen=True)
class Batch:
    """Tasks approved together: seconds to the last TaskFinished, and each task's own time.

    `stale` counts TaskFinished events whose phase was not the one the task ended in.
    """

    seconds: float
    latencies: list[float]
    stale: int

    def percentile(self, p: int) -> float:
        if len(self.latencies) == 1:
            return self.latencies[0]
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[p - 1]


async def _planned(orch: Orchestrator, count: int, timeout: float) -> list[Task]:
    submitted = await asyncio.gather(
        *(orch.submit(f"job {i}", requester="U1", scope=f"C1:{i}") for i in range(count))
    )
    waits = [orch.wait(t.id, {Phase.AWAITING_APPROVAL}, timeout=timeout) for t in submitted]
    tasks = await asyncio.gather(*waits)
    if any(t.phase is not Phase.AWAITING_APPROVAL for t in tasks):
        raise RuntimeError("a plan was not accepted; the benchmark measured the wrong thing")
    return list(tasks)


async def _approve_all(orch: Orchestrator, tasks: list[Task], timeout: float) -> Batch:
    """Approve every task at once; time each from its approve() call to its TaskFinished."""
    approved: dict[str, float] = {}
    finished: dict[str, float] = {}
    stale = 0

    async def approve(task: Task) -> None:
        approved[task.id] = time.perf_counter()
        await orch.approve(task.id, user="U1")

    async with asyncio.timeout(timeout), orch.subscribe() as events:
        start = time.perf_counter()
        await asyncio.gather(*(approve(t) for t in tasks))
        while len(finished) < len(tasks):
            event = await anext(events)
            if isinstance(event, TaskFinished) and event.task_id in approved:
                finished[event.task_id] = time.perf_counter()
                stale += event.phase is not Phase.COMPLETED
    for task in tasks:
        end = await orch.wait(task.id, {Phase.COMPLETED}, timeout=timeout)
        if end.phase is not Phase.COMPLETED:
            raise RuntimeError(f"task ended {end.phase.value}: {end.reason}")
    return Batch(
        seconds=max(finished.values()) - start,
        latencies=[finished[i] - approved[i] for i in approved],
        stale=stale,
    )


async def measure(
    fake: FakeOpenAI,
    client: openai.AsyncOpenAI,
    plan: Plan,
    *,
    tasks: int,
    parallel: int,
    delay: float,
    directory: str | None,
) -> Batch:
    """Plan `tasks` copies of `plan` on a fresh database, then approve them all at once."""
    replies: dict[str, Reply | list[Reply]] = {s["input"]: Reply("ok", delay_s=delay) for s in plan}
    fake.responder = Router([Reply.plan(*plan)] * tasks, replies)
    config = dataclasses.replace(CONFIG, max_parallel=parallel, max_steps=max(12, len(plan)))
    timeout = 60 + 2 * delay * len(plan) * tasks
    with tempfile.TemporaryDirectory(dir=directory, prefix="bench-engine-") as tmp:
        store = SqliteStore(Path(tmp) / "bench.db")
        llm = OpenAILLM(client, model=config.model)
        async with Orchestrator(store=store, llm=llm, config=config) as orch:
            planned = await _planned(orch, tasks, timeout)
            return await _approve_all(orch, planned, timeout)


def _command() -> str:
    python = os.path.relpath(sys.executable) if sys.executable.startswith(os.getcwd()) else "python"
    script = ["-m", "bench.bench_engine"] if __package__ else [os.path.relpath(sys.argv[0])]
    return shlex.join([python, *script, *sys.argv[1:]])


async def _shapes_table(
    fake: FakeOpenAI, client: openai.AsyncOpenAI, *, delay: float, directory: str | None
) -> None:
    print(
        f"| shape | steps | max_parallel={SERIAL} s | max_parallel={PARALLEL} s "
        "| speed-up | ideal |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for name, build, size in SHAPES:
        plan = build(size)
        runs = [
            await measure(fake, client, plan, tasks=1, parallel=p, delay=delay, directory=directory)
            for p in (SERIAL, PARALLEL)
        ]
        serial, parallel = runs[0].seconds, runs[1].seconds
        ideal = rounds(plan, SERIAL) / rounds(plan, PARALLEL)
        print(
            f"| {name} | {len(plan)} | {serial:.2f} | {parallel:.2f} "
            f"| {serial / parallel:.2f}x | {ideal:.2f}x |",
            flush=True,
        )


async def _fleet_table(
    fake: FakeOpenAI,
    client: openai.AsyncOpenAI,
    sizes: list[int],
    *,
    delay: float,
    directory: str | None,
) -> None:
    print(
        "| tasks | steps total | wall s | steps/s | p50 approve→completed s "
        "| p99 approve→completed s | model calls in flight, max "
        "| TaskFinished events not saying completed |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for count in sizes:
        fake.max_in_flight = 0
        batch = await measure(
            fake, client, FLEET_PLAN, tasks=count, parallel=PARALLEL, delay=delay,
            directory=directory,
        )  # fmt: skip
        steps = count * len(FLEET_PLAN)
        print(
            f"| {count} | {steps} | {batch.seconds:.2f} | {steps / batch.seconds:,.1f} "
            f"| {batch.percentile(50):.2f} | {batch.percentile(99):.2f} "
            f"| {fake.max_in_flight} | {batch.stale} |",
            flush=True,
        )


async def main(sizes: list[int], *, delay: float, directory: str | None) -> None:
    where = directory or tempfile.gettempdir()
    print(f"# {_command()}")
    print(
        f"# Python {platform.python_version()}, openai {openai.__version__}, "
        f"{os.cpu_count()} CPUs; a fresh database in {where} per run; every step's model reply "
        f"takes {delay:g} s; times run from approve() to the task's TaskFinished event"
    )
    async with FakeOpenAI() as fake:
        client = openai.AsyncOpenAI(
            api_key="x", base_url=fake.base_url, max_retries=0, timeout=60.0
        )
        try:
            print()
            print("## One task per plan shape")
            print()
            await _shapes_table(fake, client, delay=delay, directory=directory)
            print()
            print(
                f"## Many tasks in flight: plan {' '.join(_deps(FLEET_PLAN))}, "
                f"max_parallel={PARALLEL}; one task alone: {2 * delay:g} s"
            )
            print()
            await _fleet_table(fake, client, sizes, delay=delay, directory=directory)
        finally:
            await client.close()


def _deps(plan: Plan) -> list[str]:
    return [s["id"] + (f"<-{','.join(s['depends_on'])}" if s["depends_on"] else "") for s in plan]


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = _cli.parser(__doc__)
    parser.add_argument(
        "--tasks",
        default="10,50,100",
        type=_cli.int_list,
        help="tasks in flight for the second table, comma-separated (default 10,50,100)",
    )
    parser.add_argument(
        "--delay", default=0.2, type=float, help="seconds each step's model reply takes (0.2)"
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = _parse(sys.argv[1:])
    asyncio.run(main(args.tasks, delay=args.delay, directory=args.dir))
