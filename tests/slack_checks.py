"""Checks every posted Slack payload must pass: Block Kit models, block count, text length."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from slack_sdk.models.blocks import Block

MAX_BLOCKS = 50
MAX_TEXT = 4000
# What hostile text tries to make live: broadcast pings and a link whose label hides its target.
HOSTILE = ("<!channel>", "<!here>", "<!everyone>", "<https://evil", "|click here>")
# The bot's own live tokens: a person's mention and a date; anything else with < or > is not ours.
_OWN_TOKEN = re.compile(r"<@[A-Z0-9]+>|<!date\^[0-9]+\^[^|<>]*\|[0-9]+>")


def assert_valid_message(args: dict[str, Any]) -> None:
    """A chat.postMessage / chat.update payload is one Slack accepts as is."""
    text = args.get("text") or ""
    assert text.strip(), "every message needs a plain-text fallback"
    assert len(text) < MAX_TEXT, len(text)
    blocks = args.get("blocks") or []
    assert len(blocks) <= MAX_BLOCKS, len(blocks)
    for block in blocks:
        parsed = Block.parse(block)
        assert parsed is not None, block
        assert parsed.to_dict() == block  # to_dict() validates the model's limits
    for obj in _text_objects(blocks):
        if obj.get("type") == "mrkdwn":
            # Slack: verbatim keeps it from turning URLs, #channels and @words into links.
            assert obj.get("verbatim") is True, obj


def assert_nothing_live(args: dict[str, Any]) -> None:
    """No hostile ping or disguised link in a message's text or blocks, and no stray < & >."""
    texts = [args.get("text") or ""]
    texts += [o.get("text", "") for o in _text_objects(args.get("blocks") or [])]
    for text in texts:
        assert not [h for h in HOSTILE if h in text], text
        bare = _OWN_TOKEN.sub("", re.sub(r"&(amp|lt|gt);", "", text))
        assert not set("<>&") & set(bare), text


def _text_objects(node: Any) -> Iterator[dict[str, Any]]:
    """Every text object (plain_text or mrkdwn) anywhere inside blocks."""
    if isinstance(node, list):
        for item in node:
            yield from _text_objects(item)
    elif isinstance(node, dict):
        if node.get("type") in ("mrkdwn", "plain_text") and isinstance(node.get("text"), str):
            yield node
        for value in node.values():
            yield from _text_objects(value)
