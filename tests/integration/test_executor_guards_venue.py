"""Executor self-trade guard end to end on venue-sim (real Redis, real SDK signer, real venue-sim).

venue-sim records both owners of every fill (``/sim/fills``: ``taker_account``,
``maker_account``) and counts the resting orders it canceled to prevent a self-trade
(``/sim/status``: ``self_trade_cancels``; Lighter's expire-maker rule).

1. A GTT (may take) buy of one strategy at a price through another strategy's resting ask is
   refused by the executor. Before the guard it was placed and, being marketable against our
   own ask (the best ask), made venue-sim cancel that ask for self-trade.
2. A hedger's sell IOC whose limit is below another strategy's resting bid (the best bid): the
   executor cancels the bid first and sends the IOC once the venue confirmed the cancel; the IOC
   fills against the book, never against our bid. Before, the IOC's price was clamped above our
   bid, so it could not fill at all.
"""

from __future__ import annotations

import time

import aiohttp
import pytest

from shared.events import (
    Bbo,
    Fill,
    GuardState,
    OrderAccepted,
    OrderCanceled,
    OrderRejected,
    QuoteIntent,
    RestingOrders,
    TargetPosition,
)

ACCT = 1001
S = 1_000_000_000


async def _sim(port: int, path: str):
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}{path}") as r:
        return await r.json(content_type=None)


async def test_no_self_trade_on_venue_sim(venue_executor):
    t0 = time.time_ns()
    # the recorded touch stays 115000.0 / 115001.0 (1 BTC each) for a minute
    events = [Bbo(id=f"r{i}", ts_event=t0 + i * S, source="rec", market="BTC", bid_px=115000.0, bid_sz=1.0,
                  ask_px=115001.0, ask_sz=1.0) for i in range(60)]
    h = await venue_executor(events, ["BTC"])
    bus = h.bus
    intents = bus.streams.intent(ACCT)

    def now() -> int:
        return time.time_ns()

    await bus.publish(bus.streams.book("BTC"), [Bbo(id="b1", ts_event=now(), source="test", market="BTC",
                                                    bid_px=115000.0, bid_sz=1.0, ask_px=115001.0, ask_sz=1.0)])
    # mm quotes inside the spread: best bid 115000.5 and best ask 115000.8 on the venue
    await bus.publish(intents, [QuoteIntent(id="q1", ts_event=now(), source="mm", strategy="mm", market="BTC",
                                            bid_px=115000.5, bid_sz=0.0002, ask_px=115000.8, ask_sz=0.0002)])
    evs = await h.wait_for(lambda evs: sum(isinstance(e, OrderAccepted) for e in evs) >= 2)
    quotes = {a.side: a for a in evs if isinstance(a, OrderAccepted)}
    assert quotes["buy"].price == 115000.5 and quotes["sell"].price == 115000.8

    # 1. a GTT buy through our own ask is refused locally
    await bus.publish(intents, [RestingOrders(id="g1", ts_event=now(), source="grid2", strategy="grid2",
                                              market="BTC", orders=[("buy", 115000.9, 0.0002)], post_only=False)])
    evs = await h.wait_for(lambda evs: any(isinstance(e, OrderRejected) and e.strategy == "grid2" for e in evs))
    (rej,) = [e for e in evs if isinstance(e, OrderRejected) and e.strategy == "grid2"]
    assert rej.code == 0 and rej.reason.startswith("self-trade guard") and "115000.8" in rej.reason

    # 2. the hedger sells 0.0002 with an IOC whose limit (115000 - 10 bps) is below mm's bid
    await bus.publish(intents, [TargetPosition(id="h1", ts_event=now(), source="hedger", strategy="hedger",
                                               market="BTC", target=-0.0002, max_slippage_bps=10.0)])
    evs = await h.wait_for(lambda evs: any(isinstance(e, Fill) and e.strategy == "hedger" for e in evs))
    (fill,) = [e for e in evs if isinstance(e, Fill)]
    assert (fill.side, fill.size, fill.price, fill.liquidity) == ("sell", 0.0002, 115000.0, "taker")
    guards = [(g.side, g.engaged) for g in evs if isinstance(g, GuardState) and g.guard == "self_trade"]
    assert guards == [("sell", True), ("sell", False)]
    # order of events: mm's bid canceled (confirmed by the venue) before the IOC was accepted
    canceled = next(i for i, e in enumerate(evs) if isinstance(e, OrderCanceled)
                    and e.client_order_index == quotes["buy"].client_order_index)
    ioc = next(i for i, e in enumerate(evs) if isinstance(e, OrderAccepted) and e.time_in_force == "ioc")
    assert canceled < ioc and evs[canceled].reason == "canceled"
    assert h.svc.engine.resting_orders("mm", "BTC") == [("sell", 115000.8, 0.0002)]

    # the venue saw no self-trade: nothing canceled for it, no fill with us on both sides
    status = await _sim(h.port, "/sim/status")
    assert status["self_trade_cancels"] == 0
    fills = await _sim(h.port, "/sim/fills")
    ours = [f for f in fills if ACCT in (f["taker_account"], f["maker_account"])]
    assert len(ours) == 1 and ours[0]["taker_account"] == ACCT and ours[0]["maker_account"] != ACCT
    assert all(f["taker_account"] != f["maker_account"] for f in fills)
    assert (await h.account_positions()).get(1) == pytest.approx(-0.0002)
