"""Secret values masked out of any text before it is stored, sent or logged."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import overload

MASK = "[redacted]"
# A text cut to fit (an output cap, a Slack limit) may keep only part of a secret, so any run of
# this many of its characters is masked too; shorter pieces give too little away to matter.
FRAGMENT = 12
# Values shorter than this are no secret worth mangling every text that happens to contain them.
MIN_SECRET = 6


@dataclass(frozen=True)
class Redactor:
    """Masks every given secret value, and any piece of one at least FRAGMENT long, in a text."""

    secrets: frozenset[str] = field(default=frozenset(), repr=False)

    def __repr__(self) -> str:
        return f"Redactor({len(self._values)} secrets)"  # never the values

    @overload
    def redact(self, text: str) -> str: ...
    @overload
    def redact(self, text: None) -> None: ...
    def redact(self, text: str | None) -> str | None:
        """`text` with every secret, or piece of one, replaced by MASK."""
        if text is None or self._pattern is None:
            return text
        spans: list[tuple[int, int]] = []
        match = self._pattern.search(text)
        while match is not None:
            start, end = match.span()
            if spans and start <= spans[-1][1]:
                spans[-1] = (spans[-1][0], max(end, spans[-1][1]))
            else:
                spans.append((start, end))
            # Pieces overlap: look again one character on, not after the match.
            match = self._pattern.search(text, start + 1)
        if not spans:
            return text
        parts, last = [], 0
        for start, end in spans:
            parts += [text[last:start], MASK]
            last = end
        return "".join([*parts, text[last:]])

    @cached_property
    def _values(self) -> frozenset[str]:
        return frozenset(s for s in self.secrets if len(s) >= MIN_SECRET)

    @cached_property
    def _pattern(self) -> re.Pattern[str] | None:
        pieces = {
            value[i : i + min(len(value), FRAGMENT)]
            for value in self._values
            for i in range(max(1, len(value) - FRAGMENT + 1))
        }
        if not pieces:
            return None
        return re.compile("|".join(re.escape(p) for p in sorted(pieces, key=len, reverse=True)))
