"""Shared fixtures: the fake OpenAI server and orchestrators wired to it over real HTTP."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import openai
import pytest

from bot.service import BotService
from bot.settings import Settings
from orchestrator import (
    Agent,
    HandsConfig,
    McpToolbox,
    Notifier,
    OpenAILLM,
    Orchestrator,
    OrchestratorConfig,
    SqliteStore,
    Store,
    Toolbox,
    open_store,
)
from tests.bot_steps import (
    SIGNING_SECRET,
    Delivery,
    HttpDelivery,
    SocketDelivery,
    assert_all_payloads_valid,
)
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.slack_server import FakeSlack
from tests.postgres import BACKEND, Databases, PostgresServer, database_url, find_binaries, use

# Fast retries and short waits, so tests of timing run in fractions of a second.
TEST_CONFIG = OrchestratorConfig(
    model="fake-model",
    retry_base_s=0.01,
    retry_max_s=0.05,
    planning_timeout_s=5.0,
    llm_request_timeout_s=10.0,
)

MakeOrchestrator = Callable[..., Awaitable[Orchestrator]]


@pytest.fixture(scope="session", autouse=BACKEND == "postgres")
def postgres() -> Iterator[Databases]:
    """A PostgreSQL server for the session (ORCH_TEST_POSTGRES_URL's, or one started here)."""
    given = os.environ.get("ORCH_TEST_POSTGRES_URL")
    if given:
        databases = Databases(given)
        use(databases)
        try:
            yield databases
        finally:
            use(None)
            databases.drop_all()
        return
    binaries = find_binaries()
    if binaries is None:
        pytest.skip(
            "ORCH_TEST_DATABASE=postgres, but PostgreSQL is not installed (apt-get install "
            "postgresql) and ORCH_TEST_POSTGRES_URL names no server"
        )
    server = PostgresServer(binaries)
    try:
        server.start()
        databases = Databases(server.url)
        use(databases)
        yield databases
    finally:
        use(None)
        server.stop()  # its databases go with it


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "x.db"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    """The suite's store: SQLite, or PostgreSQL when it runs with ORCH_TEST_DATABASE=postgres."""
    s = open_store(database_url(tmp_path, "x"))
    await s.open()
    yield s
    await s.close()


@pytest.fixture
async def sqlite_store(db: Path) -> AsyncIterator[SqliteStore]:
    """A SQLite store, for what is SQLite's own (its file, WAL, group commit)."""
    s = SqliteStore(db)
    await s.open()
    yield s
    await s.close()


@pytest.fixture
async def fake_openai() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        yield server


@pytest.fixture
async def openai_client(fake_openai: FakeOpenAI) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(
        api_key="test-key", base_url=fake_openai.base_url, max_retries=0, timeout=10.0
    )
    yield client
    await client.close()


@pytest.fixture
async def make_orchestrator(
    tmp_path: Path, openai_client: openai.AsyncOpenAI
) -> AsyncIterator[MakeOrchestrator]:
    """Start orchestrators on one database file; all are closed at the end of the test."""
    started: list[Orchestrator] = []

    async def make(
        notifier: Notifier | None = None,
        *,
        toolbox: Toolbox | None = None,
        agents: Sequence[Agent] = (),
        **config: Any,
    ) -> Orchestrator:
        cfg = OrchestratorConfig(**{**TEST_CONFIG.__dict__, **config})
        orch = Orchestrator(
            store=open_store(database_url(tmp_path, "orchestrator")),
            llm=OpenAILLM(openai_client, model=cfg.model),
            config=cfg,
            notifier=notifier,
            toolbox=toolbox,
            agents=agents,
        )
        await orch.start()
        started.append(orch)
        return orch

    yield make
    for orch in started:
        await orch.close()


StartBot = Callable[..., Awaitable[BotService]]


@pytest.fixture
async def fake_slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(echo_bot_events=True) as server:
        yield server


def bot_settings(
    fake_slack: FakeSlack, fake_openai: FakeOpenAI, tmp_path: Path, **overrides: Any
) -> Settings:
    """Settings for a bot wired to the fakes; Socket Mode unless overridden."""
    values: dict[str, Any] = {
        "slack_bot_token": "xoxb-test-token",
        "slack_app_token": "xapp-test-token",
        "slack_api_url": fake_slack.api_url,
        "openai_api_key": "test-key",
        "openai_base_url": fake_openai.base_url,
        "orch_model": "fake-model",
        "database_url": database_url(tmp_path, "bot"),
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
async def start_bot(
    fake_slack: FakeSlack, fake_openai: FakeOpenAI, tmp_path: Path
) -> AsyncIterator[StartBot]:
    """Start the real bot in this process against the fakes; stopped at the end of the test."""
    running: list[BotService] = []

    async def start(**overrides: Any) -> BotService:
        service = BotService(bot_settings(fake_slack, fake_openai, tmp_path, **overrides))
        await service.start()
        running.append(service)
        return service

    yield start
    for service in running:
        await service.stop()
    assert_all_payloads_valid(fake_slack)  # every message any bot test posted is one Slack takes


OpenBot = Callable[..., Awaitable[Delivery]]


@pytest.fixture(params=["socket_mode", "http_mode"])
async def open_bot(
    request: pytest.FixtureRequest, start_bot: StartBot, fake_slack: FakeSlack
) -> OpenBot:
    """Start the bot in Socket Mode, or in HTTP mode; returns how Slack reaches it."""

    async def open_(**overrides: Any) -> Delivery:
        if request.param == "socket_mode":
            await start_bot(**overrides)
            return SocketDelivery(fake_slack)
        http = {"slack_app_token": None, "slack_signing_secret": SIGNING_SECRET, "port": 0}
        service = await start_bot(**http, **overrides)
        return HttpDelivery(f"http://127.0.0.1:{service.http_port}/slack/events")

    return open_


OpenToolbox = Callable[..., Awaitable[McpToolbox]]


@pytest.fixture
async def open_toolbox() -> AsyncIterator[OpenToolbox]:
    """Start toolboxes over the given MCP servers (quick restarts); all closed at the end."""
    opened: list[McpToolbox] = []

    async def open_(servers: dict[str, Any], **options: Any) -> McpToolbox:
        hands = HandsConfig.model_validate({"mcpServers": servers})
        toolbox = McpToolbox(hands.mcp_servers, **{"restart_base_s": 0.05, **options})
        opened.append(toolbox)
        await toolbox.start()
        return toolbox

    yield open_
    for toolbox in opened:
        await toolbox.close()
