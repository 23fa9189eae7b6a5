"""A small MCP server of the tests' own, on the SDK's server side (`MCPServer`).

`python tests/fakes/mcp_server.py` serves stdio; with `--http [TOKEN]` it serves Streamable HTTP
on 127.0.0.1, a free port, printing its URL first (and, given a TOKEN, answers 401 to requests
without `Authorization: Bearer TOKEN`). Each call is appended, with the server's pid, to the file
$FAKE_MCP_LOG names, if any.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path
from typing import Any

import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations

READ_ONLY = ToolAnnotations(read_only_hint=True)
ADDITIVE = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False)
REACHES_OUT = ToolAnnotations(read_only_hint=False, destructive_hint=False)


def log(line: str) -> None:
    path = os.environ.get("FAKE_MCP_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"{os.getpid()} {line}\n")


def create_server() -> MCPServer:
    server = MCPServer("fake")

    @server.tool(description="Write a line into the record. No annotations.")
    def record(text: str) -> str:
        log(f"record {text}")
        return f"recorded: {text}"

    @server.tool(description="Wait some seconds, then say so.", annotations=READ_ONLY)
    async def slow(seconds: float) -> str:
        log(f"slow {seconds}")
        try:
            await asyncio.sleep(seconds)
        except BaseException:
            log("slow cancelled")
            raise
        return f"waited {seconds}s"

    @server.tool(description="Exit the server in the middle of the call.", annotations=READ_ONLY)
    async def die() -> str:
        log("die")
        print("dying on purpose", file=sys.stderr, flush=True)
        os._exit(3)

    @server.tool(description="Exit mid-call the first time only.", annotations=READ_ONLY)
    def die_once() -> str:
        marker = Path(os.environ["FAKE_MCP_LOG"] + ".died")
        log("die_once")
        if not marker.exists():
            marker.touch()
            os._exit(3)
        return "survived"

    @server.tool(description="Answer with an error saying `message`.", annotations=READ_ONLY)
    def fail(message: str) -> str:
        log(f"fail {message}")
        raise ToolError(message)

    @server.tool(description="The names of its environment's variables.", annotations=READ_ONLY)
    def environment() -> list[str]:
        return sorted(os.environ)

    @server.tool(description="Add a note; never deletes.", annotations=ADDITIVE)
    def note(text: str) -> str:
        return f"noted: {text}"

    @server.tool(description="Post somewhere outside.", annotations=REACHES_OUT)
    def post(text: str) -> dict[str, Any]:
        return {"posted": text, "where": "outside"}

    return server


def _require_token(app: Any, token: str) -> Any:
    async def guarded(scope: dict[str, Any], receive: Any, send: Any) -> None:
        headers = dict(scope.get("headers") or [])
        if scope["type"] == "http" and headers.get(b"authorization") != f"Bearer {token}".encode():
            await send({"type": "http.response.start", "status": 401, "headers": []})
            await send({"type": "http.response.body", "body": b"no"})
            return
        await app(scope, receive, send)

    return guarded


def main() -> None:
    log("start")
    server = create_server()
    if "--http" not in sys.argv:
        server.run()
        return
    app = server.streamable_http_app()
    rest = sys.argv[sys.argv.index("--http") + 1 :]
    if rest:
        app = _require_token(app, rest[0])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    print(f"http://127.0.0.1:{sock.getsockname()[1]}/mcp", flush=True)
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    asyncio.run(uvicorn.Server(config).serve(sockets=[sock]))


if __name__ == "__main__":
    main()
