"""Transport-neutral commands (approve, reject, cancel, confirm, status, help) and who may act.

Slack and the terminal shell both call these, so the two can never drift apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from orchestrator import (
    DuplicateMessageError,
    NotAllowedError,
    NotPendingError,
    Orchestrator,
    Phase,
    Task,
    TaskNotFoundError,
)

from . import render
from .render import Message

COMMANDS = ("approve", "reject", "cancel", "status", "help")
LIVE = (Phase.PLANNING, Phase.AWAITING_APPROVAL, Phase.EXECUTING)


def parse_command(text: str) -> str | None:
    """The command word when `text` is exactly one of COMMANDS (any case, trailing punctuation)."""
    words = text.strip().rstrip(".!?").lower().split()
    return words[0] if len(words) == 1 and words[0] in COMMANDS else None


def message_key(channel: str, ts: str) -> str:
    """The key that makes one chat message count once, however often Slack delivers it."""
    return f"msg:{channel}:{ts}"


def thread_scope(channel: str, thread_ts: str) -> str:
    """The orchestrator scope of a conversation thread."""
    return f"{channel}:{thread_ts}"


@dataclass(frozen=True)
class Where:
    """Where something was said: a thread, or the top level of a channel (`thread_ts` None)."""

    channel: str
    thread_ts: str | None = None

    @property
    def scope(self) -> str | None:
        return thread_scope(self.channel, self.thread_ts) if self.thread_ts else None


@dataclass(frozen=True)
class Reply:
    """What to say back: in the thread, or only to the person (ephemeral)."""

    message: Message
    is_ephemeral: bool = False


class Conversation:
    """Turns what people say or click into orchestrator calls and replies."""

    def __init__(self, orch: Orchestrator) -> None:
        self._orch = orch

    async def request(
        self,
        text: str,
        *,
        user: str,
        scope: str,
        message_keys: Sequence[str],
        meta: dict[str, str],
    ) -> Task | None:
        """Record a new request (planned in the background); None when the message was seen."""
        try:
            return await self._orch.submit(
                text, requester=user, scope=scope, message_keys=message_keys, meta=meta
            )
        except DuplicateMessageError:
            return None

    async def claim(self, channel: str, ts: str) -> bool:
        """True the first time a chat message is seen; Slack's retries then find it taken."""
        return await self._orch.claim_message(message_key(channel, ts))

    async def has_tasks(self, scope: str) -> bool:
        """Whether any task lives in this thread."""
        return bool(await self._orch.list_tasks(scope=scope))

    async def command(self, word: str, *, user: str, where: Where) -> Reply | None:
        """A typed command; None when there is nothing to say."""
        if word == "help":
            return Reply(render.help_text())
        phases = {
            "approve": (Phase.AWAITING_APPROVAL,),
            "reject": (Phase.AWAITING_APPROVAL,),
            "cancel": LIVE,
            "status": None,
        }[word]
        tasks = await self.tasks(where, phases)
        if word == "status":
            return Reply(render.status(tasks[-1] if tasks else None))
        if not tasks:
            return Reply(render.nothing_pending(word))
        if len(tasks) > 1:
            return Reply(render.pending_list(tasks) if word == "approve" else render.several(word))
        return await self.decide(word, tasks[0].id, user=user)

    async def decide(self, verb: str, task_id: str, *, user: str) -> Reply | None:
        """Approve, reject or cancel one task, as `user`."""
        try:
            task = await self._orch.get_task(task_id)
        except TaskNotFoundError:
            return Reply(render.not_pending("unknown plan"), is_ephemeral=True)
        if not self._orch.may_act(task, user):
            refusal = render.refused(f"only <@{task.requester}> or an approver may {verb} it")
            return Reply(refusal, is_ephemeral=True)
        expected = LIVE if verb == "cancel" else (Phase.AWAITING_APPROVAL,)
        if task.phase not in expected:
            return Reply(render.not_pending(await self._why(task)), is_ephemeral=True)
        # The decision is committed first; the plan loses its buttons through the outbox after.
        act = {
            "approve": self._orch.approve,
            "reject": self._orch.reject,
            "cancel": self._orch.cancel,
        }
        try:
            await act[verb](task_id, user=user)
        except NotPendingError:
            return Reply(render.not_pending(await self._why(task)), is_ephemeral=True)
        except NotAllowedError as err:
            return Reply(render.refused(err.reason), is_ephemeral=True)
        return None

    async def confirm(self, task_id: str, step_id: str, *, user: str, run: bool) -> Reply | None:
        """Run or skip a step that waits for confirmation."""
        try:
            await self._orch.confirm_step(task_id, step_id, user=user, run=run)
        except TaskNotFoundError:
            return Reply(render.not_pending("unknown plan"), is_ephemeral=True)
        except NotAllowedError as err:
            return Reply(render.refused(err.reason), is_ephemeral=True)
        except NotPendingError as err:
            return Reply(render.step_not_waiting(err.reason), is_ephemeral=True)
        return None

    async def tasks(self, where: Where, phases: Sequence[Phase] | None) -> list[Task]:
        """Tasks in the thread, or in the whole channel when said at its top level."""
        if where.scope is not None:
            return await self._orch.list_tasks(scope=where.scope, phases=phases)
        return await self._orch.list_tasks(scope_prefix=f"{where.channel}:", phases=phases)

    async def _why(self, task: Task) -> str:
        task = await self._orch.get_task(task.id)
        decision = await self._orch.decision(task.id)
        if decision is None:
            return task.phase.value.replace("_", " ")
        return f"{decision.reason} by <@{decision.actor}>"
