"""The fake Slack is faithful enough for the real slack_sdk clients and bolt to run against it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs

import pytest
from aiohttp import web
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import FixedValueRetryIntervalCalculator
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.slack_server import (
    FakeSlack,
    action_body,
    block_action,
    event_body,
    mention,
    post_signed,
)

BLOCKS = [{"type": "section", "text": {"type": "mrkdwn", "text": "*plan*"}}]


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as server:
        yield server


@pytest.fixture
def client(slack: FakeSlack) -> AsyncWebClient:
    # No session passed: slack_sdk opens and closes one per call, so nothing is left to close.
    return AsyncWebClient(token="xoxb-test", base_url=slack.api_url)


@pytest.fixture
async def bolt_app(slack: FakeSlack) -> AsyncIterator[tuple[AsyncApp, AsyncSocketModeHandler]]:
    """A bolt app in Socket Mode, connected to the fake; closed at the end of the test."""
    app = AsyncApp(client=AsyncWebClient(token="xoxb-test", base_url=slack.api_url))
    handler = AsyncSocketModeHandler(app, app_token="xapp-test")
    # bolt leaves connect_async/close_async unannotated.
    await handler.connect_async()  # type: ignore[no-untyped-call]
    yield app, handler
    await handler.close_async()  # type: ignore[no-untyped-call]


async def test_a_posted_message_and_its_update_are_recorded_with_parsed_blocks(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    posted = await client.chat_postMessage(
        channel="C1", thread_ts="1.000100", text="Planning…", blocks=BLOCKS
    )
    assert posted["ok"] and posted["channel"] == "C1"
    assert posted["message"]["thread_ts"] == "1.000100"
    updated = await client.chat_update(channel="C1", ts=posted["ts"], text="The plan")

    assert updated["ts"] == posted["ts"] and updated["text"] == "The plan"
    assert slack.calls_to("chat.postMessage")[0]["blocks"] == BLOCKS
    assert slack.calls[0].token == "xoxb-test"
    [shown] = slack.thread("C1", "1.000100")
    assert (shown["text"], shown["blocks"]) == ("The plan", BLOCKS)


async def test_form_encoded_calls_are_parsed_like_json_ones(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    await client.api_call(
        "chat.postMessage", data={"channel": "C1", "text": "hi", "blocks": json.dumps(BLOCKS)}
    )
    assert slack.calls_to("chat.postMessage") == [{"channel": "C1", "text": "hi", "blocks": BLOCKS}]


async def test_a_message_added_as_shown_before_can_be_edited_and_no_call_is_recorded(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    old = slack.add_message("C1", "The plan", thread_ts="1.000100", blocks=BLOCKS)
    await client.chat_update(channel="C1", ts=old["ts"], text="Approved")

    assert [c.method for c in slack.calls] == ["chat.update"]
    [shown] = slack.thread("C1", "1.000100")
    assert (shown["ts"], shown["text"], shown["blocks"]) == (old["ts"], "Approved", BLOCKS)


async def test_message_timestamps_are_unique_and_increasing(client: AsyncWebClient) -> None:
    stamps = [(await client.chat_postMessage(channel="C1", text=str(i)))["ts"] for i in range(3)]
    assert stamps == sorted(stamps, key=float) and len(set(stamps)) == 3


async def test_calls_with_the_wrong_token_or_an_unknown_method_fail_like_slack(
    slack: FakeSlack,
) -> None:
    wrong = AsyncWebClient(token="xoxp-nope", base_url=slack.api_url)
    with pytest.raises(SlackApiError) as error:
        await wrong.chat_postMessage(channel="C1", text="hi")
    assert error.value.response["error"] == "not_allowed_token_type"
    with pytest.raises(SlackApiError) as error:
        await AsyncWebClient(token="garbage", base_url=slack.api_url).auth_test()
    assert error.value.response["error"] == "invalid_auth"
    with pytest.raises(SlackApiError) as error:
        await AsyncWebClient(token="xoxb-test", base_url=slack.api_url).api_call("nope.nope")
    assert error.value.response["error"] == "unknown_method"
    assert [c.error for c in slack.calls] == [
        "not_allowed_token_type",
        "invalid_auth",
        "unknown_method",
    ]


@pytest.mark.timeout(20)
@pytest.mark.parametrize("status", [429, 500, 503])
async def test_the_sdk_retry_handlers_get_through_injected_faults(
    slack: FakeSlack, status: int
) -> None:
    fast = FixedValueRetryIntervalCalculator(0.01)
    client = AsyncWebClient(
        token="xoxb-test",
        base_url=slack.api_url,
        retry_handlers=[
            AsyncRateLimitErrorRetryHandler(),
            AsyncServerErrorRetryHandler(interval_calculator=fast),
        ],
    )
    slack.fail_next("chat.postMessage", status, retry_after=0)

    posted = await client.chat_postMessage(channel="C1", text="hi")

    assert posted["ok"]
    assert [c.status for c in slack.calls] == [status, 200]
    assert len(slack.calls_to("chat.postMessage")) == 1


async def test_a_rate_limited_call_carries_retry_after_when_nothing_retries(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    slack.fail_next("chat.update", retry_after=7)
    with pytest.raises(SlackApiError) as error:
        await client.chat_update(channel="C1", ts="1.0", text="x")
    assert error.value.response.status_code == 429
    assert error.value.response.headers["Retry-After"] == "7"
    assert error.value.response["error"] == "ratelimited"


@pytest.mark.timeout(20)
async def test_a_bolt_app_in_socket_mode_acks_a_mention_and_its_listener_replies(
    slack: FakeSlack, bolt_app: tuple[AsyncApp, AsyncSocketModeHandler]
) -> None:
    app, _ = bolt_app

    @app.event("app_mention")
    async def reply(event: dict[str, Any], say: Any) -> None:
        await say(text=f"heard: {event['text']}", thread_ts=event["ts"])

    assert slack.connected.is_set()
    event = mention("plan a party", ts="1700000000.000001")
    ack = await slack.send_events_api(event, event_id="Ev1")

    assert ack["envelope_id"] == slack.envelopes[-1]["envelope_id"] in slack.acks
    posted = await slack.wait_for_call("chat.postMessage")
    # bolt's per-request client adds the event's team_id to every call it makes.
    assert posted == {
        "channel": "C1",
        "text": "heard: <@UBOT> plan a party",
        "thread_ts": "1700000000.000001",
        "team_id": "T1",
    }
    assert [c.method for c in slack.calls[:2]] == ["apps.connections.open", "auth.test"]
    assert slack.calls[0].token == "xapp-test"


@pytest.mark.timeout(20)
async def test_a_button_click_reaches_bolt_and_its_respond_replaces_the_message(
    slack: FakeSlack, client: AsyncWebClient, bolt_app: tuple[AsyncApp, AsyncSocketModeHandler]
) -> None:
    app, _ = bolt_app

    @app.action("approve")
    async def approve(ack: Any, body: dict[str, Any], respond: Any) -> None:
        await ack()
        await respond(text=f"Approved by <@{body['user']['id']}>", replace_original=True)

    plan = await client.chat_postMessage(channel="C1", thread_ts="1.000001", text="plan")
    await slack.send_interactive(slack.block_action("approve", "task-1", message_ts=plan["ts"]))

    await slack.wait_for_call("response_url")
    assert slack.thread("C1", "1.000001")[0]["text"] == "Approved by <@U1>"


@pytest.mark.timeout(20)
async def test_an_event_no_listener_matches_is_not_acked(
    slack: FakeSlack, bolt_app: tuple[AsyncApp, AsyncSocketModeHandler]
) -> None:
    with pytest.raises(TimeoutError):
        await slack.send_events_api(mention("nobody listens"), timeout=0.5)
    assert slack.acks == []


@pytest.mark.timeout(20)
async def test_a_disconnect_makes_the_client_reconnect(
    slack: FakeSlack, bolt_app: tuple[AsyncApp, AsyncSocketModeHandler]
) -> None:
    await slack.send_disconnect()
    await slack.wait_until(lambda: len(slack.calls_to("apps.connections.open")) == 2)
    await slack.wait_until(lambda: slack.connections == 1)


async def test_a_signed_request_passes_the_sdk_signature_verifier() -> None:
    seen: list[tuple[bytes, dict[str, str]]] = []

    async def events(request: web.Request) -> web.Response:
        seen.append((await request.read(), dict(request.headers)))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/slack/events", events)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/slack/events"
    try:
        body = event_body(mention("hello"), event_id="Ev9")
        assert await post_signed(url, body, "application/json", "s3cret") == (200, "ok")
        forged = await post_signed(url, body, "application/json", "s3cret", signature="v0=00")
        assert forged == (200, "ok")
    finally:
        await runner.cleanup()

    verifier = SignatureVerifier("s3cret")
    (raw, headers), (forged_raw, forged_headers) = seen
    assert verifier.is_valid_request(raw, headers)
    assert not verifier.is_valid_request(forged_raw, forged_headers)
    assert json.loads(raw)["event"]["text"] == "<@UBOT> hello"


def test_an_action_body_is_a_form_with_the_payload_as_json() -> None:
    payload = block_action("approve", "task-1", message_ts="1.000002", thread_ts="1.000001")
    [sent] = parse_qs(action_body(payload))["payload"]
    assert json.loads(sent) == payload
    assert payload["container"]["thread_ts"] == "1.000001"
    assert payload["actions"][0]["value"] == "task-1"


async def test_waiting_for_a_call_that_never_comes_times_out(slack: FakeSlack) -> None:
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(slack.wait_for_call("chat.postMessage", timeout=0.05), 1)


@pytest.mark.timeout(20)
async def test_the_bots_own_posts_and_edits_come_back_as_events_bolt_acks() -> None:
    async with FakeSlack(echo_bot_events=True) as slack:
        app = AsyncApp(client=AsyncWebClient(token="xoxb-test", base_url=slack.api_url))

        @app.event("app_mention")
        async def reply(event: dict[str, Any], client: AsyncWebClient) -> None:
            posted = await client.chat_postMessage(
                channel=event["channel"], thread_ts=event["ts"], text="Planning…"
            )
            await client.chat_update(channel=posted["channel"], ts=posted["ts"], text="The plan")

        handler = AsyncSocketModeHandler(app, app_token="xapp-test")
        await handler.connect_async()  # type: ignore[no-untyped-call]
        try:
            await slack.send_events_api(mention("plan"))
            await slack.wait_until(lambda: len(slack.acks) == len(slack.envelopes) == 3)
        finally:
            await handler.close_async()  # type: ignore[no-untyped-call]

    echoed = [e["payload"]["event"] for e in slack.envelopes[1:]]
    assert [(e["type"], e.get("subtype")) for e in echoed] == [
        ("message", None),
        ("message", "message_changed"),
    ]
    assert echoed[0]["bot_id"] == "BBOT" and echoed[1]["message"]["text"] == "The plan"


@pytest.mark.timeout(20)
async def test_a_bolt_app_in_http_mode_accepts_signed_events_and_actions(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    app = AsyncApp(signing_secret="s3cret", client=client)
    clicks: list[str] = []

    @app.event("app_mention")
    async def reply(event: dict[str, Any], say: Any) -> None:
        await say(text="on it", thread_ts=event["ts"])

    @app.action("approve")
    async def approve(ack: Any, action: dict[str, Any]) -> None:
        await ack()
        clicks.append(action["value"])

    runner = web.AppRunner(app.web_app())
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/slack/events"
    form = "application/x-www-form-urlencoded"
    try:
        event = event_body(mention("go"))
        assert (await post_signed(url, event, "application/json", "s3cret"))[0] == 200
        assert (await post_signed(url, event, "application/json", "wrong"))[0] == 401
        click = action_body(slack.block_action("approve", "task-7", message_ts="1.000003"))
        assert (await post_signed(url, click, form, "s3cret"))[0] == 200
        await slack.wait_for_call("chat.postMessage")
    finally:
        await runner.cleanup()
    assert clicks == ["task-7"]
