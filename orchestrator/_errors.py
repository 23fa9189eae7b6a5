"""The error tree. Every error the library raises derives from `OrchestratorError`.

OrchestratorError                 root; `reason` is a sentence a person can read
├── ConfigError                   a setting is missing or malformed
├── PlanningError                 no valid plan after the repair rounds (or the LLM failed)
│   └── PlanValidationError       one plan failed a schema or graph check (repairable)
├── TransitionError               a phase or step move the tables do not allow
│   └── NotPendingError           the task is no longer where the caller expected it
├── TaskNotFoundError             no task with that id
├── NotAllowedError               this user may not act on this task
├── DuplicateMessageError         this chat message already made a task
├── LLMError                      a model call failed; `retryable` says if it was transient
├── StepError                     a step failed; `retryable` says if a retry may help
│   └── ShellRefusedError         a shell command is not allowed (never retryable)
└── StoreError                    the database failed
"""

from __future__ import annotations

from typing import Any


class OrchestratorError(Exception):
    """Root of every error the orchestrator raises."""

    retryable: bool = False

    def __init__(
        self,
        reason: str,
        *,
        task_id: str | None = None,
        step_id: str | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.task_id = task_id
        self.step_id = step_id
        if retryable is not None:
            self.retryable = retryable


class ConfigError(OrchestratorError):
    """A setting is missing or malformed."""


class PlanningError(OrchestratorError):
    """The LLM gave no valid plan after the repair rounds, or could not be reached."""


class PlanValidationError(PlanningError):
    """One candidate plan failed a schema or graph check; the message is shown to the LLM."""


class TransitionError(OrchestratorError):
    """A phase or step move that the transition tables do not allow."""

    def __init__(self, reason: str, *, old: Any = None, new: Any = None, **kw: Any) -> None:
        super().__init__(reason, **kw)
        self.old = old
        self.new = new


class NotPendingError(TransitionError):
    """The task moved on before this action: e.g. approved twice, or cancelled first.

    `new` is the phase it is in now and `actor` who moved it there, when a person did.
    """

    actor: str | None = None


class TaskNotFoundError(OrchestratorError):
    """No task has that id."""


class NotAllowedError(OrchestratorError):
    """The acting user is neither the requester nor an approver."""


class DuplicateMessageError(OrchestratorError):
    """The chat message was already turned into a task; `task_id` names it."""


class LLMError(OrchestratorError):
    """A model call failed; `retryable` is true for 429s, 5xx and timeouts."""

    def __init__(
        self,
        reason: str,
        *,
        retry_after: float | None = None,
        is_format_refused: bool = False,
        **kw: Any,
    ) -> None:
        super().__init__(reason, **kw)
        self.retry_after = retry_after
        self.is_format_refused = is_format_refused


class StepError(OrchestratorError):
    """A step failed."""


class ShellRefusedError(StepError):
    """A shell command was refused: shell is off, or the binary is not on the allowlist."""


class StoreError(OrchestratorError):
    """The database failed."""
