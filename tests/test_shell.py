"""Shell steps: the allowlist, argv-only parsing, output cap, scrubbed env, timeout, cancel."""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from orchestrator import Isolation
from orchestrator._errors import ShellRefusedError, StepError
from orchestrator._shell import parse_command, run_command
from tests.helpers import alive_with, bwrap_works

ECHO = frozenset({"echo"})
PY = frozenset({"python3"})
# Starts a sleeping child that outlives it (not holding our pipes), then exits at once.
SPAWNER = (
    "import subprocess, sys; "
    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)', sys.argv[1]], "
    "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)"
)
# What a command can see of the bot: its process, its folder, its home, its environment.
SNOOP = """
import json, os, sys
bot_pid, bot_folder, bot_home = sys.argv[1:4]
parent = open(f"/proc/{os.getppid()}/environ").read()
print(json.dumps({
    "cwd": os.getcwd(), "files": os.listdir("."), "home": os.environ.get("HOME"),
    "tmpdir": os.environ.get("TMPDIR"), "bot_process": os.path.exists(f"/proc/{bot_pid}"),
    "bot_folder": os.path.exists(bot_folder), "bot_home": os.path.exists(bot_home),
    "parent_env_has_secret": "xoxb-" in parent,
    "processes": len([p for p in os.listdir("/proc") if p.isdigit()]),
}))
"""


@pytest.fixture(params=[Isolation.BWRAP, Isolation.PDEATHSIG], ids=str)
async def isolation(request: pytest.FixtureRequest) -> Isolation:
    """Each isolation this machine offers: the bwrap sandbox, and no sandbox."""
    if request.param is Isolation.BWRAP and not await bwrap_works():
        pytest.skip("bwrap cannot run here")
    return request.param  # type: ignore[no-any-return]


async def run(command: str, allow: frozenset[str], **kw: Any) -> str:
    return await run_command(
        command,
        allow=allow,
        isolation=kw.get("isolation", Isolation.PDEATHSIG),
        timeout_s=kw.get("timeout_s", 10.0),
        output_cap=int(kw.get("output_cap", 16_000)),
    )


def children() -> set[int]:
    """Pids (zombies included) whose parent is this test process."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[1]) == os.getpid():
            found.add(int(stat.parent.name))
    return found


async def gone(marker: str, timeout: float = 2.0) -> bool:
    """Whether every process with `marker` in its arguments is gone within `timeout`."""
    for _ in range(int(timeout / 0.01)):
        if not alive_with(marker):
            return True
        await asyncio.sleep(0.01)
    return False


def test_refused_when_the_allowlist_is_empty() -> None:
    with pytest.raises(ShellRefusedError, match="ORCH_SHELL_ALLOW") as info:
        parse_command("echo hi", frozenset())
    assert info.value.retryable is False


def test_refused_when_the_binary_is_not_allowlisted() -> None:
    with pytest.raises(ShellRefusedError, match=r"'rm'.*echo") as info:
        parse_command("rm -rf /tmp/x", ECHO)
    assert info.value.retryable is False


def test_refused_for_a_path_form_even_when_its_basename_is_allowlisted() -> None:
    with pytest.raises(ShellRefusedError, match="/bin/echo"):
        parse_command("/bin/echo hi", ECHO)


@pytest.mark.parametrize("command", ["", "   ", "echo 'unclosed"])
def test_refused_when_the_command_is_empty_or_unparsable(command: str) -> None:
    with pytest.raises(ShellRefusedError):
        parse_command(command, ECHO)


def test_argv0_is_resolved_to_an_absolute_path() -> None:
    argv = parse_command("echo a b", ECHO)
    assert Path(argv[0]).is_absolute()
    assert argv[1:] == ["a", "b"]


async def test_echo_output_is_returned(isolation: Isolation) -> None:
    assert await run("echo hello world", ECHO, isolation=isolation) == "hello world\n"


@pytest.mark.parametrize(
    "command", ["echo hi; rm -rf /", "echo hi && rm -rf /", "echo $(rm -rf /)", "echo `id` > /x"]
)
async def test_shell_syntax_is_passed_as_literal_arguments(command: str) -> None:
    assert await run(command, ECHO) == command.removeprefix("echo ") + "\n"


async def test_stderr_is_appended_after_a_marker(isolation: Isolation) -> None:
    script = 'python3 -c \'import sys; print("out"); print("err", file=sys.stderr)\''
    assert await run(script, PY, isolation=isolation) == "out\n\n--- stderr ---\nerr\n"


async def test_a_non_zero_exit_raises_step_error_with_the_code_and_stderr() -> None:
    script = "python3 -c 'import sys; sys.stderr.write(\"boom\"); sys.exit(3)'"
    with pytest.raises(StepError, match=r"code 3: boom") as info:
        await run(script, PY)
    assert info.value.retryable is False
    assert not isinstance(info.value, ShellRefusedError)


@pytest.mark.timeout(10)
async def test_output_is_cut_to_the_cap_with_a_note_of_how_much() -> None:
    out = await run("python3 -c 'print(\"x\" * 1_000_000)'", PY, output_cap=1000)
    assert out.startswith("x" * 1000 + "\n[output cut: ")
    assert out.endswith(f"{1_000_001 - 1000} more characters not shown]")


async def test_the_environment_is_scrubbed_of_secrets(
    isolation: Isolation, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-secret")
    monkeypatch.setenv("LANG", "C.UTF-8")
    out = await run("env", frozenset({"env"}), isolation=isolation)
    assert "xoxb-secret" not in out and "SLACK_BOT_TOKEN" not in out
    assert "PATH=/usr/local/bin:/usr/bin:/bin" in out.splitlines()
    assert "LANG=C.UTF-8" in out.splitlines()


@pytest.mark.timeout(10)
async def test_a_timeout_kills_the_process_and_raises_step_error(isolation: Isolation) -> None:
    started = time.monotonic()
    with pytest.raises(StepError, match=r"timed out after 0\.3s") as info:
        await run("sleep 5", frozenset({"sleep"}), timeout_s=0.3, isolation=isolation)
    assert time.monotonic() - started < 2
    assert info.value.retryable is False
    assert children() == set()


@pytest.mark.timeout(10)
async def test_cancelling_kills_and_reaps_the_process_promptly(isolation: Isolation) -> None:
    marker = f"cancel-me-{uuid.uuid4().hex}"
    command = f"python3 -c 'import time; time.sleep(60)' {marker}"
    task = asyncio.create_task(run(command, PY, timeout_s=60, isolation=isolation))
    while not alive_with(marker):  # noqa: ASYNC110 - a process appearing publishes no event
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.2)
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - started < 2
    assert alive_with(marker) == []
    assert children() == set()  # reaped too: a zombie would still be our child


@pytest.mark.timeout(10)
async def test_background_children_are_killed_when_the_command_exits(
    isolation: Isolation,
) -> None:
    marker = f"orphan-{uuid.uuid4().hex}"
    assert await run(f'python3 -c "{SPAWNER}" {marker}', PY, isolation=isolation) == ""
    assert await gone(marker)  # an orphan is reaped by init, not by us: allow it a moment


async def test_a_command_works_in_a_fresh_folder_of_its_own_removed_after_the_run(
    isolation: Isolation, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the bot's folder, with its .env
    (tmp_path / ".env").write_text("SLACK_BOT_TOKEN=xoxb-from-the-dotenv\n")
    with pytest.raises(StepError, match=r"cat exited with code 1: .*\.env: No such file"):
        await run("cat .env", frozenset({"cat"}), isolation=isolation)
    seen = json.loads(await run(f"python3 -c '{SNOOP}' 1 / /", PY, isolation=isolation))
    folder = Path(seen["cwd"])
    assert folder != tmp_path and folder.name.startswith("orch-step-")
    assert seen["files"] == []
    assert seen["home"] == seen["tmpdir"] == str(folder)
    assert not await asyncio.to_thread(folder.exists)


async def test_in_the_sandbox_the_bot_process_files_and_home_are_out_of_sight(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not await bwrap_works():
        pytest.skip("bwrap cannot run here")
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-in-the-bots-environment")
    monkeypatch.chdir(tmp_path)
    command = f"python3 -c '{SNOOP}' {os.getpid()} {tmp_path} {Path.home()}"
    seen = json.loads(await run(command, PY, isolation=Isolation.BWRAP))
    assert seen["bot_process"] is False
    assert seen["bot_folder"] is False
    assert seen["bot_home"] is False
    assert seen["parent_env_has_secret"] is False
    assert seen["processes"] <= 3  # bwrap's init, the command, and nothing else
    with pytest.raises(StepError, match="Read-only file system"):
        await run("touch /usr/planted", frozenset({"touch"}), isolation=Isolation.BWRAP)


async def test_without_a_sandbox_the_bot_process_is_still_visible_so_redaction_matters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen = json.loads(await run(f"python3 -c '{SNOOP}' {os.getpid()} / /", PY))
    assert seen["bot_process"] is True  # why secrets are also redacted from every output
