"""What coalescing progress edits saves in Slack calls, on the real bot.

The real BotService (Bolt over Socket Mode, relay, orchestrator, openai client) against the fake
Slack and the fake OpenAI server, fresh ones and a fresh database per run. A person mentions the
bot, the plan comes, they click Approve, and the run ends when the summary ("completed…") is in
the thread. Each plan runs twice: with the relay's default edit interval (coalesced) and with
interval 0, where the progress message is edited whenever the relay has caught up with its events
(uncoalesced). Writes are the chat.postMessage and chat.update calls Slack accepted, from the
mention to the summary; the busiest second counts chat.update calls in any 1-second window.

Plans: odd steps stand alone, even steps form one chain (s2 needs s0, s4 needs s2, …); each
step's model reply takes 0.05-0.10 s, times --delay-scale (real models take seconds: with 10, a
run lasts several seconds and the interval has something to coalesce across).

From the repository root:
    .venv/bin/python -m bench.bench_relay [--sizes 6,12,20] [--delay-scale 1] [--dir D]
(`.venv/bin/python bench/bench_relay.py` works too).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shlex
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if __package__ in (None, ""):  # run as a file: make `bot` importable from the repo root
    sys.path.insert(0, str(ROOT))

from bench import _cli  # noqa: E402
from bot.relay import UPDATE_INTERVAL_S  # noqa: E402
from bot.service import BotService  # noqa: E402
from tests.bot_steps import Person, SocketDelivery, buttons, plan_in, said  # noqa: E402
from tests.conftest import bot_settings  # noqa: E402
from tests.fakes.openai_server import FakeOpenAI, Reply, Router  # noqa: E402
from tests.fakes.slack_server import FakeSlack  # noqa: E402
from tests.helpers import step  # noqa: E402

WRITES = ("chat.postMessage", "chat.update")
UNCOALESCED = 0.0


def mixed_plan(n: int) -> list[dict[str, Any]]:
    """Odd steps independent; even steps one chain, each needing the even step before it."""
    return [step(f"s{i}", *([f"s{i - 2}"] if i % 2 == 0 and i >= 2 else [])) for i in range(n)]


def step_delay(i: int, scale: float) -> float:
    return scale * (0.05 + 0.01 * (i % 6))  # 0.05-0.10 s, so steps finish at staggered times


@dataclass(frozen=True)
class Run:
    """One mention-to-summary run: Slack writes, the busiest second of edits, seconds taken."""

    writes: int
    max_updates_per_s: int
    seconds: float


def busiest_second(times: list[float]) -> int:
    """The most timestamps in any window [t, t + 1 s)."""
    times = sorted(times)
    most, first = 0, 0
    for last, at in enumerate(times):
        while at - times[first] >= 1.0:
            first += 1
        most = max(most, last - first + 1)
    return most


async def _converse(slack: FakeSlack, plan_size: int) -> float:
    """Mention, Approve, wait for the summary; seconds from the click to the summary."""
    person = Person(slack, SocketDelivery(slack))
    thread_ts = await person.mention(f"do {plan_size} things")
    plan = await plan_in(slack, thread_ts)
    start = time.monotonic()
    await person.click("approve_plan", buttons(plan)["approve_plan"], message_ts=plan["ts"])
    summary = await said(slack, thread_ts, "completed")
    seconds = time.monotonic() - start
    if f"{plan_size}. [" not in summary["text"]:
        raise RuntimeError("the summary lacks steps; the benchmark measured the wrong thing")
    return seconds


async def measure(plan_size: int, *, interval: float, scale: float, directory: str | None) -> Run:
    """One run of a `plan_size`-step plan with progress edits at most every `interval` s."""
    plan = mixed_plan(plan_size)
    replies: dict[str, Reply | list[Reply]] = {
        s["input"]: Reply(f"output of {s['id']}", delay_s=step_delay(i, scale))
        for i, s in enumerate(plan)
    }
    async with FakeSlack(echo_bot_events=True) as slack, FakeOpenAI() as fake:
        fake.responder = Router([Reply.plan(*plan)], replies)
        with tempfile.TemporaryDirectory(dir=directory, prefix="bench-relay-") as tmp:
            settings = bot_settings(slack, fake, Path(tmp), orch_max_steps=max(12, plan_size))
            service = BotService(settings, progress_interval_s=interval)
            await service.start()
            try:
                seconds = await _converse(slack, plan_size)
            finally:
                await service.stop()
    writes = [c for c in slack.calls if c.method in WRITES and c.ok]
    updates = [c.at for c in writes if c.method == "chat.update"]
    return Run(writes=len(writes), max_updates_per_s=busiest_second(updates), seconds=seconds)


def _command() -> str:
    python = os.path.relpath(sys.executable) if sys.executable.startswith(os.getcwd()) else "python"
    script = ["-m", "bench.bench_relay"] if __package__ else [os.path.relpath(sys.argv[0])]
    return shlex.join([python, *script, *sys.argv[1:]])


async def main(sizes: list[int], *, scale: float, directory: str | None) -> None:
    print(f"# {_command()}")
    print(
        f"# Python {platform.python_version()}, {os.cpu_count()} CPUs; fake Slack (Socket Mode) "
        f"and fake OpenAI on 127.0.0.1; coalesced = the relay's default "
        f"update_interval_s={UPDATE_INTERVAL_S:g}, uncoalesced = {UNCOALESCED:g}; step replies "
        f"take {step_delay(0, scale):.2f}-{step_delay(5, scale):.2f} s; updates/s counts every "
        "chat.update (the plan's two edits too)"
    )
    print()
    print(
        "| steps | writes coalesced | writes uncoalesced | ratio | max updates/s coalesced "
        "| max updates/s uncoalesced | approve→summary s coalesced | uncoalesced |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size in sizes:
        slow = await measure(size, interval=UPDATE_INTERVAL_S, scale=scale, directory=directory)
        fast = await measure(size, interval=UNCOALESCED, scale=scale, directory=directory)
        print(
            f"| {size} | {slow.writes} | {fast.writes} | {fast.writes / slow.writes:.1f}x "
            f"| {slow.max_updates_per_s} | {fast.max_updates_per_s} "
            f"| {slow.seconds:.2f} | {fast.seconds:.2f} |",
            flush=True,
        )
    print()
    print(
        "Slack's documented limits, for context: chat.update is Tier 3, about 50 calls a minute "
        "per workspace; chat.postMessage about 1 message a second per channel (short bursts "
        "allowed)."
    )


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = _cli.parser(__doc__)
    parser.add_argument(
        "--sizes",
        default="6,12,20",
        type=_cli.int_list,
        help="steps per plan, comma-separated (default 6,12,20; at most 40)",
    )
    parser.add_argument(
        "--delay-scale",
        default=1.0,
        type=float,
        help="multiply every step's 0.05-0.10 s model delay by this (default 1)",
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = _parse(sys.argv[1:])
    asyncio.run(main(args.sizes, scale=args.delay_scale, directory=args.dir))
