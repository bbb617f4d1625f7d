"""Channels and wait groups: tasks wait on each other without holding an M."""

from __future__ import annotations

import pytest

from schedobs.runtime import Chan, ChannelClosedError, Runtime, WaitGroup, go, sleep


def test_unbuffered_ping_pong(rt1: Runtime) -> None:
    ping: Chan[int] = Chan()
    pong: Chan[int] = Chan()

    async def player() -> None:
        async for v in ping:
            await pong.send(v + 1)

    async def driver() -> list[int]:
        go(player)
        out = []
        for i in range(100):
            await ping.send(i)
            out.append(await pong.recv())
        ping.close()
        return out

    assert rt1.go(driver).result(timeout=5) == [i + 1 for i in range(100)]


def test_buffered_channel_and_close_semantics(rt: Runtime) -> None:
    ch: Chan[int] = Chan(3)
    assert ch.try_send(1)
    assert ch.try_send(2)
    assert ch.try_send(3)
    assert not ch.try_send(4)
    assert len(ch) == 3
    ch.close()
    assert ch.closed
    with pytest.raises(ChannelClosedError, match="send on a closed channel"):
        ch.try_send(5)
    with pytest.raises(ChannelClosedError, match="close of a closed channel"):
        ch.close()

    async def drain() -> list[int]:
        return [v async for v in ch]

    assert rt.go(drain).result(timeout=5) == [1, 2, 3]
    with pytest.raises(ChannelClosedError):
        ch.try_recv()


def test_close_wakes_waiting_receivers_and_senders(rt: Runtime) -> None:
    ch: Chan[int] = Chan()

    async def receiver() -> str:
        try:
            await ch.recv()
        except ChannelClosedError:
            return "closed"
        return "value"

    tasks = [rt.go(receiver) for _ in range(5)]

    async def closer() -> None:
        await sleep(0.05)
        ch.close()

    rt.go(closer)
    assert [t.result(timeout=5) for t in tasks] == ["closed"] * 5


def test_many_producers_and_consumers_move_every_value_once(rt: Runtime) -> None:
    ch: Chan[int] = Chan(8)
    wg = WaitGroup()
    results: Chan[int] = Chan(100_000)

    async def producer(base: int) -> None:
        for i in range(500):
            await ch.send(base + i)
        wg.done()

    async def consumer() -> None:
        async for v in ch:
            await results.send(v)

    async def main() -> list[int]:
        wg.add(8)
        for p in range(8):
            go(producer, p * 1000)
        consumers = [go(consumer) for _ in range(4)]
        await wg.wait()
        ch.close()
        for c in consumers:
            while not c.done():
                await sleep(0.001)
        results.close()
        return sorted([v async for v in results])

    got = rt.go(main).result(timeout=20)
    assert got == sorted(p * 1000 + i for p in range(8) for i in range(500))


def test_waitgroup_validation_and_blocking_wait(rt: Runtime) -> None:
    wg = WaitGroup()
    with pytest.raises(ValueError, match="negative"):
        wg.done()
    with pytest.raises(TypeError):
        wg.add(1.5)  # type: ignore[arg-type]
    wg.add(3)
    for _ in range(3):
        rt.go(wg.done)
    assert wg.wait_blocking(timeout=5)
    assert wg.count == 0


def test_waiting_outside_a_task_is_a_clear_error() -> None:
    ch: Chan[int] = Chan()
    coro = ch.recv()
    with pytest.raises(
        RuntimeError, match="only a coroutine or generator task can await a channel"
    ):
        coro.send(None)
    with pytest.raises(ValueError, match="capacity"):
        Chan(-1)
