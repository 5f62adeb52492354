"""Redis outages in the shared loop (``shared/outage.py``, ``ConsumerLoop``): health says degraded
then ok, the backoff grows and is capped, and a commit whose answer was lost is settled -- run
once, never twice -- whether it had run, had not, or Redis lost the data. Against the shared
Redis: the "outage" is a commit made to fail, Redis itself stays up (restarts are in
``tests/integration/test_redis_outage.py``)."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import REGISTRY
from redis.exceptions import BusyLoadingError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError

from services.executor.outbox import Outbox
from shared.bus import Bus, Consumer, Delivery
from shared.events import Control, Event
from shared.outage import BusLink, bus_down, data_lost
from shared.service import BatchHandler, ConsumerLoop


def ctl(i: int, source: str = "test") -> Control:
    return Control(id=f"c{i}", ts_event=i, source=source, command="pause", target="grid")


def test_bus_link_health_backoff_and_metrics():
    link = BusLink("outage-unit", base_s=0.1, cap_s=0.5)
    assert link.health({"status": "ok"})["status"] == "ok"
    delays = [link.failed(RedisConnectionError("refused"), "fetch") for _ in range(6)]
    assert delays == [0.1, 0.2, 0.4, 0.5, 0.5, 0.5]  # doubling, capped
    body = link.health({"status": "ok", "x": 1})
    assert body["status"] == "degraded" and body["x"] == 1
    assert "Redis unreachable" in body["degraded"] and "fetch: ConnectionError: refused" in body["degraded"]
    assert body["bus"]["up"] is False and body["bus"]["outages"] == 1
    assert link.health({"status": "behind"})["status"] == "behind"  # a more specific failure is kept
    assert REGISTRY.get_sample_value("lighter_stack_bus_up", {"service": "outage-unit"}) == 0
    link.recovered()
    assert link.health({"status": "ok"})["status"] == "ok"
    assert link.failed(RedisConnectionError("again")) == 0.1  # a new outage starts the backoff over
    assert REGISTRY.get_sample_value("lighter_stack_bus_outages_total", {"service": "outage-unit"}) == 2
    assert link.health({"status": "ok"}, extra_reason="3 events unpublished")["degraded"].endswith("unpublished")


def test_error_classes():
    assert bus_down(RedisConnectionError()) and bus_down(BusyLoadingError("LOADING"))
    assert not bus_down(ResponseError("NOGROUP x")) and data_lost(ResponseError("NOGROUP No such key"))
    assert not data_lost(ResponseError("ERR other"))


class Echo(BatchHandler):
    """Each input Control becomes one output Control (id ``out-<input id>``) on ``out``."""

    def __init__(self, out: str) -> None:
        self.out = out
        self.handled: list[str] = []
        self.resets = 0

    async def on_batch(self, deliveries: list[Delivery]) -> list[tuple[str, Event]]:
        self.handled += [d.event.id for d in deliveries if d.event is not None]
        return [(self.out, Control(id=f"out-{d.event.id}", ts_event=0, source="echo", command="pause"))  # type: ignore[union-attr]
                for d in deliveries]

    async def on_bus_reset(self) -> None:
        self.resets += 1


def _loop(bus: Bus, name: str) -> tuple[ConsumerLoop, Echo, str, str]:
    src, out = f"{bus.streams.ns}:in", f"{bus.streams.ns}:out"
    handler = Echo(out)
    consumer = Consumer(bus, [src], name, f"{name}-1", block_ms=20)
    loop = ConsumerLoop(name, consumer, handler, link=BusLink(name, base_s=0.01, cap_s=0.05))
    return loop, handler, src, out


@pytest.mark.parametrize("ran", [True, False], ids=["commit-ran-answer-lost", "commit-never-ran"])
async def test_a_commit_in_doubt_is_settled_once(redis_client, namespace, ran):
    bus = Bus(redis_client, namespace)
    loop, handler, src, out = _loop(bus, f"doubt{int(ran)}")
    await loop.consumer.start()
    await bus.publish(src, [ctl(1), ctl(2)])
    real = loop.consumer.commit
    calls = 0

    async def flaky(*a, **kw):
        nonlocal calls
        calls += 1
        if calls == 1:
            if ran:
                await real(*a, **kw)  # it ran, then the connection dropped before the answer
            raise RedisConnectionError("Connection closed by server.")
        await real(*a, **kw)

    loop.consumer.commit = flaky  # type: ignore[method-assign]
    assert await loop.step(await loop.consumer.fetch())
    assert calls == (1 if ran else 2)  # run again only when it had not run
    assert [d.event.id for d in await bus.read_all(out)] == ["out-c1", "out-c2"]  # never twice
    assert (await redis_client.xpending(src, loop.consumer.group))["pending"] == 0
    assert loop.commits_in_doubt == 1 and loop.link.up


async def test_a_commit_in_doubt_after_redis_lost_its_data_publishes_and_resets(redis_client, namespace):
    bus = Bus(redis_client, namespace)
    loop, handler, src, out = _loop(bus, "doubtlost")
    await loop.consumer.start()
    await bus.publish(src, [ctl(1)])
    real = loop.consumer.commit
    calls = 0

    async def lost(*a, **kw):
        nonlocal calls
        calls += 1
        if calls == 1:  # Redis restarted empty meanwhile: stream and group gone
            await redis_client.delete(src)
            raise RedisConnectionError("Connection closed by server.")
        await real(*a, **kw)

    loop.consumer.commit = lost  # type: ignore[method-assign]
    stop = asyncio.Event()
    batch = await loop.consumer.fetch()
    loop._stop = stop
    assert await loop.step(batch)
    assert [d.event.id for d in await bus.read_all(out)] == ["out-c1"]  # the outputs are not lost
    assert loop.link.resets == 1
    # the loop re-creates the groups and tells the handler, then goes on with new input
    task = asyncio.create_task(loop.run(stop))
    await bus.publish(src, [ctl(2)])
    for _ in range(200):
        if handler.handled[-1:] == ["c2"]:
            break
        await asyncio.sleep(0.02)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert handler.resets == 1 and handler.handled == ["c1", "c2"]


async def test_on_batch_failing_for_redis_forgets_the_batch_to_handle_it_again(redis_client, namespace):
    bus = Bus(redis_client, namespace)
    loop, handler, src, out = _loop(bus, "forget")
    await loop.consumer.start()
    await bus.publish(src, [ctl(1)])
    real = handler.on_batch
    fails = [True]

    async def once_down(deliveries):
        if fails.pop() if fails else False:
            raise RedisConnectionError("refused")  # before changing anything (the contract)
        return await real(deliveries)

    handler.on_batch = once_down  # type: ignore[method-assign]
    stop = asyncio.Event()
    task = asyncio.create_task(loop.run(stop))
    for _ in range(200):
        if await redis_client.xlen(out):
            break
        await asyncio.sleep(0.02)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert handler.handled == ["c1"] and loop.duplicates == 0  # redelivered and handled, not dropped as seen
    assert [d.event.id for d in await bus.read_all(out)] == ["out-c1"]


async def test_executor_outbox_keeps_order_and_never_publishes_twice(redis_client, namespace):
    bus = Bus(redis_client, namespace)
    stream = bus.streams.exec(1001)
    link = BusLink("outbox-unit", base_s=0.01, cap_s=0.02)
    box = Outbox(bus, stream, link, asyncio.Lock(), "outbox-unit")
    real = bus.publish
    mode = ["ran"]

    async def flaky(s, events):
        if mode and mode.pop() == "ran":
            await real(s, events)  # written, answer lost
        raise RedisConnectionError("Connection closed by server.")

    bus.publish = flaky  # type: ignore[method-assign]
    assert not await box.publish([ctl(1), ctl(2)])
    assert len(box) == 2 and not link.up
    bus.publish = real  # type: ignore[method-assign]
    assert await box.publish([ctl(3)])  # the first two are on the stream already: only c3 goes out
    assert [d.event.id for d in await bus.read_all(stream)] == ["c1", "c2", "c3"]
    assert len(box) == 0 and link.up

    async def down(s, events):
        raise RedisConnectionError("refused")  # not written

    bus.publish = down  # type: ignore[method-assign]
    assert not await box.publish([ctl(4)])
    bus.publish = real  # type: ignore[method-assign]
    stop = asyncio.Event()
    task = asyncio.create_task(box.run(stop))
    for _ in range(100):
        if not len(box):
            break
        await asyncio.sleep(0.02)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert [d.event.id for d in await bus.read_all(stream)] == ["c1", "c2", "c3", "c4"]
