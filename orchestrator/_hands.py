"""The hands file (`ORCH_MCP_CONFIG`): MCP servers whose tools steps may call, and coding agents.

The format is the one MCP clients already use (`{"mcpServers": {...}}`), with two keys of ours
per server (`tools`, `tiers`) and a second top-level key, `agents`. A bad file is a `ConfigError`
naming the first thing wrong, so start-up stops with one line.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ._errors import ConfigError
from ._phases import Tier

# Server and agent names become part of tool names ("server.tool") and of messages.
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
SPEC = "{spec}"  # in an agent's args: replaced by the step's specification


class McpServerConfig(BaseModel):
    """One MCP server: a command to launch (stdio) or a URL (Streamable HTTP)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["stdio", "http", "streamable-http", "streamableHttp"] | None = None
    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    tools: list[str] | None = None  # ours: expose only these tools
    tiers: dict[str, Tier] = Field(default_factory=dict)  # ours: the operator's final word

    @model_validator(mode="after")
    def _one_transport(self) -> McpServerConfig:
        if (self.command is None) == (self.url is None):
            raise ValueError('give either "command" (a stdio server) or "url" (Streamable HTTP)')
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise ValueError('"url" must be an http(s) URL')
        return self

    @property
    def is_stdio(self) -> bool:
        return self.command is not None


class AgentConfig(BaseModel):
    """One coding agent: a command line that implements a specification."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    command: str = Field(min_length=1)
    args: list[str] = Field(default_factory=list)
    cwd: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    timeout_s: float = Field(1800.0, gt=0)
    tier: Tier = Tier.EXECUTE


class HandsConfig(BaseModel):
    """The whole file. Either key may be absent; order is kept (agents escalate in order)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    mcp_servers: dict[str, McpServerConfig] = Field(default_factory=dict, alias="mcpServers")
    agents: dict[str, AgentConfig] = Field(default_factory=dict)

    @field_validator("mcp_servers", "agents")
    @classmethod
    def _names(cls, value: dict[str, object]) -> dict[str, object]:
        for name in value:
            if not _NAME.match(name):
                raise ValueError(f"name {name!r} must be letters, digits, _ or - (at most 64)")
        return value


def load_hands(path: str | Path | None) -> HandsConfig:
    """The hands file at `path`; empty when `path` is unset or empty. `ConfigError` if bad."""
    if not path:
        return HandsConfig()
    where = f"ORCH_MCP_CONFIG ({path})"
    try:
        raw = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read it: {exc.strerror or exc}") from None
    if not raw.strip():
        return HandsConfig()
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{where}: not JSON: {exc.msg} at line {exc.lineno}") from None
    try:
        return HandsConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        at = ".".join(str(p) for p in first["loc"]) or "the file"
        raise ConfigError(f"{where}: {at}: {first['msg']}") from None
