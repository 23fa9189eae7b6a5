"""What each step action does: LLM actions, shell commands, notifications, coding agents."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from ._agents import CodingAgents
from ._config import OrchestratorConfig
from ._errors import StepError
from ._llm import LLM
from ._models import Step, Task
from ._phases import Action
from ._prompts import render_prompt
from ._sandbox import Isolation
from ._shell import run_command
from ._tools import NoTools, Toolbox, fill_arguments

log = logging.getLogger(__name__)
# Each dependency's output is cut to this many characters in an LLM step's context.
_CONTEXT_CHARS = 6000


class Notifier(Protocol):
    """Delivers a notify step's message to the task's conversation (the bot implements this)."""

    async def notify(self, task: Task, message: str) -> None: ...


class LogNotifier:
    """The default notifier: the message goes to the log."""

    async def notify(self, task: Task, message: str) -> None:
        log.info("notify task %s (%s): %s", task.id, task.scope, message)


@dataclass(frozen=True)
class StepOutcome:
    """What a step produced and the LLM tokens it spent."""

    output: str
    tokens: int = 0


class ActionRunner:
    """Runs one attempt of one step; retries and timeouts are the executor's."""

    def __init__(
        self,
        llm: LLM,
        config: OrchestratorConfig,
        notifier: Notifier,
        *,
        toolbox: Toolbox | None = None,
        agents: CodingAgents | None = None,
    ) -> None:
        self._llm = llm
        self._config = config
        self._notifier = notifier
        self._toolbox = toolbox or NoTools()
        self.agents = agents or CodingAgents()
        self.isolation: Isolation | None = None  # found by the orchestrator's start()

    def running_note(self, step: Step) -> str | None:
        """What to record as a starting step's reason: how its process (shell, agent) is held."""
        held = {Action.SHELL: self.isolation, Action.IMPLEMENT: self.agents.isolation}
        isolation = held.get(step.action)
        return isolation.running_note if isolation is not None else None

    def timeout_s(self, step: Step) -> float:
        """How long the step may run: an implement step, as long as its agents may take."""
        if step.action is Action.IMPLEMENT:
            return self.agents.timeout_s
        return self._config.step_timeout_s

    async def run(self, task: Task, step: Step, inputs: Sequence[Step]) -> StepOutcome:
        """Do the step, given the completed steps it depends on."""
        if step.action.is_llm:
            return await self._run_llm(task, step, inputs)
        if step.action is Action.SHELL:
            if self.isolation is None:
                raise StepError("shell isolation is unknown: the orchestrator was not started")
            output = await run_command(
                step.input,
                allow=self._config.shell_allow,
                isolation=self.isolation,
                timeout_s=self._config.step_timeout_s,
                output_cap=self._config.shell_output_cap,
            )
            return StepOutcome(output)
        if step.action is Action.TOOL:
            arguments = fill_arguments(step.input, {s.id: s.output for s in inputs})
            return StepOutcome(await self._toolbox.call(step.tool, arguments))
        if step.action is Action.IMPLEMENT:
            return StepOutcome(await self.agents.implement(step.input))
        await self._notifier.notify(task, step.input)
        return StepOutcome(f"posted: {step.input}")

    async def _run_llm(self, task: Task, step: Step, inputs: Sequence[Step]) -> StepOutcome:
        context = "\n\n".join(
            f"### {s.id}: {s.description}\n{(s.output or '')[:_CONTEXT_CHARS]}" for s in inputs
        )
        user = f"Request: {task.request}\nThis step: {step.description}\nInput: {step.input}"
        if context:
            user += f"\n\nResults of the steps this one depends on:\n{context}"
        messages = [
            {"role": "system", "content": render_prompt("step_system", action=step.action.value)},
            {"role": "user", "content": user},
        ]
        completion = await self._llm.complete(messages)
        return StepOutcome(completion.text, completion.tokens)
