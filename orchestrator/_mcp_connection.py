"""One MCP server kept connected (the official SDK's `mcp.Client`): started, its tools listed,
restarted with backoff when it dies. The SDK's errors are mapped to `StepError` here."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import anyio
import httpx2
from mcp import Client, MCPError
from mcp.types import CONNECTION_CLOSED, CallToolResult, Implementation, Tool
from pydantic import ValidationError

from ._errors import StepError
from ._hands import McpServerConfig
from ._mcp_transport import open_transport
from ._risk import annotated_tier
from ._tools import ToolSpec

log = logging.getLogger(__name__)

# Up this long, a server counts as healthy: its next death restarts it without the backoff grown.
_HEALTHY_S = 60.0
# A call finding the server down waits for its restart if the next try is this close.
_RESTART_WAIT_S = 5.0
# Closing waits for the SDK's stdio shutdown: 2 s for the server to exit, 2 s more after SIGTERM.
_CLOSE_S = 6.0
# What a server wrote to stderr this shortly before it died is quoted as why.
_LAST_WORDS_S = 2.0
_LIST_PAGES = 100  # a server whose tool list never ends is cut off here
_CLIENT = Implementation(name="slack-orchestrator", version="0.1.0")


@dataclass(frozen=True)
class ServerStatus:
    """One configured MCP server as it stands: up or why not, and the tools it offers."""

    name: str
    is_up: bool
    problem: str | None
    tools: tuple[ToolSpec, ...]
    missing: tuple[str, ...] = ()  # named in its "tools" but not served


class ServerConnection:
    """A supervised connection to one server; `call` reaches it while it is up."""

    def __init__(
        self,
        name: str,
        config: McpServerConfig,
        *,
        start_timeout_s: float,
        restart_base_s: float,
        restart_max_s: float,
    ) -> None:
        self.name = name
        self.config = config
        self._start_timeout_s = start_timeout_s
        self._restart_base_s = restart_base_s
        self._restart_max_s = restart_max_s
        self._client: Client | None = None
        self._generation = 0  # one per connection, so a late report of a death is ignored
        self._tools: tuple[ToolSpec, ...] = ()
        self._missing: tuple[str, ...] = ()
        self._problem: str | None = "not started"
        self._attempts = 0  # attempts to start it, begun
        self._tries = 0  # attempts ended (failed to start, or up and later lost)
        self._is_starting = False  # an attempt has begun and is not up yet
        self._retry_at = 0.0  # when the next attempt begins (monotonic); 0 while one runs
        self._changed = asyncio.Condition()  # notified when it comes up or an attempt ends
        self._wake = asyncio.Event()  # the connection was lost, or we are closing
        self._is_closing = False
        self._was_up = False  # the current attempt got it up
        self._is_failing = False  # "cannot start" was logged, and it has not been up since
        self._task: asyncio.Task[None] | None = None

    @property
    def status(self) -> ServerStatus:
        """Up or why not, and the tools exposed."""
        return ServerStatus(
            self.name, self._client is not None, self._problem, self._tools, self._missing
        )

    @property
    def tools(self) -> tuple[ToolSpec, ...]:
        """The exposed tools while the server is up; none while it is down."""
        return self._tools if self._client is not None else ()

    def spec(self, tool: str) -> ToolSpec | None:
        """The tool as last listed, even while the server restarts."""
        return next((t for t in self._tools if t.name == f"{self.name}.{tool}"), None)

    async def start(self) -> None:
        """Start the server in the background; return once it is up or its first try failed."""
        self._task = asyncio.create_task(self._supervise(), name=f"mcp-{self.name}")
        await self._settled(1, timeout=None)

    async def close(self) -> None:
        """Stop the server and its supervision."""
        self._is_closing = True
        self._wake.set()
        if self._task is None:
            return
        if self._client is None:  # starting, or waiting to: nothing to wind down
            self._task.cancel()
        done, _ = await asyncio.wait({self._task}, timeout=_CLOSE_S)
        if not done:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def call(self, tool: str, arguments: dict[str, Any]) -> CallToolResult:
        """Call `tool`; a call cut off by a dying server is made once more after the restart."""
        for _ in range(2):
            client, generation = await self._connected()
            try:
                return await client.call_tool(tool, arguments)
            except MCPError as err:
                if err.code != CONNECTION_CLOSED:
                    raise StepError(f"{self.name}.{tool}: {err.message}", retryable=False) from None
            except ValidationError:
                raise StepError(
                    f"{self.name}.{tool} answered with something that is not a tool result",
                    retryable=False,
                ) from None
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, httpx2.HTTPError):
                pass  # the transport broke under the call: the server is gone
            self._lose(generation)
        raise StepError(
            f"MCP server {self.name} stopped during the call to {tool}, and again after a restart",
            retryable=False,
        )

    async def _connected(self) -> tuple[Client, int]:
        """The live client, waiting for a restart that is running or due soon."""
        if self._client is None:
            # The attempt starting now, else the next one (this one is up, or being lost).
            target = self._attempts if self._is_starting else self._attempts + 1
            wait = max(0.0, self._retry_at - time.monotonic())
            await self._settled(target, timeout=wait + _RESTART_WAIT_S + self._start_timeout_s)
        if self._client is None:
            raise StepError(
                f"MCP server {self.name} is not running ({self._problem})", retryable=True
            )
        return self._client, self._generation

    async def _settled(self, tries: int, *, timeout: float | None) -> None:
        """Return once the server is up, `tries` attempts have ended, or the next is far off."""

        def is_settled() -> bool:
            far_off = self._retry_at - time.monotonic() > _RESTART_WAIT_S
            return self._client is not None or self._tries >= tries or far_off

        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(is_settled)

    async def _announce(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def _lose(self, generation: int) -> None:
        """The connection `generation` is gone: stop offering it and let the supervisor restart."""
        if generation == self._generation and self._client is not None:
            self._client = None
            self._wake.set()

    async def _supervise(self) -> None:
        failures = 0
        while not self._is_closing:
            began = time.monotonic()
            self._was_up = False
            self._retry_at = 0.0
            self._attempts += 1
            self._is_starting = True
            try:
                await self._serve(is_quiet=self._is_failing)
            except Exception as exc:  # the SDK raises what its transports raise, often grouped
                self._problem = _describe(exc)
            self._client = None
            self._is_starting = False
            if time.monotonic() - began >= _HEALTHY_S:
                failures = 0
            delay = min(self._restart_max_s, self._restart_base_s * 2**failures)
            self._retry_at = time.monotonic() + delay
            self._tries += 1
            await self._announce()
            if self._is_closing:
                return
            self._report()
            failures += 1
            self._wake.clear()  # it may hold the loss just handled; now only closing sets it
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()

    def _report(self) -> None:
        """Log a server that stopped each time, one that cannot start once until it is up."""
        if self._was_up:
            log.warning("MCP server %s stopped (%s); restarting", self.name, self._problem)
        elif not self._is_failing:
            self._is_failing = True
            log.warning(
                "MCP server %s cannot start (%s); its tools are left out of plans, retrying "
                "with backoff",
                self.name,
                self._problem,
            )
        else:
            log.debug("MCP server %s still cannot start: %s", self.name, self._problem)

    async def _serve(self, *, is_quiet: bool) -> None:
        """Connect, list the tools, and offer them until the connection is lost. `is_quiet`: a
        retry of a server that keeps failing, whose stderr was logged already."""
        self._wake.clear()
        async with AsyncExitStack() as stack:
            level = logging.DEBUG if is_quiet else logging.INFO
            transport, stderr = await open_transport(stack, self.name, self.config, level=level)
            client = Client(transport, cache=None, client_info=_CLIENT)
            try:
                async with asyncio.timeout(self._start_timeout_s):
                    await stack.enter_async_context(client)
                    listed = await _list_tools(client)
            except TimeoutError:
                raise _StartError(f"no answer within {self._start_timeout_s:g}s") from None
            except Exception as exc:
                output = f"; it said: {stderr.last_line}" if stderr and stderr.last_line else ""
                raise _StartError(_describe(exc) + output) from exc
            self._offer(client, listed)
            await self._announce()
            generation = self._generation
            if stderr is not None:
                stderr.release(on_end=lambda: self._lose(generation))
            await self._wake.wait()
            said = stderr.recent_line(_LAST_WORDS_S) if stderr and not self._is_closing else None
            gone = "closed" if self._is_closing else "it stopped answering"
            self._problem = f"{gone}; it said: {said}" if said else gone

    def _offer(self, client: Client, listed: list[Tool]) -> None:
        exposed = self.config.tools
        by_name = {t.name: t for t in listed}
        names = [n for n in by_name if exposed is None or n in exposed]
        self._missing = tuple(n for n in exposed or () if n not in by_name)
        self._tools = tuple(self._spec(by_name[n]) for n in names)
        self._generation += 1
        self._is_starting = False
        self._was_up = True
        self._is_failing = False
        self._client = client
        self._problem = None
        log.info("MCP server %s is up: %d tools", self.name, len(self._tools))

    def _spec(self, tool: Tool) -> ToolSpec:
        fixed = self.config.tiers.get(tool.name)
        hints = tool.annotations
        floor = annotated_tier(
            read_only=hints.read_only_hint if hints else None,
            destructive=hints.destructive_hint if hints else None,
            open_world=hints.open_world_hint if hints else None,
        )
        return ToolSpec(
            name=f"{self.name}.{tool.name}",
            description=tool.description or tool.title or "",
            input_schema=tool.input_schema,
            tier=fixed or floor,
            is_fixed=fixed is not None,
        )


class _StartError(Exception):
    """The server did not come up; the message says why."""


async def _list_tools(client: Client) -> list[Tool]:
    tools: list[Tool] = []
    cursor: str | None = None
    for _ in range(_LIST_PAGES):
        page = await client.list_tools(cursor=cursor)
        tools += page.tools
        cursor = page.next_cursor
        if cursor is None:
            break
    return tools


def _describe(exc: BaseException) -> str:
    """One line for an error the SDK raised: the first real error inside any groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, _StartError):
        return str(exc)
    if isinstance(exc, MCPError) and exc.code == CONNECTION_CLOSED:
        return "it closed the connection"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}" + (f": {exc.filename}" if exc.filename else "")
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
