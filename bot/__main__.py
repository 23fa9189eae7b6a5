"""`python -m bot [run|shell|check]`: the composition root."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys

from orchestrator import ConfigError

from .check import run_check
from .logs import install_redaction, setup_logging
from .service import BotService
from .settings import Settings, SettingsError, load_settings
from .shell import run_shell

USAGE = "usage: python -m bot [run|shell|check]"


async def _serve(settings: Settings) -> int:
    service = BotService(settings)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    try:
        await service.start()
    except ConfigError:
        await service.stop()
        raise
    # What start-up made (modules, settings, recovered state) lives as long as the process: the
    # collector need not walk it again on every full collection.
    gc.freeze()
    await stopping.wait()
    logging.getLogger(__name__).info("shutting down")
    await service.stop()
    return 0


def main(argv: list[str]) -> int:
    """Run the bot, the terminal shell, or the settings check."""
    setup_logging()
    command = argv[0] if argv else "run"
    if command not in ("run", "shell", "check"):
        print(USAGE, file=sys.stderr)
        return 2
    try:
        settings = load_settings()
    except SettingsError as err:
        print(err, file=sys.stderr)
        return 2
    install_redaction(settings.redactor())
    try:
        settings.hands()  # a bad hands file stops every command, before anything starts
    except ConfigError as err:
        print(err.reason, file=sys.stderr)
        return 2
    if command == "check":
        return asyncio.run(run_check(settings))
    needed = settings.llm_problems()
    if command == "run":
        needed = settings.slack_problems() + needed
    if needed:
        print("\n".join(needed), file=sys.stderr)
        return 2
    try:
        if command == "shell":
            logging.getLogger().setLevel(logging.WARNING)  # the terminal is the conversation
            return asyncio.run(run_shell(settings))
        return asyncio.run(_serve(settings))
    except ConfigError as err:  # the one setting checked only at start: the sandbox
        print(f"ORCH_SHELL_SANDBOX: {err.reason}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
