"""Checks every posted Slack payload must pass: Block Kit models, block count, text length."""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import Block

MAX_BLOCKS = 50
MAX_TEXT = 4000


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
