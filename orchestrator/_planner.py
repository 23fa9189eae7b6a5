"""Turns a request into a validated plan through the LLM, repairing what fails validation."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from ._agents import CodingAgents
from ._config import OrchestratorConfig
from ._errors import LLMError, PlanningError, PlanValidationError, ShellRefusedError
from ._graph import validate_graph
from ._llm import LLM, Message
from ._models import Completion, PlanSpec, Step, StepSpec
from ._phases import Action, StepState, Tier
from ._prompts import render_prompt
from ._retry import with_retries
from ._risk import assess_tier, riskier, tool_tier
from ._shell import parse_command
from ._tools import NoTools, Toolbox, ToolSpec, check_tool_step, describe_tools, parse_arguments

REPAIR_ROUNDS = 2
_FENCE = re.compile(r"```(?:json)?\s*(\{.*?\})\s*```", re.DOTALL)


@dataclass(frozen=True)
class PlanResult:
    """A valid plan's steps in run order, and the tokens it took to get it."""

    steps: tuple[Step, ...]
    tokens: int


class Planner:
    """Asks the LLM for a plan, validates it and repairs it at most `REPAIR_ROUNDS` times."""

    def __init__(
        self,
        llm: LLM,
        config: OrchestratorConfig,
        *,
        toolbox: Toolbox | None = None,
        agents: CodingAgents | None = None,
    ) -> None:
        self._llm = llm
        self._config = config
        self._toolbox = toolbox or NoTools()
        self._agents = agents or CodingAgents()

    @property
    def actions(self) -> list[Action]:
        """Actions a plan may use: shell only when some binary is allowed, tool when some tool
        is available, implement only when some coding agent is configured."""
        offered = {
            Action.SHELL: self._config.is_shell_enabled,
            Action.TOOL: bool(self._toolbox.tools()),
            Action.IMPLEMENT: bool(self._agents.agents),
        }
        return [a for a in Action if offered.get(a, True)]

    async def build_plan(self, request: str) -> PlanResult:
        """A fresh plan for `request`."""
        messages = [self._system(), {"role": "user", "content": request}]
        return await self._ask(messages, plan_version=1, deadline=self._deadline())

    async def replan(
        self,
        request: str,
        *,
        completed: Sequence[Step],
        failed: Sequence[Step],
        taken_ids: Collection[str],
        plan_version: int,
    ) -> PlanResult:
        """New steps for what is left, knowing what succeeded and what failed and why."""
        prompt = render_prompt(
            "replan_user",
            completed="\n".join(f"- {s.id}: {s.description}" for s in completed) or "(none)",
            failed="\n".join(f"- {s.id}: {s.description}: {s.reason}" for s in failed),
            taken_ids=", ".join(sorted(taken_ids)),
            max_steps=self._config.max_steps,
        )
        messages = [
            self._system(),
            {"role": "user", "content": request},
            {"role": "user", "content": prompt},
        ]
        done = {s.id for s in completed}
        return await self._ask(
            messages,
            plan_version=plan_version,
            deadline=self._deadline(),
            outside=done,
            taken=set(taken_ids) - done,
        )

    def _deadline(self) -> float:
        """When to stop retrying a model that keeps failing (monotonic clock)."""
        return time.monotonic() + self._config.planning_timeout_s

    def _system(self) -> Message:
        content = render_prompt(
            "plan_system",
            actions=", ".join(a.value for a in self.actions),
            shell_allow=", ".join(sorted(self._config.shell_allow)) or "none (shell is off)",
            max_steps=self._config.max_steps,
            tools=describe_tools(self._toolbox.tools()),
        )
        return {"role": "system", "content": content}

    async def _ask(
        self,
        messages: list[Message],
        *,
        plan_version: int,
        deadline: float,
        outside: Collection[str] = (),
        taken: Collection[str] = (),
    ) -> PlanResult:
        tokens = 0
        error = "no reply"
        for _ in range(1 + REPAIR_ROUNDS):
            completion = await self._complete(messages, deadline)
            tokens += completion.tokens
            try:
                steps = self.parse_plan(
                    completion.text, plan_version=plan_version, outside=outside, taken=taken
                )
            except PlanValidationError as err:
                error = err.reason
                messages = [
                    *messages,
                    {"role": "assistant", "content": completion.text},
                    {"role": "user", "content": render_prompt("repair_user", error=error)},
                ]
                continue
            return PlanResult(steps=steps, tokens=tokens)
        raise PlanningError(
            f"the model's plan was still invalid after {REPAIR_ROUNDS} repairs: {error}"
        )

    async def _complete(self, messages: list[Message], deadline: float) -> Completion:
        cfg = self._config
        try:
            return await with_retries(
                lambda: self._llm.complete(messages, schema=plan_schema(self.actions)),
                budget_s=deadline - time.monotonic(),
                base_s=cfg.retry_base_s,
                cap_s=cfg.retry_max_s,
            )
        except LLMError as err:
            raise PlanningError(f"could not get a plan from the model: {err.reason}") from err

    def parse_plan(
        self,
        text: str,
        *,
        plan_version: int = 1,
        outside: Collection[str] = (),
        taken: Collection[str] = (),
    ) -> tuple[Step, ...]:
        """Validate the LLM's text as a plan; `PlanValidationError` says what is wrong."""
        try:
            spec = _read_plan(text)
        except ValidationError as err:
            raise PlanValidationError(_describe(err)) from err
        tools = {t.name: t for t in self._toolbox.tools()}
        allowed = [a.value for a in self.actions]
        problems = [self._check_action(s, tools, allowed) for s in spec.steps]
        if any(problems):
            raise PlanValidationError("; ".join(p for p in problems if p))
        ordered = validate_graph(
            spec.steps, max_steps=self._config.max_steps, outside_ids={*outside, *taken}
        )
        not_run = set(taken)
        for s in spec.steps:
            if not not_run.isdisjoint(s.depends_on):
                raise PlanValidationError(f"step {s.id!r} depends on a step that did not run")
        return tuple(
            self._step(s, tools.get(s.tool), plan_version, position=i)
            for i, s in enumerate(ordered)
        )

    def _check_action(
        self, spec: StepSpec, tools: dict[str, ToolSpec], allowed: list[str]
    ) -> str | None:
        step_id, action = spec.id, spec.action
        if action not in allowed:
            return f"step {step_id!r} has action {action!r}; use one of {', '.join(allowed)}"
        if action == Action.SHELL.value:
            try:
                parse_command(spec.input, self._config.shell_allow)
            except ShellRefusedError as err:
                return f"step {step_id!r}: {err.reason}"
        if action == Action.TOOL.value:
            tool = tools.get(spec.tool)
            return check_tool_step(step_id, tool, spec.tool, spec.input, spec.depends_on)
        return None

    def _step(
        self, spec: StepSpec, tool: ToolSpec | None, plan_version: int, *, position: int
    ) -> Step:
        """A checked step as stored; a tool step names its tool, its arguments re-serialised."""
        action = Action(spec.action)
        step = Step(
            id=spec.id,
            description=spec.description,
            action=action,
            input=spec.input,
            depends_on=tuple(dict.fromkeys(spec.depends_on)),
            tier=assess_tier(action, spec.input, spec.tier),
            state=StepState.PENDING,
            plan_version=plan_version,
            position=position,
        )
        if action is Action.IMPLEMENT:  # any agent may end up running it: the riskiest counts
            return step.evolve(tier=riskier(step.tier, self._agents.tier))
        if action is not Action.TOOL or tool is None:
            return step
        arguments = json.dumps(parse_arguments(spec.input), ensure_ascii=False)
        tier = tool_tier(tool.tier, spec.tier, is_fixed=tool.is_fixed)
        return step.evolve(input=arguments, tier=tier, tool=tool.name)


def plan_schema(actions: Sequence[Action]) -> dict[str, Any]:
    """The JSON schema of a plan (strict: every field required, nothing else allowed)."""
    step = {
        "type": "object",
        "additionalProperties": False,
        "required": ["id", "description", "action", "tool", "input", "depends_on", "tier"],
        "properties": {
            "id": {"type": "string"},
            "description": {"type": "string"},
            "action": {"type": "string", "enum": [a.value for a in actions]},
            "tool": {"type": "string"},
            "input": {"type": "string"},
            "depends_on": {"type": "array", "items": {"type": "string"}},
            "tier": {"type": "string", "enum": [t.value for t in Tier]},
        },
    }
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["steps"],
        "properties": {"steps": {"type": "array", "items": step}},
    }


def _read_plan(text: str) -> PlanSpec:
    """The reply as a plan: parsed by pydantic's own JSON reader when it is bare JSON (as
    structured output is), else found in the text first."""
    try:
        return PlanSpec.model_validate_json(text)
    except ValidationError as err:
        if all(e["loc"] for e in err.errors()):
            raise  # a JSON object, and not a plan: the fields say why
    return PlanSpec.model_validate(extract_json(text))


def extract_json(text: str) -> Any:
    """The JSON object in the reply, bare, in a markdown fence, or inside prose."""
    candidates = [text.strip()]
    candidates += [m.group(1) for m in _FENCE.finditer(text)]
    if "{" in text:
        candidates.append(text[text.index("{") :])
    decoder = json.JSONDecoder()
    for candidate in candidates:
        try:
            value, _ = decoder.raw_decode(candidate)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    raise PlanValidationError("the reply is not a JSON object: " + _snippet(text))


def _describe(err: ValidationError) -> str:
    parts = []
    for e in err.errors()[:8]:
        where = ".".join(str(p) for p in e["loc"]) or "plan"
        parts.append(f"{where}: {e['msg']}")
    return "; ".join(parts)


def _snippet(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= limit else text[:limit] + "…")
