"""Redis restarts under running services (issue 13): a private redis-server
(``EmbeddedRedis``) is shut down (``SHUTDOWN NOSAVE``) for a few seconds and started again on the
same port -- with AOF (the data comes back) and without persistence (it comes back empty).
Each service keeps running (its task never ends), says ``degraded`` on ``/health`` while Redis is
away and ``ok`` after, and goes on where it was: with AOF no input is lost and none is processed
twice; without persistence the consumer groups are re-created and the strategies take their
positions from the executor's snapshots. The executor sends no new order while the bus is down
and keeps the venue reports that arrive meanwhile.

The shared Redis on 127.0.0.1:6379 is never touched: ``redis_url`` is overridden here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
import strategy_kit
from prometheus_client import REGISTRY

from services.ledger.config import LedgerConfig
from services.ledger.runner import LedgerService
from services.ledger.store import LedgerStore
from services.recorder.config import RecorderConfig
from services.recorder.runner import Recorder
from services.strategy_trend.runner import build as build_trend
from services.strategy_trend.runner import restore_fills as restore_trend
from shared.archive import iter_rows, write_meta
from shared.bus import Bus
from shared.config import StackConfig
from shared.events import (
    Bbo,
    CancelIntent,
    Control,
    Event,
    Fill,
    OrderAccepted,
    OrderCanceled,
    OrderRejected,
    PositionSnapshot,
    QuoteIntent,
    RiskState,
    TargetPosition,
)
from shared.redis_util import EmbeddedRedis
from shared.strategy_runner import restore_then_run

ACCT = 1001
T0 = 1_757_894_400_000_000_000
OUTAGE_S = 2.0


@pytest.fixture(params=[True, False], ids=["aof", "no-persistence"])
def server(request):
    """A private redis-server, AOF on or off, restartable on its port (never the shared one)."""
    s = EmbeddedRedis(appendonly=request.param).start()
    yield s
    s.stop()


@pytest.fixture
def redis_url(server):
    """The private server (overrides the session's shared Redis for this module)."""
    return server.url


async def wait(cond: Callable[[], object], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def outage(server: EmbeddedRedis, health: Callable[[], dict], task: asyncio.Task,
                 seconds: float = OUTAGE_S, during: Callable[[], object] | None = None) -> dict:
    """Shut Redis down for ``seconds``, check the service says degraded meanwhile (returns that
    body) and stays alive, start Redis again (same port; with AOF its data is back)."""
    await asyncio.to_thread(server.shutdown)
    t0 = time.monotonic()
    await wait(lambda: health()["status"] == "degraded", "health to say degraded")
    degraded = health()
    if during is not None:
        await during()  # type: ignore[misc]
    await asyncio.sleep(max(0.0, seconds - (time.monotonic() - t0)))
    assert not task.done(), task.exception() if task.done() else ""
    await asyncio.to_thread(server.start)
    return degraded


def fill(i: int, strategy: str = "s", size: float = 0.0002) -> Fill:
    return Fill(id=f"e{i}", ts_event=T0 + i, source="executor", fill_id=f"f{i}", strategy=strategy, market="BTC",
                side="buy", price=100_000.0, size=size, venue_trade_id=f"v{i}")


async def test_ledger_survives_a_redis_restart(server, redis_client, namespace, tmp_path):
    bus = Bus(redis_client, namespace)
    stream = bus.streams.exec(ACCT)
    store = LedgerStore(f"sqlite:///{tmp_path}/ledger.db")
    svc = LedgerService(bus, store, ACCT, LedgerConfig(block_ms=50), consumer="l1")
    task = asyncio.create_task(svc.run(http_port=0))
    await bus.publish(stream, [fill(1), fill(2), fill(3)])
    await wait(lambda: svc.fills_recorded == 3, "the first fills")

    degraded = await outage(server, svc.health, task)
    assert "Redis unreachable" in degraded["degraded"] and degraded["bus"]["up"] is False

    await wait(lambda: svc.health()["status"] == "ok", "health ok again")
    await bus.publish(stream, [fill(4), fill(5)])
    await wait(lambda: svc.fills_recorded == 5, "the fills after the restart")
    assert store.fill_ids() == ["f1", "f2", "f3", "f4", "f5"] and svc.fills_recorded == 5
    assert svc.duplicates == 0  # none processed twice
    assert svc.loop.link.resets == (0 if server.appendonly else 1)  # groups re-created only when lost
    assert not task.done()
    svc.stop()
    await asyncio.wait_for(task, 5)
    store.close()


async def test_strategy_runner_survives_a_redis_restart(server, redis_client, namespace):
    cfg = strategy_kit.stack("strategy-trend", namespace)
    bus = Bus(redis_client, namespace)
    exec_stream = bus.streams.exec(cfg.account_index)
    await bus.publish(exec_stream, [strategy_kit.fill(1, "A", "trend"), snap(1, 0.0002)])
    runner, engine = build_trend(cfg, bus, consumer="t1")
    runner.loop.link.backoff._cap = 0.5  # a quick test: retry at least twice a second
    task = asyncio.create_task(restore_then_run(restore_trend)(runner, engine, bus, cfg.account_index))
    await wait(lambda: engine.position("BTC") == pytest.approx(0.0002) and runner.processed == 2,
               "the restored position, and the fill delivered by the group")
    dups = engine.duplicate_fills  # the live delivery of the restored fill

    await outage(server, runner.health, task)

    before = adopted("live")
    if server.appendonly:  # history and group are back: consumption goes on where it was
        await bus.publish(exec_stream, [strategy_kit.fill(2, "B", "trend"), snap(2, 0.0004)])
        await wait(lambda: engine.position("BTC") == pytest.approx(0.0004), "the next fill")
        assert adopted("live") == before and runner.loop.link.resets == 0
    else:  # Redis came back empty: fills B and C were lost with it; the executor republishes its snapshot
        await wait(lambda: runner.loop.link.resets == 1, "the lost consumer group to be noticed")
        await bus.publish(exec_stream, [snap(9, 0.0006)])
        await wait(lambda: engine.position("BTC") == pytest.approx(0.0006), "the position from the snapshot")
        assert adopted("live") == before + 1
    assert runner.loop.duplicates == 0 and engine.duplicate_fills == dups  # nothing processed twice
    await wait(lambda: runner.health()["status"] == "ok", "health ok again")
    assert not task.done()
    runner.stop()
    await asyncio.wait_for(task, 5)


def snap(i: int, position: float) -> PositionSnapshot:
    return PositionSnapshot(id=f"ps{i}", ts_event=T0 + i, source="executor", strategy="trend", market="BTC",
                            position=position, avg_entry_price=100_000.0, account_position=position)


def adopted(when: str) -> float:
    return REGISTRY.get_sample_value("lighter_stack_strategy_positions_from_snapshot_total",
                                     {"strategy": "trend", "market": "BTC", "when": when}) or 0.0


async def test_recorder_survives_a_redis_restart(server, redis_client, namespace, tmp_path):
    cfg = StackConfig(namespace=namespace)
    bus = Bus(redis_client, namespace)

    def ctl(i: int) -> Control:
        return Control(id=f"c{i}", ts_event=i, command="pause", target="grid")

    write_meta(tmp_path, namespace)
    rec = Recorder(cfg, RecorderConfig(out=str(tmp_path), http_port=0, block_ms=20, discover_s=0.05,
                                       flush_s=3600), redis_client, clock=lambda: time.time() + 3600)
    stop = asyncio.Event()
    task = asyncio.create_task(rec.run(stop))
    await bus.publish(bus.streams.control, [ctl(0), ctl(1), ctl(2)])
    await wait(lambda: rec.written == 3, "the first entries archived")

    await outage(server, rec.health, task)

    await bus.publish(bus.streams.control, [ctl(3), ctl(4)])
    await wait(lambda: rec.written == 5, "the entries after the restart")
    await wait(lambda: rec.health()["status"] == "ok", "health ok again")
    stop.set()
    await asyncio.wait_for(task, 5)
    assert [r.id for r in iter_rows(tmp_path) if r.key == "control"] == ["c0", "c1", "c2", "c3", "c4"]


# ------------------------------------------------------------------------------------ executor

BTC_ID = 1
BID, ASK = 115000.0, 115001.0
S = 1_000_000_000


def _recording() -> list[Event]:
    t0 = time.time_ns()
    return [Bbo(id=f"r{i}", ts_event=t0 + i * S, source="rec", market="BTC", bid_px=BID, bid_sz=1.0, ask_px=ASK,
                ask_sz=1.0) for i in range(90)]


def _position(evs: list[Event], strategy: str) -> float | None:
    snaps = [e for e in evs if isinstance(e, PositionSnapshot) and e.strategy == strategy and e.market == "BTC"]
    return snaps[-1].position if snaps else None


async def test_executor_holds_new_orders_and_keeps_venue_reports_through_a_redis_restart(server, venue_executor):
    h = await venue_executor(_recording(), ["BTC"])
    bus, svc = h.bus, h.svc
    svc.link.backoff._cap = 0.5  # a quick test: retry at least twice a second
    n = 0

    async def publish(stream: str, ev: Event) -> None:
        await bus.publish(stream, [ev])

    def eid(kind: str) -> str:
        nonlocal n
        n += 1
        return f"{kind}{n}"

    async def bbo() -> None:
        await publish(bus.streams.book("BTC"), Bbo(id=eid("b"), ts_event=time.time_ns(), source="test", market="BTC",
                                                   bid_px=BID, bid_sz=1.0, ask_px=ASK, ask_sz=1.0))

    async def txs() -> int:
        return int((await h.venue_status())["accounts"].get(str(ACCT), {}).get("txs", 0))

    await bbo()
    await h.wait_for(lambda evs: "BTC" in svc.engine.bbo)
    await publish(bus.streams.intent(ACCT), TargetPosition(id=eid("t"), ts_event=time.time_ns(), source="A",
                                                           strategy="A", market="BTC", target=0.001))
    await h.wait_for(lambda evs: _position(evs, "A") == pytest.approx(0.001))
    await publish(bus.streams.intent(ACCT), QuoteIntent(id=eid("q"), ts_event=time.time_ns(), source="mm",
                                                        strategy="mm", market="BTC", bid_px=110_000.0, bid_sz=0.001))
    evs = await h.wait_for(lambda evs: any(isinstance(e, OrderAccepted) and e.strategy == "mm" for e in evs))
    quote_coi = next(e.client_order_index for e in evs if isinstance(e, OrderAccepted) and e.strategy == "mm")
    txs0 = await txs()

    async def while_down() -> None:
        now = time.time_ns()
        # the engine wants a new order (as after a venue report): it is not sent while the bus is down
        async with svc.io_lock:
            svc.engine.on_events([TargetPosition(id="t-down", ts_event=now, source="A", strategy="A", market="BTC",
                                                 target=0.002)])
            creates = svc.engine.take_commands()
        assert [c.kind for c in creates] == ["create"]
        await svc._execute(creates)
        # a cancel still goes out; the venue's report of it is kept until the bus is back
        async with svc.io_lock:
            svc.engine.on_events([CancelIntent(id="x-down", ts_event=now, source="mm", strategy="mm", market="BTC")])
            cancels = svc.engine.take_commands()
        assert [c.kind for c in cancels] == ["cancel"]
        await svc._execute(cancels)
        await wait(lambda: len(svc.outbox) >= 2, "the refusal and the cancel report held in the outbox")
        assert await txs() == txs0 + 1  # only the cancel reached the venue
        assert await h.active_orders(BTC_ID) == []
        body = svc.health()
        assert body["status"] == "degraded" and body["new_orders"].startswith("held")
        assert "not yet published" in body["degraded"]

    await outage(server, svc.health, h.task, seconds=3.0, during=while_down)

    def settled(evs: list[Event]) -> bool:
        refused = any(isinstance(e, OrderRejected) and e.strategy == "A" and e.code == -1
                      and e.reason.startswith("not sent") for e in evs)
        canceled = any(isinstance(e, OrderCanceled) and e.client_order_index == quote_coi for e in evs)
        # without persistence the stream starts empty: its snapshot of A and its RiskState are republished ones
        republished = server.appendonly or (
            any(isinstance(e, PositionSnapshot) and e.strategy == "A" and e.position == pytest.approx(0.001)
                for e in evs) and any(isinstance(e, RiskState) for e in evs))
        return refused and canceled and republished

    evs = await h.wait_for(settled, timeout=20.0)
    ids = [e.id for e in evs]
    assert len(ids) == len(set(ids))  # nothing published twice
    assert svc.link.resets == (0 if server.appendonly else 1)
    await wait(lambda: svc.health()["status"] == "ok", "health ok again")
    assert not h.task.done() and len(svc.outbox) == 0
    # orders go out again once the bus is back
    await bbo()
    await publish(bus.streams.intent(ACCT), TargetPosition(id=eid("t"), ts_event=time.time_ns(), source="A",
                                                           strategy="A", market="BTC", target=0.0))
    await h.wait_for(lambda evs: _position(evs, "A") == pytest.approx(0.0), timeout=20.0)
    assert await txs() > txs0 + 1
