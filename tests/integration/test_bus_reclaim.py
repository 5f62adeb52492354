"""At-least-once delivery into the ledger against a real Redis.

A ledger consumer that read fills and wrote (part of) them to the database dies before it
acknowledges; a new consumer of the same group reclaims the pending entries (XAUTOCLAIM) and
finishes the work. The database must hold each fill exactly once, nothing may stay pending and
the realized PnL must equal the FIFO result over all fills. Malformed entries go to the DLQ
without stopping the ledger.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from ledger_kit import pending, run_until

from services.ledger.config import LedgerConfig
from services.ledger.engine import LedgerEngine
from services.ledger.runner import PAUSE_ENV, LedgerService
from services.ledger.store import LedgerStore
from shared.bus import EVENT_FIELD, Bus
from shared.events import Fill, OrderCanceled, encode

REPO = Path(__file__).resolve().parents[2]
T0 = 1_757_894_400_000_000_000
ACCOUNT = 1001
GROUP = "ledger"


def make_fills(n: int, seed: int, start: int = 0) -> list[Fill]:
    """``n`` deterministic fills: 2 strategies x 2 markets, fees, some internal fills."""
    rng = random.Random(seed)
    out = []
    for i in range(start, start + n):
        market = rng.choice(["BTC", "ETH"])
        base = 60_000.0 if market == "BTC" else 2_500.0
        internal = rng.random() < 0.2
        out.append(Fill(
            id=f"ev{i}", ts_event=T0 + i * 1_000_000, source="executor", fill_id=f"fill-{i}",
            strategy=rng.choice(["trend", "maker"]), market=market, side=rng.choice(["buy", "sell"]),
            price=round(base * rng.uniform(0.99, 1.01), 2), size=round(rng.uniform(0.01, 0.5), 4),
            fee=0.0 if internal else round(rng.uniform(0.0, 0.5), 4),
            liquidity="internal" if internal else rng.choice(["maker", "taker"]),
            venue_trade_id="" if internal else f"vt{i}"))
    return out


def expected_pnl(fills: list[Fill]) -> tuple[float, list]:
    eng = LedgerEngine()
    closed = [c for f in fills for c in eng.apply_fill(f)]
    return sum(c.pnl_usd for c in closed), closed


def assert_db_matches(store: LedgerStore, fills: list[Fill]) -> None:
    ids = store.fill_ids()
    assert sorted(ids) == sorted(f.fill_id for f in fills)          # each fill exactly once
    assert len(ids) == len(set(ids))
    pnl, closed = expected_pnl(fills)
    assert store.closed_trades() == closed
    assert sum(store.realized_pnl_by_strategy().values()) == pytest.approx(pnl, abs=1e-9)


async def rescue(redis_client, bus: Bus, store: LedgerStore, stream: str, n: int) -> LedgerService:
    """A new consumer in the group with a small claim_idle_ms finishes the pending work."""
    svc = LedgerService(bus, store, ACCOUNT, LedgerConfig(claim_idle_ms=100, block_ms=50), consumer="rescuer")

    async def done():
        return await pending(redis_client, stream) == 0 and store.fill_count() == n

    await run_until(svc, done, timeout=20.0)
    return svc


async def test_abandoned_consumer_after_partial_db_write_is_reclaimed(redis_client, namespace, tmp_path):
    bus = Bus(redis_client, namespace)
    stream = bus.streams.exec(ACCOUNT)
    fills = make_fills(40, seed=1)
    await bus.publish(stream, fills)
    url = f"sqlite:///{tmp_path}/ledger.db"

    doomed = LedgerService(bus, LedgerStore(url), ACCOUNT, LedgerConfig(), consumer="doomed")
    await doomed.load()
    batch = await doomed.consumer.fetch()
    assert len(batch) == 40
    chosen = doomed.select(batch)
    doomed.store.record(doomed.engine, chosen[:15])                   # DB write of part of the batch ...
    # ... and the consumer dies here: no commit, no ack
    assert await pending(redis_client, stream) == 40

    store = LedgerStore(url)
    assert store.fill_count() == 15
    await asyncio.sleep(0.15)                                           # let the entries idle
    svc = await rescue(redis_client, bus, store, stream, 40)
    assert svc.fills_recorded == 25 and svc.duplicates == 15
    assert_db_matches(store, fills)
    detail = await redis_client.xpending_range(stream, GROUP, min="-", max="+", count=100)
    assert detail == []


async def test_sigkilled_ledger_process_between_db_commit_and_ack(redis_client, redis_url, namespace, tmp_path):
    bus = Bus(redis_client, namespace)
    stream = bus.streams.exec(ACCOUNT)
    first = make_fills(30, seed=2)
    await bus.publish(stream, first)
    url = f"sqlite:///{tmp_path}/ledger.db"
    store = LedgerStore(url)                                            # schema created before the child starts

    code = ("import sys\n"
            "from shared.config import StackConfig\n"
            "from services.ledger.runner import main\n"
            "cfg = StackConfig(namespace=sys.argv[1], account_index=int(sys.argv[2]), services={'ledger': "
            "{'db_url': sys.argv[3], 'http_port': 0, 'block_ms': 50}})\n"
            "sys.exit(main(cfg))\n")
    env = {k: v for k, v in os.environ.items() if k not in ("LEDGER_DB_URL",) and not k.startswith("LS_")}
    env.update({"REDIS_URL": redis_url, PAUSE_ENV: "120", "PYTHONPATH": str(REPO)})
    log_path = tmp_path / "child.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-c", code, namespace, str(ACCOUNT), url],
                                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = asyncio.get_running_loop().time() + 30
        while not (store.fill_count() == 30 and await pending(redis_client, stream) == 30
                   and b"sleeping" in log_path.read_bytes()):
            assert proc.poll() is None, log_path.read_text()
            assert asyncio.get_running_loop().time() < deadline, log_path.read_text()
            await asyncio.sleep(0.05)
        proc.send_signal(signal.SIGKILL)                               # dies after the DB commit, before XACK
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    detail = await redis_client.xpending_range(stream, GROUP, min="-", max="+", count=100)
    assert len(detail) == 30 and {d["consumer"] for d in detail} == {f"ledger@{socket.gethostname()}:{proc.pid}".encode()}

    more = make_fills(10, seed=3, start=30)                            # new work arrives meanwhile
    await bus.publish(stream, more)
    await asyncio.sleep(0.15)
    svc = await rescue(redis_client, bus, store, stream, 40)
    assert svc.fills_recorded == 10 and svc.duplicates == 30
    assert_db_matches(store, first + more)
    assert await redis_client.xpending_range(stream, GROUP, min="-", max="+", count=100) == []


async def test_malformed_entries_go_to_dlq_and_processing_continues(redis_client, namespace, tmp_path):
    bus = Bus(redis_client, namespace)
    stream = bus.streams.exec(ACCOUNT)
    good = make_fills(6, seed=4)
    await bus.publish(stream, good[:3])
    await redis_client.xadd(stream, {EVENT_FIELD: b"\x00\xffnot an event"})
    await redis_client.xadd(stream, {b"something": b"else"})
    bad_fill = Fill(id="bad", ts_event=T0, fill_id="bad-fill", strategy="trend", market="BTC", side="buy",
                    price=60_000.0, size=0.0)
    await redis_client.xadd(stream, {EVENT_FIELD: encode(bad_fill)})
    await bus.publish(stream, [OrderCanceled(id="oc", ts_event=T0, strategy="trend", market="BTC",
                                             client_order_index=7, remaining=0.1)])
    await bus.publish(stream, good[3:])
    store = LedgerStore(f"sqlite:///{tmp_path}/ledger.db")
    svc = LedgerService(bus, store, ACCOUNT, LedgerConfig(block_ms=50), consumer="c1")

    async def done():
        return await pending(redis_client, stream) == 0 and store.fill_count() == 6

    await run_until(svc, done, timeout=20.0)
    dlq = await redis_client.xrange(bus.streams.dlq)
    assert len(dlq) == 3
    reasons = [fields[b"reason"].decode() for _, fields in dlq]
    assert reasons[0].startswith("invalid event") and "no 'event' field" in reasons[1]
    assert reasons[2].startswith("invalid fill: size")
    assert dlq[0][1][b"raw"] == b"\x00\xffnot an event"
    assert all(f[b"stream"] == stream.encode() and f[b"service"] == b"ledger" for _, f in dlq)
    assert svc.dead_letters == 3
    assert_db_matches(store, good)

    # still consuming after the dead letters
    later = make_fills(2, seed=5, start=100)
    await bus.publish(stream, later)
    svc2 = LedgerService(bus, store, ACCOUNT, LedgerConfig(block_ms=50), consumer="c1")

    async def done2():
        return await pending(redis_client, stream) == 0 and store.fill_count() == 8

    await run_until(svc2, done2, timeout=20.0)
    assert await redis_client.xlen(bus.streams.dlq) == 3
    assert_db_matches(store, good + later)
