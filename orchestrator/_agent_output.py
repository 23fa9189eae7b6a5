"""What a coding agent's output says: its final message, and the error it reported, if any.

Headless agents print JSON lines (Claude Code's `stream-json`, Codex's `exec --json`) or plain
text. Either may exit 0 after failing, so the last JSON line is read for the error it reports.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

# A `type` of the last JSON line that means the run failed (Codex: turn.failed, error).
_FAILED_TYPES = frozenset({"turn.failed", "error"})
# Plain output is kept from its end: that is where an agent says what it did.
_PLAIN_CHARS = 3000


@dataclass(frozen=True)
class AgentSaid:
    """An agent's final message, the error its last JSON line reports, the tools it was denied."""

    message: str
    error: str | None = None
    denied: tuple[str, ...] = ()


def read_output(text: str, *, is_partial: bool = False) -> AgentSaid:
    """Read stdout `text` (`is_partial`: its first line may be cut, so it is not read)."""
    lines = text.splitlines()[1 if is_partial else 0 :]
    events = [e for e in map(_json_object, lines) if e is not None]
    if not events:
        plain = text.strip()
        is_long = len(plain) > _PLAIN_CHARS
        return AgentSaid(message="…" + plain[-_PLAIN_CHARS:] if is_long else plain)
    last = events[-1]
    return AgentSaid(
        message=_final_message(events),
        error=_reported_error(last),
        denied=_denied(last),
    )


def _json_object(line: str) -> dict[str, Any] | None:
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        value = json.loads(line)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _reported_error(event: dict[str, Any]) -> str | None:
    """The error the event reports, or None when it reports none."""
    is_error = (
        event.get("is_error") is True
        or event.get("type") in _FAILED_TYPES
        or event.get("status") == "error"
        or str(event.get("subtype", "")).startswith("error")  # Claude Code: error_max_turns, …
    )
    return (_error_text(event) or "it gave no reason") if is_error else None


def _error_text(event: dict[str, Any]) -> str:
    errors = event.get("errors")
    if isinstance(errors, list) and errors:
        return "; ".join(str(e) for e in errors)
    error = event.get("error")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])
    for key in ("error", "message", "result", "subtype"):
        if isinstance(event.get(key), str) and event[key].strip():
            return str(event[key])
    return ""


def _final_message(events: list[dict[str, Any]]) -> str:
    """Claude Code's `result`, else Codex's last agent message; empty when neither is there."""
    for event in reversed(events):
        if event.get("type") == "result" and isinstance(event.get("result"), str):
            return str(event["result"]).strip()
        item = event.get("item")
        if (
            event.get("type") == "item.completed"
            and isinstance(item, dict)
            and item.get("type") == "agent_message"
            and isinstance(item.get("text"), str)
        ):
            return str(item["text"]).strip()
    return ""


def _denied(event: dict[str, Any]) -> tuple[str, ...]:
    """Tools the agent asked for and was refused (Claude Code's `permission_denials`)."""
    denials = event.get("permission_denials")
    if not isinstance(denials, list):
        return ()
    names = (d.get("tool_name") for d in denials if isinstance(d, dict))
    return tuple(dict.fromkeys(str(n) for n in names if n))
