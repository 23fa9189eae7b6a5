"""Plans awaiting approval: the bot's start-up, first click and memory with 0, 3 or 10,000 waiting.

A real `python -m bot` process (Socket Mode) against the fake Slack and the fake OpenAI server in
this process. Each row first fills a fresh database the way an earlier life of the bot left it:
an `Orchestrator(has_outbox=True)` with a scripted LLM plans --plans requests (three steps each,
spread over 20 channels, with the `meta` the bot sets), and every plan message is already shown:
its outbox slot is marked sent, and the message, rendered as the bot renders it, is put in the
fake Slack, so a click on it has a message to edit and nothing is posted again at start-up.

Then, --repeat times, the bot is started on that database (a restart), timed from spawning the
process until its Socket Mode connection is open (the bot opens it last, once it has recovered
what the database holds); Approve is clicked at once on a waiting plan, timed until the plan
message is edited to "Approved by", and the task then runs to its summary. Memory is the
process's VmRSS once connected and its VmHWM (peak RSS) after the summary, from
/proc/<pid>/status. Medians over the repeats; the ratios compare with 0 waiting plans, and the
click's with --repeat waiting plans (one for each start to click).

From the repository root:
    .venv/bin/python -m bench.bench_waiting [--plans 10000] [--repeat 3] [--dir D]
(`.venv/bin/python bench/bench_waiting.py` works too).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if __package__ in (None, ""):  # run as a file: make `bot` importable from the repo root
    sys.path.insert(0, str(ROOT))

from bench import _bot, _cli  # noqa: E402
from bot import render  # noqa: E402
from bot.conversation import message_key, thread_scope  # noqa: E402
from bot.slack_io import SLOT_EVENT  # noqa: E402
from orchestrator import Orchestrator, Phase, SqliteStore, Task  # noqa: E402
from orchestrator.testing import ScriptedLLM  # noqa: E402
from tests.bot_process import BotProcess  # noqa: E402
from tests.fakes.openai_server import FakeOpenAI  # noqa: E402
from tests.fakes.slack_server import FakeSlack, new_ts  # noqa: E402
from tests.helpers import step  # noqa: E402

PLAN = {"steps": [step("s1"), step("s2"), step("s3", "s1", "s2")]}
CHANNELS = 20
USERS = 50
BATCH = 500  # requests submitted at once while filling
TARGET_CLICK_S = 2.0  # issue 13: the first click after a restart is served within 2 s
TARGET_PEAK_MB = 100.0  # issue 13: the bot stays under 100 MB of peak RSS


@dataclass(frozen=True)
class Shown:
    """A waiting plan as the fake Slack shows it: who may click it, and where."""

    task_id: str
    requester: str
    channel: str
    ts: str
    thread_ts: str


async def fill(db: Path, count: int, slack: FakeSlack) -> list[Shown]:
    """Plan `count` requests on a fresh database and show each plan in `slack`, as sent."""
    orch = Orchestrator(
        store=SqliteStore(db), llm=ScriptedLLM([PLAN] * count, tokens=100), has_outbox=True
    )
    async with orch:
        for first in range(0, count, BATCH):
            batch = range(first, min(count, first + BATCH))
            await asyncio.gather(*(_plan(orch, i) for i in batch))
        tasks = {t.id: t for t in await orch.list_tasks(phases=(Phase.AWAITING_APPROVAL,))}
        if len(tasks) != count:
            raise RuntimeError(f"{len(tasks)} of {count} plans await approval; the fill failed")
        updates = await orch.updates()
        shown = [_show(slack, tasks[u.task_id]) for u in updates]
        await asyncio.gather(
            *(orch.mark_sent(u, ref=s.ts, digest="") for u, s in zip(updates, shown, strict=True))
        )
        if len(shown) != count or await orch.updates():
            raise RuntimeError("the outbox does not hold exactly one shown plan per task")
    return shown


async def _plan(orch: Orchestrator, i: int) -> None:
    """Request `i`, as the bot submits a mention, until its plan awaits approval."""
    channel, ts = f"C{i % CHANNELS + 1:03d}", new_ts()
    task = await orch.submit(
        f"request {i}: compare the three CI providers and draft a recommendation",
        requester=f"U{i % USERS + 1:03d}",
        scope=thread_scope(channel, ts),
        message_keys=[message_key(channel, ts)],
        meta={"channel": channel, "thread_ts": ts},
    )
    await orch.wait(task.id, {Phase.AWAITING_APPROVAL}, timeout=60)


def _show(slack: FakeSlack, task: Task) -> Shown:
    message = render.plan(task)
    channel, thread_ts = task.meta["channel"], task.meta["thread_ts"]
    metadata = {
        "event_type": SLOT_EVENT,
        "event_payload": {"task_id": task.id, "slot": "plan"},
    }
    kept = slack.add_message(
        channel, message.text, thread_ts=thread_ts, blocks=message.blocks, metadata=metadata
    )
    return Shown(task.id, task.requester, channel, kept["ts"], thread_ts)


@dataclass(frozen=True)
class Start:
    """One start of the bot: seconds to connected and to the first click served; memory in MB."""

    connected_s: float
    click_s: float | None
    rss_mb: float
    peak_mb: float


async def start_once(slack: FakeSlack, llm: FakeOpenAI, tmp: Path, plan: Shown | None) -> Start:
    """Start the bot on `tmp`'s database; click Approve on `plan` as soon as it is connected."""
    bot = BotProcess(slack, llm, tmp)
    try:
        began = time.monotonic()
        await bot.start()
        connected = time.monotonic() - began
        assert bot.proc is not None
        rss = _bot.memory_mb(bot.proc.pid, "VmRSS")
        click_s = None if plan is None else await _click(slack, plan) - began
        peak = _bot.memory_mb(bot.proc.pid, "VmHWM")
    finally:
        code = await _bot.stop(bot)
    if code != 0:
        raise RuntimeError(f"the bot exited with {code}; see {bot.log}")
    return Start(connected, click_s, rss, peak)


async def _click(slack: FakeSlack, plan: Shown) -> float:
    """Approve `plan`; when (monotonic) the plan message said who approved; then its summary."""
    payload = slack.block_action(
        "approve_plan", plan.task_id, message_ts=plan.ts, user=plan.requester, channel=plan.channel
    )
    seen = len(slack.calls)
    await slack.send_interactive(payload, timeout=30)

    def approved() -> float | None:
        return next(
            (
                c.at
                for c in slack.calls[seen:]
                if c.method == "chat.update"
                and c.ok
                and c.args.get("ts") == plan.ts
                and "Approved by" in c.args.get("text", "")
            ),
            None,
        )

    await slack.wait_until(approved, timeout=30)
    at = approved()
    assert at is not None

    def summary() -> bool:
        return any(
            m["text"].startswith("completed") for m in slack.thread(plan.channel, plan.thread_ts)
        )

    await slack.wait_until(summary, timeout=30)
    return at


@dataclass(frozen=True)
class Row:
    """The medians of one database's starts, and how long filling it took."""

    plans: int
    fill_s: float
    starts: list[Start]

    def median(self, value: str) -> float:
        values: list[float | None] = [getattr(s, value) for s in self.starts]
        return statistics.median([v for v in values if v is not None])


async def measure(count: int, *, repeat: int, directory: str | None) -> Row:
    """Fill a database with `count` waiting plans; start the bot on it `repeat` times."""
    async with FakeSlack(echo_bot_events=True) as slack, FakeOpenAI() as llm:
        with tempfile.TemporaryDirectory(dir=directory, prefix="bench-waiting-") as name:
            tmp = Path(name)
            began = time.monotonic()
            shown = await fill(tmp / "bot.db", count, slack)
            fill_s = time.monotonic() - began
            # Each start clicks another plan, from the middle of the list on.
            middle = len(shown) // 2
            clicks = [shown[(middle + r) % len(shown)] if shown else None for r in range(repeat)]
            starts = [await start_once(slack, llm, tmp, plan) for plan in clicks]
    return Row(count, fill_s, starts)


def _command() -> str:
    python = os.path.relpath(sys.executable) if sys.executable.startswith(os.getcwd()) else "python"
    script = ["-m", "bench.bench_waiting"] if __package__ else [os.path.relpath(sys.argv[0])]
    return shlex.join([python, *script, *sys.argv[1:]])


def _cell(value: float | None, base: float | None, fmt: str) -> str:
    if value is None:
        return "—"
    ratio = f" ({value / base:.2f}x)" if base else ""
    return f"{value:{fmt}}{ratio}"


async def main(plans: int, *, repeat: int, directory: str | None) -> None:
    print(f"# {_command()}")
    print(
        f"# Python {platform.python_version()}, {os.cpu_count()} CPUs; `python -m bot` against "
        f"fake Slack (Socket Mode) and fake OpenAI on 127.0.0.1; medians of {repeat} starts per "
        f"database; (x) = ratio to 0 waiting plans (the click's: to {repeat})"
    )
    print()
    print(
        "| waiting plans | fill s | start → connected s | start → first click served s "
        "| VmRSS when connected MB | VmHWM (peak) MB |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    rows: list[Row] = []
    # A few plans (one per start, each start clicks another) give the click a baseline.
    for count in (0, repeat, plans):
        row = await measure(count, repeat=repeat, directory=directory)
        rows.append(row)
        base = rows[0]
        clicked = row.median("click_s") if count else None
        click_base = rows[1].median("click_s") if count else None
        print(
            f"| {count:,} | {row.fill_s:.1f} "
            f"| {_cell(row.median('connected_s'), base.median('connected_s'), '.2f')} "
            f"| {_cell(clicked, click_base, '.2f')} "
            f"| {_cell(row.median('rss_mb'), base.median('rss_mb'), '.1f')} "
            f"| {_cell(row.median('peak_mb'), base.median('peak_mb'), '.1f')} |",
            flush=True,
        )
    last = rows[-1]
    worst_click = max(s.click_s or 0.0 for s in last.starts)
    worst_peak = max(s.peak_mb for s in last.starts)
    print()
    print(
        f"Targets (issue 13) with {plans:,} waiting plans: the first click after a restart served "
        f"within {TARGET_CLICK_S:g} s: {'yes' if worst_click < TARGET_CLICK_S else 'NO'} (slowest "
        f"of {repeat}: {worst_click:.2f} s); peak RSS under {TARGET_PEAK_MB:g} MB: "
        f"{'yes' if worst_peak < TARGET_PEAK_MB else 'NO'} (highest: {worst_peak:.1f} MB)."
    )


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = _cli.parser(__doc__)
    parser.add_argument(
        "--plans", default=10_000, type=int, help="waiting plans in the big database (10000)"
    )
    parser.add_argument("--repeat", default=3, type=int, help="starts of the bot per database (3)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = _parse(sys.argv[1:])
    asyncio.run(main(args.plans, repeat=args.repeat, directory=args.dir))
