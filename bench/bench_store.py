"""Group commit against a commit per write, on the store's real write path.

T tasks run at once (asyncio.gather), each making the writes a task makes in life: created, planned,
three phase changes, and three steps each moved pending -> running -> completed, then finished.
Every size runs on a fresh database file, once with group commit (`SqliteStore(path)`) and once
with a commit per write (`SqliteStore(path, max_batch=1)`). Small sizes repeat in rounds (T in
flight each time) until at least --min-writes writes, so their rates are not noise.

From the repository root:
    .venv/bin/python -m bench.bench_store [--sizes 1,10,100,1000] [--min-writes 1000] [--dir D]
(`.venv/bin/python bench/bench_store.py` works too).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import platform
import shlex
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parent.parent
if __package__ in (None, ""):  # run as a file: make `orchestrator` importable from the repo root
    sys.path.insert(0, str(ROOT))

from bench import _cli  # noqa: E402
from orchestrator import Action, Phase, SqliteStore, Step, StepState, Task, Tier  # noqa: E402

T = TypeVar("T")
STEP_IDS = ("research", "draft", "review")
WRITES_PER_TASK = 1 + 1 + 3 + 2 * len(STEP_IDS)  # create, plan, phases, each step's two moves
GROUPED, PER_WRITE = 512, 1  # max_batch: SqliteStore's default, and group commit off


@dataclass(frozen=True)
class Run:
    """What one workload on one store measured."""

    writes: int
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.writes / self.seconds

    def percentile_ms(self, p: int) -> float:
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[p - 1] * 1000


async def _timed(write: Awaitable[T], latencies: list[float]) -> T:
    start = time.perf_counter()
    result = await write
    latencies.append(time.perf_counter() - start)
    if result is False:
        raise RuntimeError("a compare-and-set write lost; the benchmark measured the wrong thing")
    return result


async def _one_task(store: SqliteStore, task_id: str, latencies: list[float]) -> None:
    now = time.time()
    task = Task(
        id=task_id, scope="C1:1700000000.000100", requester="U1", request="summarise the thread",
        phase=Phase.PLANNING, created_at=now, updated_at=now,
    )  # fmt: skip
    steps = [
        Step(id=s, description=f"{s} the answer", action=Action.WRITE, input=f"{s} it",
             depends_on=STEP_IDS[:i], tier=Tier.READ, position=i)
        for i, s in enumerate(STEP_IDS)
    ]  # fmt: skip
    await _timed(store.create_task(task, message_keys=[f"C1:{task_id}"]), latencies)
    await _timed(store.save_plan(task_id, steps, plan_version=1, actor="planner"), latencies)
    for old, new in [
        (Phase.PLANNING, Phase.AWAITING_APPROVAL),
        (Phase.AWAITING_APPROVAL, Phase.EXECUTING),
    ]:
        await _timed(store.set_phase(task_id, old=old, new=new, actor="U1", reason=None), latencies)
    for s in STEP_IDS:
        run = store.set_step(
            task_id, s, old=StepState.PENDING, new=StepState.RUNNING, actor="engine", attempts=1
        )
        await _timed(run, latencies)
        done = store.set_step(
            task_id, s, old=StepState.RUNNING, new=StepState.COMPLETED, actor="engine",
            output="a paragraph of model output " * 20, tokens=250,
        )  # fmt: skip
        await _timed(done, latencies)
    finish = store.set_phase(
        task_id, old=Phase.EXECUTING, new=Phase.COMPLETED, actor="engine", reason=None
    )
    await _timed(finish, latencies)


async def measure(tasks: int, *, max_batch: int, min_writes: int, directory: str | None) -> Run:
    """Run rounds of `tasks` tasks at once on a fresh database; open and close are not timed."""
    rounds = max(1, math.ceil(min_writes / (tasks * WRITES_PER_TASK)))
    with tempfile.TemporaryDirectory(dir=directory, prefix="bench-store-") as tmp:
        store = SqliteStore(Path(tmp) / "bench.db", max_batch=max_batch)
        await store.open()
        latencies: list[float] = []
        try:
            start = time.perf_counter()
            for r in range(rounds):
                await asyncio.gather(
                    *(_one_task(store, f"r{r}t{i}", latencies) for i in range(tasks))
                )
            seconds = time.perf_counter() - start
        finally:
            await store.close()
    assert len(latencies) == rounds * tasks * WRITES_PER_TASK
    return Run(writes=len(latencies), seconds=seconds, latencies=latencies)


def _command() -> str:
    python = os.path.relpath(sys.executable) if sys.executable.startswith(os.getcwd()) else "python"
    script = ["-m", "bench.bench_store"] if __package__ else [os.path.relpath(sys.argv[0])]
    return shlex.join([python, *script, *sys.argv[1:]])


async def main(sizes: list[int], *, min_writes: int, directory: str | None) -> None:
    where = directory or tempfile.gettempdir()
    print(f"# {_command()}")
    print(
        f"# Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
        f"{os.cpu_count()} CPUs; a fresh database in {where} per run; "
        f"{WRITES_PER_TASK} writes per task; latency is one write's await, in ms"
    )
    print()
    print(
        "| tasks in flight | writes | group commit writes/s | commit per write writes/s | ratio "
        "| group p50 | group p99 | per-write p50 | per-write p99 |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for tasks in sizes:
        grouped = await measure(
            tasks, max_batch=GROUPED, min_writes=min_writes, directory=directory
        )
        single = await measure(
            tasks, max_batch=PER_WRITE, min_writes=min_writes, directory=directory
        )
        print(
            f"| {tasks} | {grouped.writes} | {grouped.rate:,.0f} | {single.rate:,.0f} "
            f"| {grouped.rate / single.rate:.1f}x "
            f"| {grouped.percentile_ms(50):.2f} | {grouped.percentile_ms(99):.2f} "
            f"| {single.percentile_ms(50):.2f} | {single.percentile_ms(99):.2f} |",
            flush=True,
        )


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = _cli.parser(__doc__)
    parser.add_argument(
        "--sizes",
        default="1,10,100,1000",
        type=_cli.int_list,
        help="tasks in flight, comma-separated (default 1,10,100,1000)",
    )
    parser.add_argument(
        "--min-writes",
        default=1000,
        type=int,
        help="repeat rounds of T tasks until this many writes (default 1000)",
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = _parse(sys.argv[1:])
    asyncio.run(main(args.sizes, min_writes=args.min_writes, directory=args.dir))
