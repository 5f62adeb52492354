"""The ledger runner against a real Redis: fills in, other events ignored, duplicates dropped,
ack only after the DB write, health body, and main() without Redis."""

import asyncio

import pytest
from ledger_kit import pending, run_until

from services.ledger.config import LedgerConfig
from services.ledger.runner import LedgerService
from services.ledger.store import LedgerStore
from shared.bus import Bus
from shared.events import Fill, OrderAccepted, PositionSnapshot, RiskState

T0 = 1_757_894_400_000_000_000
ACCOUNT = 1001


def fill(i: int, side: str, price: float, size: float, event_id: str | None = None) -> Fill:
    return Fill(id=event_id or f"e{i}", ts_event=T0 + i, fill_id=f"f{i}", strategy="s", market="BTC", side=side,
                price=price, size=size, fee=0.01, venue_trade_id=f"v{i}")


async def test_fills_recorded_other_events_ignored_duplicates_dropped(redis_client, namespace, tmp_path):
    bus = Bus(redis_client, namespace)
    stream = bus.streams.exec(ACCOUNT)
    f1, f2, f3 = fill(1, "buy", 100.0, 1.0), fill(2, "buy", 102.0, 1.0), fill(3, "sell", 105.0, 1.5)
    await bus.publish(stream, [
        OrderAccepted(id="o1", ts_event=T0, strategy="s", market="BTC", client_order_index=1, side="buy",
                      price=100.0, size=1.0),
        f1, f2,
        PositionSnapshot(id="p1", ts_event=T0 + 2, strategy="s", market="BTC", position=2.0),
        f1,                                       # redelivered copy of the same fill
        fill(2, "buy", 102.0, 1.0, event_id="other-event-id"),  # same fill id, different event id
        RiskState(id="r1", ts_event=T0 + 3, state="running"),
        f3,
    ])
    store = LedgerStore(f"sqlite:///{tmp_path}/ledger.db")
    svc = LedgerService(bus, store, ACCOUNT, LedgerConfig(block_ms=50), consumer="c1")

    async def done():
        return await pending(redis_client, stream) == 0 and store.fill_count() == 3

    await run_until(svc, done)
    assert store.fill_ids() == ["f1", "f2", "f3"]
    trades = store.closed_trades()
    assert [(t.entry_fill_id, t.size) for t in trades] == [("f1", 1.0), ("f2", 0.5)]
    assert svc.fills_recorded == 3 and svc.duplicates == 2
    h = svc.health()
    assert h["status"] == "ok" and h["fills_recorded"] == 3 and h["open_lots"] == 1
    assert h["stream"] == stream and h["group"] == "ledger"
    assert await redis_client.xlen(bus.streams.dlq) == 0
    # a restarted service rebuilds the same open lot from the DB
    svc2 = LedgerService(bus, store, ACCOUNT, LedgerConfig(block_ms=50), consumer="c2")
    await svc2.load()
    assert svc2.engine.positions() == svc.engine.positions() == {("s", "BTC"): pytest.approx(0.5)}


async def test_db_failure_leaves_entries_pending(redis_client, namespace, tmp_path, monkeypatch):
    bus = Bus(redis_client, namespace)
    stream = bus.streams.exec(ACCOUNT)
    await bus.publish(stream, [fill(1, "buy", 100.0, 1.0)])
    store = LedgerStore(f"sqlite:///{tmp_path}/ledger.db")
    svc = LedgerService(bus, store, ACCOUNT, LedgerConfig(block_ms=50), consumer="c1")
    await svc.load()
    calls = []

    def failing(engine, fills):
        calls.append(1)
        raise OSError("db down")

    monkeypatch.setattr(store, "record", failing)
    batch = await svc.consumer.fetch()
    task = asyncio.create_task(svc.handle(batch))
    while len(calls) < 2:                        # retried with backoff
        await asyncio.sleep(0.05)
    assert (await redis_client.xpending(stream, "ledger"))["pending"] == 1
    svc.stop()
    assert await asyncio.wait_for(task, 5) is False
    assert (await redis_client.xpending(stream, "ledger"))["pending"] == 1  # not acknowledged


