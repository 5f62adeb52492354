"""The shared consume loop (shared/service.py ConsumerLoop + BatchHandler + feed_engine) against a
real Redis: hook order, screening (dead letters with reasons, skip, dedup), commit atomic with
the outputs, nothing committed when the handler declines, the lock, the engine-error fallback
and reclaiming a dead consumer's entries."""

from __future__ import annotations

import asyncio

import pytest

from shared.bus import Bus, Consumer, Delivery
from shared.events import Bbo, Event, Trade, decode
from shared.service import BatchHandler, ConsumerLoop, SeenIds, feed_engine


def _bbo(i: int, market: str = "BTC") -> Bbo:
    return Bbo(id=f"b{i}", ts_event=i, market=market, bid_px=100.0 + i, bid_sz=1.0, ask_px=101.0 + i, ask_sz=1.0)


def _trade(i: int) -> Trade:
    return Trade(id=f"t{i}", ts_event=i, market="BTC", trade_id=str(i), price=1.0, size=1.0, taker_side="buy")


class Recorder(BatchHandler):
    """Skips trades, rejects BBOs with ts_event 13, echoes each handled BBO to ``out``; records
    the calls and what the output stream held when ``after_commit`` ran."""

    def __init__(self, bus: Bus, out: str, lock: asyncio.Lock | None = None, decline: bool = False) -> None:
        self.bus, self.out, self.lock, self.decline = bus, out, lock, decline
        self.calls: list[tuple[str, list[str]]] = []
        self.out_at_after_commit: list[str] = []
        self.locked_in_batch: bool | None = None
        self.locked_after_commit: bool | None = None

    def dedup_key(self, event: Event) -> str | None:
        return None if isinstance(event, Trade) else event.id

    def reject_reason(self, event: Event, stream: str) -> str | None:
        return "unlucky bbo" if event.ts_event == 13 else None

    async def gather(self, consumer: Consumer, batch: list[Delivery]) -> list[Delivery]:
        self.calls.append(("gather", [d.entry_id for d in batch]))
        return list(reversed(batch))

    async def on_batch(self, deliveries: list[Delivery]) -> list[tuple[str, Event]] | None:
        self.calls.append(("on_batch", [d.event.id for d in deliveries]))
        self.locked_in_batch = self.lock.locked() if self.lock else None
        if self.decline:
            return None
        return [(self.out, _bbo(1000 + d.event.ts_event, "ETH")) for d in deliveries]

    async def after_commit(self, deliveries: list[Delivery], outputs: list[tuple[str, Event]]) -> None:
        self.calls.append(("after_commit", [ev.id for _, ev in outputs]))
        self.locked_after_commit = self.lock.locked() if self.lock else None
        self.out_at_after_commit = [d.event.id for d in await self.bus.read_all(self.out)]


async def _setup(redis_client, namespace) -> tuple[Bus, str, str, Consumer]:
    bus = Bus(redis_client, namespace)
    src, out = bus.streams.book("BTC"), bus.streams.book("ETH")
    await bus.publish(src, [_bbo(1), _trade(2), _bbo(13), _bbo(1), _bbo(4)])
    await redis_client.xadd(src, {b"event": b"not json"})
    c = Consumer(bus, [src], "g", "c1", block_ms=50)
    await c.start()
    return bus, src, out, c


async def test_step_screens_then_handles_commits_and_calls_after_commit(redis_client, namespace):
    bus, src, out, c = await _setup(redis_client, namespace)
    lock = asyncio.Lock()
    h = Recorder(bus, out, lock)
    seen = SeenIds()
    seen.add("b4")  # marked seen from outside (e.g. folded at start-up)
    loop = ConsumerLoop("svc", c, h, seen, lock=lock)
    batch = await c.fetch()
    assert await loop.step(batch) is True
    # gather reversed the batch; the trade is skipped, b13 rejected, b4 and the second b1 are duplicates
    assert [name for name, _ in h.calls] == ["gather", "on_batch", "after_commit"]
    assert h.calls[1][1] == ["b1"]
    assert h.calls[2][1] == ["b1001"] and h.out_at_after_commit == ["b1001"]  # published before the hook
    assert h.locked_in_batch is True and h.locked_after_commit is False
    assert loop.duplicates == 2 and loop.dead_letters == 2
    assert (await redis_client.xpending(src, "g"))["pending"] == 0  # everything acknowledged, skipped too
    dlq = await redis_client.xrange(bus.streams.dlq)
    reasons = sorted(f[b"reason"].decode().split(":")[0] for _, f in dlq)
    assert reasons == ["invalid event", "unlucky bbo"]
    assert {f[b"service"] for _, f in dlq} == {b"svc"} and {f[b"stream"] for _, f in dlq} == {src.encode()}


async def test_declined_batch_commits_nothing(redis_client, namespace):
    bus, src, out, c = await _setup(redis_client, namespace)
    h = Recorder(bus, out, decline=True)
    loop = ConsumerLoop("svc", c, h)
    assert await loop.step(await c.fetch()) is False
    assert [name for name, _ in h.calls] == ["gather", "on_batch"]
    assert (await redis_client.xpending(src, "g"))["pending"] == 6
    assert await redis_client.xlen(bus.streams.dlq) == 0 and await bus.read_all(out) == []


class FlakyEngine:
    def __init__(self) -> None:
        self.resets = 0

    def on_event(self, ev: Event) -> list[Event]:
        if ev.id == "b2":
            raise ValueError("bad b2")
        return [_bbo(100 + ev.ts_event)]

    def on_events(self, evs: list[Event]) -> list[Event]:
        if any(e.id == "b2" for e in evs):
            raise RuntimeError("batch failed")
        return [_bbo(100 + e.ts_event) for e in evs]


def _deliveries(*ids: int) -> list[Delivery]:
    return [Delivery("s", f"{i}-0", b"", _bbo(i)) for i in ids]


def test_feed_engine_batch_then_one_by_one_after_an_error():
    eng = FlakyEngine()
    resets: list[int] = []
    ok = _deliveries(1, 3)
    assert [e.id for e in feed_engine("t", ok, eng.on_event, eng.on_events, lambda: resets.append(1))] == ["b101",
                                                                                                           "b103"]
    assert resets == [] and all(d.error is None for d in ok)
    mixed = _deliveries(1, 2, 3)
    outs = feed_engine("t", mixed, eng.on_event, eng.on_events, lambda: resets.append(1))
    assert [e.id for e in outs] == ["b101", "b103"] and resets == [1]
    assert [d.error for d in mixed] == [None, "engine error: ValueError: bad b2", None]
    single = _deliveries(2, 4)
    assert [e.id for e in feed_engine("t", single, eng.on_event)] == ["b104"]
    assert single[0].error == "engine error: ValueError: bad b2"


async def test_run_reclaims_a_dead_consumers_pending_entries(redis_client, namespace):
    bus = Bus(redis_client, namespace)
    src, out = bus.streams.book("BTC"), bus.streams.book("ETH")
    await bus.publish(src, [_bbo(1), _bbo(2)])
    dead = Consumer(bus, [src], "g", "dead", block_ms=50)
    await dead.start()
    assert len(await dead.fetch()) == 2  # read, never acknowledged: the consumer dies here
    await asyncio.sleep(0.15)

    class Echo(BatchHandler):
        async def on_batch(self, deliveries):
            return [(out, _bbo(100 + d.event.ts_event, "ETH")) for d in deliveries]

    loop = ConsumerLoop("svc", Consumer(bus, [src], "g", "rescuer", claim_idle_ms=100, block_ms=50), Echo())
    stop = asyncio.Event()
    task = asyncio.create_task(loop.run(stop))
    try:
        for _ in range(100):
            if (await redis_client.xpending(src, "g"))["pending"] == 0:
                break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
    assert sorted(decode(d.raw).id for d in await bus.read_all(out)) == ["b101", "b102"]
    assert (await redis_client.xpending(src, "g"))["pending"] == 0


def test_base_handler_requires_on_batch():
    with pytest.raises(TypeError, match="on_batch"):
        BatchHandler()  # type: ignore[abstract]
