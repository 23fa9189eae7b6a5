"""No secret setting's value ever reaches Slack or a log line."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.logs import RedactingFilter, install_redaction
from bot.render import Message
from bot.slack_io import SlackThreads, build_client
from orchestrator import Redactor
from tests.conftest import bot_settings
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.slack_server import FakeSlack

TOKEN = "xoxb-secret-bot-token-0123456789"
KEY = "sk-secret-llm-key-0123456789"
REDACTOR = Redactor(frozenset({TOKEN, KEY}))


@pytest.fixture
def log_text() -> Iterator[io.StringIO]:
    """What the root logger's handlers write, with the redaction `python -m bot` installs."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        install_redaction(REDACTOR)
        yield out
    finally:
        root.removeHandler(handler)
        for other in root.handlers:  # pytest's own capture handlers got the filter too
            for f in [f for f in other.filters if isinstance(f, RedactingFilter)]:
                other.removeFilter(f)


def test_every_secret_setting_is_redacted(
    fake_slack: FakeSlack, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    settings = bot_settings(
        fake_slack,
        fake_openai,
        tmp_path,
        slack_bot_token=TOKEN,
        slack_app_token="xapp-secret-app-token",
        slack_signing_secret="signing-secret-value",
        openai_api_key=KEY,
    )
    text = f"{TOKEN} xapp-secret-app-token signing-secret-value {KEY} {fake_slack.api_url}"
    masked = settings.redactor().redact(text)
    assert masked == f"[redacted] [redacted] [redacted] [redacted] {fake_slack.api_url}"
    assert settings.orchestrator_config().redactor == settings.redactor()


def test_a_log_line_and_its_traceback_show_no_secret(log_text: io.StringIO) -> None:
    log = logging.getLogger("tests.secrets.child")  # propagates to the root's handlers
    try:
        raise RuntimeError(f"Slack refused {TOKEN}")
    except RuntimeError:
        log.exception("posting with %s failed", KEY)
    log.warning("token is %s", TOKEN, stack_info=True)
    text = log_text.getvalue()
    assert "posting with [redacted] failed" in text
    assert "RuntimeError: Slack refused [redacted]" in text
    assert "token is [redacted]" in text
    assert TOKEN not in text and KEY not in text


async def test_what_the_bot_posts_or_edits_in_slack_is_redacted(fake_slack: FakeSlack) -> None:
    threads = SlackThreads(build_client("xoxb-test-token", fake_slack.api_url), redactor=REDACTOR)
    block = {"type": "section", "text": {"type": "mrkdwn", "text": f"key: {KEY}"}}
    ts = await threads.post("C1", None, Message(f"token {TOKEN}", [block]))
    assert ts is not None
    await threads.update("C1", ts, Message(f"now {KEY}", [block]))
    await threads.whisper("C1", "U1", None, Message(f"psst {TOKEN}"))
    sent = [str(call.args) for call in fake_slack.calls]
    assert len(sent) == 3
    assert all(TOKEN not in s and KEY not in s for s in sent)
    assert fake_slack.messages[0]["text"] == "now [redacted]"
    assert "key: [redacted]" in str(fake_slack.messages[0]["blocks"])
