"""The risk floor: the LLM proposes a tier, and the rules only ever raise it."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator._phases import Action, Tier
from orchestrator._risk import assess_tier, floor_tier, parse_tier

PROPERTY = settings(max_examples=200, deadline=None)

# Proposals as an LLM might write them: real names in any case and padding, and noise.
PROPOSALS = st.one_of(
    st.none(),
    st.sampled_from([t.value for t in Tier]).flatmap(
        lambda v: st.sampled_from([v, v.upper(), v.title(), f" {v}\n", f"\t{v.upper()} "])
    ),
    st.text(max_size=20),
)
# Command text: shell-ish words and punctuation, so that quoting errors and paths come up.
SHELL_WORDS = ["rm", "-rf", "/bin/rm", "ls", "git", "push", "curl", "https://x", "echo", "hello"]
SHELL_PUNCTUATION = ["#ops", "@here", "'", '"', "&&", ";", "|"]
COMMANDS = st.one_of(
    st.text(max_size=40),
    st.lists(st.sampled_from(SHELL_WORDS + SHELL_PUNCTUATION), max_size=6).map(" ".join),
)


@PROPERTY
@given(st.sampled_from(Action), COMMANDS, PROPOSALS)
def test_the_tier_is_never_lower_than_the_proposal_or_the_floor(
    action: Action, command: str, proposed: str | None
) -> None:
    tier = assess_tier(action, command, proposed)
    assert tier.rank >= parse_tier(proposed).rank
    assert tier.rank >= floor_tier(action, command).rank
    assert tier in (parse_tier(proposed), floor_tier(action, command))


@pytest.mark.parametrize("tier", list(Tier), ids=str)
@pytest.mark.parametrize("spelling", ["{}", "{} ", " {}\n"], ids=["bare", "trailing", "padded"])
def test_a_known_tier_is_read_in_any_case_and_padding(tier: Tier, spelling: str) -> None:
    assert parse_tier(spelling.format(tier.value)) is tier
    assert parse_tier(spelling.format(tier.value.upper())) is tier


@pytest.mark.parametrize("proposed", [None, "", "   ", "safe", "low", "readonly", "0"])
def test_an_unknown_or_missing_tier_is_destructive(proposed: str | None) -> None:
    assert parse_tier(proposed) is Tier.DESTRUCTIVE
    assert assess_tier(Action.RESEARCH, "look it up", proposed) is Tier.DESTRUCTIVE


@pytest.mark.parametrize(
    "command",
    [
        "rm -rf x",
        "/bin/rm x",
        "git push",
        "git push --force origin main",
        "git reset --hard",
        "kubectl delete pod x",
        "terraform apply",
        "docker system prune",
        "sudo rm -rf /",
        "chmod 777 x",
        "mv a b",
    ],
)
def test_a_shell_command_that_deletes_pushes_or_deploys_is_destructive(command: str) -> None:
    assert floor_tier(Action.SHELL, command) is Tier.DESTRUCTIVE
    assert assess_tier(Action.SHELL, command, "read") is Tier.DESTRUCTIVE


@pytest.mark.parametrize(
    "command",
    ["curl https://x", "ssh host", "wget example.com", "git clone https://x", "gh pr list"],
)
def test_a_shell_command_that_talks_to_other_machines_is_external(command: str) -> None:
    assert floor_tier(Action.SHELL, command) is Tier.EXTERNAL
    assert assess_tier(Action.SHELL, command, "execute") is Tier.EXTERNAL


@pytest.mark.parametrize(
    "command",
    [
        "python3 -c 'print(open(\"/proc/1/environ\").read())'",
        "python3.11 script.py",
        "/usr/bin/python3 -V",
        "python -m http.server",
        "pypy3 x.py",
        "node -e 'require(\"fs\")'",
        "perl -e 'system(\"id\")'",
        "ruby -e 'puts 1'",
        "php -r 'echo 1;'",
        "lua5.4 -e 'os.execute(\"id\")'",
        "awk 'BEGIN { system(\"id\") }'",
        "gawk -f x.awk",
        "sed -n '1e id' x",
        "bash -c 'echo hi'",
        "sh -c id",
        "env",
        "env FOO=1 cat x",
        "xargs cat",
        "find . -name x -exec cat {} ;",
        "find . -execdir id ;",
        "find . -ok id ;",
        "git -c core.pager=id log",
        "git --config-env=core.pager=X log",
        "git -C /tmp -c alias.x=!id x",
        "git clone --upload-pack=id host:repo",
        "tar --to-command=id -xf a.tar",
        "tar -I id -xf a.tar",
        "vim -c '!id' -c q",
        "make -f /dev/null",
        "npx cowsay",
    ],
)
def test_an_interpreter_or_a_command_that_runs_given_code_is_destructive(command: str) -> None:
    assert floor_tier(Action.SHELL, command) is Tier.DESTRUCTIVE
    assert assess_tier(Action.SHELL, command, "read") is Tier.DESTRUCTIVE


@pytest.mark.parametrize(
    "command",
    ["ls -la", "cat README.md", "git status", "git log -c", "git grep -c x", "pytest -q"],
)
def test_a_local_shell_command_is_execute(command: str) -> None:
    assert floor_tier(Action.SHELL, command) is Tier.EXECUTE
    assert assess_tier(Action.SHELL, command, "read") is Tier.EXECUTE


@pytest.mark.parametrize("command", ["", "   ", "echo 'unclosed"])
def test_a_shell_command_that_is_empty_or_cannot_be_parsed_is_destructive(command: str) -> None:
    assert floor_tier(Action.SHELL, command) is Tier.DESTRUCTIVE


@pytest.mark.parametrize(
    "message",
    ["#other-channel the deploy is done", "tell <#C0123ABC|ops> it is done", "@here done"],
)
def test_a_notify_addressed_to_another_channel_is_external(message: str) -> None:
    assert floor_tier(Action.NOTIFY, message) is Tier.EXTERNAL
    assert assess_tier(Action.NOTIFY, message, "write") is Tier.EXTERNAL


def test_a_plain_notify_is_write() -> None:
    assert floor_tier(Action.NOTIFY, "the report is ready") is Tier.WRITE
    assert assess_tier(Action.NOTIFY, "the report is ready", "write") is Tier.WRITE


@pytest.mark.parametrize(
    ("action", "floor"),
    [(Action.RESEARCH, Tier.READ), (Action.REVIEW, Tier.READ), (Action.WRITE, Tier.WRITE)],
)
def test_llm_steps_have_a_low_floor_whatever_their_input(action: Action, floor: Tier) -> None:
    assert floor_tier(action, "rm -rf / && curl https://x #ops") is floor


def test_research_is_read() -> None:
    assert assess_tier(Action.RESEARCH, "summarise the incident", "read") is Tier.READ


def test_a_proposal_above_the_floor_is_kept() -> None:
    assert assess_tier(Action.RESEARCH, "summarise the incident", "external") is Tier.EXTERNAL
