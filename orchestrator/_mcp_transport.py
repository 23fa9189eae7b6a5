"""How an MCP server is reached: its command's stdio (with its stderr read), or its URL.

A stdio server's stderr is a pipe we read: each line is logged, the last kept to say why it
failed, and its end is the end of the server (the SDK says nothing until the next call finds it
gone), so a server that dies between calls is restarted at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TextIO

import httpx2
from mcp import StdioServerParameters
from mcp.client import Transport
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

from ._hands import McpServerConfig

log = logging.getLogger(__name__)
# A stdio server gets these of our variables, on top of the SDK's own few (HOME, LOGNAME, PATH,
# SHELL, TERM, USER), and its configured `env`: never a copy of ours, which holds the bot's tokens.
_PASSED_VARS = ("LANG", "LC_ALL", "TZ")
# Streamable HTTP: the SDK's defaults (30 s to connect, 300 s for a response stream).
_HTTP_TIMEOUT = httpx2.Timeout(30.0, read=300.0)
_LINE_CHARS = 300
_CHUNK = 64 * 1024


class ServerStderr:
    """Hands the server a pipe's write end as its stderr and reads the other end."""

    def __init__(self, name: str, file: TextIO, level: int) -> None:
        self.name = name
        self.level = level
        self.file = file  # for the server: `stdio_client(..., errlog=file)`
        self.last_line: str | None = None
        self.last_at = 0.0  # when it was written (monotonic clock)
        self._has_ended = False
        self._on_end: Callable[[], None] | None = None

    @classmethod
    @asynccontextmanager
    async def open(cls, name: str, *, level: int = logging.INFO) -> AsyncIterator[ServerStderr]:
        """A pipe for server `name`'s stderr, read until it closes or the context ends; each line
        is logged at `level`."""
        read_fd, write_fd = os.pipe()  # both ends close-on-exec: the server gets only its fd 2
        reader = asyncio.StreamReader()
        loop = asyncio.get_running_loop()
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(read_fd, "rb", buffering=0)
        )
        stderr = cls(name, os.fdopen(write_fd, "w", encoding="utf-8"), level)
        pump = asyncio.create_task(stderr._pump(reader), name=f"mcp-{name}-stderr")
        try:
            yield stderr
        finally:
            stderr.file.close()
            pump.cancel()
            await asyncio.gather(pump, return_exceptions=True)
            transport.close()

    def recent_line(self, within_s: float) -> str | None:
        """The last line, if written in the last `within_s` seconds (what a dying server said)."""
        return self.last_line if time.monotonic() - self.last_at <= within_s else None

    def release(self, on_end: Callable[[], None]) -> None:
        """The server has its own copy now: close ours, so that its death ends the stream, and
        call `on_end` when it does."""
        self.file.close()
        self._on_end = on_end
        if self._has_ended:
            on_end()

    async def _pump(self, reader: asyncio.StreamReader) -> None:
        # Read in chunks, not lines: a server must never block on a full pipe, however long a
        # line it writes.
        rest = b""
        while chunk := await reader.read(_CHUNK):
            *lines, rest = (rest + chunk).split(b"\n")
            rest = rest[-_CHUNK:]
            for line in lines:
                self._keep(line)
        self._keep(rest)
        self._has_ended = True
        if self._on_end is not None:
            self._on_end()

    def _keep(self, line: bytes) -> None:
        text = line.decode("utf-8", errors="replace").strip()
        if text:
            self.last_line = text[:_LINE_CHARS]
            self.last_at = time.monotonic()
            log.log(self.level, "MCP server %s: %s", self.name, self.last_line)


async def open_transport(
    stack: AsyncExitStack, name: str, config: McpServerConfig, *, level: int
) -> tuple[Transport, ServerStderr | None]:
    """What `mcp.Client` connects through, and a stdio server's stderr (lines logged at `level`);
    both live as long as `stack`."""
    if config.command is not None:
        stderr = await stack.enter_async_context(ServerStderr.open(name, level=level))
        env = {k: os.environ[k] for k in _PASSED_VARS if k in os.environ} | config.env
        params = StdioServerParameters(
            command=config.command, args=config.args, env=env, cwd=config.cwd
        )
        return stdio_client(params, errlog=stderr.file), stderr
    assert config.url is not None  # the hands file has one or the other
    http = await stack.enter_async_context(
        httpx2.AsyncClient(headers=config.headers, timeout=_HTTP_TIMEOUT)
    )
    return streamable_http_client(config.url, http_client=http), None
