"""Retries of transient failures: capped exponential backoff with full jitter, within a budget."""

from __future__ import annotations

import asyncio
import copy
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from ._errors import LLMError, OrchestratorError

log = logging.getLogger(__name__)
T = TypeVar("T")


def backoff_delay(attempt: int, *, base_s: float, cap_s: float) -> float:
    """Full jitter (AWS's): uniform in [0, min(cap, base * 2**attempt)]; spreads retrying herds."""
    return random.uniform(0, min(cap_s, base_s * 2 ** min(attempt, 32)))


async def with_retries(
    call: Callable[..., Awaitable[T]],
    *args: Any,
    budget_s: float,
    base_s: float,
    cap_s: float,
    on_retry: Callable[[OrchestratorError, int], None] | None = None,
) -> T:
    """Await `call(*args)`, again after a pause while it raises a retryable error, for `budget_s`.

    A server's Retry-After is honoured even past `cap_s`; the error that ends it says how long."""
    started = time.monotonic()
    attempt = 0
    while True:
        attempt += 1
        try:
            return await call(*args)
        except OrchestratorError as err:
            if not err.retryable:
                raise
            asked = err.retry_after if isinstance(err, LLMError) else None
            delay = max(backoff_delay(attempt - 1, base_s=base_s, cap_s=cap_s), asked or 0.0)
            spent = time.monotonic() - started
            if spent + delay > budget_s:
                raise _gave_up(err, attempt, spent, asked, budget_s) from err
            log.info("retrying after %.2fs (attempt %d): %s", delay, attempt + 1, err.reason)
            if on_retry is not None:
                on_retry(err, attempt)
            await asyncio.sleep(delay)


def _gave_up(
    err: OrchestratorError, attempts: int, spent: float, asked: float | None, budget_s: float
) -> OrchestratorError:
    """The last error, its reason saying how long it was tried; no longer retryable."""
    note = f"tried {attempts} time{'s' if attempts > 1 else ''} over {spent:.1f}s"
    if asked is not None and spent + asked > budget_s:
        note += f"; the server asked to wait {asked:g}s, more than the {budget_s - spent:.1f}s left"
    final = copy.copy(err)  # the same class and fields, so callers map it as before
    final.reason = f"{err.reason} ({note})"
    final.args = (final.reason,)
    final.retryable = False
    return final
