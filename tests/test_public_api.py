"""The library's public surface and its boundaries."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import orchestrator
from orchestrator._phases import phase_diagram

ROOT = Path(__file__).resolve().parent.parent


def _isort_key(name: str) -> tuple[int, str]:
    kind = 0 if name.isupper() else 1 if name[0].isupper() else 2
    return kind, name


def test_all_lists_every_public_name_once_in_sorted_order() -> None:
    public = {n for n in vars(orchestrator) if not n.startswith("_")} | set(orchestrator._LAZY)
    modules = {n for n, v in vars(orchestrator).items() if type(v) is type(orchestrator)}
    assert set(orchestrator.__all__) == public - modules - {"TYPE_CHECKING", "Any"}
    assert orchestrator.__all__ == sorted(orchestrator.__all__, key=_isort_key)
    assert len(orchestrator.__all__) == len(set(orchestrator.__all__))


def test_every_public_name_has_a_docstring() -> None:
    for name in orchestrator.__all__:
        value = getattr(orchestrator, name)
        if callable(value) and not isinstance(value, (dict, frozenset)):
            assert (value.__doc__ or "").strip(), name


def test_the_library_imports_nothing_from_the_bot_or_slack() -> None:
    for path in (ROOT / "orchestrator").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                assert not name.startswith(("bot", "slack")), f"{path.name} imports {name}"
    loaded = subprocess.run(
        [sys.executable, "-c", "import orchestrator, sys; print(sorted(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout
    assert "slack_sdk" not in loaded
    assert "slack_bolt" not in loaded
    assert "'bot" not in loaded
    # Heavy, and only for tools: loaded when a program uses them, not by `import orchestrator`.
    assert "'mcp'" not in loaded
    assert "'jsonschema'" not in loaded


def test_the_readme_phase_diagram_is_the_transition_table() -> None:
    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- phases: generated from orchestrator/_phases.py -->")[1]
    block = block.split("```")[1].strip()
    assert block == phase_diagram()


def test_the_bot_imports_no_mcp_sdk_unless_a_server_is_configured() -> None:
    loaded = subprocess.run(
        [sys.executable, "-c", "import bot.__main__, sys; print(sorted(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout
    assert "'mcp'" not in loaded
    assert "'jsonschema'" not in loaded
