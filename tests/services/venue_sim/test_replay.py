"""Replay pacing on the wall clock: speed, gap compression, tx arrival and execution times between
recorded events, pending txs after the end."""

from __future__ import annotations

import asyncio
import time

from services.venue_sim.config import VenueSimConfig
from services.venue_sim.replay import Replay, count_events
from shared.events import Bbo
from shared.markets import MarketInfo
from shared.recording import RecordingHeader, write_recording
from shared.venue.matching import CreateOrder, FillUpdate, MatchingEngine, OrderUpdate

BTC = MarketInfo(symbol="BTC", market_id=1, size_decimals=5, price_decimals=1, min_base_amount=0.0002,
                 min_quote_amount=10)
T0 = 1_757_894_400_000_000_000
MS = 1_000_000
S = 1_000_000_000


def bbo(ts, i=0):
    return Bbo(id=f"b{ts}", ts_event=ts, market="BTC", bid_px=100000.0 + i, bid_sz=0.5, ask_px=100000.5 + i,
               ask_sz=0.5)


async def test_long_gaps_are_compressed_in_wall_time_only(run_until):
    events = [bbo(T0), bbo(T0 + 100 * MS, 1), bbo(T0 + 3600 * S, 2), bbo(T0 + 3600 * S + 100 * MS, 3)]
    seen = []
    eng = MatchingEngine([BTC])
    replay = Replay(eng, iter(events), lambda ups: seen.extend(ups), speed=100, max_gap_s=5)
    replay.start()
    t = time.monotonic()
    await run_until(replay.run(), replay.stop, lambda: replay.state == "finished", timeout=3.0)
    wall = time.monotonic() - t
    assert replay.state == "finished" and replay.replayed == 4
    assert 0.04 < wall < 1.0  # the hour took 5 s / 100 = 50 ms
    assert replay.recorded_ns == T0 + 3600 * S + 100 * MS
    assert abs(eng.now_ns - time.time_ns()) < 1 * S  # the venue's clock is the wall clock


async def test_tx_between_events_arrives_at_wall_time_and_executes_after_speed_bump():
    events = [bbo(T0), bbo(T0 + 2 * S, 1)]
    seen = []
    eng = MatchingEngine([BTC])
    replay = Replay(eng, iter(events), lambda ups: seen.extend(ups), speed=1, max_gap_s=100)
    replay.start()
    task = asyncio.create_task(replay.run())
    await asyncio.sleep(0.2)
    arrival = replay.sim_now()
    assert abs(arrival - time.time_ns()) < 50 * MS
    eng.submit(CreateOrder(account=7, market_id=1, client_order_index=1, base_amount=1000, price=1000010,
                           is_ask=False, time_in_force="ioc"), arrival)
    replay.notify()
    t = time.monotonic()
    while not any(isinstance(u, FillUpdate) for u in seen) and time.monotonic() - t < 2:
        await asyncio.sleep(0.005)
    fill = next(u.fill for u in seen if isinstance(u, FillUpdate))
    assert fill.ts_ns == arrival + 300 * MS and fill.price == 100000.5
    assert 0.25 < time.monotonic() - t < 0.6  # executed 300 ms of wall time after its arrival
    assert replay.replayed == 1  # before the next recorded event (due 2 s after the first)
    replay.stop()
    await asyncio.wait_for(task, 2)


async def test_finished_replay_executes_pending_txs_at_their_wall_time():
    eng = MatchingEngine([BTC])
    seen = []
    replay = Replay(eng, iter([bbo(T0)]), lambda ups: seen.extend(ups), speed=1)
    replay.start()
    task = asyncio.create_task(replay.run())
    while replay.state != "finished":
        await asyncio.sleep(0.005)
    arrival = replay.sim_now()
    eng.submit(CreateOrder(account=7, market_id=1, client_order_index=1, base_amount=1000, price=990000,
                           is_ask=False, time_in_force="post_only"), arrival)
    replay.notify()
    await asyncio.sleep(0.1)
    assert not [u for u in seen if isinstance(u, OrderUpdate)]  # the maker bump (200 ms) has not passed
    await asyncio.sleep(0.25)
    (o,) = [u.order for u in seen if isinstance(u, OrderUpdate)]
    assert o.status == "open" and o.created_ns == arrival + 200 * MS
    replay.stop()
    await asyncio.wait_for(task, 2)


def test_count_events_and_config_defaults(tmp_path):
    p = tmp_path / "r.jsonl.gz"
    write_recording(p, RecordingHeader(markets=[BTC]), [bbo(T0), bbo(T0 + S)])
    assert count_events(p) == 2
    cfg = VenueSimConfig()
    assert cfg.port == 8090 and cfg.speed == 60 and cfg.max_gap_s == 5 and cfg.fills_file == "var/venue-fills.jsonl"
    tier = VenueSimConfig(taker_delay_ms=50, taker_fee=0.0003).resolved_tier()
    assert tier.taker_delay_ms == 50 and tier.maker_delay_ms == 200 and tier.taker_fee == 0.0003
