"""What the benchmarks that run `python -m bot` share: a stop that leaves no process behind, and
what /proc says about the process."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from tests.bot_process import BotProcess


async def stop(bot: BotProcess) -> int | None:
    """SIGTERM, and SIGKILL when it does not exit in time; its exit code (None: never started)."""
    proc = bot.proc
    if proc is None:
        return None
    if proc.returncode is None:
        try:
            return await bot.stop(signal.SIGTERM)
        except TimeoutError:
            if proc.returncode is None:
                proc.kill()
    return await proc.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/<pid>/stat, in clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_mb(pid: int, field: str) -> float:
    """VmRSS or VmHWM (peak RSS) of a process, in MB (/proc/<pid>/status, in kB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/{pid}/status")
