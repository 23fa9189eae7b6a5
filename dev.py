"""Set up the virtualenv with pinned dependencies, then run the bot, the tests or the linters.

Usage: python3 dev.py run [bot args] | test [pytest args] | lint
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"


def _ensure_venv(requirements: str) -> None:
    """Create .venv and install the pinned requirements when they changed since the last install."""
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py itself may be run by an older python3
        sys.exit(f"Python 3.11 or newer is needed; this is {sys.version.split()[0]}.")
    if not PY.exists():
        venv.EnvBuilder(with_pip=True).create(VENV)
    req = ROOT / requirements
    digest = hashlib.sha256(req.read_bytes() + (ROOT / "requirements.txt").read_bytes()).hexdigest()
    stamp = VENV / f".installed-{req.stem}"
    if stamp.exists() and stamp.read_text() == digest:
        return
    pip = [str(PY), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "-r", str(req)], check=True)
    stamp.write_text(digest)


def _run(*args: str) -> int:
    return subprocess.run([str(PY), *args], check=False, cwd=ROOT).returncode


def _test(args: list[str]) -> int:
    """The suite on SQLite, then again on a throwaway PostgreSQL (ORCH_TEST_DATABASE picks one)."""
    chosen = os.environ.get("ORCH_TEST_DATABASE")
    backends = [chosen] if chosen else ["sqlite", "postgres"]
    for backend in backends:
        print(f"== the suite on {backend}", flush=True)
        env = {**os.environ, "ORCH_TEST_DATABASE": backend}
        done = subprocess.run([str(PY), "-m", "pytest", *args], check=False, cwd=ROOT, env=env)
        if done.returncode != 0:
            return done.returncode
    return 0


def main(argv: list[str]) -> int:
    command, rest = (argv[0], argv[1:]) if argv else ("run", [])
    if command == "run":
        _ensure_venv("requirements.txt")
        return _run("-m", "bot", *rest)
    if command == "test":
        _ensure_venv("requirements-dev.txt")
        return _test(rest)
    if command == "lint":
        _ensure_venv("requirements-dev.txt")
        checks = [
            ("-m", "ruff", "check", "."),
            ("-m", "ruff", "format", "--check", "."),
            ("-m", "mypy"),
        ]
        return max(_run(*check) for check in checks)
    sys.exit(f"unknown command {command!r}; use run, test or lint")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
