"""Interleaved A/B of the shared harness's engines (../shared/perf): tasks/s, CPU, the collector.

The shared harness runs each engine once; on these shared, noisy machines one run moves 10-15 %,
more than most changes are worth. This runs each spec ROUNDS times, round-robin, each run in a
fresh process, and prints medians: tasks/s, the process's CPU per task and the garbage
collector's time per task. A spec is `engine[:variant][@DIR]`: DIR is another checkout of the
project (a `git worktree` of the base commit, say), so a change is measured against its base
in one table.

    .venv-perf/bin/python -m bench.bench_engine_ab [--n 1000] [--tasks 1000] [--rounds 5]
        [--engines project,project@/tmp/base,project:relay,floor:group]

(The project's `.venv` runs `project` and `floor`; the harness's `.venv-perf` runs its other
engines too: see ../shared/perf/README.md.)
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _cli

ROOT = Path(__file__).resolve().parent.parent
PERF_DIR = Path(os.environ.get("PERF_DIR", ROOT.parent / "shared" / "perf"))


def _one_run(spec: str, n: int, tasks: int) -> dict[str, float]:
    """In this (fresh) process: the workload once on a fresh file, after a short warm-up."""
    sys.path.insert(0, str(PERF_DIR))
    workload = importlib.import_module("workload")  # the harness's own workload and limiter
    FakeLLM, drive = workload.FakeLLM, workload.drive

    name, _, variant = spec.partition(":")
    mod = importlib.import_module(f"adapters.{name}")
    variant = variant or mod.VARIANTS[0]
    gc_s = [0.0, 0.0, 0.0]
    started = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            gc_s[info["generation"]] += time.perf_counter() - started[0]

    async def main() -> tuple[float, float]:
        folder = tempfile.mkdtemp()
        warm = FakeLLM("zero", seed=2)
        async with mod.engine(f"{folder}/warm.sqlite", warm, "FULL", variant) as eng:
            await drive(eng, warm, 5, 5)
        llm = FakeLLM("zero")
        async with mod.engine(f"{folder}/run.sqlite", llm, "FULL", variant) as eng:
            gc.callbacks.append(on_gc)
            before = resource.getrusage(resource.RUSAGE_SELF)
            wall, _, _ = await drive(eng, llm, tasks, n)
            after = resource.getrusage(resource.RUSAGE_SELF)
            gc.callbacks.remove(on_gc)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        return wall, cpu

    wall, cpu = asyncio.run(main())
    return {
        "tasks_s": tasks / wall,
        "cpu_ms": 1000 * cpu / tasks,
        "gc_ms": 1000 * sum(gc_s) / tasks,
        "gc2_ms": 1000 * gc_s[2] / tasks,
    }


def _spawn(spec: str, n: int, tasks: int) -> dict[str, float]:
    engine, _, checkout = spec.partition("@")
    env = {**os.environ, "PROJECT_DIR": checkout or str(ROOT)}
    # This file, run in the other checkout: its adapter imports the orchestrator from there.
    command = [sys.executable, __file__, "--child", engine]
    command += ["--n", str(n), "--tasks", str(tasks)]
    done = subprocess.run(
        command, cwd=checkout or ROOT, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        sys.exit(f"{spec} failed:\n{done.stderr[-2000:]}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    p = _cli.parser(__doc__)
    p.add_argument("--engines", default="project,project:relay,floor:group")
    p.add_argument("--n", type=int, default=1000, help="tasks in flight")
    p.add_argument("--tasks", type=int, default=1000, help="tasks per run")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--child", help=argparse.SUPPRESS)  # one run, in a process of its own
    args = p.parse_args()
    if args.child:
        print(json.dumps(_one_run(args.child, args.n, args.tasks)))
        return
    specs = args.engines.split(",")
    runs: dict[str, list[dict[str, float]]] = {spec: [] for spec in specs}
    for _ in range(args.rounds):
        for spec in specs:  # round-robin: a noisy minute hurts every spec alike
            runs[spec].append(_spawn(spec, args.n, args.tasks))
    print(f"# {sys.executable} -m bench.bench_engine_ab {shlex.join(sys.argv[1:])}")
    print(
        f"# Python {platform.python_version()}, {os.cpu_count()} CPUs; the shared harness's "
        f"workload, {args.n} tasks in flight, {args.tasks} per run, {args.rounds} runs per "
        "spec taken in turn; medians (min-max for tasks/s)\n"
    )
    print("| spec | tasks/s | × the first spec | CPU ms/task | collector ms/task (full) |")
    print("|---|--:|--:|--:|--:|")
    first = statistics.median(r["tasks_s"] for r in runs[specs[0]])
    for spec in specs:
        rs = runs[spec]
        rate = [r["tasks_s"] for r in rs]
        median = statistics.median(rate)
        print(
            f"| {spec} | {median:,.0f} ({min(rate):,.0f}-{max(rate):,.0f}) "
            f"| {median / first:.2f} | {statistics.median(r['cpu_ms'] for r in rs):.2f} "
            f"| {statistics.median(r['gc_ms'] for r in rs):.2f} "
            f"({statistics.median(r['gc2_ms'] for r in rs):.2f}) |"
        )


if __name__ == "__main__":
    main()
