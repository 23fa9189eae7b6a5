"""Slack mrkdwn: people's and the model's words escaped, and text cut without breaking it."""

from __future__ import annotations

import re
from collections.abc import Sequence

MIN_CUT = 24  # a body is never cut shorter than this

# Slack: in text, only &, < and > are control characters; escaped, nothing pings or links.
_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_ESCAPED = {v: k for k, v in _ESCAPES.items()}
_CONTROL = re.compile(r"[&<>]")
_ENTITY = re.compile(r"&(?:amp|lt|gt);")
# What a cut keeps whole: an entity, or a token of the bot's own (<@U1>, <!date^…|…>).
_ATOM = re.compile(r"&(?:amp|lt|gt);|<[^<>]*>|.", re.DOTALL)
# A plain user mention, the one form a notify message may keep live when the operator allows it.
_USER_MENTION_OR_CONTROL = re.compile(r"(<@[UW][A-Z0-9]+>)|[&<>]")


def escape(text: str) -> str:
    """`text` with Slack's control characters escaped: it can never mention, ping or link."""
    return _CONTROL.sub(lambda m: _ESCAPES[m[0]], text)


def escape_except_user_mentions(text: str) -> str:
    """Like `escape`, but plain user mentions (<@U123>) stay live."""
    return _USER_MENTION_OR_CONTROL.sub(lambda m: m[1] or _ESCAPES[m[0]], text)


def unescape(text: str) -> str:
    """Escaped text as a person reads it (a terminal, not Slack): Slack's three entities undone."""
    return _ENTITY.sub(lambda m: _ESCAPED[m[0]], text)


def shorten(mrkdwn: str, limit: int) -> str:
    """`mrkdwn` in at most `limit` characters, ending in an ellipsis, no entity or token split."""
    if len(mrkdwn) <= limit:
        return mrkdwn
    budget, kept = max(1, limit - 1), 0
    out = []
    for atom in _ATOM.findall(mrkdwn):
        if kept + len(atom) > budget:
            break
        out.append(atom)
        kept += len(atom)
    return "".join(out).rstrip() + "…"


def cut(text: str, limit: int) -> str:
    """Plain `text` escaped, its whitespace collapsed, in at most `limit` characters."""
    return shorten(escape(" ".join(text.split())), limit)


def fit(parts: Sequence[tuple[str, str]], limit: int) -> list[str]:
    """Lines `head + body` (heads mrkdwn, bodies plain), the longest bodies cut until all fit.

    Bodies are measured escaped, as Slack counts them; none is dropped.
    """
    bodies = [escape(" ".join(b.split())) for _, b in parts]
    fixed = sum(len(h) for h, _ in parts) + max(0, len(parts) - 1)
    cap = max((len(b) for b in bodies), default=0)
    while cap > MIN_CUT and fixed + sum(min(len(b), cap) for b in bodies) > limit:
        cap = max(MIN_CUT, cap * 9 // 10)
    return [h + shorten(b, cap) for (h, _), b in zip(parts, bodies, strict=True)]
