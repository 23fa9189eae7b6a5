"""`python -m bot check`: settings valid, Slack and the LLM reachable, the database and its
schema version, how shell steps are held, which MCP servers start and the tools they offer, and
which coding agents implement steps may use."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import openai
from slack_sdk.errors import SlackApiError

from orchestrator import (
    ConfigError,
    ReplicaStore,
    StoreError,
    detect_isolation,
    open_store,
    open_toolbox,
)

from .service import build_agents, build_llm_client
from .settings import Settings
from .slack_io import build_client

if TYPE_CHECKING:
    from orchestrator import ServerStatus


async def run_check(settings: Settings, out: TextIO = sys.stdout) -> int:
    """0 when all is well; otherwise 1, with one line per problem saying what to fix."""
    problems = settings.slack_problems() + settings.llm_problems()
    if not settings.slack_problems():
        problems += await _check_slack(settings, out)
    if not settings.llm_problems():
        problems += await _check_llm(settings, out)
    problems += await _check_database(settings, out)
    problems += await _check_shell(settings, out)
    problems += await _check_tools(settings, out)
    problems += _check_agents(settings, out)
    for problem in problems:
        print(f"problem: {problem}", file=out)
    if not problems:
        print("all good", file=out)
    return 1 if problems else 0


async def _check_slack(settings: Settings, out: TextIO) -> list[str]:
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else ""
    client = build_client(token, settings.slack_api_url)
    try:
        auth = await client.auth_test()
    except SlackApiError as err:
        error = err.response.get("error")
        return [f"SLACK_BOT_TOKEN: Slack refused it ({error}); copy the bot token again"]
    except Exception as exc:
        return [f"SLACK_API_URL: cannot reach {settings.slack_api_url} ({type(exc).__name__})"]
    print(f"slack: connected as {auth.get('user')} in {auth.get('team')}", file=out)
    return []


async def _check_database(settings: Settings, out: TextIO) -> list[str]:
    """Where state lives and its schema version (opening it migrates, as the bot's start would)."""
    try:
        store = open_store(settings.database_url)
    except ConfigError as err:
        return [err.reason]
    try:
        await store.open()
        version = await store.schema_version()
        ttl = settings.orch_lease_ttl_s
        replicas = await store.replicas(ttl) if isinstance(store, ReplicaStore) else None
    except StoreError as err:
        return [f"DATABASE_URL: {err.reason}"]
    finally:
        await store.close()
    print(f"database: {store.where}, schema v{version}", file=out)
    if replicas is not None:
        print(f"replicas: {len(replicas)} live", file=out)
        for r in replicas:
            print(f"replica {r.id}: {r.host} pid {r.pid}, beat {r.beat_age_s:.1f}s ago", file=out)
    return []


async def _check_shell(settings: Settings, out: TextIO) -> list[str]:
    try:
        isolation = await detect_isolation(settings.orch_shell_sandbox)
    except ConfigError as err:
        return [f"ORCH_SHELL_SANDBOX: {err.reason}; install bubblewrap or set it to auto"]
    allowed = ", ".join(sorted(settings.orch_shell_allow)) or "none (shell steps are off)"
    print(f"shell: {isolation.description}; allowed: {allowed}", file=out)
    return []


def _check_agents(settings: Settings, out: TextIO) -> list[str]:
    """One line per coding agent: its command (found or not) and tier."""
    try:
        agents = build_agents(settings.hands())
    except ConfigError as err:
        return [f"{err.reason}; fix the file or unset ORCH_MCP_CONFIG"]
    if not agents:
        print("agents: none (implement steps are off)", file=out)
    problems = []
    for agent in agents:
        binary = agent.find_command()
        found = f"found at {binary}" if binary else f"NOT found on {agent.path}"
        print(f"agent {agent.name}: {agent.command} ({found}); tier {agent.tier.value}", file=out)
        where = f"ORCH_MCP_CONFIG: agent {agent.name}"
        if binary is None:
            problems.append(
                f"{where}: {agent.command} is not found on {agent.path}; install it, give its "
                'absolute path, or set PATH in its "env"'
            )
        if agent.cwd is not None and not Path(agent.cwd).is_dir():
            problems.append(f'{where}: its "cwd" {agent.cwd} is not a folder; fix the path')
    return problems


async def _check_tools(settings: Settings, out: TextIO) -> list[str]:
    try:
        servers = settings.hands().mcp_servers
    except ConfigError as err:
        return [err.reason]
    if not servers:
        print("mcp: no servers (ORCH_MCP_CONFIG names none)", file=out)
        return []
    toolbox = open_toolbox(servers)
    try:
        await toolbox.start()
        statuses = toolbox.status()
    finally:
        await toolbox.close()
    problems = []
    for status in statuses:
        _print_server(status, out)
        if not status.is_up:
            problems.append(
                f"ORCH_MCP_CONFIG: MCP server {status.name} cannot start ({status.problem}); "
                "fix its command, args, env or url"
            )
    return problems


def _print_server(status: ServerStatus, out: TextIO) -> None:
    if not status.is_up:
        print(f"mcp {status.name}: cannot start: {status.problem}", file=out)
        return
    print(f"mcp {status.name}: started; {len(status.tools)} tools", file=out)
    for tool in status.tools:
        whose = " (set in the file)" if tool.is_fixed else ""
        print(f"mcp   {tool.name}: {tool.tier.value}{whose}", file=out)
    for name in status.missing:
        print(f'mcp   {status.name}.{name}: named in "tools" but not served', file=out)


async def _check_llm(settings: Settings, out: TextIO) -> list[str]:
    client = build_llm_client(settings)
    try:
        models = [m.id async for m in client.models.list()]
    except openai.AuthenticationError:
        return ["OPENAI_API_KEY: the server refused it; check the key"]
    except openai.APIError as exc:
        return [f"OPENAI_BASE_URL: cannot list models ({type(exc).__name__}); check the URL"]
    finally:
        await client.close()
    found = "found" if settings.orch_model in models else "NOT among them"
    print(f"llm: {len(models)} models; {settings.orch_model} {found}", file=out)
    if settings.orch_model not in models and models:
        return [
            f"ORCH_MODEL: {settings.orch_model} is not served; pick one of {', '.join(models[:5])}"
        ]
    return []
