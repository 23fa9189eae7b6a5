"""Tool steps, whatever serves the tools: the `Toolbox` protocol, plan checks and {{s1}} filling.

A tool step's `input` is a JSON object of the tool's arguments; a string value may hold `{{s1}}`,
which stands for the output of step s1 (one of the step's dependencies).
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ._errors import StepError
from ._hands import McpServerConfig
from ._phases import Tier

if TYPE_CHECKING:
    from ._mcp import McpToolbox
    from ._mcp_connection import ServerStatus

_REFERENCE = re.compile(r"\{\{\s*([^{}\s]+)\s*\}\}")
# What the planner's prompt shows of a tool, so a chatty server cannot crowd out the rest.
_DESCRIPTION_CHARS = 400
_ARGUMENT_CHARS = 160
_SCHEMA_ERRORS = 3


@dataclass(frozen=True)
class ToolSpec:
    """A tool a plan may call: its name ("server.tool"), what it does, its arguments, its tier.

    `tier` is the floor: from the tool's annotations, or the operator's word when `is_fixed`."""

    name: str
    description: str
    input_schema: Mapping[str, Any] = field(default_factory=dict)
    tier: Tier = Tier.DESTRUCTIVE
    is_fixed: bool = False


class Toolbox(Protocol):
    """Tools for `tool` steps: those that can be called now, and a call."""

    def tools(self) -> Sequence[ToolSpec]:
        """The tools available now (a server that is down offers none)."""
        ...

    async def call(self, name: str, arguments: dict[str, Any]) -> str:
        """Call tool `name` ("server.tool"); its output, or `StepError` in the tool's words."""
        ...


class NoTools:
    """The toolbox of an orchestrator given none: no tools, so plans have no tool steps."""

    def tools(self) -> Sequence[ToolSpec]:
        return ()

    async def call(self, name: str, arguments: dict[str, Any]) -> str:
        raise StepError(f"no tool {name!r}: no tools are configured", retryable=False)

    async def start(self) -> None:
        """Nothing to start."""

    async def close(self) -> None:
        """Nothing to close."""

    def status(self) -> list[ServerStatus]:
        """No servers."""
        return []


def open_toolbox(servers: Mapping[str, McpServerConfig]) -> McpToolbox | NoTools:
    """The toolbox of `servers` (start it, close it); NoTools when there are none, so a program
    without servers never imports the MCP SDK."""
    if not servers:
        return NoTools()
    from ._mcp import McpToolbox  # noqa: PLC0415 - heavy (about 30 MB); only with servers

    return McpToolbox(servers)


def parse_arguments(text: str) -> dict[str, Any]:
    """A tool step's input as its JSON object of arguments; `StepError` if it is not one."""
    try:
        value = json.loads(text or "{}")
    except json.JSONDecodeError as exc:
        raise StepError(f"the arguments are not JSON: {exc.msg}", retryable=False) from None
    if not isinstance(value, dict):
        raise StepError("the arguments must be one JSON object", retryable=False)
    return value


def fill_arguments(text: str, outputs: Mapping[str, str | None]) -> dict[str, Any]:
    """The arguments of a tool step with each `{{id}}` in a string value replaced by that step's
    output (from `outputs`; a reference to a step not there stays as written)."""

    def fill(value: Any) -> Any:
        if isinstance(value, str):
            return _REFERENCE.sub(lambda m: _output(m, outputs), value)
        if isinstance(value, list):
            return [fill(v) for v in value]
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        return value

    filled: dict[str, Any] = fill(parse_arguments(text))
    return filled


def references(arguments: Any) -> set[str]:
    """The step ids named as `{{id}}` in the string values of parsed arguments."""
    if isinstance(arguments, str):
        return set(_REFERENCE.findall(arguments))
    if isinstance(arguments, dict):
        arguments = list(arguments.values())
    if isinstance(arguments, list):
        return set[str]().union(*(references(v) for v in arguments))
    return set()


def check_tool_step(
    step_id: str, tool: ToolSpec | None, name: str, text: str, depends_on: Collection[str]
) -> str | None:
    """What is wrong with a tool step, said for the model to repair, or None."""
    if tool is None:
        return f"step {step_id!r} names tool {name!r}, which is not one of the tools listed"
    try:
        arguments = parse_arguments(text)
    except StepError as err:
        return f"step {step_id!r}: {err.reason}"
    strangers = sorted(references(arguments) - set(depends_on))
    if strangers:
        return f"step {step_id!r} uses the output of {', '.join(strangers)}; add it to depends_on"
    problems = schema_problems(tool, arguments)
    if problems:
        return f"step {step_id!r}: the arguments do not fit {name}: {problems}"
    return None


def schema_problems(tool: ToolSpec, arguments: dict[str, Any]) -> str | None:
    """Where `arguments` break the tool's input schema, or None when they fit."""
    import jsonschema  # noqa: PLC0415 - heavy, and needed only where tools are planned

    try:
        validator_class = jsonschema.validators.validator_for(tool.input_schema)
        validator = validator_class(tool.input_schema)
        errors = sorted(validator.iter_errors(arguments), key=lambda e: list(e.absolute_path))
    except jsonschema.SchemaError:
        return None  # the server's own schema is broken; the server judges its arguments
    if not errors:
        return None
    return "; ".join(
        f"{'.'.join(str(p) for p in e.absolute_path) or 'arguments'}: {e.message}"
        for e in errors[:_SCHEMA_ERRORS]
    )


def describe_tools(tools: Sequence[ToolSpec]) -> str:
    """The tools as the planner's prompt lists them: name, tier, what it does, its arguments."""
    if not tools:
        return "none"
    return "\n".join(_describe(tool) for tool in tools)


def _describe(tool: ToolSpec) -> str:
    head = f"- {tool.name} (tier {tool.tier.value}): {_short(tool.description, _DESCRIPTION_CHARS)}"
    properties = tool.input_schema.get("properties")
    if not isinstance(properties, dict) or not properties:
        return f"{head}\n  arguments: none"
    required = set(tool.input_schema.get("required") or ())
    lines = [head, "  arguments:"]
    for name, value in properties.items():
        schema = value if isinstance(value, dict) else {}
        kind = schema.get("type", "any")
        need = "required" if name in required else "optional"
        about = _short(str(schema.get("description", "")), _ARGUMENT_CHARS)
        choices = f" one of {json.dumps(schema['enum'])}" if "enum" in schema else ""
        lines.append(f"    {name} ({kind}, {need}){choices}{': ' + about if about else ''}")
    return "\n".join(lines)


def _short(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _output(match: re.Match[str], outputs: Mapping[str, str | None]) -> str:
    step_id = match.group(1)
    if step_id not in outputs:
        return match.group(0)
    return outputs[step_id] or ""
