"""Shell steps: one allowlisted binary run as an argv list, never through a shell interpreter.

Each run gets a fresh working folder and the isolation found at start (see `_sandbox`).
`run_process` is how every program runs (shell commands, coding agents, git): in its own process
group, with a timeout and capped output, the group killed when it ends or is cancelled."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shlex
import shutil
import signal
from collections.abc import Mapping
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
    done = await run_process(
        launch,
        name=name,
        cwd=workdir,
        env=scrubbed_env(workdir),
        timeout_s=timeout_s,
        output_cap=output_cap,
    )
    if done.code != 0:
        tail = done.err.tail_text()
        raise StepError(
            f"{name} exited with code {done.code}: {tail or '(no stderr)'}", retryable=False
        )
    return _combine(done.out, done.err, output_cap)


@dataclass(frozen=True)
class Exited:
    """A process that ran to its end: its exit code and what it printed."""

    code: int
    out: Capture
    err: Capture


async def run_process(
    launch: list[str],
    *,
    name: str,
    cwd: Path,
    env: Mapping[str, str],
    timeout_s: float,
    output_cap: int,
    stdin: bytes | None = None,
    tail_cap: int = _ERROR_TAIL,
) -> Exited:
    """Run `launch` in a process group of its own, fed `stdin` (else nothing), until it exits.

    The group is killed when it exits, times out or is cancelled. StepError (never retryable)
    when it cannot start or times out; `name` names it there."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *launch,
            stdin=asyncio.subprocess.DEVNULL if stdin is None else asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # its own process group, so one killpg reaches every child
            cwd=cwd,
            env=dict(env),
        )
    except OSError as exc:
        raise StepError(f"{name} could not start: {exc.strerror}", retryable=False) from None
    out, err = Capture(output_cap, tail_cap), Capture(output_cap, tail_cap)
    feeding = asyncio.create_task(_feed(proc, stdin))
    try:
        async with asyncio.timeout(timeout_s):
            code = await _finish(proc, out, err)
    except TimeoutError:
        raise StepError(f"{name} timed out after {timeout_s:g}s", retryable=False) from None
    finally:
        feeding.cancel()
        await _kill_and_reap(proc, out, err)
    return Exited(code, out, err)


@dataclass
class Capture:
    """One output stream: its first `cap` bytes, its last `tail_cap`, how many, and their hash."""

    cap: int
    tail_cap: int = _ERROR_TAIL
    head: bytearray = field(default_factory=bytearray)
    tail: bytes = b""
    total: int = 0
    # Compares outputs too long to keep (a work tree's diff before and after an agent's run).
    digest: hashlib._Hash = field(default_factory=hashlib.sha256)

    async def drain(self, stream: asyncio.StreamReader | None) -> None:
        # Keep reading past the cap so the child never blocks on a full pipe.
        while stream is not None and (chunk := await stream.read(_CHUNK)):
            self.total += len(chunk)
            self.digest.update(chunk)
            room = self.cap - len(self.head)
            if room > 0:
                self.head += chunk[:room]
            self.tail = (self.tail + chunk)[-self.tail_cap :]

    def text(self) -> str:
        return self.head.decode("utf-8", errors="replace")

    def tail_text(self) -> str:
        """The last bytes as text: where a program says what went wrong."""
        return self.tail.decode("utf-8", errors="replace").strip()


async def _feed(proc: asyncio.subprocess.Process, data: bytes | None) -> None:
    """Write `data` to the child's stdin and close it; a child that stops reading loses the rest."""
    if data is None or proc.stdin is None:
        return
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        proc.stdin.write(data)
        await proc.stdin.drain()
        proc.stdin.close()


def scrubbed_env(workdir: Path) -> dict[str, str]:
    """Harmless variables only, with PATH fixed and HOME and TMPDIR set to `workdir`."""
    env = {name: os.environ[name] for name in _PASSED_VARS if name in os.environ}
    return {**env, "PATH": SAFE_PATH, "HOME": str(workdir), "TMPDIR": str(workdir)}


async def _finish(proc: asyncio.subprocess.Process, out: Capture, err: Capture) -> int:
    await asyncio.gather(out.drain(proc.stdout), err.drain(proc.stderr))
    return await proc.wait()


async def _kill_and_reap(proc: asyncio.subprocess.Process, out: Capture, err: Capture) -> None:
    # Killed even after a clean exit: background children it left would otherwise be orphans.
    # While any member lives the kernel will not reuse the group id, so this hits only our group.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    # Drain to EOF before waiting: the transport (and so wait()) only finishes once pipes close.
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(_REAP_S):
            await _finish(proc, out, err)


def _combine(out: Capture, err: Capture, output_cap: int) -> str:
    text = out.text() + (_STDERR_MARKER + err.text() if err.total else "")
    # Bytes beyond each stream's cap were never decoded; they count as one character each here.
    dropped = len(text) + (out.total - len(out.head)) + (err.total - len(err.head)) - output_cap
    if dropped <= 0:
        return text
    return f"{text[:output_cap]}\n[output cut: {dropped} more characters not shown]"
