"""Shell steps: the allowlist, argv-only parsing, output cap, scrubbed env, timeout, cancel."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from orchestrator._errors import ShellRefusedError, StepError
from orchestrator._shell import parse_command, run_command

ECHO = frozenset({"echo"})
PY = frozenset({"python3"})
# Records its pid in argv[1] before sleeping, so a test can look for the process afterwards.
SLEEPER = """
import os, sys, time
open(sys.argv[1], "w").write(str(os.getpid()))
time.sleep(60)
"""
# Starts SLEEPER in the background (not holding our pipes), waits for its pid, then exits.
SPAWNER = """
import os, subprocess, sys, time
subprocess.Popen([sys.executable, sys.argv[1], sys.argv[2]], stdout=subprocess.DEVNULL,
                 stderr=subprocess.DEVNULL)
while not os.path.exists(sys.argv[2]) or not open(sys.argv[2]).read():
    time.sleep(0.01)
"""


def script(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


async def run(command: str, allow: frozenset[str], **kw: float) -> str:
    return await run_command(
        command,
        allow=allow,
        timeout_s=kw.get("timeout_s", 10.0),
        output_cap=int(kw.get("output_cap", 16_000)),
    )


def is_alive(pid: int) -> bool:
    """True while the pid exists and is not a zombie (a zombie was killed but never reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in {"Z", "X"}


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


def read_pid(path: Path) -> int | None:
    text = path.read_text() if path.exists() else ""
    return int(text) if text else None


async def wait_for_pid(path: Path) -> int:
    for _ in range(500):
        if (pid := read_pid(path)) is not None:
            return pid
        await asyncio.sleep(0.01)
    raise AssertionError("the child never wrote its pid")


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


async def test_echo_output_is_returned() -> None:
    assert await run("echo hello world", ECHO) == "hello world\n"


@pytest.mark.parametrize(
    "command", ["echo hi; rm -rf /", "echo hi && rm -rf /", "echo $(rm -rf /)", "echo `id` > /x"]
)
async def test_shell_syntax_is_passed_as_literal_arguments(command: str) -> None:
    assert await run(command, ECHO) == command.removeprefix("echo ") + "\n"


async def test_stderr_is_appended_after_a_marker() -> None:
    script = 'python3 -c \'import sys; print("out"); print("err", file=sys.stderr)\''
    assert await run(script, PY) == "out\n\n--- stderr ---\nerr\n"


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


async def test_the_environment_is_scrubbed_of_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-secret")
    monkeypatch.setenv("LANG", "C.UTF-8")
    out = await run("env", frozenset({"env"}))
    assert "xoxb-secret" not in out and "SLACK_BOT_TOKEN" not in out
    assert "PATH=/usr/local/bin:/usr/bin:/bin" in out.splitlines()
    assert "LANG=C.UTF-8" in out.splitlines()


@pytest.mark.timeout(10)
async def test_a_timeout_kills_the_process_and_raises_step_error() -> None:
    started = time.monotonic()
    with pytest.raises(StepError, match=r"timed out after 0\.3s") as info:
        await run("sleep 5", frozenset({"sleep"}), timeout_s=0.3)
    assert time.monotonic() - started < 2
    assert info.value.retryable is False
    assert children() == set()


@pytest.mark.timeout(10)
async def test_cancelling_kills_and_reaps_the_process_promptly(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    sleeper = script(tmp_path, "sleeper.py", SLEEPER)
    task = asyncio.create_task(run(f"python3 {sleeper} {pid_file}", PY, timeout_s=60))
    pid = await wait_for_pid(pid_file)
    await asyncio.sleep(0.2)
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - started < 2
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # gone and reaped: a zombie would still answer


@pytest.mark.timeout(10)
async def test_background_children_are_killed_when_the_command_exits(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    sleeper = script(tmp_path, "sleeper.py", SLEEPER)
    spawner = script(tmp_path, "spawner.py", SPAWNER)
    assert await run(f"python3 {spawner} {sleeper} {pid_file}", PY) == ""
    pid = await wait_for_pid(pid_file)
    for _ in range(200):  # the orphan is reaped by init, not by us: allow it a moment
        if not is_alive(pid):
            break
        await asyncio.sleep(0.01)
    assert not is_alive(pid)
