"""Real MCP servers reached through the library: mcp-server-time and the tests' own."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from orchestrator import McpToolbox, StepError, Tier
from tests.conftest import OpenToolbox
from tests.helpers import eventually, fake_mcp, http_mcp, logged, time_mcp

pytestmark = pytest.mark.timeout(60)


def _starts(log: Path) -> list[str]:
    return [line.split()[0] for line in logged(log) if line.endswith(" start")]


async def test_the_time_servers_tools_are_read_only_and_answer_with_their_text(
    open_toolbox: OpenToolbox,
) -> None:
    toolbox = await open_toolbox({"time": time_mcp()})
    tiers = {t.name: t.tier for t in toolbox.tools()}
    assert tiers == {"time.get_current_time": Tier.READ, "time.convert_time": Tier.READ}
    output = await toolbox.call("time.get_current_time", {"timezone": "Europe/Paris"})
    # The text already holds the structured content as JSON, so it is not repeated.
    assert json.loads(output)["timezone"] == "Europe/Paris"


async def test_each_tools_tier_comes_from_its_annotations_unless_the_operator_says(
    open_toolbox: OpenToolbox, tmp_path: Path
) -> None:
    log = tmp_path / "mcp.log"
    toolbox = await open_toolbox(
        {"fake": fake_mcp(log, tiers={"record": "write", "slow": "external"})}
    )
    specs = {t.name: (t.tier, t.is_fixed) for t in toolbox.tools()}
    assert specs["fake.record"] == (Tier.WRITE, True)  # unannotated, so destructive, but for this
    assert specs["fake.slow"] == (Tier.EXTERNAL, True)
    assert specs["fake.fail"] == (Tier.READ, False)
    assert specs["fake.note"] == (Tier.WRITE, False)  # not destructive, closed world
    assert specs["fake.post"] == (Tier.EXTERNAL, False)  # not destructive, open world


async def test_an_unannotated_tool_is_destructive_and_structured_content_joins_the_text(
    open_toolbox: OpenToolbox, tmp_path: Path
) -> None:
    toolbox = await open_toolbox({"fake": fake_mcp(tmp_path / "mcp.log")})
    assert next(t for t in toolbox.tools() if t.name == "fake.record").tier is Tier.DESTRUCTIVE
    assert await toolbox.call("fake.record", {"text": "hi"}) == "recorded: hi"
    posted = await toolbox.call("fake.post", {"text": "hi"})
    assert json.loads(posted) == {"posted": "hi", "where": "outside"}


async def test_only_the_tools_the_file_names_are_offered_or_called(
    open_toolbox: OpenToolbox, tmp_path: Path
) -> None:
    toolbox = await open_toolbox({"fake": fake_mcp(tmp_path / "mcp.log", tools=["record", "nah"])})
    assert [t.name for t in toolbox.tools()] == ["fake.record"]
    [status] = toolbox.status()
    assert status.missing == ("nah",)
    with pytest.raises(StepError, match=r"there is no tool 'fake\.slow'"):
        await toolbox.call("fake.slow", {"seconds": 0})
    assert not [line for line in logged(tmp_path / "mcp.log") if " slow" in line]


async def test_a_stdio_server_gets_its_own_variables_and_none_of_ours(
    open_toolbox: OpenToolbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-the-bots-own")
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-the-bots-own")
    monkeypatch.setenv("TZ", "UTC")
    server = fake_mcp(tmp_path / "mcp.log")
    server["env"]["MY_SERVER_KEY"] = "given"
    toolbox = await open_toolbox({"fake": server})
    names = set((await toolbox.call("fake.environment", {})).splitlines())
    assert {"MY_SERVER_KEY", "FAKE_MCP_LOG", "PATH", "TZ"} <= names
    assert not names & {"OPENAI_API_KEY", "SLACK_BOT_TOKEN"}


async def test_arguments_that_break_the_tools_schema_are_refused_before_the_call(
    open_toolbox: OpenToolbox, tmp_path: Path
) -> None:
    toolbox = await open_toolbox({"fake": fake_mcp(tmp_path / "mcp.log")})
    with pytest.raises(StepError, match=r"the arguments do not fit fake\.record: text: 3 is not"):
        await toolbox.call("fake.record", {"text": 3})
    assert not [line for line in logged(tmp_path / "mcp.log") if " record" in line]


async def test_an_error_answer_fails_in_the_tools_own_words_and_is_not_retried(
    open_toolbox: OpenToolbox, tmp_path: Path
) -> None:
    log = tmp_path / "mcp.log"
    toolbox = await open_toolbox({"fake": fake_mcp(log)})
    with pytest.raises(StepError) as caught:
        await toolbox.call("fake.fail", {"message": "the disk is full"})
    assert "fake.fail answered with an error" in caught.value.reason
    assert "the disk is full" in caught.value.reason
    assert caught.value.retryable is False
    assert [line.split()[1] for line in logged(log)] == ["start", "fail"]


async def test_a_call_cut_off_by_a_dying_server_is_made_once_more_after_the_restart(
    open_toolbox: OpenToolbox, tmp_path: Path
) -> None:
    log = tmp_path / "mcp.log"
    toolbox = await open_toolbox({"fake": fake_mcp(log)})
    assert await toolbox.call("fake.die_once", {}) == "survived"
    assert len(set(_starts(log))) == 2
    assert [line.split()[1] for line in logged(log)].count("die_once") == 2


async def test_a_server_that_dies_again_on_the_retry_fails_the_call_clearly(
    open_toolbox: OpenToolbox, tmp_path: Path
) -> None:
    log = tmp_path / "mcp.log"
    toolbox = await open_toolbox({"fake": fake_mcp(log)})
    with pytest.raises(StepError) as caught:
        await toolbox.call("fake.die", {})
    assert caught.value.reason == (
        "MCP server fake stopped during the call to die, and again after a restart"
    )
    assert [line.split()[1] for line in logged(log)].count("die") == 2  # one retry, no more
    await eventually(lambda: _is_up(toolbox), timeout=15)  # and it is restarted again


async def test_a_server_killed_between_calls_is_restarted_before_the_next_call(
    open_toolbox: OpenToolbox, tmp_path: Path
) -> None:
    log = tmp_path / "mcp.log"
    toolbox = await open_toolbox({"fake": fake_mcp(log)})
    [first] = _starts(log)
    os.kill(int(first), signal.SIGKILL)

    async def restarted() -> bool:
        return len(_starts(log)) == 2 and await _is_up(toolbox)

    await eventually(restarted, timeout=15)  # nobody called: its death alone restarted it
    assert await toolbox.call("fake.record", {"text": "again"}) == "recorded: again"


async def test_cancelling_a_slow_call_ends_it_at_once_and_tells_the_server(
    open_toolbox: OpenToolbox, tmp_path: Path
) -> None:
    log = tmp_path / "mcp.log"
    toolbox = await open_toolbox({"fake": fake_mcp(log)})
    call = asyncio.create_task(toolbox.call("fake.slow", {"seconds": 30}))
    await eventually(_logs(log, "slow 30.0"))
    began = time.monotonic()
    call.cancel()
    await asyncio.gather(call, return_exceptions=True)
    assert time.monotonic() - began < 2.0
    await eventually(_logs(log, "slow cancelled"))
    assert await toolbox.call("fake.record", {"text": "still here"}) == "recorded: still here"


async def test_a_server_that_cannot_start_is_logged_once_and_left_out(
    open_toolbox: OpenToolbox, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="orchestrator")
    toolbox = await open_toolbox(
        {"broken": {"command": str(tmp_path / "no-such-server")}, "time": time_mcp()}
    )
    broken, running = toolbox.status()
    assert (broken.is_up, running.is_up) == (False, True)
    assert "No such file or directory" in (broken.problem or "")
    assert {t.name.split(".")[0] for t in toolbox.tools()} == {"time"}
    await asyncio.sleep(0.5)  # several retries, with restart_base_s=0.05
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING and "broken" in r.message]
    assert len(warnings) == 1
    assert "cannot start" in warnings[0].message
    with pytest.raises(StepError, match="MCP server broken is not running"):
        await toolbox.call("broken.anything", {})


async def test_a_server_that_never_answers_is_given_up_after_its_start_up_timeout(
    open_toolbox: OpenToolbox,
) -> None:
    began = time.monotonic()
    toolbox = await open_toolbox(
        {"mute": {"command": "sleep", "args": ["30"]}}, start_timeout_s=0.5
    )
    [status] = toolbox.status()
    assert status.problem == "no answer within 0.5s"
    assert time.monotonic() - began < 5  # the SDK gives a server 2 s to leave, then ends it


async def test_a_streamable_http_server_is_reached_by_url_with_its_headers(
    open_toolbox: OpenToolbox, tmp_path: Path
) -> None:
    log = tmp_path / "mcp.log"
    async with http_mcp(log, token="s3cret") as url:
        toolbox = await open_toolbox(
            {
                "web": {"url": url, "headers": {"Authorization": "Bearer s3cret"}},
                "stranger": {"url": url},
            }
        )
        web, stranger = toolbox.status()
        assert web.is_up
        assert not stranger.is_up
        assert await toolbox.call("web.record", {"text": "over http"}) == "recorded: over http"
    assert "record over http" in logged(log)[-1]


async def _is_up(toolbox: McpToolbox) -> bool:
    return all(s.is_up for s in toolbox.status())


def _logs(log: Path, text: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return any(line.endswith(f" {text}") for line in logged(log))

    return check
