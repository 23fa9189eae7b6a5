"""Implement steps: a coding agent carries out a specification; when it fails, the next one tries.

Success is checked, not assumed: headless agents exit 0 after being denied what they needed. An
agent succeeded when it exited 0, its last JSON line reports no error, and, when it works in a
git work tree, the tree changed while it ran. Each agent runs once per step: escalation, not
retries. When every one has failed, the step fails and a person is next.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath

from ._agent_output import AgentSaid, read_output
from ._errors import StepError
from ._git import GIT_TIMEOUT_S, WorkTree
from ._hands import SPEC, AgentConfig
from ._phases import Tier
from ._prompts import render_prompt
from ._redact import Redactor
from ._sandbox import SAFE_PATH, Isolation, SandboxMode, detect_isolation, work_folder
from ._shell import Exited, run_process, scrubbed_env
from ._summary import cut

log = logging.getLogger(__name__)

ESCALATED = "escalated to a person"
_TAIL = 1024 * 1024  # of stdout kept to find the last JSON lines in (a run may print megabytes)
_REASON_CHARS = 500  # each agent's reason, as the next agent and the person read it
_MESSAGE_CHARS = 3000  # the agent's final message, in the step's output
# Time for the git checks around each agent (a few commands, each bounded by GIT_TIMEOUT_S).
_CHECK_S = 2 * GIT_TIMEOUT_S


@dataclass(frozen=True)
class Agent:
    """A coding agent's command line; `{spec}` in `args` is replaced by the specification."""

    name: str
    command: str
    args: tuple[str, ...] = ()
    cwd: str | None = None  # the work tree it changes; None: a fresh empty folder
    env: Mapping[str, str] = field(default_factory=dict)  # added to the scrubbed environment
    timeout_s: float = 1800.0
    tier: Tier = Tier.EXECUTE

    @property
    def path(self) -> str:
        """Where its command is looked up: its env's PATH, else the safe one shell steps get."""
        return self.env.get("PATH", SAFE_PATH)

    def find_command(self) -> str | None:
        """Its command's binary: a name found on `path`, or an absolute path; never relative."""
        if "/" in self.command and not PurePath(self.command).is_absolute():
            return None
        return shutil.which(self.command, path=self.path)

    @classmethod
    def from_config(cls, name: str, config: AgentConfig) -> Agent:
        """The agent the hands file's `agents.<name>` entry describes."""
        return cls(
            name=name,
            command=config.command,
            args=tuple(config.args),
            cwd=config.cwd,
            env=dict(config.env),
            timeout_s=config.timeout_s,
            tier=config.tier,
        )


@dataclass(frozen=True)
class _Attempt:
    """One agent's run: why it failed, or (when `failure` is None) what it did."""

    failure: str | None
    message: str = ""
    stat: str | None = None  # git diff --stat, when it worked in a work tree


class CodingAgents:
    """The configured agents in escalation order; carries an implement step through them."""

    def __init__(self, agents: Sequence[Agent] = (), *, redactor: Redactor | None = None) -> None:
        self.agents = tuple(agents)
        self._redactor = redactor or Redactor()
        self.isolation: Isolation | None = None  # found by `start()`

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.agents)

    @property
    def tier(self) -> Tier:
        """The riskiest agent's tier: any of them may end up running an implement step."""
        return max((Tier.READ, *(a.tier for a in self.agents)), key=lambda t: t.rank)

    @property
    def timeout_s(self) -> float:
        """The longest an implement step can take: every agent to its timeout, checks included."""
        return sum(a.timeout_s + _CHECK_S for a in self.agents)

    async def start(self) -> None:
        """Find how agents are held, when there are any: no sandbox (they change their work
        tree), but they die with the bot where `setpriv --pdeathsig` works."""
        if self.agents:
            isolation = await self._held()
            log.info("coding agents %s: %s", ", ".join(self.names), isolation.description)

    async def _held(self) -> Isolation:
        if self.isolation is None:
            self.isolation = await detect_isolation(SandboxMode.NONE)
        return self.isolation

    async def implement(self, spec: str) -> str:
        """Hand `spec` to each agent in turn until one succeeds; what it did and said.

        StepError (never retryable) naming each agent's reason when every one failed."""
        if not self.agents:
            raise StepError("no coding agents are configured (ORCH_MCP_CONFIG's agents)")
        failures: list[tuple[str, str]] = []
        for agent in self.agents:
            attempt = await self._attempt(agent, _with_failures(spec, failures))
            if attempt.failure is None:
                return _report(agent.name, failures, attempt)
            log.info("coding agent %s failed: %s", agent.name, attempt.failure)
            failures.append((agent.name, self._redactor.redact(attempt.failure)))
        said = "; ".join(f"{name}: {reason}" for name, reason in failures)
        raise StepError(f"{ESCALATED}: {said}", retryable=False)

    async def _attempt(self, agent: Agent, spec: str) -> _Attempt:
        """Run one agent on `spec` in its folder, with a fresh HOME, and judge how it did."""
        async with work_folder() as home:
            folder = Path(agent.cwd) if agent.cwd else home
            if not folder.is_dir():
                return _Attempt(f"its folder {folder} does not exist")
            binary = agent.find_command()
            if binary is None:
                return _Attempt(f"{agent.command} was not found on {agent.path}")
            argv = [binary, *(arg.replace(SPEC, spec) for arg in agent.args)]
            env = {**scrubbed_env(home), **agent.env}
            try:
                return await self._run(agent, argv, folder, env, spec)
            except StepError as err:  # it could not start or timed out; git failed
                return _Attempt(err.reason)

    async def _run(
        self, agent: Agent, argv: list[str], folder: Path, env: dict[str, str], spec: str
    ) -> _Attempt:
        isolation = await self._held()
        tree = await WorkTree.find(folder, env)
        before = await tree.state() if tree else None
        done = await run_process(
            isolation.command(argv, folder),
            name=PurePath(argv[0]).name,
            cwd=folder,
            env=env,
            timeout_s=agent.timeout_s,
            output_cap=0,  # only the tail is read: the last JSON lines, the final message
            stdin=spec.encode(),
            tail_cap=_TAIL,
        )
        said = _said(done)
        failure = _failure(done, said)
        if failure is not None or tree is None or before is None:  # no tree: nothing to check
            return _Attempt(failure, said.message)
        after = await tree.state()
        if after.digest == before.digest:
            return _Attempt(_unchanged(tree, said), said.message)
        return _Attempt(None, said.message, await tree.diff_stat(before, after))


def _said(done: Exited) -> AgentSaid:
    tail = done.out.tail.decode("utf-8", errors="replace")
    return read_output(tail, is_partial=done.out.total > len(done.out.tail))


def _failure(done: Exited, said: AgentSaid) -> str | None:
    """Why the run failed by its exit code or its last JSON line; None when neither says so."""
    if done.code != 0:
        stderr = done.err.tail_text()
        why = said.error or _end(stderr) or _end(said.message) or "(no output)"
        return cut(f"exited with code {done.code}: {why}", _REASON_CHARS)
    if said.error is not None:
        return cut(f"exited 0 but reported an error: {said.error}", _REASON_CHARS)
    return None


def _end(text: str) -> str:
    """The end of a long text: where a program says what went wrong."""
    limit = _REASON_CHARS - 100  # room for what comes before it in the reason
    return text if len(text) <= limit else "…" + text[-limit:]


def _unchanged(tree: WorkTree, said: AgentSaid) -> str:
    why = f"exited 0 but changed nothing in the work tree {tree.root}"
    if said.denied:
        why += f"; it was denied {', '.join(said.denied)}"
    if said.message:
        why += f"; it said: {said.message}"
    return cut(why, _REASON_CHARS)


def _with_failures(spec: str, failures: Sequence[tuple[str, str]]) -> str:
    """The spec, and what went wrong for each agent that tried it before."""
    if not failures:
        return spec
    tried = "\n".join(f"- {name}: {reason}" for name, reason in failures)
    return render_prompt("agent_escalation", spec=spec, failures=tried)


def _report(name: str, failures: Sequence[tuple[str, str]], attempt: _Attempt) -> str:
    """The step's output: who did the work, what it said, what it changed."""
    if failures:
        before = "; ".join(f"{n}: {cut(r, 200)}" for n, r in failures)
        head = f"recovered via {name} ({before})"
    else:
        head = f"implemented by {name}"
    parts = [head, cut(attempt.message, _MESSAGE_CHARS) or "(no final message)"]
    if attempt.stat is not None:
        parts.append(f"git diff --stat:\n{attempt.stat}")
    return "\n\n".join(parts)
