"""Which isolation shell steps get, found at start, and what a restart says of an old run."""

from __future__ import annotations

import shutil

import pytest

from orchestrator import ConfigError, Isolation, detect_isolation
from orchestrator._sandbox import SAFE_PATH, old_run_note
from tests.helpers import bwrap_works


async def test_auto_uses_bwrap_where_it_runs() -> None:
    if not await bwrap_works():
        pytest.skip("bwrap cannot run here")
    assert await detect_isolation("auto") is Isolation.BWRAP


async def test_none_runs_without_a_sandbox_but_ends_the_command_with_the_bot() -> None:
    expected = Isolation.PDEATHSIG if shutil.which("setpriv", path=SAFE_PATH) else Isolation.NONE
    assert await detect_isolation("none") is expected


async def test_an_unknown_mode_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="'sometimes'; use auto, bwrap or none"):
        await detect_isolation("sometimes")


def test_after_a_restart_only_a_run_that_ended_with_the_bot_is_called_over() -> None:
    assert old_run_note(Isolation.BWRAP.running_note).startswith("the old run is over")
    assert old_run_note(Isolation.PDEATHSIG.running_note).startswith("the old run is over")
    assert "in the background may still run" in old_run_note(Isolation.PDEATHSIG.running_note)
    assert old_run_note(Isolation.NONE.running_note) == "the old run may still be going"
    assert old_run_note(None) == "the old run may still be going"
