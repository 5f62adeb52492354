"""Executor on venue-sim: an IOC whose final order update is lost on the account feed is
resolved by the runner's stale-order check over REST (``accountActiveOrders`` /
``accountInactiveOrders``), and the strategy's retried target trades again.

The recorded ask holds 0.0003 BTC, so a 0.001 BTC buy IOC fills 0.0003 and its remainder is
canceled by the venue; the test drops that ``account_all_orders`` update before the executor
sees it. Without the check the 0.0007 BTC would count in flight forever and every retry of the
target would be swallowed.
"""

from __future__ import annotations

import asyncio
import time

from shared.events import Bbo, OrderAccepted, OrderCanceled, TargetPosition

ACCT = 1001
S = 1_000_000_000


async def test_lost_final_order_update_is_resolved_by_the_rest_check(venue_executor):
    t0 = time.time_ns()
    events = [Bbo(id=f"r{i}", ts_event=t0 + i * S, source="rec", market="BTC", bid_px=115000.0, bid_sz=1.0,
                  ask_px=115001.0, ask_sz=0.0003) for i in range(60)]
    h = await venue_executor(events, ["BTC"], services={"executor": {
        "http_port": 0, "reconcile_retry_s": 0.3, "order_check_s": 0.2, "order_stale_s": 1.0}},
        venue={"depth": {"enabled": False}})  # the IOCs fill partially at the one-level touch
    bus, svc = h.bus, h.svc
    intents = bus.streams.intent(ACCT)

    # drop every terminal account_all_orders update of the first IOC
    dropped: list[dict] = []
    forward = svc.feed.on_message
    first_ioc: list[int] = []

    async def lossy(kind: str, msg: dict) -> None:
        if kind == "orders" and first_ioc:
            for orders in (msg.get("orders") or {}).values():
                for o in orders if isinstance(orders, list) else [orders]:
                    if o.get("client_order_index") == first_ioc[0] and o.get("status") != "open":
                        dropped.append(o)
                        return
        await forward(kind, msg)

    svc.feed.on_message = lossy
    n_bbo = 0

    async def tick() -> None:
        nonlocal n_bbo
        n_bbo += 1
        await bus.publish(bus.streams.book("BTC"), [Bbo(
            id=f"b{n_bbo}", ts_event=time.time_ns(), source="test", market="BTC", bid_px=115000.0, bid_sz=1.0,
            ask_px=115001.0, ask_sz=0.0003)])

    await tick()
    await asyncio.sleep(0.2)
    # the accept of the IOC comes before its venue execution (latency), so the coi is known in time
    real_execute = svc._execute

    async def spy(cmds):
        for c in cmds:
            if c.kind == "create" and c.tif == "ioc" and not first_ioc:
                first_ioc.append(c.client_order_index)
        return await real_execute(cmds)

    svc._execute = spy
    await bus.publish(intents, [TargetPosition(id="t1", ts_event=time.time_ns(), source="A", strategy="A",
                                               market="BTC", target=0.001, max_slippage_bps=10.0)])
    await h.wait_for(lambda evs: any(isinstance(e, OrderAccepted) and e.time_in_force == "ioc" for e in evs))
    deadline = time.monotonic() + 10
    while not dropped and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert dropped, "the venue never sent the IOC's final update"
    coi = first_ioc[0]
    assert svc.engine.in_flight("A", "BTC") > 0  # stuck without the check
    # event time moves on with the market data; the check resolves the order from REST
    evs: list = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        await tick()
        evs = [d.event for d in await bus.read_all(h.exec_stream) if d.event is not None]
        if any(isinstance(e, OrderCanceled) and e.client_order_index == coi for e in evs):
            break
        await asyncio.sleep(0.2)
    (canceled,) = [e for e in evs if isinstance(e, OrderCanceled) and e.client_order_index == coi]
    assert canceled.reason.startswith("canceled") and abs(canceled.remaining - 0.0007) < 1e-12
    assert svc.engine.in_flight("A", "BTC") == 0 and svc.engine.stale_orders() == []
    # the strategy's retry of the same target now trades the rest
    await bus.publish(intents, [TargetPosition(id="t2", ts_event=time.time_ns(), source="A", strategy="A",
                                               market="BTC", target=0.001, max_slippage_bps=10.0)])
    evs = await h.wait_for(lambda evs: sum(isinstance(e, OrderAccepted) and e.time_in_force == "ioc"
                                           for e in evs) >= 2)
    second = [e for e in evs if isinstance(e, OrderAccepted) and e.time_in_force == "ioc"][1]
    assert second.client_order_index != coi and abs(second.size - 0.0007) < 1e-12
