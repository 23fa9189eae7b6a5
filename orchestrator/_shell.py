"""Shell steps: one allowlisted binary run as an argv list, never through a shell interpreter.

Each run gets a fresh working folder and the isolation found at start (see `_sandbox`)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import shutil
import signal
from dataclasses import dataclass, field
from pathlib import Path, PurePath

from ._errors import ShellRefusedError, StepError
from ._sandbox import SAFE_PATH, Isolation, work_folder

# The child gets an allowlist of harmless variables, never a copy of our environment: the bot's
# process holds SLACK_BOT_TOKEN, OPENAI_API_KEY and the like, and a command an LLM wrote must not
# be able to read them. PATH is fixed so the allowlist cannot be dodged by a planted binary;
# HOME and TMPDIR are the run's own folder, not the bot's.
_PASSED_VARS = ("LANG", "LC_ALL", "TZ")
_STDERR_MARKER = "\n--- stderr ---\n"
_CHUNK = 64 * 1024
_ERROR_TAIL = 500
# After SIGKILL the pipes reach EOF at once; this bounds the wait if a process escaped the group.
_REAP_S = 2.0


def parse_command(command: str, allow: frozenset[str]) -> list[str]:
    """Split `command` into argv and resolve argv[0] on the safe PATH, or raise ShellRefusedError.

    argv[0] must be exactly a name in `allow`; path forms (`/bin/echo`, `./x`) are refused."""
    if not allow:
        raise ShellRefusedError("shell steps are off; set ORCH_SHELL_ALLOW to enable them")
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise ShellRefusedError(f"shell command could not be parsed: {exc}") from None
    if not argv:
        raise ShellRefusedError("shell command is empty")
    binary = argv[0]
    if "/" in binary or binary not in allow:
        allowed = ", ".join(sorted(allow))
        raise ShellRefusedError(f"binary {binary!r} is not on the shell allowlist ({allowed})")
    resolved = shutil.which(binary, path=SAFE_PATH)
    if resolved is None:
        raise ShellRefusedError(f"binary {binary!r} was not found on {SAFE_PATH}")
    return [resolved, *argv[1:]]


async def run_command(
    command: str,
    *,
    allow: frozenset[str],
    isolation: Isolation,
    timeout_s: float,
    output_cap: int,
) -> str:
    """Run `command` and return its stdout (then stderr after a marker), cut to `output_cap`.

    Raises StepError on a non-zero exit or timeout; on cancellation the process group is killed."""
    argv = parse_command(command, allow)
    async with work_folder() as workdir:
        return await _run(argv, isolation.command(argv, workdir), workdir, timeout_s, output_cap)


async def _run(
    argv: list[str], launch: list[str], workdir: Path, timeout_s: float, output_cap: int
) -> str:
    name = PurePath(argv[0]).name
    try:
        proc = await asyncio.create_subprocess_exec(
            *launch,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # its own process group, so one killpg reaches every child
            cwd=workdir,
            env=_scrubbed_env(workdir),
        )
    except OSError as exc:
        raise StepError(f"{name} could not start: {exc.strerror}", retryable=False) from None
    out, err = _Capture(output_cap), _Capture(output_cap)
    try:
        async with asyncio.timeout(timeout_s):
            code = await _finish(proc, out, err)
    except TimeoutError:
        raise StepError(f"{name} timed out after {timeout_s:g}s", retryable=False) from None
    finally:
        await _kill_and_reap(proc, out, err)
    if code != 0:
        tail = err.tail.decode("utf-8", errors="replace").strip()
        raise StepError(f"{name} exited with code {code}: {tail or '(no stderr)'}", retryable=False)
    return _combine(out, err, output_cap)


@dataclass
class _Capture:
    """One output stream: its first `cap` bytes, its last few hundred, and how many in all."""

    cap: int
    head: bytearray = field(default_factory=bytearray)
    tail: bytes = b""
    total: int = 0

    async def drain(self, stream: asyncio.StreamReader | None) -> None:
        # Keep reading past the cap so the child never blocks on a full pipe.
        while stream is not None and (chunk := await stream.read(_CHUNK)):
            self.total += len(chunk)
            room = self.cap - len(self.head)
            if room > 0:
                self.head += chunk[:room]
            self.tail = (self.tail + chunk)[-_ERROR_TAIL:]

    def text(self) -> str:
        return self.head.decode("utf-8", errors="replace")


def _scrubbed_env(workdir: Path) -> dict[str, str]:
    env = {name: os.environ[name] for name in _PASSED_VARS if name in os.environ}
    return {**env, "PATH": SAFE_PATH, "HOME": str(workdir), "TMPDIR": str(workdir)}


async def _finish(proc: asyncio.subprocess.Process, out: _Capture, err: _Capture) -> int:
    await asyncio.gather(out.drain(proc.stdout), err.drain(proc.stderr))
    return await proc.wait()


async def _kill_and_reap(proc: asyncio.subprocess.Process, out: _Capture, err: _Capture) -> None:
    # Killed even after a clean exit: background children it left would otherwise be orphans.
    # While any member lives the kernel will not reuse the group id, so this hits only our group.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    # Drain to EOF before waiting: the transport (and so wait()) only finishes once pipes close.
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(_REAP_S):
            await _finish(proc, out, err)


def _combine(out: _Capture, err: _Capture, output_cap: int) -> str:
    text = out.text() + (_STDERR_MARKER + err.text() if err.total else "")
    # Bytes beyond each stream's cap were never decoded; they count as one character each here.
    dropped = len(text) + (out.total - len(out.head)) + (err.total - len(err.head)) - output_cap
    if dropped <= 0:
        return text
    return f"{text[:output_cap]}\n[output cut: {dropped} more characters not shown]"
