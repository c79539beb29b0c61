"""The hub's read gate and shared reads (server/realtime/reads.py), without sockets or Postgres."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from server.realtime.reads import ReadGate, SingleFlight


def flights() -> tuple[SingleFlight, set[asyncio.Task[Any]]]:
    """A SingleFlight whose calls run as tasks kept in a set (as the hub keeps them)."""
    tasks: set[asyncio.Task[Any]] = set()

    def spawn(coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return task

    return SingleFlight(spawn), tasks


async def test_the_gate_runs_at_most_its_concurrency_and_serves_everyone() -> None:
    """Five reads through a gate of two: never more than two at once, all five answered."""
    gate = ReadGate(concurrency=2, queue_timeout_s=30, timeout_s=30)
    running, most = 0, 0
    release, two_running = asyncio.Event(), asyncio.Event()

    async def read(i: int) -> int:
        nonlocal running, most
        running += 1
        most = max(most, running)
        if running == 2:
            two_running.set()
        await release.wait()
        running -= 1
        return i

    reads = [asyncio.create_task(gate.read(read(i))) for i in range(5)]
    await two_running.wait()
    release.set()
    assert await asyncio.gather(*reads) == [0, 1, 2, 3, 4]
    assert most == 2


async def test_a_read_that_waits_too_long_for_its_turn_never_starts() -> None:
    """With the one slot held, a second read times out waiting and its coroutine never runs."""
    gate = ReadGate(concurrency=1, queue_timeout_s=0.05, timeout_s=30)
    hold, running = asyncio.Event(), asyncio.Event()
    started: list[str] = []

    async def read(name: str) -> str:
        started.append(name)
        running.set()
        await hold.wait()
        return name

    first = asyncio.create_task(gate.read(read("first")))
    await running.wait()
    with pytest.raises(TimeoutError):
        await gate.read(read("second"))
    hold.set()
    assert await first == "first"
    assert started == ["first"]


async def test_concurrent_identical_reads_share_one_call() -> None:
    """Ten callers of one key meanwhile: one call, ten answers; a caller after it ends calls again."""
    shared, _ = flights()
    calls = 0
    release = asyncio.Event()

    async def make() -> str:
        nonlocal calls
        calls += 1
        await release.wait()
        return "row"

    callers = [asyncio.create_task(shared.run("session", make)) for _ in range(10)]
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*callers) == ["row"] * 10
    assert calls == 1
    assert await shared.run("session", make) == "row"
    assert calls == 2


async def test_a_caller_that_must_not_join_a_started_read_gets_its_own() -> None:
    """join_started=False: once the read has started, a newcomer gets a read of its own."""
    shared, _ = flights()
    calls = 0
    started, second = asyncio.Event(), asyncio.Event()
    release = asyncio.Event()

    async def make() -> int:
        nonlocal calls
        calls += 1
        mine = calls
        (second if mine == 2 else started).set()
        await release.wait()
        return mine

    early = asyncio.create_task(shared.run("snapshot", make, join_started=False))
    await started.wait()
    late = asyncio.create_task(shared.run("snapshot", make, join_started=False))
    await second.wait()
    release.set()
    assert (await early, await late) == (1, 2)


async def test_a_caller_that_gives_up_leaves_the_read_to_the_others() -> None:
    """One of two callers cancelled: the shared read goes on and the other gets its answer."""
    shared, _ = flights()
    release = asyncio.Event()

    async def make() -> str:
        await release.wait()
        return "snapshot"

    quitter = asyncio.create_task(shared.run("p", make))
    stayer = asyncio.create_task(shared.run("p", make))
    await asyncio.sleep(0)
    quitter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await quitter
    release.set()
    assert await stayer == "snapshot"


async def test_a_failed_shared_read_fails_every_caller() -> None:
    """The call's exception reaches each caller that shared it."""
    shared, _ = flights()
    release = asyncio.Event()

    async def make() -> str:
        await release.wait()
        raise ConnectionError("postgres went away")

    callers = [asyncio.create_task(shared.run("k", make)) for _ in range(3)]
    await asyncio.sleep(0)
    release.set()
    results = await asyncio.gather(*callers, return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)
