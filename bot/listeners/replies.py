"""Where a listener's reply goes: the thread, or only to the person who acted."""

from __future__ import annotations

from ..conversation import Reply
from ..slack_io import SlackThreads


async def send(
    threads: SlackThreads, reply: Reply | None, *, channel: str, thread_ts: str, user: str
) -> None:
    """Post `reply` in the thread, or ephemerally to `user`; nothing when there is no reply."""
    if reply is None:
        return
    if reply.is_ephemeral:
        await threads.whisper(channel, user, thread_ts, reply.message)
    else:
        await threads.post(channel, thread_ts, reply.message)
