"""Retries of transient failures with exponential backoff and full jitter."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from ._errors import LLMError, OrchestratorError

log = logging.getLogger(__name__)
T = TypeVar("T")


def backoff_delay(attempt: int, *, base_s: float, cap_s: float) -> float:
    """Full jitter (AWS's): uniform in [0, min(cap, base * 2**attempt)]; spreads retrying herds."""
    return random.uniform(0, min(cap_s, base_s * 2**attempt))


async def with_retries(
    call: Callable[[], Awaitable[T]],
    *,
    attempts: int,
    base_s: float,
    cap_s: float,
    on_retry: Callable[[OrchestratorError, int], None] | None = None,
) -> T:
    """Await `call()`, again after a pause while it raises a retryable `OrchestratorError`."""
    for attempt in range(attempts):
        try:
            return await call()
        except OrchestratorError as err:
            if not err.retryable or attempt + 1 >= attempts:
                raise
            delay = backoff_delay(attempt, base_s=base_s, cap_s=cap_s)
            if isinstance(err, LLMError) and err.retry_after is not None:
                delay = max(delay, min(err.retry_after, cap_s))
            log.info("retrying after %.2fs (attempt %d): %s", delay, attempt + 2, err.reason)
            if on_retry is not None:
                on_retry(err, attempt + 1)
            await asyncio.sleep(delay)
    raise AssertionError("unreachable: attempts must be at least 1")
