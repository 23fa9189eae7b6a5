"""Whether a coding agent changed a git work tree, and what it changed, by running `git`.

Only reading commands, with git's optional locks off, so checking never writes the repository.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ._errors import StepError
from ._shell import Exited, run_process

GIT_TIMEOUT_S = 60.0
_CAP = 1024 * 1024  # of what is kept to read; longer outputs are still compared whole (digest)
# A repository's own config could name a program for `git status` to run (core.fsmonitor).
_GIT = ("-c", "core.fsmonitor=false", "--no-pager")
_DIFF = ("--no-ext-diff", "--no-textconv", "--binary")


@dataclass(frozen=True)
class TreeState:
    """A work tree at one moment: its HEAD, its untracked files, and a digest of all of it."""

    head: str  # the commit checked out; empty before the first commit
    untracked: frozenset[str]
    digest: str  # of HEAD, status, both diffs and every untracked file's content


class WorkTree:
    """The git work tree around a folder, read with `git` found on the environment's PATH."""

    def __init__(self, root: Path, *, git: str, env: Mapping[str, str]) -> None:
        self.root = root
        self._git = git
        # LC_ALL=C: git's messages in English, so "not a git repository" can be told apart.
        self._env = {**env, "GIT_OPTIONAL_LOCKS": "0", "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}

    @classmethod
    async def find(cls, folder: Path, env: Mapping[str, str]) -> WorkTree | None:
        """The work tree `folder` is in, or None (not in one, or no git to tell).

        StepError when git cannot read it (a repository of another owner, say): a change
        that cannot be checked is not assumed."""
        git = shutil.which("git", path=env.get("PATH"))
        if git is None:
            return None
        probe = cls(folder, git=git, env=env)
        done = await probe._run("rev-parse", "--show-toplevel", check=False)
        if done.code == 0:
            return cls(Path(done.out.text().strip()), git=git, env=env)
        said = done.err.tail_text()
        if "not a git repository" in said:
            return None
        raise StepError(f"git cannot read the work tree {folder}: {said}", retryable=False)

    async def state(self) -> TreeState:
        """What the tree holds now (StepError when git fails)."""
        head = await self._run("rev-parse", "--verify", "-q", "HEAD", check=False)
        status = await self._run("status", "--porcelain=v1", "-z", "--untracked-files=all")
        unstaged = await self._run("diff", *_DIFF)
        staged = await self._run("diff", "--cached", *_DIFF)
        entries = [e for e in status.out.text().split("\0") if e]
        untracked = sorted(e[3:] for e in entries if e.startswith("?? "))
        paths = "".join(f"{p}\n" for p in untracked)
        contents = await self._run("hash-object", "--no-filters", "--stdin-paths", stdin=paths)
        digest = hashlib.sha256()
        for part in (head, status, unstaged, staged, contents):
            digest.update(part.out.digest.digest())
        return TreeState(
            head=head.out.text().strip() if head.code == 0 else "",
            untracked=frozenset(untracked),
            digest=digest.hexdigest(),
        )

    async def diff_stat(self, before: TreeState, now: TreeState) -> str:
        """`git diff --stat` from `before` to `now`, and the files that became untracked."""
        since = before.head or await self._empty_tree()
        stat = (await self._run("diff", "--stat", "--no-ext-diff", since)).out.text().rstrip()
        new = sorted(now.untracked - before.untracked)
        if new:
            stat += ("\n" if stat else "") + "new untracked files: " + ", ".join(new)
        return stat or "(no files changed)"

    async def _empty_tree(self) -> str:
        """The empty tree's id in this repository's hash, to diff against before a first commit."""
        done = await self._run("hash-object", "-t", "tree", "--stdin", stdin="")
        return done.out.text().strip()

    async def _run(self, *args: str, check: bool = True, stdin: str | None = None) -> Exited:
        done = await run_process(
            [self._git, *_GIT, *args],
            name="git",
            cwd=self.root,
            env=self._env,
            timeout_s=GIT_TIMEOUT_S,
            output_cap=_CAP,
            stdin=stdin.encode() if stdin is not None else None,
        )
        if check and done.code != 0:
            said = done.err.tail_text()
            raise StepError(f"git {args[0]} failed in {self.root}: {said}", retryable=False)
        return done
