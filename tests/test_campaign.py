"""The crash campaign: `python -m bot` is SIGKILLed at exact points of a task's life and at random
points, then started again on the same database. After the last restart every thread tells its
whole story exactly once (one plan, one "executing", one progress message with every step's final
state, one prompt per confirmation, one summary), and every decision it shows is a stored one.
"""

from __future__ import annotations

import asyncio
import random
import re
import signal
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from orchestrator import Phase, SqliteStore, Task, Transition, plan_decision, step_decisions
from tests.bot_process import SECRETS, BotProcess
from tests.bot_steps import Person, SocketDelivery, buttons, thread
from tests.fakes.openai_server import FakeOpenAI, Reply, step_request
from tests.fakes.slack_server import FakeSlack, Hold
from tests.helpers import step
from tests.slack_checks import assert_valid_message

pytestmark = pytest.mark.timeout(120)
USER = "U1"
STEPS = ("a", "b", "c")  # a chain; b is destructive, so it asks Run step / Skip first
SEEDS = (11, 23, 37)  # the random trials; each kills the bot twice


def plan(n: int) -> Reply:
    return Reply.plan(
        step("a", input=f"{n}:a"),
        step("b", "a", input=f"{n}:b", tier="destructive"),
        step("c", "b", input=f"{n}:c"),
    )


@dataclass
class Model:
    """Plans task n's request; a key in `hang` ("plan:n", "n:a", …) hangs once, until killed."""

    hang: set[str] = field(default_factory=set)
    hung: set[str] = field(default_factory=set)
    delays: random.Random | None = None

    def __call__(self, body: dict[str, Any]) -> Reply:
        step_input = step_request(body)
        found = re.search(r"task (\d+)", body["messages"][-1]["content"])
        key = step_input if step_input is not None else f"plan:{found[1] if found else '?'}"
        if key in self.hang:
            self.hang.discard(key)
            self.hung.add(key)
            return Reply("too late", delay_s=600)
        delay = self.delays.uniform(0, 0.3) if self.delays else 0.0
        if step_input is None:
            reply = plan(int(found[1]) if found else 0)
            reply.delay_s = delay
            return reply
        return Reply(f"out {step_input}", delay_s=delay)


def _text_is(start: str, *, has: str = "", lacks: str = "") -> Callable[[dict[str, Any]], bool]:
    def match(args: dict[str, Any]) -> bool:
        text = str(args.get("text") or "")
        return text.startswith(start) and has in text and not (lacks and lacks in text)

    return match


def _in_channel(
    channel: str, match: Callable[[dict[str, Any]], bool]
) -> Callable[[dict[str, Any]], bool]:
    return lambda args: args.get("channel") == channel and match(args)


# Each write a task's thread gets, held before and after Slack took it: the kill lands there.
SLACK_POINTS: tuple[tuple[str, str, Callable[[dict[str, Any]], bool]], ...] = (
    ("post Planning…", "chat.postMessage", _text_is("Planning")),
    ("edit in the plan", "chat.update", _text_is("Plan", lacks="Approved")),
    ("edit Approved by", "chat.update", _text_is("Plan", has="Approved")),
    ("post executing", "chat.postMessage", _text_is("executing")),
    ("post progress", "chat.postMessage", _text_is("Progress")),
    ("post the prompt", "chat.postMessage", _text_is("Step b")),
    ("edit the answered prompt", "chat.update", _text_is("Step b", has="run by")),
    ("edit progress to its end", "chat.update", _text_is("Progress", has="[c] completed")),
    ("post the summary", "chat.postMessage", _text_is("completed")),
)
# Each model call in flight at the kill: the commit before it landed, the one after did not.
MODEL_POINTS = ("plan", "a", "b", "c")


class Campaign:
    """Tasks in channels C0…Cn, a person in each, and the bot process they talk to."""

    def __init__(self, slack: FakeSlack, llm: FakeOpenAI, model: Model, tmp_path: Path) -> None:
        self.slack = slack
        llm.responder = model
        self.bot = BotProcess(slack, llm, tmp_path)
        self.db = tmp_path / "bot.db"
        self.threads: dict[str, str] = {}  # channel -> the mention's ts
        self._drivers: list[asyncio.Task[None]] = []

    async def mention(self, n: int) -> None:
        person = Person(self.slack, SocketDelivery(self.slack), user=USER, channel=f"C{n}")
        self.threads[person.channel] = await person.mention(f"task {n}")

    def drive(self) -> None:
        """Approve each plan and run each prompt as soon as their buttons show."""
        self._drivers = [
            asyncio.create_task(self._drive(channel, ts)) for channel, ts in self.threads.items()
        ]

    async def halt(self) -> None:
        for driver in self._drivers:
            driver.cancel()
        await asyncio.gather(*self._drivers, return_exceptions=True)

    async def kill_and_restart(self) -> None:
        await self.halt()
        await self.bot.stop(signal.SIGKILL)
        await self.bot.start()
        self.drive()

    async def finish(self) -> None:
        """Every thread ends with its summary; then the bot stops."""

        def all_summarised() -> bool:
            return all(
                any(m["text"].startswith("completed") for m in thread(self.slack, ts, ch))
                for ch, ts in self.threads.items()
            )

        await self.slack.wait_until(all_summarised, timeout=60)
        await self.halt()
        assert await self.bot.stop(signal.SIGTERM) == 0

    async def _drive(self, channel: str, ts: str) -> None:
        person = Person(self.slack, SocketDelivery(self.slack), user=USER, channel=channel)
        pressed: set[tuple[str, str]] = set()

        def clickable() -> list[tuple[str, dict[str, Any]]]:
            return [
                (action, m)
                for m in thread(self.slack, ts, channel)
                for action in ("approve_plan", "run_step")
                if action in buttons(m) and (m["ts"], action) not in pressed
            ]

        while True:
            await self.slack.wait_until(clickable, timeout=120)
            for action, message in clickable():
                pressed.add((message["ts"], action))
                await person.press(action, message)

    async def check(self) -> None:
        """The invariants, for every thread, against what the database holds."""
        store = SqliteStore(self.db)
        await store.open()
        try:
            for channel, ts in self.threads.items():
                (task,) = await store.list_tasks(scope=f"{channel}:{ts}")
                history = await store.history(task.id)
                _check_thread(thread(self.slack, ts, channel), task, history)
        finally:
            await store.close()
        log = self.bot.log.read_text()
        for secret in SECRETS:
            assert secret not in log
            assert all(secret not in str(c.args) for c in self.slack.calls)


def _slot(message: dict[str, Any]) -> str | None:
    meta = message.get("metadata") or {}
    return (meta.get("event_payload") or {}).get("slot")


def _check_thread(messages: list[dict[str, Any]], task: Task, history: list[Transition]) -> None:
    where = f"task {task.request!r}"
    assert task.phase is Phase.COMPLETED, (where, task.phase, task.reason)
    slots = [_slot(m) for m in messages]
    counts = Counter(slots)
    assert None not in counts, (where, "a message that is no slot of the outbox", slots)
    for one in ("plan", "executing", "progress", "summary"):
        assert counts[one] == 1, (where, one, slots)
    assert slots[-1] == "summary" and messages[-1]["text"].startswith("completed"), where
    prompts = [m for m in messages if str(_slot(m)).startswith("confirm:b:")]
    assert len(prompts) == task.step("b").asks == len(set(map(_slot, prompts))), (where, slots)
    for message in messages:
        assert_valid_message({"text": message["text"], "blocks": message["blocks"]})
        assert buttons(message) == {}, (where, "buttons left on", message["text"])
        assert not message["text"].startswith("Planning"), where

    decision = plan_decision(history)
    assert decision is not None and (decision.actor, decision.reason) == (USER, "approved")
    plan_message = messages[slots.index("plan")]
    assert f"Approved by <@{USER}>" in str(plan_message["blocks"]), where
    progress = messages[slots.index("progress")]["text"]
    assert progress.startswith(f"Progress: {len(STEPS)}/{len(STEPS)} steps finished"), progress
    for step_id in STEPS:
        assert f"[{step_id}] completed" in progress, (where, progress)
    runs_shown = sum(f"run by <@{USER}>" in m["text"] for m in prompts)
    runs_stored = [d for d in step_decisions(history, "b") if d.new == "run"]
    assert runs_shown == len(runs_stored) >= 1, (where, runs_shown, runs_stored)
    assert all(d.actor == USER for d in runs_stored)


async def test_a_kill_at_every_exact_point_of_a_tasks_life_loses_nothing_and_repeats_nothing(
    fake_slack: FakeSlack, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    slack, model = fake_slack, Model()
    campaign = Campaign(slack, fake_openai, model, tmp_path)
    await campaign.bot.start()
    holds: list[Hold] = []
    n = 0
    for _, method, match in SLACK_POINTS:
        for after_effect in (False, True):
            in_channel = _in_channel(f"C{n}", match)
            holds.append(slack.hold(method, after_effect=after_effect, match=in_channel))
            await campaign.mention(n)
            n += 1
    for point in MODEL_POINTS:
        model.hang.add(f"plan:{n}" if point == "plan" else f"{n}:{point}")
        await campaign.mention(n)
        n += 1
    campaign.drive()

    def every_point_reached() -> bool:
        return all(h.reached.is_set() for h in holds) and not model.hang

    await slack.wait_until(every_point_reached, timeout=60)
    await campaign.halt()
    await campaign.bot.stop(signal.SIGKILL)
    for held in holds:
        held.released.set()
    await campaign.bot.start()
    campaign.drive()
    await campaign.finish()
    await campaign.check()
    assert len(campaign.threads) == 2 * len(SLACK_POINTS) + len(MODEL_POINTS)


@pytest.mark.parametrize("seed", SEEDS)
async def test_random_kills_during_real_work_lose_nothing_and_repeat_nothing(
    fake_slack: FakeSlack, fake_openai: FakeOpenAI, tmp_path: Path, seed: int
) -> None:
    rng = random.Random(seed)
    model = Model(delays=random.Random(seed))
    fake_slack.latency_s = 0.03  # a Slack round trip, so kills land between a commit and its call
    fake_slack.be_flaky(0.1, seed=seed, retry_after=0.1)
    campaign = Campaign(fake_slack, fake_openai, model, tmp_path)
    await campaign.bot.start()
    for n in range(5):
        await campaign.mention(n)
    campaign.drive()
    for _ in range(2):
        await asyncio.sleep(rng.uniform(0.2, 2.5))
        await campaign.kill_and_restart()
    await campaign.finish()
    await campaign.check()
