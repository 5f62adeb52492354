"""Protective stops against venue-sim (``docs/runbook.md``, protective stops and the dead-man
switch): the executor's reduce-only stop-loss rests on the venue for a strategy's position,
survives a crash of the executor and a clean restart, and is adopted -- never duplicated -- by
the next executor. The dead-man switch's scheduled cancel-all and its abort are accepted by
venue-sim (its execution of a scheduled cancel-all at its time is tested in
``tests/services/venue_sim/test_orderrules.py``; here the switch's Time is minutes away and
never reached).

venue-sim replays a flat book (BTC 115000.0 / 115001.0); the executor's market data is the Bbo
the test publishes at the same prices, with wall-clock time."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from shared.events import Bbo, Event, PositionSnapshot, TargetPosition

ACCT = 1001
S = 1_000_000_000
BID, ASK = 115000.0, 115001.0
EXECUTOR = {"http_port": 0, "reconcile_retry_s": 0.3, "dead_man_switch_s": 300,
            "protective_stop": {"enabled": True, "default_distance_bps": 200}}


def _recording() -> list[Event]:
    t0 = time.time_ns()
    return [Bbo(id=f"r{i}", ts_event=t0 + i * S, source="rec", market="BTC", bid_px=BID, bid_sz=1.0, ask_px=ASK,
                ask_sz=1.0) for i in range(90)]


async def _bbo(h, n: int) -> None:
    await h.bus.publish(h.bus.streams.book("BTC"), [Bbo(id=f"b{n}", ts_event=time.time_ns(), source="test",
                                                        market="BTC", bid_px=BID, bid_sz=1.0, ask_px=ASK,
                                                        ask_sz=1.0)])


async def _stops(h, pred, timeout: float = 10.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    stops: list[dict] = []
    while time.monotonic() < deadline:
        stops = [o for o in await h.active_orders(1) if o["type"] == "stop-loss"]
        if pred(stops):
            return stops
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out; venue-sim's stop orders: {stops}")


async def _crash(h) -> None:
    """End the executor without its shutdown (no cancels, no dead-man abort): a crash."""
    task, h.task = h.task, None
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_the_protective_stop_rests_on_the_venue_and_survives_a_crash_and_a_restart(venue_executor):
    h = await venue_executor(_recording(), ["BTC"], services={"executor": EXECUTOR})
    await _bbo(h, 1)
    await h.wait_for(lambda evs: "BTC" in h.svc.engine.bbo)
    await h.bus.publish(h.bus.streams.intent(ACCT), [TargetPosition(
        id="t1", ts_event=time.time_ns(), source="A", strategy="A", market="BTC", target=0.002)])
    await h.wait_for(lambda evs: any(isinstance(e, PositionSnapshot) and e.strategy == "A" and e.position == 0.002
                                     for e in evs))
    (stop,) = await _stops(h, lambda s: len(s) == 1)
    assert (stop["side"], stop["remaining_base_amount"], stop["reduce_only"]) == ("sell", "0.00200", True)
    assert float(stop["trigger_price"]) == pytest.approx((BID + ASK) / 2 * 0.98, abs=0.2)
    coi = stop["client_order_index"]
    for _ in range(100):  # the dead-man switch armed once reconciled
        if h.svc.dead_man.refreshes:
            break
        await asyncio.sleep(0.05)
    assert h.svc.dead_man.status()["failures"] == 0 and h.svc.dead_man.refreshes >= 1

    await _crash(h)
    (left,) = await _stops(h, lambda s: len(s) == 1)
    assert left["client_order_index"] == coi  # the position is still protected on the exchange

    await h.start_executor()
    await _bbo(h, 2)
    await h.wait_for(lambda evs: h.svc.engine.protective_status()["live"])
    await asyncio.sleep(0.5)
    (kept,) = await _stops(h, lambda s: len(s) == 1)
    assert kept["client_order_index"] == coi and h.svc.engine.protective_adopted == 1  # adopted, no duplicate
    assert h.svc.health()["account"]["protective_stops_adopted"] == [coi]

    await h.stop_executor()  # clean: the own-orders cancel leaves the protective stop; the switch is aborted
    (after,) = await _stops(h, lambda s: len(s) == 1)
    assert after["client_order_index"] == coi
