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
     "-exec", "-execdir", "-ok", "-okdir"}
)  # fmt: skip
# Binaries that run other commands, so their arguments could do anything.
_RUNS_ANYTHING = frozenset(
    {"sh", "bash", "zsh", "dash", "ksh", "mksh", "csh", "tcsh", "fish", "busybox", "env",
     "xargs", "parallel", "sudo", "su", "doas", "runuser", "pkexec", "setpriv", "nohup",
     "timeout", "nice", "ionice", "chrt", "taskset", "stdbuf", "setsid", "flock", "chroot",
     "unshare", "nsenter", "strace", "ltrace", "script", "watch", "eval", "exec", "time",
     "command", "systemd-run"}
)  # fmt: skip
# Interpreters and tools that run code handed to them (a script, -c/-e text, a file of commands):
# as good as a shell. Matched without a trailing version, so python3.11 and lua5.4 count.
_RUNS_CODE = frozenset(
    {"python", "pypy", "perl", "ruby", "irb", "php", "lua", "luajit", "node", "nodejs", "deno",
     "bun", "tclsh", "wish", "expect", "guile", "racket", "julia", "R", "Rscript", "pwsh",
     "osascript", "ghci", "runghc", "ocaml", "jshell", "java", "awk", "gawk", "mawk", "nawk",
     "sed", "gsed", "ed", "ex", "vi", "vim", "nvim", "emacs", "gdb", "make", "gmake", "npx",
     "npm", "yarn", "pnpm", "pip", "pipx", "uv", "uvx", "poetry", "cargo", "go", "docker",
     "podman"}
)  # fmt: skip
# Options that make an otherwise ordinary binary run a command it is given.
_RUNS_GIVEN_COMMAND = {
    "tar": frozenset({"--to-command", "--checkpoint-action", "--use-compress-program", "-I",
                      "--info-script", "--new-volume-script", "-F"}),
    "rsync": frozenset({"-e", "--rsh", "--rsync-path"}),
    "zip": frozenset({"-TT", "--unzip-command"}),
    "git": frozenset({"--upload-pack", "--receive-pack", "--exec", "-u"}),
}  # fmt: skip
_VERSION = re.compile(r"[-_]?[0-9][0-9.]*$")
# Global git options that set configuration, and with it pagers, hooks and aliases that run;
# and the global options whose value is the next argument.
_GIT_CONFIG = frozenset({"-c", "--config-env", "--exec-path"})
_GIT_VALUED = frozenset({"-C", "--git-dir", "--work-tree", "--namespace", "--super-prefix"})
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
    return _TIERS.get((proposed or "").strip().lower(), Tier.DESTRUCTIVE)


_TIERS = {t.value: t for t in Tier}


def floor_tier(action: Action, command: str) -> Tier:
    """The lowest tier a step of this action and input can have, by rule."""
    if action is Action.NOTIFY:
        return Tier.EXTERNAL if _OTHER_CHANNEL.search(command) else Tier.WRITE
    if action is Action.IMPLEMENT:
        return Tier.EXECUTE  # raised further by the agents' configured tiers (the planner's)
    if action is Action.TOOL:
        return Tier.DESTRUCTIVE  # a tool's tier comes from its server (`tool_tier`); unknown here
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
    if binary in _DESTRUCTIVE_BINARIES or words & _DESTRUCTIVE_WORDS or runs_code(argv):
        return Tier.DESTRUCTIVE
    if binary in _EXTERNAL_BINARIES or any(_URL.search(a) for a in argv):
        return Tier.EXTERNAL
    return Tier.EXECUTE


def runs_code(argv: list[str]) -> bool:
    """Whether the command runs code or a command given to it: a shell, an interpreter, ..."""
    binary = PurePath(argv[0]).name
    if {binary, _VERSION.sub("", binary)} & (_RUNS_ANYTHING | _RUNS_CODE):
        return True
    options = {a.split("=", 1)[0] for a in argv[1:]}
    if options & _RUNS_GIVEN_COMMAND.get(binary, frozenset()):
        return True
    return binary == "git" and _sets_git_config(argv[1:])


def _sets_git_config(args: list[str]) -> bool:
    is_value = False
    for arg in args:
        if is_value:
            is_value = False
            continue
        if arg.split("=", 1)[0] in _GIT_CONFIG:
            return True
        if not arg.startswith("-"):
            return False  # the subcommand: `git log -c` is a diff option, not configuration
        is_value = arg in _GIT_VALUED
    return False


def assess_tier(action: Action, command: str, proposed: str | None) -> Tier:
    """The step's tier: the higher of the LLM's proposal and the rule's floor."""
    return riskier(parse_tier(proposed), floor_tier(action, command))


def riskier(a: Tier, b: Tier) -> Tier:
    """The riskier of two tiers."""
    return a if a.rank >= b.rank else b


def annotated_tier(
    *, read_only: bool | None, destructive: bool | None, open_world: bool | None
) -> Tier:
    """A tool's floor from its annotations, read with the MCP spec's defaults for what is absent
    (not read-only, destructive, open world): an unannotated tool is destructive."""
    if read_only:
        return Tier.READ
    if destructive is not False:
        return Tier.DESTRUCTIVE
    if open_world is not False:
        return Tier.EXTERNAL
    return Tier.WRITE


def tool_tier(floor: Tier, proposed: str | None, *, is_fixed: bool) -> Tier:
    """A tool step's tier: the operator's when fixed, else the higher of the LLM's and the floor."""
    if is_fixed:
        return floor
    return riskier(parse_tier(proposed), floor)
