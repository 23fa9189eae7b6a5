"""A throwaway PostgreSQL server for the tests: a temporary folder, a loopback port, gone after.

`ORCH_TEST_POSTGRES_URL` names a server to use instead (a database is made per test there too).
Without either, the tests that need PostgreSQL skip and say why.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import psycopg

_SEARCH = ["/usr/lib/postgresql/*/bin", "/usr/local/pgsql/bin"]


def find_binaries() -> Path | None:
    """The folder holding initdb and pg_ctl, if PostgreSQL is installed."""
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).parent
    installed = [Path(found) for pattern in _SEARCH for found in glob.glob(pattern)]
    for folder in sorted(installed, key=_version, reverse=True):  # the newest first
        if (folder / "initdb").exists():
            return folder
    return None


def _version(folder: Path) -> list[int]:
    return [int(n) for n in re.findall(r"\d+", str(folder))]


class PostgresServer:
    """A server of our own on 127.0.0.1, with fsync off (its data is thrown away)."""

    def __init__(self, binaries: Path) -> None:
        self._bin = binaries
        self._dir = Path(tempfile.mkdtemp(prefix="orch-pg-"))
        self.port = _free_port()
        # The server refuses to run as root: it runs as the postgres user, which owns its folder.
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self._as:
            shutil.chown(self._dir, "postgres")
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        data = self._dir / "data"
        self._run("initdb", "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync")
        options = (
            f"-p {self.port} -k {self._dir} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
        )
        log = str(self._dir / "server.log")
        self._run("pg_ctl", "-D", str(data), "-o", options, "-l", log, "-w", "start")

    def stop(self) -> None:
        data = self._dir / "data"
        if data.exists():
            self._run("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(self._dir, ignore_errors=True)

    def _run(self, tool: str, *args: str, check: bool = True) -> None:
        done = subprocess.run(
            [*self._as, str(self._bin / tool), *args], capture_output=True, text=True, check=False
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stderr[-2000:]}")


class Databases:
    """Fresh, empty databases on one server, one per test and name."""

    def __init__(self, server_url: str) -> None:
        self._url = server_url
        self._made: dict[str, str] = {}  # "folder/name" -> its database's URL

    def url_for(self, key: str) -> str:
        """The database for `key`, made on first use."""
        if key not in self._made:
            name = f"t_{uuid.uuid4().hex[:16]}"
            with psycopg.connect(self._url, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            self._made[key] = urlsplit(self._url)._replace(path=f"/{name}").geturl()
        return self._made[key]

    def drop_all(self) -> None:
        """Drop every database made here (on a server that outlives the tests)."""
        with psycopg.connect(self._url, autocommit=True) as conn:
            for url in self._made.values():
                name = urlsplit(url).path.lstrip("/")
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self._made.clear()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


BACKEND = os.environ.get("ORCH_TEST_DATABASE", "sqlite")
_session: dict[str, Databases] = {}  # "databases": where this session makes them


def use(databases: Databases | None) -> None:
    """Where `database_url` makes PostgreSQL databases (set for the session by conftest)."""
    _session.pop("databases", None)
    if databases is not None:
        _session["databases"] = databases


def database_url(folder: Path, name: str) -> str:
    """The test's database `name`: a SQLite file in its folder, or, when the suite runs on
    PostgreSQL (ORCH_TEST_DATABASE=postgres), a database of its own there."""
    if BACKEND != "postgres":
        return f"sqlite:///{folder / name}.db"
    assert _session, "the postgres session fixture did not run"
    return _session["databases"].url_for(f"{folder}/{name}")
