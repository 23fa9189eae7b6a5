"""Slots: never more than n holders, first come first served, a cancelled waiter loses nothing."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator._slots import Slots


@settings(max_examples=50, deadline=None)
@given(
    n=st.integers(1, 4),
    holds=st.lists(st.integers(0, 3), min_size=1, max_size=12),
    cancelled=st.sets(st.integers(0, 11)),
)
def test_at_most_n_hold_a_slot_in_arrival_order_and_cancels_lose_no_slot(
    n: int, holds: list[int], cancelled: set[int]
) -> None:
    async def scenario() -> None:
        slots = Slots(n)
        inside: list[int] = []
        entered: list[int] = []
        peak = 0

        async def hold(i: int, turns: int) -> None:
            nonlocal peak
            async with slots:
                entered.append(i)
                inside.append(i)
                peak = max(peak, len(inside))
                try:
                    for _ in range(turns):
                        await asyncio.sleep(0)
                finally:
                    inside.remove(i)

        tasks = [asyncio.create_task(hold(i, t)) for i, t in enumerate(holds)]
        await asyncio.sleep(0)
        for i in cancelled & set(range(len(tasks))):
            tasks[i].cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert peak <= n
        assert entered == sorted(entered)  # first come, first served
        # Every task not cancelled got in: no slot was lost to a cancelled waiter.
        survivors = {i for i, t in enumerate(tasks) if not t.cancelled()}
        assert survivors <= set(entered)
        async with asyncio.timeout(1):  # and all n are free again
            for _ in range(n):
                await slots.__aenter__()

    asyncio.run(scenario())
