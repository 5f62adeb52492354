"""The bus against a real Redis: groups, atomic commit, DLQ, pending re-read, claim, trimming."""

import asyncio

from shared.bus import Bus, Consumer, Streams
from shared.events import Bbo, Trade, decode
from shared.service import EngineRunner


def _bbo(i: int, market: str = "BTC") -> Bbo:
    return Bbo(id=f"b{i}", ts_event=i, market=market, bid_px=100.0 + i, bid_sz=1.0, ask_px=101.0 + i, ask_sz=1.0)


def test_stream_names_carry_the_namespace():
    s = Streams("replay-42")
    assert s.book("BTC") == "replay-42:md:book:BTC"
    assert s.intent(1001) == "replay-42:intent:1001"
    assert s.exec(1001) == "replay-42:exec:1001"
    assert s.dlq == "replay-42:dlq" and s.control == "replay-42:control"


async def test_commit_publishes_outputs_and_acks_atomically(redis_client, namespace):
    bus = Bus(redis_client, namespace)
    src, out = bus.streams.book("BTC"), bus.streams.intent(1)
    await bus.publish(src, [_bbo(i) for i in range(5)])
    c = Consumer(bus, [src], "g", "c1", block_ms=50)
    await c.start()
    batch = await c.fetch()
    assert [d.event.id for d in batch] == [f"b{i}" for i in range(5)]
    pending = await redis_client.xpending(src, "g")
    assert pending["pending"] == 5
    await c.commit(batch, [(out, _bbo(99))])
    assert (await redis_client.xpending(src, "g"))["pending"] == 0
    assert [d.event.id for d in await bus.read_all(out)] == ["b99"]
    assert await c.fetch() == []  # nothing new


async def test_malformed_entry_goes_to_dlq_with_reason(redis_client, namespace):
    bus = Bus(redis_client, namespace)
    src = bus.streams.trade("ETH")
    await redis_client.xadd(src, {b"event": b'{"type":"trade","id":"x"}'})
    await redis_client.xadd(src, {b"other": b"1"})
    good = Trade(id="t1", ts_event=1, market="ETH", trade_id="1", price=1.0, size=1.0, taker_side="buy")
    await bus.publish(src, [good])
    c = Consumer(bus, [src], "g", "c1", block_ms=50)
    await c.start()
    batch = await c.fetch()
    assert [d.error is None for d in batch] == [False, False, True]
    await c.commit(batch, [], service="test")
    dlq = await redis_client.xrange(bus.streams.dlq)
    assert len(dlq) == 2
    fields = dlq[0][1]
    assert b"invalid event" in fields[b"reason"] and fields[b"stream"] == src.encode()
    assert fields[b"raw"] == b'{"type":"trade","id":"x"}' and fields[b"service"] == b"test"
    assert b"no 'event' field" in dlq[1][1][b"reason"]
    assert (await redis_client.xpending(src, "g"))["pending"] == 0


async def test_restarted_consumer_rereads_its_own_pending_entries(redis_client, namespace):
    bus = Bus(redis_client, namespace)
    src = bus.streams.book("BTC")
    await bus.publish(src, [_bbo(i) for i in range(3)])
    first = Consumer(bus, [src], "g", "same-name", block_ms=50)
    await first.start()
    assert len(await first.fetch()) == 3  # read, never acknowledged: the process "dies"
    again = Consumer(bus, [src], "g", "same-name", block_ms=50)
    await again.start()
    batch = await again.fetch()
    assert [d.event.id for d in batch] == ["b0", "b1", "b2"]


async def test_dead_consumers_entries_are_claimed_by_another(redis_client, namespace):
    bus = Bus(redis_client, namespace)
    src = bus.streams.book("BTC")
    await bus.publish(src, [_bbo(i) for i in range(4)])
    dead = Consumer(bus, [src], "g", "dead", block_ms=50)
    await dead.start()
    assert len(await dead.fetch()) == 4
    await asyncio.sleep(0.15)
    alive = Consumer(bus, [src], "g", "alive", claim_idle_ms=100, block_ms=50)
    await alive.start()
    got = await alive.fetch()
    assert sorted(d.event.id for d in got) == ["b0", "b1", "b2", "b3"]
    await alive.commit(got, [])
    assert (await redis_client.xpending(src, "g"))["pending"] == 0


async def test_streams_are_trimmed_to_maxlen(redis_client, namespace):
    bus = Bus(redis_client, namespace, maxlen=1000)
    src = bus.streams.book("BTC")
    for start in range(0, 5000, 500):
        await bus.publish(src, [_bbo(i) for i in range(start, start + 500)])
    n = await redis_client.xlen(src)
    assert 1000 <= n < 5000  # approximate trimming keeps at least maxlen


class _Echo:
    """Engine that turns each BBO into one output and fails on a poisoned one."""

    def on_event(self, event):
        if event.id == "b2":
            raise RuntimeError("boom")
        return [_bbo(1000 + event.ts_event, "ETH")]


async def test_runner_dedupes_redelivered_ids_and_dead_letters_engine_errors(redis_client, namespace):
    bus = Bus(redis_client, namespace)
    src, out = bus.streams.book("BTC"), bus.streams.book("ETH")
    await bus.publish(src, [_bbo(4), _bbo(1), _bbo(1), _bbo(2), _bbo(3)])  # ts_event > 0: screened otherwise
    runner = EngineRunner("echo", _Echo(), bus, [src], route=lambda ev: out)
    runner.consumer.block_ms = 50
    task = asyncio.create_task(runner.run())
    for _ in range(100):
        if runner.processed >= 3:
            break
        await asyncio.sleep(0.02)
    runner.stop()
    await asyncio.wait_for(task, 5)
    outs = [decode(d.raw).ts_event for d in await bus.read_all(out)]
    assert outs == [1004, 1001, 1003]  # duplicate b1 dropped, b2 failed
    dlq = await redis_client.xrange(bus.streams.dlq)
    assert len(dlq) == 1 and b"engine error: RuntimeError: boom" in dlq[0][1][b"reason"]
    assert runner.loop.dead_letters == 1  # the loop counts the engine's dead letter like any other
    assert (await redis_client.xpending(src, "echo"))["pending"] == 0
