"""HTTP mode: signed requests on /slack/events, forged and replayed ones refused, /healthz."""

from __future__ import annotations

import logging
import time
from urllib.parse import urlencode

import aiohttp
import pytest

from bot.service import BotService
from tests.bot_steps import buttons, plan_in, said
from tests.conftest import StartBot
from tests.fakes.openai_server import FakeOpenAI, Reply, Router
from tests.fakes.slack_server import (
    FakeSlack,
    action_body,
    event_body,
    mention,
    message_changed,
    new_ts,
    post_signed,
)
from tests.helpers import step

pytestmark = pytest.mark.timeout(30)
SECRET = "test-signing-secret"
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"


async def _http_bot(start_bot: StartBot) -> tuple[BotService, str]:
    service = await start_bot(slack_app_token=None, slack_signing_secret=SECRET, port=0)
    return service, f"http://127.0.0.1:{service.http_port}"


async def test_a_signed_mention_and_a_signed_click_run_a_plan(
    start_bot: StartBot, fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    fake_openai.responder = Router([Reply.plan(step("a"))])
    _, base = await _http_bot(start_bot)
    ts = new_ts()
    status, _ = await post_signed(
        f"{base}/slack/events", event_body(mention("do a", ts=ts)), JSON, SECRET
    )
    assert status == 200
    plan = await plan_in(fake_slack, ts)
    click = fake_slack.block_action(
        "approve_plan", buttons(plan)["approve_plan"], message_ts=plan["ts"]
    )
    status, _ = await post_signed(f"{base}/slack/events", action_body(click), FORM, SECRET)
    assert status == 200
    await said(fake_slack, ts, "completed")


async def test_a_forged_signature_is_refused_with_401_and_does_nothing(
    start_bot: StartBot, fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    _, base = await _http_bot(start_bot)
    body = event_body(mention("do a", ts=new_ts()))
    status, _ = await post_signed(f"{base}/slack/events", body, JSON, "not-the-secret")
    assert status == 401
    status, _ = await post_signed(f"{base}/slack/events", body, JSON, SECRET, signature="v0=00")
    assert status == 401
    assert fake_openai.requests == []


async def test_a_replayed_request_older_than_five_minutes_is_refused(
    start_bot: StartBot, fake_openai: FakeOpenAI
) -> None:
    _, base = await _http_bot(start_bot)
    old = int(time.time()) - 6 * 60
    body = event_body(mention("do a", ts=new_ts()))
    status, _ = await post_signed(f"{base}/slack/events", body, JSON, SECRET, timestamp=old)
    assert status == 401
    assert fake_openai.requests == []


async def test_events_no_feature_handles_are_acked_with_200(
    start_bot: StartBot, fake_slack: FakeSlack
) -> None:
    _, base = await _http_bot(start_bot)
    edit = message_changed("C1", new_ts(), "edited")
    status, _ = await post_signed(f"{base}/slack/events", event_body(edit), JSON, SECRET)
    assert status == 200
    joined = {"type": "member_joined_channel", "user": "U2", "channel": "C1"}
    status, _ = await post_signed(f"{base}/slack/events", event_body(joined), JSON, SECRET)
    assert status == 200


async def test_healthz_answers_ok(start_bot: StartBot) -> None:
    _, base = await _http_bot(start_bot)
    async with aiohttp.ClientSession() as session, session.get(f"{base}/healthz") as resp:
        assert resp.status == 200
        assert await resp.json() == {"ok": True}


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ('{"type": "event_callback", "event": ', JSON),
        ("[1, 2, 3]", JSON),
        (urlencode({"payload": '{"type": "block_actions", '}), FORM),
    ],
    ids=["broken_json", "not_an_object", "broken_payload"],
)
async def test_a_signed_malformed_request_gets_400_with_a_reason_and_one_log_line(
    start_bot: StartBot,
    fake_openai: FakeOpenAI,
    caplog: pytest.LogCaptureFixture,
    body: str | bytes,
    content_type: str,
) -> None:
    _, base = await _http_bot(start_bot)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        status, text = await post_signed(f"{base}/slack/events", body, content_type, SECRET)
    assert status == 400
    assert text.startswith("malformed request: ")
    problems = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.name for r in problems] == ["bot.http_mode"]
    assert all(r.exc_info is None for r in caplog.records)  # one line, no traceback
    assert fake_openai.requests == []


async def test_a_malformed_request_that_is_forged_or_replayed_is_still_refused_with_401(
    start_bot: StartBot,
) -> None:
    _, base = await _http_bot(start_bot)
    url, broken = f"{base}/slack/events", '{"event": '
    assert (await post_signed(url, broken, JSON, "not-the-secret"))[0] == 401
    assert (await post_signed(url, broken, JSON, SECRET, signature="v0=00"))[0] == 401
    old = int(time.time()) - 6 * 60
    assert (await post_signed(url, broken, JSON, SECRET, timestamp=old))[0] == 401
    assert (await post_signed(url, broken, JSON, SECRET, timestamp="soon"))[0] == 401
    well_formed = event_body(mention("do a", ts=new_ts()))
    assert (await post_signed(url, well_formed, JSON, SECRET, timestamp="soon"))[0] == 401
    # slack_sdk verifies UTF-8 only, and Slack sends nothing else: unverifiable, so refused.
    assert (await post_signed(url, b"\xff\xfe{}", JSON, SECRET))[0] == 401
