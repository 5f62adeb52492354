"""``lighter-stack control flatten --all`` against the real executor runner and venue-sim: an
account that already held a position when the executor started (reconciled from the REST
account, attributed to no strategy) ends flat, as seed 002's close-all did.

The pre-existing position is made by trading through a first executor, then removing its exec
and intent streams (so the second executor knows no strategy position or target: the whole
account position is unattributed) and restarting. Market data: a ``Bbo`` the test publishes at
venue-sim's flat recorded prices (BTC bid 115000.0 / ask 115001.0)."""

from __future__ import annotations

import asyncio
import time

import pytest

from lighter_stack.control_tool import control_command
from shared.events import Bbo, Fill, PositionSnapshot, RiskState, TargetPosition

from .test_executor_restart import ACCT, ASK, BID, BTC_ID, _recording


async def _bbo(h, i: int) -> None:
    await h.bus.publish(h.bus.streams.book("BTC"), [Bbo(id=f"b{i}", ts_event=time.time_ns(), source="test",
                                                        market="BTC", bid_px=BID, bid_sz=1.0, ask_px=ASK,
                                                        ask_sz=1.0)])


async def test_flatten_all_closes_a_position_held_before_start_up(venue_executor, redis_url, monkeypatch):
    h = await venue_executor(_recording(), ["BTC"])
    await _bbo(h, 1)
    await h.wait_for(lambda evs: "BTC" in h.svc.engine.bbo)
    await h.bus.publish(h.bus.streams.intent(ACCT), [TargetPosition(
        id="t1", ts_event=time.time_ns(), source="A", strategy="A", market="BTC", target=0.002)])
    await h.wait_for(lambda evs: any(isinstance(e, PositionSnapshot) and e.strategy == "A"
                                     and e.position == pytest.approx(0.002) for e in evs))
    await h.stop_executor()
    await h.bus.redis.delete(h.exec_stream, h.bus.streams.intent(ACCT))  # forget who holds it
    await h.start_executor()
    engine = h.svc.engine
    assert engine.account_pos["BTC"] == pytest.approx(0.002)  # reconciled from the venue
    assert engine.position("A", "BTC") == 0.0  # ... and attributed to no strategy

    await _bbo(h, 2)
    await h.wait_for(lambda evs: "BTC" in h.svc.engine.bbo)
    monkeypatch.setenv("REDIS_URL", redis_url)
    code = await asyncio.to_thread(control_command, "flatten", None, True, "test", None, h.cfg.ns)
    assert code == 0
    evs = await h.wait_for(lambda evs: any(isinstance(e, Fill) and e.side == "sell" for e in evs))
    assert any(isinstance(e, RiskState) and (e.state, e.reason) == ("reducing", "flatten") for e in evs)
    deadline = time.monotonic() + 10
    while (await h.account_positions()).get(BTC_ID) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert (await h.account_positions()).get(BTC_ID, 0.0) == pytest.approx(0.0)
    sells = [e for e in evs if isinstance(e, Fill) and e.side == "sell"]
    assert sum(e.size for e in sells) == pytest.approx(0.002)
    assert {e.strategy for e in sells} == {"_unattributed"}
