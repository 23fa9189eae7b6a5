"""`McpToolbox`: the `Toolbox` of the MCP servers in the hands file, through the official SDK."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from typing import Any

from mcp.types import CallToolResult, TextContent

from ._errors import StepError
from ._hands import McpServerConfig
from ._mcp_connection import ServerConnection, ServerStatus
from ._tools import ToolSpec, schema_problems


class McpToolbox:
    """Tools of the configured MCP servers; `start()` before use (servers start with the bot)."""

    def __init__(
        self,
        servers: Mapping[str, McpServerConfig],
        *,
        start_timeout_s: float = 30.0,
        output_cap: int = 16_000,
        restart_base_s: float = 0.5,
        restart_max_s: float = 30.0,
    ) -> None:
        """`start_timeout_s` each server has to answer; `output_cap` characters kept of a result;
        a server that dies is restarted after `restart_base_s`, doubled per failure in a row."""
        self._servers = {
            name: ServerConnection(
                name,
                config,
                start_timeout_s=start_timeout_s,
                restart_base_s=restart_base_s,
                restart_max_s=restart_max_s,
            )
            for name, config in servers.items()
        }
        self._output_cap = output_cap

    async def start(self) -> None:
        """Start every server; return once each is up or has failed (and keeps retrying)."""
        await asyncio.gather(*(s.start() for s in self._servers.values()))

    async def close(self) -> None:
        """Stop every server."""
        await asyncio.gather(*(s.close() for s in self._servers.values()))

    def status(self) -> list[ServerStatus]:
        """Each configured server: up or why not, and its tools."""
        return [s.status for s in self._servers.values()]

    def tools(self) -> Sequence[ToolSpec]:
        """The tools of the servers that are up, exposed ones only."""
        return [tool for server in self._servers.values() for tool in server.tools]

    async def call(self, name: str, arguments: dict[str, Any]) -> str:
        """Call tool `name` ("server.tool"); its text (and structured content) as the output."""
        server_name, _, tool = name.partition(".")
        server = self._servers.get(server_name)
        if server is None or (server.config.tools is not None and tool not in server.config.tools):
            raise StepError(f"there is no tool {name!r}", retryable=False)
        spec = server.spec(tool)
        problems = schema_problems(spec, arguments) if spec else None
        if problems:
            raise StepError(f"the arguments do not fit {name}: {problems}", retryable=False)
        result = await server.call(tool, arguments)
        text = _text(result)
        if result.is_error:
            raise StepError(f"{name} answered with an error: {_cut(text, 2000)}", retryable=False)
        return _cut(text, self._output_cap)


def _text(result: CallToolResult) -> str:
    """Text blocks, then the structured content as JSON unless the text already says it."""
    parts = [
        b.text if isinstance(b, TextContent) else f"[{b.type} content]" for b in result.content
    ]
    structured = result.structured_content
    if structured is not None and not _repeats(parts, structured):
        parts.append(json.dumps(structured, ensure_ascii=False, indent=2))
    return "\n".join(parts) or "(no output)"


def _repeats(parts: list[str], structured: Any) -> bool:
    """Whether text blocks say `structured` already: as its JSON, or as the SDK writes a plain
    value it wraps as {"result": value} (one block per item of a list)."""
    is_wrapped = isinstance(structured, dict) and structured.keys() == {"result"}
    inner = structured["result"] if is_wrapped else structured
    forms = [structured, inner, inner if isinstance(inner, list) else [inner]]
    said = [_parsed(p) for p in parts]
    return said in forms or any(s in forms for s in said)


def _parsed(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n[output cut: {len(text) - limit} more characters not shown]"
