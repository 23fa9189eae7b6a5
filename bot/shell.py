"""`python -m bot shell`: the same conversation in a terminal, with no Slack at all."""

from __future__ import annotations

import asyncio
import sys
from typing import TextIO

from orchestrator import (
    ConfirmationRequested,
    Event,
    OpenAILLM,
    Orchestrator,
    Phase,
    PhaseChanged,
    PlanReplaced,
    StepChanged,
    StepState,
    Task,
    TaskFinished,
    TaskSubmitted,
    open_store,
    open_toolbox,
)

from . import render
from .conversation import Conversation, Where, parse_command, thread_scope
from .mrkdwn import unescape
from .render import Message
from .service import build_agents, build_llm_client
from .settings import Settings

USER = "you"
WHERE = Where("shell", "1")
SCOPE = thread_scope(WHERE.channel, "1")


class TerminalSurface:
    """The conversation's surface in a terminal: what happens is printed as it happens."""

    def __init__(self, out: TextIO) -> None:
        self._out = out

    def say(self, text: str) -> None:
        print(text, file=self._out, flush=True)

    def show(self, message: Message) -> None:
        """A rendered message, as a person reads it (Slack's escapes undone)."""
        self.say(_plain(message))

    async def notify(self, task: Task, message: str) -> None:
        self.say(f"notify: {message}")


async def run_shell(settings: Settings, stdin: TextIO = sys.stdin, out: TextIO = sys.stdout) -> int:
    """Read requests and commands line by line until end of input; exit code 0."""
    surface = TerminalSurface(out)
    llm_client = build_llm_client(settings)
    hands = settings.hands()
    toolbox = open_toolbox(hands.mcp_servers)
    orch = Orchestrator(
        store=open_store(settings.database_url),
        llm=OpenAILLM(llm_client, model=settings.orch_model),
        config=settings.orchestrator_config(),
        notifier=surface,
        toolbox=toolbox,
        agents=build_agents(hands),
    )
    conv = Conversation(orch)
    printer = asyncio.create_task(_print_events(orch, surface))
    await asyncio.sleep(0)  # let the printer subscribe before any task starts
    try:
        await toolbox.start()
        await orch.start()
        surface.show(render.shell_help())
        while line := await asyncio.to_thread(stdin.readline):
            await _handle_line(line.strip(), conv, surface)
    finally:
        await orch.close()
        await toolbox.close()
        printer.cancel()
        await asyncio.gather(printer, return_exceptions=True)
        await llm_client.close()
    return 0


async def _handle_line(line: str, conv: Conversation, surface: TerminalSurface) -> None:
    if not line:
        return
    word = parse_command(line)
    if word == "help":
        surface.show(render.shell_help())
        return
    if word is not None:
        reply = await conv.command(word, user=USER, where=WHERE)
        if reply is not None:
            surface.show(reply.message)
        return
    verb, _, step_id = line.partition(" ")
    if verb in ("run", "skip") and step_id:
        task_id = await _waiting_task(conv, step_id.strip())
        if task_id is None:
            surface.say(f"No step {step_id.strip()} is waiting for confirmation.")
            return
        reply = await conv.confirm(task_id, step_id.strip(), user=USER, run=verb == "run")
        if reply is not None:
            surface.show(reply.message)
        return
    await conv.request(line, user=USER, scope=SCOPE, message_keys=(), meta={})


async def _waiting_task(conv: Conversation, step_id: str) -> str | None:
    for task in await conv.tasks(WHERE, (Phase.EXECUTING,)):
        if any(s.id == step_id and s.state is StepState.AWAITING_CONFIRMATION for s in task.plan):
            return task.id
    return None


async def _print_events(orch: Orchestrator, surface: TerminalSurface) -> None:
    async with orch.subscribe() as events:
        async for event in events:
            text = await _describe(orch, event)
            if text:
                surface.say(text)


def _plain(message: Message) -> str:
    """Render's text is Slack mrkdwn; a terminal shows the words as they were written."""
    return unescape(message.text)


async def _describe(orch: Orchestrator, event: Event) -> str | None:
    task = await orch.get_task(event.task_id)
    if isinstance(event, TaskSubmitted):
        return _plain(render.planning(task))
    if isinstance(event, PhaseChanged) and event.new is Phase.AWAITING_APPROVAL:
        return _plain(render.plan(task)) + "\nType approve or reject."
    if isinstance(event, PhaseChanged) and event.old is Phase.AWAITING_APPROVAL:
        decided = f"{(event.reason or event.new.value).capitalize()} by {event.actor}."
        return decided if event.new.is_terminal else f"{decided}\n{_plain(render.executing(task))}"
    if isinstance(event, PhaseChanged) and not event.new.is_terminal:
        return _plain(render.phase(task))
    if isinstance(event, StepChanged):
        return f"[{event.step_id}] {event.new.value}" + (
            f": {event.reason}" if event.reason else ""
        )
    if isinstance(event, ConfirmationRequested):
        ask = _plain(render.confirmation(task, task.step(event.step_id), event.reason))
        return f"{ask}\nType run {event.step_id} or skip {event.step_id}."
    if isinstance(event, PlanReplaced):
        return _plain(render.replanned(task, event.plan_version, event.reason))
    if isinstance(event, TaskFinished):
        return _plain(render.summary(task))
    return None
