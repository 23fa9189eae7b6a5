"""Shared fixtures: the fake OpenAI server and orchestrators wired to it over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import openai
import pytest

from orchestrator import Notifier, OpenAILLM, Orchestrator, OrchestratorConfig, SqliteStore
from tests.fakes.openai_server import FakeOpenAI

# Fast retries and short waits, so tests of timing run in fractions of a second.
TEST_CONFIG = OrchestratorConfig(
    model="fake-model",
    retry_base_s=0.01,
    retry_max_s=0.05,
    llm_request_timeout_s=10.0,
)

MakeOrchestrator = Callable[..., Awaitable[Orchestrator]]


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

    async def make(notifier: Notifier | None = None, **config: Any) -> Orchestrator:
        cfg = OrchestratorConfig(**{**TEST_CONFIG.__dict__, **config})
        orch = Orchestrator(
            store=SqliteStore(tmp_path / "orchestrator.db"),
            llm=OpenAILLM(openai_client, model=cfg.model),
            config=cfg,
            notifier=notifier,
        )
        await orch.start()
        started.append(orch)
        return orch

    yield make
    for orch in started:
        await orch.close()
