"""The event bus: every subscriber gets what it asked for, and a wait on one task costs the same
however many other tasks are in flight."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

from orchestrator import Phase, PhaseChanged, StepChanged, StepState, TaskSubmitted
from orchestrator._events import EventBus


async def test_a_subscriber_to_one_task_hears_only_that_tasks_events() -> None:
    bus = EventBus()
    async with bus.subscribe("t1") as mine, bus.subscribe() as everything:
        bus.publish(TaskSubmitted("t2"))
        bus.publish(PhaseChanged("t1", Phase.PLANNING, Phase.AWAITING_APPROVAL, "x"))
        assert await anext(mine) == PhaseChanged("t1", Phase.PLANNING, Phase.AWAITING_APPROVAL, "x")
        assert [await anext(everything) for _ in range(2)] == [
            TaskSubmitted("t2"),
            PhaseChanged("t1", Phase.PLANNING, Phase.AWAITING_APPROVAL, "x"),
        ]


async def test_an_event_reaches_one_queue_whatever_number_of_other_tasks_are_waited_on() -> None:
    bus = EventBus()
    async with AsyncExitStack() as stack:
        streams = [await stack.enter_async_context(bus.subscribe(f"t{i}")) for i in range(1000)]
        bus.publish(TaskSubmitted("t7"))
        assert await asyncio.wait_for(anext(streams[7]), 1) == TaskSubmitted("t7")
        for i, stream in enumerate(streams):
            if i != 7:
                # Nothing queued for the others: a get would block.
                get = asyncio.ensure_future(anext(stream))
                await asyncio.sleep(0)
                assert not get.done()
                get.cancel()
    assert bus._by_task == {}  # every subscription is gone once left


async def test_a_watch_of_one_kind_is_not_woken_by_the_others() -> None:
    bus = EventBus()
    phases = bus.watch("t1", only=PhaseChanged)
    got = asyncio.ensure_future(phases.get())
    bus.publish(StepChanged("t1", "s1", StepState.PENDING, StepState.RUNNING, "x"))
    await asyncio.sleep(0)
    assert not got.done()  # a step move is not what this watch waits for
    bus.publish(PhaseChanged("t1", Phase.EXECUTING, Phase.COMPLETED, "x"))
    assert await asyncio.wait_for(got, 1) == PhaseChanged(
        "t1", Phase.EXECUTING, Phase.COMPLETED, "x"
    )
    bus.unwatch(phases, "t1")
    assert bus._by_task == {}
