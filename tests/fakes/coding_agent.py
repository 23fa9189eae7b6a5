"""A fake coding-agent CLI that keeps the real ones' contracts: exit codes and JSON lines.

Usage: python coding_agent.py --style claude|codex|plain --then BEHAVIOUR [--record FILE]
       [--delay SECONDS] -- SPEC
It reads the spec from stdin too, appends what it got (argv spec, stdin, environment) to the
record file as one JSON line, waits --delay seconds, then behaves:
  edit      appends the spec to CHANGES.md in its folder and says it did (exit 0)
  crash     says why on stderr and exits 1 (Claude Code's error result first, in its style)
  error     exits 0, but its last JSON line reports an error (is_error / turn.failed)
  deny      exits 0, changes nothing, and says it was not allowed to write (a headless denial)
  sleep     writes `started` beside the record file, then sleeps a minute
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--style", choices=["claude", "codex", "plain"], default="claude")
    parser.add_argument("--then", default="edit")
    parser.add_argument("--record")
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("spec")
    args = parser.parse_args()
    stdin = sys.stdin.read()
    if args.record:
        got = {"spec": args.spec, "stdin": stdin, "env": dict(os.environ), "cwd": os.getcwd()}
        with open(args.record, "a", encoding="utf-8") as record:
            record.write(json.dumps(got) + "\n")
    time.sleep(args.delay)
    emit = _EMITTERS[args.style]
    if args.then == "edit":
        with open("CHANGES.md", "a", encoding="utf-8") as changes:
            changes.write(args.spec.splitlines()[0] + "\n")
        emit(ok=True, text="Added the change to CHANGES.md.")
        return 0
    if args.then == "crash":
        print("fatal: the model is overloaded", file=sys.stderr)
        return 1
    if args.then == "error":
        emit(ok=False, text="stream disconnected before completion")
        return 0
    if args.then == "deny":
        emit(ok=True, text="I could not write CHANGES.md: permission to use Write was denied.")
        return 0
    if args.then == "sleep":
        Path(args.record or "x").with_name("started").write_text(str(os.getpid()))
        time.sleep(60)
        return 0
    raise SystemExit(f"unknown behaviour {args.then!r}")


def _claude(*, ok: bool, text: str) -> None:
    """Claude Code's `--output-format stream-json`: events, then one result line."""
    _line({"type": "system", "subtype": "init", "session_id": "s-1", "tools": ["Edit", "Write"]})
    _line({"type": "assistant", "message": {"content": [{"type": "text", "text": "Working."}]}})
    denied = [{"tool_name": "Write", "tool_input": {}}] if "denied" in text else []
    _line(
        {
            "type": "result",
            "subtype": "success",
            "is_error": not ok,
            "result": text,
            "session_id": "s-1",
            "permission_denials": denied,
        }
    )


def _codex(*, ok: bool, text: str) -> None:
    """Codex's `exec --json`: thread and turn events, the agent's message, then how it ended."""
    _line({"type": "thread.started", "thread_id": "t-1"})
    _line({"type": "turn.started"})
    if ok:
        _line(
            {"type": "item.completed", "item": {"id": "i0", "type": "agent_message", "text": text}}
        )
        _line({"type": "turn.completed", "usage": {"input_tokens": 10, "output_tokens": 5}})
    else:
        _line({"type": "error", "message": text})
        _line({"type": "turn.failed", "error": {"message": text}})


def _plain(*, ok: bool, text: str) -> None:
    print(text if ok else f"error: {text}")


def _line(event: dict[str, object]) -> None:
    print(json.dumps(event), flush=True)


_EMITTERS = {"claude": _claude, "codex": _codex, "plain": _plain}

if __name__ == "__main__":
    sys.exit(main())
