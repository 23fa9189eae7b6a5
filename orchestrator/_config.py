"""The orchestrator's limits and policies, one frozen value passed in by the caller."""

from __future__ import annotations

from dataclasses import dataclass, field

from ._redact import Redactor
from ._sandbox import SandboxMode


@dataclass(frozen=True)
class OrchestratorConfig:
    """Limits, budgets and who may decide. Defaults match the settings table in DESIGN.md."""

    model: str = "gpt-4o-mini"
    max_steps: int = 12
    max_parallel: int = 4
    step_timeout_s: float = 300.0
    max_replans: int = 2
    confirm_timeout_s: float = 900.0
    # Budgets per task. Steps counts every run, replans included.
    step_budget: int = 36
    token_budget: int = 200_000
    task_timeout_s: float = 3600.0
    # Transient LLM errors (429, 5xx, timeouts) are retried with capped exponential backoff and
    # full jitter for as long as the budget lasts, so an outage of minutes is ridden out: for a
    # plan, `planning_timeout_s`; for a step, its timeout and what is left of the task's.
    planning_timeout_s: float = 600.0
    retry_base_s: float = 0.5
    retry_max_s: float = 8.0
    llm_request_timeout_s: float = 120.0
    # Shell steps: binaries allowed (empty = shell refused) and how much output is kept.
    shell_allow: frozenset[str] = frozenset()
    shell_output_cap: int = 16_000
    # Run shell steps in a bwrap sandbox: when it works (auto), always (bwrap: no start without
    # it), or never (none). Every run gets a fresh folder whichever it is.
    shell_sandbox: SandboxMode = SandboxMode.AUTO
    # Who may approve, reject, cancel or confirm any task, besides its requester.
    approvers: frozenset[str] = field(default_factory=frozenset)
    # Masks the caller's secrets (tokens, keys) out of every step output and reason it stores.
    redactor: Redactor = field(default_factory=Redactor)
    # Replicas sharing a PostgreSQL database: each beats this often, and one whose last beat
    # is older than the lease is taken for dead.
    heartbeat_s: float = 5.0
    lease_ttl_s: float = 30.0

    @property
    def is_shell_enabled(self) -> bool:
        return bool(self.shell_allow)
