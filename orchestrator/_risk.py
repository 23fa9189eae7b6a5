"""The risk floor: the LLM proposes a tier; rules only ever raise it."""

from __future__ import annotations

import re
import shlex
from pathlib import PurePath

from ._phases import Action, Tier

# Binaries whose use deletes, overwrites or kills: always confirmed first.
_DESTRUCTIVE_BINARIES = frozenset(
    {"rm", "rmdir", "dd", "mkfs", "shred", "truncate", "kill", "pkill", "killall", "shutdown",
     "reboot", "unlink", "chown", "chmod", "mv"}
)  # fmt: skip
# Subcommands (of git, kubectl, docker, terraform, ...) that delete, push or deploy.
_DESTRUCTIVE_WORDS = frozenset(
    {"delete", "destroy", "drop", "push", "deploy", "apply", "reset", "clean", "prune", "rm",
     "rmi", "purge", "uninstall", "publish", "release", "--force", "--hard", "-delete",
     "-exec", "-execdir"}
)  # fmt: skip
# Binaries that run other commands, so their arguments could do anything.
_RUNS_ANYTHING = frozenset(
    {"sh", "bash", "zsh", "dash", "ksh", "fish", "env", "xargs", "sudo", "su", "nohup",
     "timeout", "nice", "watch", "eval", "exec"}
)  # fmt: skip
# Binaries that talk to other machines.
_EXTERNAL_BINARIES = frozenset(
    {"curl", "wget", "ssh", "scp", "rsync", "nc", "ncat", "telnet", "ftp", "sftp", "http",
     "gh", "aws", "gcloud", "az"}
)  # fmt: skip
_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://", re.IGNORECASE)
# A notify message addressed to a channel other than the task's own thread.
# Slack's API pings only in the <!channel> form; the plain words are matched as the LLM's intent.
_OTHER_CHANNEL = re.compile(
    r"(^|[\s:(])#[a-z][\w-]*|<#[A-Z0-9]+(\|[^>]*)?>|<!(channel|here|everyone)(\|[^>]*)?>"
    r"|@(channel|here|everyone)\b",
    re.IGNORECASE,
)


def parse_tier(proposed: str | None) -> Tier:
    """The LLM's tier; anything unknown or missing is destructive (fail closed)."""
    try:
        return Tier((proposed or "").strip().lower())
    except ValueError:
        return Tier.DESTRUCTIVE


def floor_tier(action: Action, command: str) -> Tier:
    """The lowest tier a step of this action and input can have, by rule."""
    if action is Action.NOTIFY:
        return Tier.EXTERNAL if _OTHER_CHANNEL.search(command) else Tier.WRITE
    if action is not Action.SHELL:
        return Tier.READ if action is not Action.WRITE else Tier.WRITE
    try:
        argv = shlex.split(command)
    except ValueError:
        return Tier.DESTRUCTIVE
    if not argv:
        return Tier.DESTRUCTIVE
    binary = PurePath(argv[0]).name
    words = {a.lower() for a in argv[1:]}
    if binary in _DESTRUCTIVE_BINARIES | _RUNS_ANYTHING or words & _DESTRUCTIVE_WORDS:
        return Tier.DESTRUCTIVE
    if binary in _EXTERNAL_BINARIES or any(_URL.search(a) for a in argv):
        return Tier.EXTERNAL
    return Tier.EXECUTE


def assess_tier(action: Action, command: str, proposed: str | None) -> Tier:
    """The step's tier: the higher of the LLM's proposal and the rule's floor."""
    tiers = (parse_tier(proposed), floor_tier(action, command))
    return max(tiers, key=lambda t: t.rank)
