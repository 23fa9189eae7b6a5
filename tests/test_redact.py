"""Secret values never reach a stored output or reason, an event or the model."""

from __future__ import annotations

from orchestrator import OrchestratorConfig, Phase, Redactor, StepChanged, TaskFinished
from tests.conftest import MakeOrchestrator
from tests.fakes.openai_server import FakeOpenAI, Reply, Router
from tests.helpers import planned, run_to_end, step

SECRET = "xoxb-fake-bot-token-for-tests"  # not the shape of a real token
KEY = "fake-model-key-for-tests"
REDACTOR = Redactor(frozenset({SECRET, KEY}))


def test_a_secret_anywhere_in_a_text_is_masked() -> None:
    assert REDACTOR.redact(f"token={SECRET}\nkey {KEY}.") == "token=[redacted]\nkey [redacted]."
    assert REDACTOR.redact(f"{SECRET}{SECRET}") == "[redacted]"
    assert REDACTOR.redact(None) is None
    assert REDACTOR.redact("nothing to hide") == "nothing to hide"


def test_a_piece_of_a_secret_left_by_a_cut_is_masked_too() -> None:
    head, tail = SECRET[:14], SECRET[-13:]
    text = REDACTOR.redact(f"…{tail} and {head}…")
    assert head not in text and tail not in text
    assert text == "…[redacted] and [redacted]…"


def test_values_too_short_to_be_secrets_are_left_alone() -> None:
    assert Redactor(frozenset({"", "abc"})).redact("abc") == "abc"


def test_neither_the_redactor_nor_the_config_ever_shows_a_secret() -> None:
    assert SECRET not in repr(REDACTOR) and SECRET not in str(REDACTOR)
    config = OrchestratorConfig(redactor=REDACTOR)
    assert SECRET not in repr(config) and KEY not in repr(config)


async def test_no_secret_is_stored_published_or_sent_to_the_model(
    make_orchestrator: MakeOrchestrator, fake_openai: FakeOpenAI
) -> None:
    fake_openai.responder = Router(
        [
            Reply.plan(
                step("out", action="shell", input=f"echo {SECRET}", tier="execute"),
                step("sum", "out"),
                step("bad", action="shell", input=f"cat /nowhere/{KEY}", tier="execute"),
            )
        ]
    )
    orch = await make_orchestrator(
        redactor=REDACTOR, shell_allow=frozenset({"echo", "cat"}), max_replans=0
    )
    async with orch.subscribe() as events:
        task = await run_to_end(orch, await planned(orch, "show the token"))
        seen = []
        async for event in events:  # all published by now; the summary comes last
            seen.append(event)
            if isinstance(event, TaskFinished):
                break
    assert task.phase is Phase.FAILED
    assert task.step("out").output == "[redacted]\n"
    assert "/nowhere/[redacted]" in (task.step("bad").reason or "")
    stored = [task.reason, *(f"{s.output} {s.reason}" for s in task.steps)]
    stored += [f"{t.reason}" for t in await orch.history(task.id)]
    stored += [f"{e.reason}" for e in seen if isinstance(e, StepChanged)]
    stored += [e.summary for e in seen if isinstance(e, TaskFinished)]
    stored += [str(body) for body in fake_openai.requests]
    for text in stored:
        assert SECRET not in (text or "") and KEY not in (text or "")


async def test_a_planning_failure_quoting_the_model_shows_no_secret(
    make_orchestrator: MakeOrchestrator, fake_openai: FakeOpenAI
) -> None:
    fake_openai.default = Reply(f"I cannot plan this, but here is a key: {KEY}")
    orch = await make_orchestrator(redactor=REDACTOR)
    task = await orch.submit("x", requester="U1", scope="C1:1")
    task = await orch.wait(task.id, {Phase.FAILED}, timeout=5)
    assert task.phase is Phase.FAILED
    assert task.reason is not None and "[redacted]" in task.reason
    assert KEY not in task.reason
