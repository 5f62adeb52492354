"""strategy-grid -> executor -> venue-sim end to end (real Redis, real SDK signer, real venue-sim).

The grid publishes its RestingOrders, the executor places them post-only on venue-sim, a recorded
public sell print below the first buy level trades through it (a maker fill, attributed to the
grid), the grid's position follows the fill, and the grid's shutdown cancels its remaining orders
while the position stays.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from services.strategy_grid.runner import build, run_until_stopped
from shared.events import Bbo, Fill, OrderAccepted, OrderCanceled, RestingOrders, Trade

ACCT = 1001
S = 1_000_000_000


async def test_grid_orders_rest_on_venue_sim_and_a_trade_through_fills_them(venue_executor):
    t0 = time.time_ns()
    # the touch stays at 115000.0 / 115001.0; from 12 s on, every 8 s a sell print at 114800 (below the
    # grid's first buy level 114885.4) trades through whatever rests at or above it
    events: list = [Bbo(id=f"r{i}", ts_event=t0 + i * S, source="rec", market="BTC", bid_px=115000.0, bid_sz=1.0,
                        ask_px=115001.0, ask_sz=1.0) for i in range(90)]
    events += [Trade(id=f"t{k}", ts_event=t0 + (12 + 8 * k) * S + 500_000_000, source="rec", market="BTC",
                     trade_id=str(7000 + k), price=114800.0, size=0.0002, taker_side="sell") for k in range(9)]
    events.sort(key=lambda e: e.ts_event)
    h = await venue_executor(events, ["BTC"], services={"strategy-grid": {"http_port": 0}})
    bus = h.bus
    grid_runner, grid = build(h.cfg, bus, consumer="grid-it")
    grid_task = asyncio.create_task(run_until_stopped(grid_runner, grid, bus, ACCT))
    try:
        await bus.publish(bus.streams.book("BTC"), [Bbo(id="g1", ts_event=time.time_ns(), source="test",
                                                        market="BTC", bid_px=115000.0, bid_sz=1.0,
                                                        ask_px=115001.0, ask_sz=1.0)])
        evs = await h.wait_for(lambda evs: sum(isinstance(e, OrderAccepted) for e in evs) >= 8)
        acc = [e for e in evs if isinstance(e, OrderAccepted)]
        assert all(a.strategy == "grid" and a.time_in_force == "post_only" for a in acc)
        assert sorted(a.price for a in acc if a.side == "buy")[-1] == 114885.4  # 115000.5 * 0.999, rounded down
        evs = await h.wait_for(lambda evs: any(isinstance(e, Fill) for e in evs), timeout=40)
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
        grid_runner.stop()
        await asyncio.wait_for(grid_task, 10)
    intents = [d.event for d in await bus.read_all(bus.streams.intent(ACCT))]
    assert isinstance(intents[-1], RestingOrders) and intents[-1].orders == []
    # the executor cancels the 7 orders still resting; the position stays
    await h.wait_for(lambda evs: sum(isinstance(e, OrderCanceled) for e in evs) >= 7)
    assert h.svc.engine.resting_orders("grid", "BTC") == []
    assert (await h.account_positions()).get(1) == pytest.approx(0.0002)
