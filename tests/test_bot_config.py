"""The app manifest, the settings and the command line, as someone setting up the bot meets them."""

from __future__ import annotations

import asyncio
import io
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
import yaml

from bot.check import run_check
from bot.settings import Settings, SettingsError, load_settings
from orchestrator import SandboxMode
from orchestrator._sandbox import SAFE_PATH
from tests.conftest import StartBot, bot_settings
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.slack_server import FakeSlack
from tests.helpers import bwrap_works
from tests.postgres import BACKEND

ROOT = Path(__file__).resolve().parent.parent


def test_the_manifest_asks_for_exactly_what_the_bot_needs() -> None:
    manifest = yaml.safe_load((ROOT / "manifest.yaml").read_text())
    assert manifest["features"]["bot_user"]["display_name"]
    assert set(manifest["oauth_config"]["scopes"]["bot"]) == {
        "app_mentions:read",
        "chat:write",
        "channels:history",
        "groups:history",
    }
    settings = manifest["settings"]
    assert set(settings["event_subscriptions"]["bot_events"]) == {
        "app_mention",
        "message.channels",
        "message.groups",
    }
    assert settings["interactivity"]["is_enabled"] is True
    assert settings["socket_mode_enabled"] is True


def test_env_example_lists_every_setting_with_its_default() -> None:
    lines = (ROOT / ".env.example").read_text().splitlines()
    names = {line.split("=")[0] for line in lines if line and not line.startswith("#")}
    assert names == {name.upper() for name in Settings.model_fields}
    example = dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))
    for name, field in Settings.model_fields.items():
        default = field.default
        if isinstance(default, (int, float, str)) and not isinstance(default, bool):
            assert example[name.upper()] in (
                str(default),
                f"{default:g}" if isinstance(default, float) else "",
            )


def test_the_api_url_gets_its_trailing_slash() -> None:
    settings = Settings(_env_file=None, slack_api_url="http://127.0.0.1:9/api")  # type: ignore[call-arg]
    assert settings.slack_api_url == "http://127.0.0.1:9/api/"


def test_comma_lists_become_sets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_APPROVERS", "U1, U2,,")
    monkeypatch.setenv("ORCH_SHELL_ALLOW", "ls")
    monkeypatch.setenv("ORCH_ALLOWED_TEAMS", "T2,T3 ")
    settings = load_settings(_env_file=None)
    assert settings.orch_approvers == {"U1", "U2"}
    assert settings.orchestrator_config().shell_allow == {"ls"}
    assert settings.orch_allowed_teams == {"T2", "T3"}


def test_only_the_installed_workspace_is_served_and_notify_pings_nobody_by_default() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.orch_allowed_teams == frozenset()
    assert settings.orch_notify_user_mentions is False


def test_the_sandbox_and_the_planning_budget_reach_the_library(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ORCH_SHELL_SANDBOX", "none")
    monkeypatch.setenv("ORCH_PLANNING_TIMEOUT_S", "42")
    config = load_settings(_env_file=None).orchestrator_config()
    assert config.shell_sandbox is SandboxMode.NONE
    assert config.planning_timeout_s == 42


def test_the_heartbeat_and_lease_reach_the_library_and_two_beats_must_fit_half_a_lease(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ORCH_HEARTBEAT_S", "2")
    monkeypatch.setenv("ORCH_LEASE_TTL_S", "10")
    config = load_settings(_env_file=None).orchestrator_config()
    assert (config.heartbeat_s, config.lease_ttl_s) == (2, 10)
    monkeypatch.setenv("ORCH_HEARTBEAT_S", "5")
    with pytest.raises(SettingsError) as caught:
        load_settings(_env_file=None)
    assert "ORCH_HEARTBEAT_S must be under half of ORCH_LEASE_TTL_S (5s against 10s)" in str(
        caught.value
    )


def test_a_malformed_setting_is_one_line_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_MAX_PARALLEL", "lots")
    with pytest.raises(SettingsError) as caught:
        load_settings(_env_file=None)
    lines = str(caught.value).splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("ORCH_MAX_PARALLEL: ")
    assert "'lots'" in lines[0]


def test_a_secret_is_never_echoed_in_an_error() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(_env_file=None, slack_bot_token=["xoxb-not-a-list-secret"])
    assert "xoxb-not-a-list-secret" not in str(caught.value)
    assert "SLACK_BOT_TOKEN" in str(caught.value)


def _run_bot(
    *args: str, env: dict[str, str], wrapper: Sequence[str] = ()
) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "OPENAI_", "ORCH_"))
    }
    return subprocess.run(
        [*wrapper, sys.executable, "-m", "bot", *args],
        cwd=ROOT / "tests",  # no .env there
        env={**clean, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_starting_without_tokens_stops_with_one_line_per_missing_setting() -> None:
    result = _run_bot(env={})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "SLACK_BOT_TOKEN",
        "SLACK_SIGNING_SECRET",
        "OPENAI_API_KEY",
    ]


def test_a_malformed_number_stops_start_up_naming_it() -> None:
    result = _run_bot(env={"ORCH_MAX_STEPS": "twelve"})
    assert result.returncode == 2
    assert result.stderr.startswith("ORCH_MAX_STEPS: ")


def test_the_bot_will_not_start_when_the_required_sandbox_cannot_run() -> None:
    bwrap = shutil.which("bwrap", path=SAFE_PATH)
    # Where bwrap works, the bot runs where it is replaced by a file that cannot execute.
    wrapper: list[str] = []
    if bwrap is not None and asyncio.run(bwrap_works()):
        wrapper = [bwrap, "--dev-bind", "/", "/", "--ro-bind", "/dev/null", bwrap]
    env = {
        "SLACK_BOT_TOKEN": "xoxb-test",
        "SLACK_APP_TOKEN": "xapp-test",
        "OPENAI_API_KEY": "test-key",
        "DATABASE_URL": "sqlite:///:memory:",
        "ORCH_SHELL_SANDBOX": "bwrap",
    }
    result = _run_bot(env=env, wrapper=wrapper)
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("ORCH_SHELL_SANDBOX: the bwrap sandbox is required but cannot run here")


def test_an_unknown_sandbox_mode_stops_start_up_naming_it() -> None:
    result = _run_bot(env={"ORCH_SHELL_SANDBOX": "sometimes"})
    assert result.returncode == 2
    assert result.stderr.startswith("ORCH_SHELL_SANDBOX: ")


def test_an_unknown_command_prints_the_usage() -> None:
    result = _run_bot("launch", env={})
    assert result.returncode == 2
    assert "usage: python -m bot [run|shell|check]" in result.stderr


async def test_check_reaches_slack_and_lists_the_models_once(
    fake_slack: FakeSlack, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    out = io.StringIO()
    assert await run_check(bot_settings(fake_slack, fake_openai, tmp_path), out) == 0
    assert "slack: connected as orchestrator in Test" in out.getvalue()
    assert "llm: 1 models; fake-model found" in out.getvalue()
    assert "shell: " in out.getvalue()
    shown = r"^database: (sqlite at /|postgresql://).+, schema v[1-9]"
    assert re.search(shown, out.getvalue(), re.MULTILINE)
    assert out.getvalue().rstrip().endswith("all good")
    assert [c.method for c in fake_slack.calls] == ["auth.test"]


@pytest.mark.skipif(BACKEND != "postgres", reason="replicas share PostgreSQL (its own pass)")
async def test_check_lists_the_live_replicas_and_is_not_one_itself(
    start_bot: StartBot, fake_slack: FakeSlack, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    settings = bot_settings(fake_slack, fake_openai, tmp_path)
    out = io.StringIO()
    assert await run_check(settings, out) == 0
    assert "replicas: 0 live" in out.getvalue()
    await start_bot()
    out = io.StringIO()
    assert await run_check(settings, out) == 0
    assert "replicas: 1 live" in out.getvalue()
    assert re.search(r"^replica [0-9a-f]{12}: .+ pid \d+, beat \d+\.\ds ago$", out.getvalue(), re.M)


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("mysql://u:hunter2@h/db", "is not a database URL"),
        ("postgresql://u:hunter2@127.0.0.1:1/db", "cannot open the database postgresql://u@"),
    ],
)
async def test_check_names_a_database_it_cannot_use_and_never_its_password(
    url: str, said: str, fake_slack: FakeSlack, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    out = io.StringIO()
    settings = bot_settings(fake_slack, fake_openai, tmp_path, database_url=url)
    assert await run_check(settings, out) == 1
    assert "problem: DATABASE_URL: " in out.getvalue()
    assert said in out.getvalue()
    assert "hunter2" not in out.getvalue()


@pytest.mark.parametrize(
    ("mode", "said"),
    [("none", "shell: no sandbox, a fresh folder per run"), ("bwrap", "shell: bwrap sandbox")],
)
async def test_check_says_how_shell_steps_are_isolated(
    mode: str, said: str, fake_slack: FakeSlack, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    if mode == "bwrap" and not await bwrap_works():
        pytest.skip("bwrap cannot run here")
    settings = bot_settings(
        fake_slack, fake_openai, tmp_path, orch_shell_sandbox=mode, orch_shell_allow="ls,cat"
    )
    out = io.StringIO()
    assert await run_check(settings, out) == 0
    line = next(line for line in out.getvalue().splitlines() if line.startswith("shell: "))
    assert line.startswith(said)
    assert line.endswith("; allowed: cat, ls")


async def test_check_names_each_problem_and_how_to_fix_it(
    fake_slack: FakeSlack, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    settings = bot_settings(
        fake_slack, fake_openai, tmp_path, slack_bot_token="xoxp-user-token", orch_model="gpt-9"
    )
    out = io.StringIO()
    assert await run_check(settings, out) == 1
    problems = [line for line in out.getvalue().splitlines() if line.startswith("problem:")]
    assert [p.split(":")[1].strip() for p in problems] == ["SLACK_BOT_TOKEN", "ORCH_MODEL"]
    assert "xoxp-user-token" not in out.getvalue()


@pytest.mark.parametrize("command", ["run", "check", "shell"])
def test_a_bad_hands_file_stops_the_bot_with_one_line_naming_it(
    command: str, tmp_path: Path
) -> None:
    hands = tmp_path / "mcp.json"
    hands.write_text('{"mcpServers": {"files": {"command": "x", "tiers": {"rm": "harmless"}}}}')
    env = {
        "SLACK_BOT_TOKEN": "xoxb-test",
        "SLACK_APP_TOKEN": "xapp-test",
        "OPENAI_API_KEY": "test-key",
        "ORCH_MCP_CONFIG": str(hands),
    }
    result = _run_bot(command, env=env)
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith(f"ORCH_MCP_CONFIG ({hands}): mcpServers.files.tiers.rm: Input should be")
