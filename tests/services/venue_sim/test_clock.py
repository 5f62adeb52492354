"""venue-sim's clock (docs/venue-sim.md "Time"): outside lockstep the venue clock is the wall clock --
frames and REST bodies carry wall-clock times, the speed bump, the rate limit and ``ExpiredAt``
run in wall time while the recording is replayed at ``speed`` x real time; lockstep keeps the
recording's time for everything.

The venue is strict (signatures verified): txs are complete and signed with the test key, which
each test registers on the built server (``venue_tx``)."""

from __future__ import annotations

import asyncio
import contextlib
import time

from aiohttp.test_utils import TestClient, TestServer
from venue_tx import order, register, signed

from services.venue_sim.config import VenueSimConfig
from services.venue_sim.replay import Replay
from services.venue_sim.runner import build
from shared.events import Bbo
from shared.markets import MarketInfo
from shared.recording import RecordingHeader, write_recording
from shared.venue.matching import MatchingEngine

BTC = MarketInfo(symbol="BTC", market_id=1, size_decimals=5, price_decimals=1, min_base_amount=0.0002,
                 min_quote_amount=10)
T0 = 1_757_894_400_000_000_000  # 2025-09-15: the recording's time
MS = 1_000_000
S = 1_000_000_000
ACCT, KEY = 1001, 4
GTT_MS = 28 * 24 * 3600 * 1000


def bbo(ts: int, i: int = 0) -> Bbo:
    return Bbo(id=f"b{ts}", ts_event=ts, market="BTC", bid_px=100000.0 + i, bid_sz=0.5, ask_px=100000.5 + i,
               ask_sz=0.5)


def order_info(nonce: int, coi: int, *, expired_at: int = 0, tif: int = 2, price: int = 500000) -> str:
    """A signed post-only bid far below the market (rests, never fills) unless overridden; a
    resting order expires 28 days after now (the venue's wall clock)."""
    expiry = 0 if tif == 0 else int(time.time() * 1000) + GTT_MS
    return signed(14, order(AccountIndex=ACCT, ApiKeyIndex=KEY, Nonce=nonce, MarketIndex=1, ClientOrderIndex=coi,
                            BaseAmount=1000, Price=price, IsAsk=0, Type=0, TimeInForce=tif, ReduceOnly=0,
                            TriggerPrice=0, OrderExpiry=expiry, ExpiredAt=expired_at))


@contextlib.asynccontextmanager
async def venue(tmp_path, events, **cfg):
    """venue-sim built from a recording of ``events`` (wall clock unless ``lockstep``), its
    replay running, the test key registered for (1001, 4); yields ``(server, replay, client)``."""
    rec = tmp_path / "r.jsonl.gz"
    write_recording(rec, RecordingHeader(markets=[BTC]), events)
    server, replay, app = build(VenueSimConfig(recording=str(rec), fills_file="", **cfg))
    register(server)
    task = asyncio.create_task(replay.run())
    try:
        async with TestClient(TestServer(app)) as client:
            yield server, replay, client
    finally:
        replay.stop()
        await asyncio.wait_for(task, 2)


def near_now_ns(ts_ns: int, tol_s: float = 2.0) -> bool:
    return abs(ts_ns - time.time_ns()) < tol_s * S


async def test_frames_and_rest_carry_wall_clock_times_not_the_recordings(tmp_path):
    events = [bbo(T0 + k * 100 * MS, k) for k in range(50)]
    async with venue(tmp_path, events, speed=10.0, autostart=False) as (server, replay, client):
        ws = await client.ws_connect("/stream")
        assert (await ws.receive_json())["type"] == "connected"
        await ws.send_json({"type": "subscribe", "channel": "order_book/1"})
        snap = await ws.receive_json()
        assert near_now_ns(snap["timestamp"] * MS)
        await client.post("/sim/start")
        upd = await asyncio.wait_for(ws.receive_json(), 2)
        assert upd["type"] == "update/order_book"
        assert near_now_ns(upd["last_updated_at"] * 1000) and near_now_ns(upd["timestamp"] * MS)
        root = await (await client.get("/")).json()
        assert abs(root["timestamp"] - time.time()) < 2
        st = await (await client.get("/sim/status")).json()
        assert st["clock"] == "wall" and near_now_ns(st["sim_time_ns"])
        assert T0 <= st["recorded_time_ns"] < T0 + 5 * S  # progress through the recording
        await ws.close()


async def test_market_runs_at_speed_while_the_rate_limit_stays_a_wall_minute(tmp_path):
    # one recorded hour at speed 3600 passes in a wall second; the account's 60 requests a
    # minute do not: the 61st within the wall minute is refused although hours of market went by
    events = [bbo(T0 + k * 60 * S, k % 5) for k in range(120)]  # two recorded hours, one event a minute
    async with venue(tmp_path, events, speed=3600.0, max_gap_s=120.0) as (server, replay, client):
        for n in range(60):
            r = await client.post("/api/v1/sendTx", data={"tx_type": "14", "tx_info": order_info(n, n + 1)})
            assert r.status == 200, await r.text()
        while replay.state != "finished":
            await asyncio.sleep(0.05)
        assert replay.recorded_ns - T0 >= 119 * 60 * S  # the market moved two hours
        r = await client.post("/api/v1/sendTx", data={"tx_type": "14", "tx_info": order_info(60, 61)})
        assert r.status == 429 and (await r.json())["code"] == 23000
        acct = server.status()["accounts"][str(ACCT)]
        assert acct["max_requests_per_min"] == 60 and acct["rate_limited"] == 1


async def test_speed_bump_runs_in_wall_time_without_a_recorded_event(tmp_path):
    # the next recorded event is an hour away (= 5 wall seconds at max_gap_s 5, speed 1): the
    # order still rests 200 ms of wall time after it arrived
    events = [bbo(T0), bbo(T0 + 3600 * S, 1)]
    async with venue(tmp_path, events, speed=1.0) as (server, replay, client):
        await asyncio.sleep(0.05)
        t = time.monotonic()
        r = await client.post("/api/v1/sendTx", data={"tx_type": "14", "tx_info": order_info(0, 7)})
        body = await r.json()
        assert near_now_ns(body["predicted_execution_time_ms"] * MS)
        while not server.engine.active_orders(ACCT) and time.monotonic() - t < 2:
            await asyncio.sleep(0.01)
        (o,) = server.engine.active_orders(ACCT)
        assert 0.15 < time.monotonic() - t < 1.0 and replay.replayed == 1
        assert near_now_ns(o.created_ns) and o.created_ns // MS == body["predicted_execution_time_ms"]


async def test_expired_at_is_checked_on_the_venue_clock(tmp_path):
    async with venue(tmp_path, [bbo(T0)], speed=1.0) as (server, replay, client):
        past = int(time.time() * 1000) - 1000
        r = await client.post("/api/v1/sendTx", data={"tx_type": "14", "tx_info": order_info(0, 1, expired_at=past)})
        assert r.status == 400 and (await r.json())["code"] == 21511
        # a time in the recording's era is long past on the venue's (wall) clock
        r = await client.post("/api/v1/sendTx",
                              data={"tx_type": "14", "tx_info": order_info(0, 1, expired_at=T0 // MS + 10_000)})
        assert (await r.json())["code"] == 21511
        future = int(time.time() * 1000) + 600_000
        r = await client.post("/api/v1/sendTx", data={"tx_type": "14", "tx_info": order_info(0, 1, expired_at=future)})
        assert r.status == 200


async def test_lockstep_keeps_the_recorded_clock():
    released = asyncio.Event()

    async def gate() -> None:
        await released.wait()

    eng = MatchingEngine([BTC])
    replay = Replay(eng, iter([bbo(T0), bbo(T0 + S, 1)]), lambda ups: None, gate=gate)
    assert replay.clock == "recorded" and replay.sim_now() == T0 and eng.now_ns == T0
    replay.start()
    released.set()
    task = asyncio.create_task(replay.run())
    while replay.state != "finished":
        await asyncio.sleep(0.005)
    assert replay.sim_now() == T0 + S == eng.now_ns
    replay.stop()
    await asyncio.wait_for(task, 2)


async def test_pending_tx_submitted_before_the_start_executes_at_its_wall_time():
    eng = MatchingEngine([BTC])
    seen: list = []
    replay = Replay(eng, iter([bbo(T0)]), seen.extend, speed=1.0)
    task = asyncio.create_task(replay.run())
    from shared.venue.matching import CreateOrder
    arrival = replay.sim_now()
    assert near_now_ns(arrival) and replay.state == "waiting"
    eng.submit(CreateOrder(account=7, market_id=1, client_order_index=1, base_amount=1000, price=990000,
                           is_ask=False, time_in_force="post_only"), arrival)
    replay.notify()
    await asyncio.sleep(0.35)
    assert eng.pending_count() == 0 and eng.active_orders(7)[0].created_ns == arrival + 200 * MS
    replay.stop()
    await asyncio.wait_for(task, 2)
