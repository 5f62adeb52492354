"""strategy-grid -> executor -> venue-sim end to end (real Redis, real SDK signer, real venue-sim).

The grid publishes its RestingOrders, the executor places them post-only on venue-sim, a recorded
public sell print below the first buy level trades through it (a maker fill, attributed to the
grid), the grid's position follows the fill, and the grid's shutdown cancels its remaining orders
while the position stays.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from services.executor.config import ExecutorConfig
from services.executor.runner import ExecutorService, resolve_key
from services.strategy_grid.runner import build, run_until_stopped
from shared.bus import Bus
from shared.config import StackConfig, VenueConfig
from shared.events import Bbo, Fill, OrderAccepted, OrderCanceled, RestingOrders, RiskState, Trade
from shared.markets import MarketInfo
from shared.redis_util import free_port

ACCT = 1001
BTC = MarketInfo(symbol="BTC", market_id=1, size_decimals=5, price_decimals=1, min_base_amount=0.0002,
                 min_quote_amount=10.0, taker_fee=0.0002)
ETH = MarketInfo(symbol="ETH", market_id=0, size_decimals=4, price_decimals=2, min_base_amount=0.005,
                 min_quote_amount=10.0)
S = 1_000_000_000


async def _wait_for(bus: Bus, stream: str, pred, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    evs: list = []
    while time.monotonic() < deadline:
        evs = [d.event for d in await bus.read_all(stream) if d.event is not None]
        if pred(evs):
            return evs
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out; stream has {[type(e).__name__ for e in evs]}")


async def test_grid_orders_rest_on_venue_sim_and_a_trade_through_fills_them(tmp_path, redis_client, redis_url,
                                                                             namespace, monkeypatch):
    runner_mod = pytest.importorskip("services.venue_sim.runner")
    cfg_mod = pytest.importorskip("services.venue_sim.config")
    from shared.recording import RecordingHeader, write_recording

    monkeypatch.delenv("LIGHTER_API_PRIVATE_KEY", raising=False)
    t0 = time.time_ns()
    # the touch stays at 115000.0 / 115001.0; from 12 s on, every 8 s a sell print at 114800 (below the
    # grid's first buy level 114885.4) trades through whatever rests at or above it
    events: list = [Bbo(id=f"r{i}", ts_event=t0 + i * S, source="rec", market="BTC", bid_px=115000.0, bid_sz=1.0,
                        ask_px=115001.0, ask_sz=1.0) for i in range(90)]
    events += [Trade(id=f"t{k}", ts_event=t0 + (12 + 8 * k) * S + 500_000_000, source="rec", market="BTC",
                     trade_id=str(7000 + k), price=114800.0, size=0.0002, taker_side="sell") for k in range(9)]
    events.sort(key=lambda e: e.ts_event)
    rec = tmp_path / "grid.jsonl.gz"
    write_recording(rec, RecordingHeader(markets=[BTC, ETH], source="test"), events)
    port = free_port()
    vcfg = cfg_mod.VenueSimConfig(host="127.0.0.1", port=port, recording=str(rec), speed=1.0, fills_file="",
                                  autostart=True)
    stop_venue = asyncio.Event()
    venue_task = asyncio.create_task(runner_mod.serve(vcfg, ACCT, stop_venue))
    cfg = StackConfig(namespace=namespace, redis_url=redis_url, markets=["BTC"],
                      venue=VenueConfig(rest_url=f"http://127.0.0.1:{port}", ws_url=f"ws://127.0.0.1:{port}/stream"),
                      services={"executor": {"http_port": 0, "reconcile_retry_s": 0.3},
                                "strategy-grid": {"http_port": 0}})
    ecfg = cfg.section("executor", ExecutorConfig)
    svc = ExecutorService(cfg, ecfg, resolve_key(cfg, ecfg), redis_client)
    bus = Bus(redis_client, namespace)
    exec_stream = bus.streams.exec(ACCT)
    grid_runner, grid = build(cfg, bus, consumer="grid-it")
    task = grid_task = None
    try:
        await asyncio.sleep(0.5)
        task = asyncio.create_task(svc.run())
        await _wait_for(bus, exec_stream, lambda evs: any(isinstance(e, RiskState) and e.state == "running"
                                                          for e in evs))
        grid_task = asyncio.create_task(run_until_stopped(grid_runner, grid, bus, ACCT))
        await bus.publish(bus.streams.book("BTC"), [Bbo(id="g1", ts_event=time.time_ns(), source="test",
                                                        market="BTC", bid_px=115000.0, bid_sz=1.0,
                                                        ask_px=115001.0, ask_sz=1.0)])
        evs = await _wait_for(bus, exec_stream, lambda evs: sum(isinstance(e, OrderAccepted) for e in evs) >= 8)
        acc = [e for e in evs if isinstance(e, OrderAccepted)]
        assert all(a.strategy == "grid" and a.time_in_force == "post_only" for a in acc)
        assert sorted(a.price for a in acc if a.side == "buy")[-1] == 114885.4  # 115000.5 * 0.999, rounded down
        evs = await _wait_for(bus, exec_stream, lambda evs: any(isinstance(e, Fill) for e in evs), timeout=40)
        (f,) = [e for e in evs if isinstance(e, Fill)]
        assert (f.strategy, f.side, f.price, f.size, f.liquidity) == ("grid", "buy", 114885.4, 0.0002, "maker")
        assert f.client_order_index in {a.client_order_index for a in acc}
        for _ in range(100):
            if grid.position("BTC") > 0:
                break
            await asyncio.sleep(0.05)
        assert grid.position("BTC") == pytest.approx(0.0002)
        assert grid.state("BTC")["grid"].get(0) == "sell"  # the take-profit level
    finally:
        if grid_task is not None:
            grid_runner.stop()
            await asyncio.wait_for(grid_task, 10)
    try:
        intents = [d.event for d in await bus.read_all(bus.streams.intent(ACCT))]
        assert isinstance(intents[-1], RestingOrders) and intents[-1].orders == []
        # the executor cancels the 7 orders still resting; the position stays
        await _wait_for(bus, exec_stream, lambda evs: sum(isinstance(e, OrderCanceled) for e in evs) >= 7)
        assert svc.engine.resting_orders("grid", "BTC") == []
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/api/v1/account", params={"by": "index", "value": ACCT}) as r:
                acct = await r.json()
        positions = {p["market_id"]: float(p["position"]) for p in acct["accounts"][0]["positions"]}
        assert positions.get(1) == pytest.approx(0.0002)
    finally:
        svc.stop()
        if task is not None:
            assert await asyncio.wait_for(task, 15) == 0
        stop_venue.set()
        await asyncio.wait_for(venue_task, 10)
