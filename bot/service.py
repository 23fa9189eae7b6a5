"""The running bot: orchestrator, relay and the Bolt app over Socket Mode or HTTP."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import openai
from aiohttp import web
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler

from orchestrator import (
    Agent,
    HandsConfig,
    OpenAILLM,
    Orchestrator,
    open_store,
    open_toolbox,
)

from .app import build_app
from .conversation import Conversation
from .http_mode import build_web_app
from .relay import UPDATE_INTERVAL_S, Relay
from .settings import Settings
from .slack_io import SlackNotifier, SlackThreads, build_client

log = logging.getLogger(__name__)


def build_llm_client(settings: Settings) -> openai.AsyncOpenAI:
    """The openai client; our own retries (in the orchestrator) replace the client's."""
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else "none"
    return openai.AsyncOpenAI(
        api_key=key,
        base_url=settings.openai_base_url,
        max_retries=0,
        timeout=settings.orchestrator_config().llm_request_timeout_s,
    )


def build_agents(hands: HandsConfig) -> list[Agent]:
    """The hands file's coding agents, in escalation order."""
    return [Agent.from_config(name, config) for name, config in hands.agents.items()]


class BotService:
    """Everything `python -m bot` runs, in start order; `stop()` undoes it in reverse."""

    def __init__(
        self, settings: Settings, *, progress_interval_s: float = UPDATE_INTERVAL_S
    ) -> None:
        """`progress_interval_s` spaces edits of one progress message (benchmarks compare it)."""
        self.settings = settings
        token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else ""
        redactor = settings.redactor()
        # One connection pool for every Web API call (the caller closes it; slack_sdk would
        # otherwise open a connection per call).
        self._http = aiohttp.ClientSession()
        api = settings.slack_api_url
        self.threads = SlackThreads(build_client(token, api, session=self._http), redactor=redactor)
        self._llm_client = build_llm_client(settings)
        # Plans get their own connections: a step's model call may hold one for minutes, and
        # a thousand of them would fill the client's pool and keep every new request waiting.
        self._planning_client = build_llm_client(settings)
        hands = settings.hands()
        self.toolbox = open_toolbox(hands.mcp_servers)
        self.orchestrator = Orchestrator(
            store=open_store(settings.database_url),
            llm=OpenAILLM(self._llm_client, model=settings.orch_model),
            planning_llm=OpenAILLM(self._planning_client, model=settings.orch_model),
            config=settings.orchestrator_config(),
            notifier=SlackNotifier(
                self.threads, has_live_user_mentions=settings.orch_notify_user_mentions
            ),
            has_outbox=True,
            toolbox=self.toolbox,
            agents=build_agents(hands),
        )
        outbox_client = build_client(token, api, retries=False, session=self._http)
        self._relay = Relay(
            self.orchestrator,
            SlackThreads(outbox_client, redactor=redactor),
            update_interval_s=progress_interval_s,
        )
        self._relay_task: asyncio.Task[None] | None = None
        self._socket: AsyncSocketModeHandler | None = None
        self._runner: web.AppRunner | None = None
        self.http_port: int | None = None

    async def start(self) -> None:
        """Start the MCP servers, listen to the orchestrator, recover its tasks and threads, then
        take requests."""
        await self.toolbox.start()  # before recovery: a resumed task may call a tool
        self._relay_task = asyncio.create_task(self._relay.run(), name="relay")
        await self._relay.wait_ready()
        await self.orchestrator.start()
        await self._relay.recover()
        secret = self.settings.slack_signing_secret
        signing_secret = None if self.settings.is_socket_mode or secret is None else secret
        app = build_app(
            Conversation(self.orchestrator),
            self.threads,
            signing_secret=signing_secret.get_secret_value() if signing_secret else None,
            allowed_teams=self.settings.orch_allowed_teams,
        )
        if self.settings.slack_app_token is not None:
            self._socket = AsyncSocketModeHandler(
                app, app_token=self.settings.slack_app_token.get_secret_value()
            )
            await self._socket.connect_async()  # type: ignore[no-untyped-call]
            log.info("connected to Slack in Socket Mode")
            return
        web_app = build_web_app(
            app,
            signing_secret=signing_secret.get_secret_value() if signing_secret else None,
            port=self.settings.port,
        )
        self._runner = web.AppRunner(web_app)
        await self._runner.setup()
        # All interfaces: Slack (or the proxy in front) must reach it.
        site = web.TCPSite(self._runner, "0.0.0.0", self.settings.port)
        await site.start()
        self.http_port = self._runner.addresses[0][1]
        log.info("serving /slack/events on port %s", self.http_port)

    async def stop(self) -> None:
        """Take no new work, leave running steps recoverable, flush state, close connections."""
        if self._socket is not None:
            await self._socket.close_async()  # type: ignore[no-untyped-call]
        if self._runner is not None:
            await self._runner.cleanup()
        if self._relay_task is not None:
            self._relay_task.cancel()
            await asyncio.gather(self._relay_task, return_exceptions=True)
        await self._relay.close()
        await self.orchestrator.close()
        await self.toolbox.close()
        await self._llm_client.close()
        await self._planning_client.close()
        await self._http.close()
