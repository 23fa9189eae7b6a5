"""The crash and attack campaign, kept.

Kills: `python -m bot` is SIGKILLed at exact points of a task's life and at random points (a fixed
seed list), then started again on the same database. After the last restart every thread tells its
whole story exactly once (one plan, one "executing", one progress message with every step's final
state, one prompt per confirmation, one summary), every decision it shows is a stored one, nothing
hostile in a request or a step's output is live in Slack, and no secret is in the log or in Slack.

Probes: forged, replayed and malformed requests, other workspaces, bystanders and stale buttons are
refused and change nothing; what the owner did, repeated, is absorbed.
"""

from __future__ import annotations

import asyncio
import functools
import os
import random
import re
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from orchestrator import Phase, Task, Transition, open_store, plan_decision, step_decisions
from tests.bot_process import SECRETS, BotProcess
from tests.bot_steps import (
    SIGNING_SECRET,
    HttpDelivery,
    Person,
    SocketDelivery,
    buttons,
    plan_in,
    said,
    thread,
)
from tests.conftest import StartBot
from tests.fakes.openai_server import FakeOpenAI, Reply, Router, step_request
from tests.fakes.slack_server import (
    FakeSlack,
    Hold,
    action_body,
    event_body,
    new_ts,
    post_signed,
)
from tests.fakes.slack_server import mention as mention_event
from tests.fakes.slack_server import message as message_event
from tests.helpers import step
from tests.slack_checks import assert_nothing_live, assert_valid_message

pytestmark = pytest.mark.timeout(120)
USER = "U1"
STEPS = ("a", "b", "c")  # a chain; b is destructive, so it asks Run step / Skip first
# The random trials, each killing the bot twice; CAMPAIGN_TRIALS=N runs seeds 1..N instead.
SEEDS = (
    tuple(range(1, int(os.environ["CAMPAIGN_TRIALS"]) + 1))
    if "CAMPAIGN_TRIALS" in os.environ
    else (11, 23, 37)
)
# In every request and every step's output: it must reach Slack as words, never live.
HOSTILE = "<!channel> <!here> see <https://evil.example|click here>"


def plan(n: int) -> Reply:
    return Reply.plan(
        step("a", input=f"{n}:a"),
        step("b", "a", input=f"{n}:b", tier="destructive"),
        step("c", "b", input=f"{n}:c"),
    )


@dataclass
class Model:
    """Plans task n's request; a key in `hang` ("plan:n", "n:a", …) hangs once, until killed;
    one in `after` answers once its wait is over."""

    hang: set[str] = field(default_factory=set)
    hung: set[str] = field(default_factory=set)
    delays: random.Random | None = None
    after: dict[str, Callable[[], Awaitable[None]]] = field(default_factory=dict)

    def __call__(self, body: dict[str, Any]) -> Reply | Awaitable[Reply]:
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
        else:
            reply = Reply(f"out {step_input} {HOSTILE}", delay_s=delay)
        wait = self.after.pop(key, None)
        return reply if wait is None else _once_over(wait, reply)


async def _planning_posted(slack: FakeSlack, channel: str) -> None:
    posted = _in_channel(channel, _text_is("Planning"))
    await slack.wait_until(lambda: slack.arrived("chat.postMessage", posted), timeout=30)


async def _once_over(wait: Callable[[], Awaitable[None]], reply: Reply) -> Reply:
    await wait()
    return reply


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
# Posts Slack took while step a was in flight: the restart moves a (an event) before it shows.
WHILE_A_RUNS = ("post executing", "post progress")


class Campaign:
    """Tasks in channels C0…Cn, a person in each, and the bot process they talk to."""

    def __init__(self, slack: FakeSlack, llm: FakeOpenAI, model: Model, tmp_path: Path) -> None:
        self.slack = slack
        llm.responder = model
        self.bot = BotProcess(slack, llm, tmp_path)
        self.threads: dict[str, str] = {}  # channel -> the mention's ts
        self._drivers: list[asyncio.Task[None]] = []

    async def mention(self, n: int) -> None:
        person = Person(self.slack, SocketDelivery(self.slack), user=USER, channel=f"C{n}")
        self.threads[person.channel] = await person.mention(f"task {n} {HOSTILE}")

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
        store = open_store(self.bot.database_url)
        await store.open()
        try:
            for channel, ts in self.threads.items():
                (task,) = await store.list_tasks(scope=f"{channel}:{ts}")
                history = await store.history(task.id)
                _check_thread(thread(self.slack, ts, channel), task, history)
        finally:
            await store.close()
        for method in ("chat.postMessage", "chat.update", "chat.postEphemeral"):
            for args in self.slack.calls_to(method):
                assert_nothing_live(args)
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
            # The plan comes once "Planning…" went to Slack, as a model's seconds make sure:
            # else a quick plan is posted at once, and the points before it are never reached.
            model.after[f"plan:{n}"] = functools.partial(_planning_posted, slack, f"C{n}")
            await campaign.mention(n)
            n += 1
    for point in MODEL_POINTS:
        model.hang.add(f"plan:{n}" if point == "plan" else f"{n}:{point}")
        await campaign.mention(n)
        n += 1
    for name, method, match in SLACK_POINTS:
        if name in WHILE_A_RUNS:
            holds.append(slack.hold(method, after_effect=True, match=_in_channel(f"C{n}", match)))
            model.hang.add(f"{n}:a")
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
    assert len(campaign.threads) == 2 * len(SLACK_POINTS) + len(MODEL_POINTS) + len(WHILE_A_RUNS)


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


# -- the bad-request and bystander probes (HTTP mode, where every request can be forged) -------

JSON, FORM = "application/json", "application/x-www-form-urlencoded"


@dataclass
class Probe:
    """One refused request: its name, and what it sends (returning the HTTP status got)."""

    name: str
    send: Callable[[], Awaitable[int]]
    status: int = 200
    whisper: str | None = None  # the start of the ephemeral line the sender must get


async def test_every_forged_malformed_replayed_or_bystander_request_is_refused_and_changes_nothing(
    start_bot: StartBot, fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    fake_openai.responder = Router([Reply.plan(step("a"), step("b", "a", tier="destructive"))] * 2)
    service = await start_bot(slack_app_token=None, slack_signing_secret=SIGNING_SECRET, port=0)
    url = f"http://127.0.0.1:{service.http_port}/slack/events"
    delivery = HttpDelivery(url)
    alice = Person(fake_slack, delivery)
    mallory = Person(fake_slack, delivery, user="U666")
    outsider = Person(fake_slack, delivery, user="U777", team="T999")
    pending_ts = await alice.mention("wait for me")
    pending = await plan_in(fake_slack, pending_ts)
    running_ts = await alice.mention("run me")
    await alice.press("approve_plan", await plan_in(fake_slack, running_ts))
    prompt = await said(fake_slack, running_ts, "Step b")
    mention = mention_event("do a", ts=new_ts())

    def click(person: Person, action_id: str, message: dict[str, Any]) -> Callable[[], Any]:
        payload = fake_slack.block_action(
            action_id, buttons(message).get(action_id, "gone"), message_ts=message["ts"],
            user=person.user, team=person.team,
        )  # fmt: skip
        return lambda: _post(url, action_body(payload), FORM)

    def typed(person: Person, text: str, thread_ts: str) -> Callable[[], Any]:
        event = message_event(text, user=person.user, thread_ts=thread_ts, team=person.team)
        return lambda: _post(url, event_body(event), JSON)

    forged = event_body(mention)
    unknown = action_body(
        fake_slack.block_action("approve_plan", "no-such-task", message_ts=pending["ts"])
    )
    outsiders_ask = event_body(mention_event("do a", user=outsider.user, team=outsider.team))
    probes = [
        Probe("unsigned", lambda: _post(url, forged, JSON, signed=False), 401),
        Probe("forged", lambda: _post(url, forged, JSON, secret="guess"), 401),
        Probe("replayed", lambda: _post(url, forged, JSON, age_s=360), 401),
        Probe("malformed JSON", lambda: _post(url, '{"event": ', JSON), 400),
        Probe("broken payload", lambda: _post(url, "payload=%7Bnope", FORM), 400),
        Probe("not an object", lambda: _post(url, "[1]", JSON), 400),
        Probe("another workspace asks", lambda: _post(url, outsiders_ask, JSON), whisper="Sorry"),
        Probe("a bystander approves", click(mallory, "approve_plan", pending), whisper="Sorry"),
        Probe("a bystander rejects", click(mallory, "reject_plan", pending), whisper="Sorry"),
        Probe("a bystander cancels", typed(mallory, "cancel", pending_ts), whisper="Sorry"),
        Probe("a bystander runs a step", click(mallory, "run_step", prompt), whisper="Sorry"),
        Probe("a bystander skips a step", click(mallory, "skip_step", prompt), whisper="Sorry"),
        Probe("an outsider approves", click(outsider, "approve_plan", pending), whisper="Sorry"),
        Probe("an unknown plan", lambda: _post(url, unknown, FORM), whisper="This plan is no"),
        Probe("a retired button", click(alice, "old_button", pending), whisper="This button"),
    ]
    tasks_before = await service.orchestrator.list_tasks()
    for probe in probes:
        whispers = len(fake_slack.ephemerals)

        def whispered(whispers: int = whispers) -> bool:
            return len(fake_slack.ephemerals) > whispers

        requests = len(fake_openai.requests)
        assert await probe.send() == probe.status, probe.name
        if probe.whisper is not None:
            await fake_slack.wait_until(whispered)
            assert fake_slack.ephemerals[-1]["text"].startswith(probe.whisper), probe.name
        assert len(fake_openai.requests) == requests, probe.name
        assert await service.orchestrator.list_tasks() == tasks_before, probe.name
    # What the owner did, repeated, is absorbed: one plan per message, one decision per plan.
    assert await delivery.event(mention_event("wait for me", ts=pending_ts), retry_attempt=1)
    task_id, plan_ts = buttons(pending)["approve_plan"], pending["ts"]
    await alice.click("approve_plan", task_id, message_ts=plan_ts)
    whispers = len(fake_slack.ephemerals)
    await alice.click("approve_plan", task_id, message_ts=plan_ts)  # a double click
    await fake_slack.wait_until(lambda: len(fake_slack.ephemerals) > whispers)
    assert "approved by <@U1>" in fake_slack.ephemerals[-1]["text"]
    assert len(await service.orchestrator.list_tasks()) == len(tasks_before)
    runs = [
        t for t in await service.orchestrator.history(tasks_before[0].id) if t.new == "executing"
    ]
    assert len(runs) == 1


async def _post(
    url: str, body: str, content_type: str, *, signed: bool = True, secret: str = SIGNING_SECRET,
    age_s: int = 0,
) -> int:  # fmt: skip
    stamp = int(time.time()) - age_s
    if not signed:
        async with aiohttp.ClientSession() as session, session.post(
            url, data=body, headers={"Content-Type": content_type}
        ) as response:  # fmt: skip
            return response.status
    status, _ = await post_signed(url, body, content_type, secret, timestamp=stamp)
    return status
