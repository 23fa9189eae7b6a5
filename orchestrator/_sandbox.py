"""Where shell commands run: in a bubblewrap sandbox where the machine allows; in a new folder.

The bot's process holds its tokens and its folder holds `.env`: a command an LLM wrote must see
neither, and must not outlive the bot (a re-run a person confirms must not race an orphan).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from enum import StrEnum
from pathlib import Path

from ._errors import ConfigError

log = logging.getLogger(__name__)

# Binaries (commands and our tools) are looked up here only, so a planted one cannot win.
SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"
_PROBE_S = 10.0
# Read-only system folders; a merged-/usr symlink (/bin -> usr/bin) is recreated as a symlink.
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# Only what programs commonly need from /etc (users, name lookup, libraries, certificates,
# alternatives such as awk), not the whole of it.
_ETC = (
    "passwd", "group", "nsswitch.conf", "hosts", "host.conf", "resolv.conf", "gai.conf",
    "localtime", "timezone", "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "ssl",
    "ca-certificates", "ca-certificates.conf", "pki", "mime.types", "protocols", "services",
)  # fmt: skip


class SandboxMode(StrEnum):
    """What the operator asks for: bwrap when it works (auto), bwrap or no start (bwrap), none."""

    AUTO = "auto"
    BWRAP = "bwrap"
    NONE = "none"


class Isolation(StrEnum):
    """How shell commands run here, as `detect_isolation` found it at start."""

    BWRAP = "bwrap"  # sandboxed; the sandbox and everything in it dies with the bot
    PDEATHSIG = "pdeathsig"  # no sandbox; the command gets SIGKILL when the bot dies
    NONE = "none"  # no sandbox, and nothing ends the command with the bot

    @property
    def description(self) -> str:
        """One line for `check` and the log."""
        return _DESCRIPTIONS[self]

    @property
    def running_note(self) -> str:
        """Recorded as a running shell step's reason, so recovery knows how the run was held."""
        return f"isolation: {self.value}"

    def command(self, argv: list[str], workdir: Path) -> list[str]:
        """`argv` as launched under this isolation, working in `workdir`."""
        if self is Isolation.BWRAP:
            return [_tool("bwrap"), *_bwrap_args(workdir), "--", *argv]
        if self is Isolation.PDEATHSIG:
            # setpriv sets the signal and execs: no Python preexec_fn between fork and exec,
            # which is unsafe while other threads (the store's writer) hold locks. The signal
            # comes when the forking thread ends: the event loop's, which lives as long as we do.
            return [_tool("setpriv"), "--pdeathsig", "KILL", "--", *argv]
        return argv


_DESCRIPTIONS = {
    Isolation.BWRAP: "bwrap sandbox (own processes and /proc, read-only system folders, none of "
    "the bot's files), a fresh folder per run; it ends with the bot",
    Isolation.PDEATHSIG: "no sandbox, a fresh folder per run; the command ends with the bot "
    "(setpriv --pdeathsig), what it starts in the background may not",
    Isolation.NONE: "no sandbox, a fresh folder per run; nothing ends a command with the bot",
}
_AFTER_RESTART = {
    Isolation.BWRAP.running_note: "the old run is over: it was stopped with the bot, sandbox "
    "and all",
    Isolation.PDEATHSIG.running_note: "the old run is over: its process was stopped with the "
    "bot (anything it started in the background may still run)",
}


def old_run_note(running_reason: str | None) -> str:
    """What is known after a restart of a shell run that was recorded with `running_reason`."""
    return _AFTER_RESTART.get(running_reason or "", "the old run may still be going")


async def detect_isolation(mode: str) -> Isolation:
    """The isolation shell commands get here; `ConfigError` when bwrap is required but fails."""
    try:
        wanted = SandboxMode(mode)
    except ValueError:
        raise ConfigError(f"unknown sandbox mode {mode!r}; use auto, bwrap or none") from None
    if wanted is not SandboxMode.NONE:
        problem = await _problem(Isolation.BWRAP)
        if problem is None:
            return Isolation.BWRAP
        if wanted is SandboxMode.BWRAP:
            raise ConfigError(f"the bwrap sandbox is required but cannot run here: {problem}")
        log.warning("shell commands will run without a sandbox: %s", problem)
    return Isolation.PDEATHSIG if await _problem(Isolation.PDEATHSIG) is None else Isolation.NONE


@asynccontextmanager
async def work_folder() -> AsyncIterator[Path]:
    """A fresh empty folder for one run (never the bot's own), removed after it."""
    path = Path(tempfile.mkdtemp(prefix="orch-step-"))
    try:
        yield path
    finally:
        await asyncio.to_thread(shutil.rmtree, path, ignore_errors=True)


async def _problem(isolation: Isolation) -> str | None:
    """None when `true` runs under `isolation`, else what went wrong."""
    tool = "bwrap" if isolation is Isolation.BWRAP else "setpriv"
    if shutil.which(tool, path=SAFE_PATH) is None:
        return f"{tool} is not installed"
    true = shutil.which("true", path=SAFE_PATH) or "true"
    async with work_folder() as workdir:
        proc = await asyncio.create_subprocess_exec(
            *isolation.command([true], workdir),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            cwd=workdir,
            env={"PATH": SAFE_PATH},
        )
        try:
            async with asyncio.timeout(_PROBE_S):
                _, err = await proc.communicate()
        except TimeoutError:
            proc.kill()
            await proc.wait()
            return f"{tool} did not finish within {_PROBE_S:g}s"
    if proc.returncode != 0:
        said = err.decode("utf-8", errors="replace").strip()[:300]
        return f"{tool} failed: {said or f'exit code {proc.returncode}'}"
    return None


def _tool(name: str) -> str:
    return shutil.which(name, path=SAFE_PATH) or name


def _bwrap_args(workdir: Path) -> list[str]:
    args = [
        "--die-with-parent",  # every process in it is SIGKILLed when the bot dies
        "--unshare-pid",  # its own pid namespace and /proc: the bot's process is out of sight
        "--new-session",  # no terminal to inject keystrokes into
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--cap-drop", "ALL",  # as root, bwrap would otherwise keep every capability
        "--proc", "/proc",
        "--dev", "/dev",
        "--tmpfs", "/tmp",
    ]  # fmt: skip
    for folder in _SYSTEM_DIRS:
        path = Path(folder)
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), folder]
        elif path.is_dir():
            args += ["--ro-bind", folder, folder]
    for name in _ETC:
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    for hidden in _own_folders():
        args += ["--tmpfs", str(hidden)]
    return [*args, "--bind", str(workdir), str(workdir), "--chdir", str(workdir)]


def _own_folders() -> list[Path]:
    """The bot's folder and home, where a system folder bound above would show them."""
    folders = []
    for where in (Path.cwd, Path.home):
        with contextlib.suppress(OSError, RuntimeError):  # a deleted folder, no home: none to hide
            folders.append(where())
    system = [Path("/usr"), Path("/etc")]
    return [f for f in folders if any(f != s and f.is_relative_to(s) for s in system)]
