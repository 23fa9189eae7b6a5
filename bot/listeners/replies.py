"""Where a listener's reply goes: the thread, or only to the person who acted."""

from __future__ import annotations

import logging

from ..conversation import Reply
from ..slack_io import SlackThreads, SlackWriteError

log = logging.getLogger(__name__)


async def send(
    threads: SlackThreads, reply: Reply | None, *, channel: str, thread_ts: str, user: str
) -> None:
    """Post `reply` in the thread, or ephemerally to `user`; nothing when there is no reply."""
    if reply is None:
        return
    if not reply.is_ephemeral:
        await threads.say(channel, thread_ts, reply.message)
        return
    try:
        await threads.whisper(channel, user, thread_ts, reply.message)
    except SlackWriteError as err:
        log.error("an ephemeral reply to %s was not posted: %s", user, err)
