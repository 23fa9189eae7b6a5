"""`python -m bot` as a real process against the fakes: started, stopped, killed at will."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.slack_server import FakeSlack
from tests.postgres import database_url

ROOT = Path(__file__).resolve().parent.parent
SECRETS = ("xoxb-secret-bot-token", "xapp-secret-app-token", "sk-secret-llm-key")


class BotProcess:
    """One `python -m bot` process in Socket Mode against the fakes, logging to a file."""

    def __init__(self, slack: FakeSlack, llm: FakeOpenAI, tmp_path: Path, **env: str) -> None:
        self.slack = slack
        self.log = tmp_path / "bot.log"
        self.database_url = database_url(tmp_path, "bot")
        clean = {
            k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "OPENAI_", "ORCH_"))
        }
        self.env = {
            **clean,
            "PYTHONPATH": str(ROOT),
            "SLACK_BOT_TOKEN": SECRETS[0],
            "SLACK_APP_TOKEN": SECRETS[1],
            "SLACK_API_URL": slack.api_url.rstrip("/"),  # the bot adds the slash
            "OPENAI_API_KEY": SECRETS[2],
            "OPENAI_BASE_URL": llm.base_url,
            "ORCH_MODEL": "fake-model",
            "DATABASE_URL": self.database_url,
            **env,
        }
        self.cwd = tmp_path
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        before = self.slack.connections
        with self.log.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", cwd=self.cwd, env=self.env, stdout=log, stderr=log
            )
        await self.slack.wait_until(lambda: self.slack.connections > before, timeout=20)

    async def stop(self, sig: signal.Signals) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        code = await asyncio.wait_for(self.proc.wait(), 15)
        await self.slack.wait_until(lambda: self.slack.connections == 0, timeout=10)
        return code
