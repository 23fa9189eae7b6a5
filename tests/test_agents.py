"""Coding agents, one implement step at a time: success is checked, failures escalate in order.

The agents are real processes (tests/fakes/coding_agent.py, keeping the real CLIs' contracts)
working in a real git work tree.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

import pytest

from orchestrator import Agent, Isolation, StepError, Tier, detect_isolation
from orchestrator._agent_output import read_output
from orchestrator._agents import CodingAgents
from orchestrator._git import WorkTree
from orchestrator._redact import Redactor
from orchestrator._sandbox import SAFE_PATH
from orchestrator._shell import scrubbed_env
from tests.helpers import alive_with, appears, fake_agent, init_repo, records

pytestmark = pytest.mark.timeout(30)
SPEC = "Add a changelog line saying hello"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return init_repo(tmp_path / "repo")


@pytest.fixture
def record(tmp_path: Path) -> Path:
    return tmp_path / "record.jsonl"  # outside the work tree: writing it is no change


async def test_an_agent_that_changes_the_tree_succeeds_with_its_message_and_the_diff_stat(
    repo: Path, record: Path
) -> None:
    agents = CodingAgents([fake_agent("first", "edit", record=record, cwd=str(repo))])
    output = await agents.implement(SPEC)
    assert output.startswith("implemented by first\n")
    assert "Added the change to CHANGES.md." in output
    assert "git diff --stat:" in output
    assert "new untracked files: CHANGES.md" in output
    assert (repo / "CHANGES.md").read_text() == f"{SPEC}\n"


async def test_the_spec_is_given_in_the_arguments_and_on_stdin(repo: Path, record: Path) -> None:
    agents = CodingAgents([fake_agent("first", "edit", record=record, cwd=str(repo))])
    await agents.implement(SPEC)
    [got] = records(record)
    assert got["spec"] == SPEC
    assert got["stdin"] == SPEC
    assert got["cwd"] == str(repo)


async def test_when_the_first_agent_fails_the_second_gets_the_spec_and_what_went_wrong(
    repo: Path, record: Path
) -> None:
    agents = CodingAgents(
        [
            fake_agent("first", "crash", record=record, cwd=str(repo)),
            fake_agent("second", "edit", style="codex", record=record, cwd=str(repo)),
        ]
    )
    output = await agents.implement(SPEC)
    assert output.startswith("recovered via second (first: exited with code 1: fatal: the model")
    assert "Added the change to CHANGES.md." in output  # Codex's last agent message
    first, second = records(record)
    assert first["spec"] == SPEC
    for told in (second["spec"], second["stdin"]):
        assert told.startswith(SPEC)
        assert "- first: exited with code 1: fatal: the model is overloaded" in told


@pytest.mark.parametrize("style", ["claude", "codex"])
async def test_an_agent_that_exits_0_but_reports_an_error_is_escalated(
    style: str, repo: Path, record: Path
) -> None:
    agents = CodingAgents(
        [
            fake_agent("first", "error", style=style, record=record, cwd=str(repo)),
            fake_agent("second", "edit", record=record, cwd=str(repo)),
        ]
    )
    output = await agents.implement(SPEC)
    assert output.startswith(
        "recovered via second (first: exited 0 but reported an error: stream disconnected"
    )


async def test_an_agent_that_exits_0_without_changing_the_tree_is_escalated(
    repo: Path, record: Path
) -> None:
    agents = CodingAgents(
        [
            fake_agent("first", "deny", record=record, cwd=str(repo)),
            fake_agent("second", "edit", record=record, cwd=str(repo)),
        ]
    )
    output = await agents.implement(SPEC)
    assert output.startswith(
        f"recovered via second (first: exited 0 but changed nothing in the work tree {repo}; "
        "it was denied Write; it said: I could not write CHANGES.md"
    )


async def test_when_every_agent_fails_the_step_is_escalated_to_a_person_naming_each_reason(
    repo: Path, record: Path
) -> None:
    agents = CodingAgents(
        [
            fake_agent("first", "crash", record=record, cwd=str(repo)),
            fake_agent("second", "deny", style="codex", record=record, cwd=str(repo)),
            fake_agent("third", "error", style="plain", record=record, cwd=str(repo)),
        ]
    )
    with pytest.raises(StepError) as info:
        await agents.implement(SPEC)
    reason = info.value.reason
    assert reason.startswith("escalated to a person: first: exited with code 1: fatal: ")
    assert f"; second: exited 0 but changed nothing in the work tree {repo}; it said: " in reason
    assert "; third: exited 0 but changed nothing" in reason  # plain text reports no error
    assert info.value.retryable is False
    assert len(records(record)) == 3  # each agent ran once: escalation, not retries


async def test_an_agent_past_its_timeout_is_stopped_and_escalated(repo: Path, record: Path) -> None:
    agents = CodingAgents(
        [
            fake_agent("first", "sleep", record=record, cwd=str(repo), timeout_s=0.5),
            fake_agent("second", "edit", record=record, cwd=str(repo)),
        ]
    )
    started = time.monotonic()
    output = await agents.implement(SPEC)
    assert time.monotonic() - started < 5
    assert output.startswith("recovered via second (first: python")
    assert "timed out after 0.5s" in output.splitlines()[0]


async def test_cancelling_kills_a_sleeping_agent_within_two_seconds(
    repo: Path, record: Path, tmp_path: Path
) -> None:
    agents = CodingAgents([fake_agent("first", "sleep", record=record, cwd=str(repo))])
    running = asyncio.create_task(agents.implement(SPEC))
    await appears(tmp_path / "started")
    started = time.monotonic()
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert time.monotonic() - started < 2.0
    assert alive_with(str(record)) == []


async def test_an_agent_gets_a_scrubbed_environment_and_its_own_variables(
    repo: Path, record: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-the-bots-own-token")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-the-bots-own-key")
    agent = fake_agent(
        "first", "edit", record=record, cwd=str(repo), env={"AGENT_TOKEN": "its-own"}
    )
    await CodingAgents([agent]).implement(SPEC)
    [got] = records(record)
    env = got["env"]
    assert env["AGENT_TOKEN"] == "its-own"
    # LC_CTYPE: Python itself may set it when the locale is C (PEP 538).
    assert set(env) <= {*scrubbed_env(tmp_path), "AGENT_TOKEN", "LC_CTYPE"}
    assert "xoxb-the-bots-own-token" not in str(env)
    assert "sk-the-bots-own-key" not in str(env)


async def test_a_reason_passed_to_the_next_agent_has_the_bots_secrets_masked(
    repo: Path, record: Path
) -> None:
    secret = "fatal: the model is overloaded"  # what the first agent prints, as if a secret
    agents = CodingAgents(
        [
            fake_agent("first", "crash", record=record, cwd=str(repo)),
            fake_agent("second", "edit", record=record, cwd=str(repo)),
        ],
        redactor=Redactor(frozenset({secret})),
    )
    await agents.implement(SPEC)
    second = records(record)[1]
    assert secret not in second["spec"]
    assert "- first: exited with code 1: [redacted]" in second["stdin"]


async def test_outside_a_git_work_tree_a_clean_exit_is_success(record: Path) -> None:
    agents = CodingAgents([fake_agent("first", "edit", style="plain", record=record)])
    output = await agents.implement(SPEC)
    assert output == "implemented by first\n\nAdded the change to CHANGES.md."


async def test_a_command_that_is_not_found_is_escalated_like_any_failure(
    repo: Path, record: Path
) -> None:
    agents = CodingAgents(
        [
            Agent(name="first", command="no-such-agent-cli", args=("{spec}",), cwd=str(repo)),
            fake_agent("second", "edit", record=record, cwd=str(repo)),
        ]
    )
    output = await agents.implement(SPEC)
    assert output.startswith("recovered via second (first: no-such-agent-cli was not found on ")


async def test_a_missing_folder_is_escalated_like_any_failure(tmp_path: Path, record: Path) -> None:
    agents = CodingAgents([fake_agent("first", "edit", record=record, cwd=str(tmp_path / "gone"))])
    with pytest.raises(StepError, match=r"escalated to a person: first: its folder .*gone"):
        await agents.implement(SPEC)


async def test_a_work_tree_git_cannot_read_fails_the_agent_rather_than_skip_the_check(
    repo: Path, record: Path
) -> None:
    (repo / ".git" / "config").write_text("[[[ not a config\n")
    agents = CodingAgents([fake_agent("first", "edit", record=record, cwd=str(repo))])
    with pytest.raises(StepError, match=r"first: git cannot read the work tree .*bad config"):
        await agents.implement(SPEC)
    assert records(record) == []  # it never ran: its work could not have been checked


async def test_agents_are_held_without_a_sandbox_but_end_with_the_bot_where_it_can() -> None:
    agents = CodingAgents([Agent("a", "a")])
    await agents.start()
    assert agents.isolation is await detect_isolation("none")
    assert agents.isolation in (Isolation.PDEATHSIG, Isolation.NONE)


def test_the_agents_tier_is_the_riskiest_agents() -> None:
    agents = [Agent("a", "a", tier=Tier.WRITE), Agent("b", "b", tier=Tier.DESTRUCTIVE)]
    assert CodingAgents(agents).tier is Tier.DESTRUCTIVE


def test_an_implement_step_may_take_every_agents_timeout() -> None:
    agents = CodingAgents([Agent("a", "a", timeout_s=100), Agent("b", "b", timeout_s=200)])
    assert agents.timeout_s >= 300


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


async def test_the_tree_state_changes_with_edits_new_files_their_contents_and_commits(
    repo: Path,
) -> None:
    tree = await WorkTree.find(repo, {"PATH": SAFE_PATH})
    assert tree is not None
    seen = [await tree.state()]
    (repo / "README.md").write_text("changed\n")  # a tracked file edited
    seen.append(await tree.state())
    (repo / "README.md").write_text("changed again\n")  # the same file, edited again
    seen.append(await tree.state())
    (repo / "new.txt").write_text("one\n")  # an untracked file
    seen.append(await tree.state())
    (repo / "new.txt").write_text("two\n")  # its content, changed
    seen.append(await tree.state())
    _git(repo, "add", "-A")  # staged
    seen.append(await tree.state())
    _git(repo, "commit", "-q", "-m", "work")  # committed: a clean tree again, a new HEAD
    seen.append(await tree.state())
    assert len({s.digest for s in seen}) == len(seen)
    assert await tree.state() == seen[-1]  # reading it changed nothing


async def test_a_folder_outside_any_work_tree_has_none(tmp_path: Path) -> None:
    outside = tmp_path / "plain"
    outside.mkdir()
    assert await WorkTree.find(outside, {"PATH": SAFE_PATH}) is None


def test_claude_codes_result_line_gives_the_message_and_its_error() -> None:
    ok = read_output('{"type":"system"}\n{"type":"result","is_error":false,"result":"Done."}\n')
    assert (ok.message, ok.error) == ("Done.", None)
    failed = read_output('{"type":"result","subtype":"error_max_turns","is_error":true}')
    assert failed.error == "error_max_turns"


def test_codex_gives_its_last_agent_message_and_a_failed_turn_its_error() -> None:
    ok = read_output(
        '{"type":"item.completed","item":{"type":"agent_message","text":"Fixed it."}}\n'
        '{"type":"turn.completed","usage":{}}\n'
    )
    assert (ok.message, ok.error) == ("Fixed it.", None)
    failed = read_output('{"type":"turn.failed","error":{"message":"quota exceeded"}}')
    assert failed.error == "quota exceeded"


def test_a_status_error_line_is_an_error_and_plain_text_is_the_message() -> None:
    assert read_output('{"status":"error","message":"no auth"}').error == "no auth"
    plain = read_output("working…\nAll done: tests pass.\n")
    assert (plain.message, plain.error) == ("working…\nAll done: tests pass.", None)


def test_a_cut_first_line_is_not_read_as_json() -> None:
    said = read_output('rror":true}\n{"type":"result","result":"ok"}', is_partial=True)
    assert said.error is None
    assert said.message == "ok"
