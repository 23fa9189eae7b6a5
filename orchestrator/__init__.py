"""The orchestrator library: plan a request with an LLM, approve, run, report. No Slack inside."""

import importlib
from typing import TYPE_CHECKING, Any

from ._actions import LogNotifier, Notifier
from ._agents import Agent
from ._config import OrchestratorConfig
from ._errors import (
    ConfigError,
    DuplicateMessageError,
    LLMError,
    NotAllowedError,
    NotPendingError,
    OrchestratorError,
    PlanningError,
    PlanValidationError,
    ShellRefusedError,
    StepError,
    StoreError,
    TaskNotFoundError,
    TransitionError,
)
from ._events import (
    ConfirmationRequested,
    Event,
    PhaseChanged,
    PlanReplaced,
    StepChanged,
    TaskFinished,
    TaskSubmitted,
)
from ._hands import HandsConfig, McpServerConfig, load_hands
from ._heartbeat import Replica, ReplicaStore
from ._llm import LLM
from ._models import Completion, Step, Task, Transition
from ._orchestrator import Orchestrator
from ._phases import PHASE_TRANSITIONS, STEP_TRANSITIONS, Action, Phase, StepState, Tier
from ._redact import Redactor
from ._sandbox import Isolation, SandboxMode, detect_isolation
from ._sqlite import SqliteStore
from ._store import Store, open_store
from ._summary import final_output, plan_text, step_line, summary_text
from ._thread import Slot, SlotKind, ThreadUpdate, plan_decision, replan_reason, step_decisions
from ._tools import NoTools, Toolbox, ToolSpec, fill_arguments, open_toolbox

__all__ = [
    "LLM",
    "PHASE_TRANSITIONS",
    "STEP_TRANSITIONS",
    "Action",
    "Agent",
    "Completion",
    "ConfigError",
    "ConfirmationRequested",
    "DuplicateMessageError",
    "Event",
    "HandsConfig",
    "Isolation",
    "LLMError",
    "LogNotifier",
    "McpServerConfig",
    "McpToolbox",
    "NoTools",
    "NotAllowedError",
    "NotPendingError",
    "Notifier",
    "OpenAILLM",
    "Orchestrator",
    "OrchestratorConfig",
    "OrchestratorError",
    "PgStore",
    "Phase",
    "PhaseChanged",
    "PlanReplaced",
    "PlanValidationError",
    "PlanningError",
    "Redactor",
    "Replica",
    "ReplicaStore",
    "SandboxMode",
    "ServerStatus",
    "ShellRefusedError",
    "Slot",
    "SlotKind",
    "SqliteStore",
    "Step",
    "StepChanged",
    "StepError",
    "StepState",
    "Store",
    "StoreError",
    "Task",
    "TaskFinished",
    "TaskNotFoundError",
    "TaskSubmitted",
    "ThreadUpdate",
    "Tier",
    "ToolSpec",
    "Toolbox",
    "Transition",
    "TransitionError",
    "detect_isolation",
    "fill_arguments",
    "final_output",
    "load_hands",
    "open_store",
    "open_toolbox",
    "plan_decision",
    "plan_text",
    "replan_reason",
    "step_decisions",
    "step_line",
    "summary_text",
]

if TYPE_CHECKING:
    from ._mcp import McpToolbox
    from ._mcp_connection import ServerStatus
    from ._openai import OpenAILLM
    from ._pg import PgStore

# The MCP SDK costs about 30 MB and half a second to import, openai a tenth of a second and most
# of the objects every full garbage collection walks, psycopg its own share: only a program that
# uses them pays.
_LAZY = {
    "McpToolbox": "._mcp",
    "ServerStatus": "._mcp_connection",
    "OpenAILLM": "._openai",
    "PgStore": "._pg",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    globals()[name] = value
    return value
