"""The real executor runner restarted against venue-sim (``docs/internals.md``, "Executor: lost
order updates and restarts"): what it must still know after a restart comes from the exec
stream (positions), the intent stream (standing targets and resting wishes) and the control
stream (kill / pause / flatten), plus the venue's own state.

venue-sim replays a flat recorded book (BTC bid 115000.0 / ask 115001.0, 1 BTC each side, one
event a second); the executor's market data is the ``Bbo`` the test publishes on the bus at the
same prices, stamped with wall time (so intents and market data share one clock and nothing is
stale). Every wait is on a condition with a timeout.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from shared.events import (
    Bbo,
    Control,
    Event,
    Fill,
    OrderAccepted,
    OrderRejected,
    PositionSnapshot,
    QuoteIntent,
    RiskState,
    TargetPosition,
)

ACCT = 1001
BTC_ID = 1
S = 1_000_000_000
BID, ASK = 115000.0, 115001.0


def _recording() -> list[Event]:
    t0 = time.time_ns()
    return [Bbo(id=f"r{i}", ts_event=t0 + i * S, source="rec", market="BTC", bid_px=BID, bid_sz=1.0, ask_px=ASK,
                ask_sz=1.0) for i in range(90)]


class _Driver:
    """Publishes the test's inputs with unique ids and wall-clock ``ts_event``."""

    def __init__(self, h) -> None:
        self.h, self.n = h, 0

    def _id(self, kind: str) -> str:
        self.n += 1
        return f"{kind}{self.n}"

    async def bbo(self) -> None:
        bus = self.h.bus
        await bus.publish(bus.streams.book("BTC"), [Bbo(id=self._id("b"), ts_event=time.time_ns(), source="test",
                                                        market="BTC", bid_px=BID, bid_sz=1.0, ask_px=ASK,
                                                        ask_sz=1.0)])

    async def target(self, target: float, strategy: str = "A") -> TargetPosition:
        bus = self.h.bus
        ev = TargetPosition(id=self._id("t"), ts_event=time.time_ns(), source=strategy, strategy=strategy,
                            market="BTC", target=target)
        await bus.publish(bus.streams.intent(ACCT), [ev])
        return ev

    async def quote(self, bid_px: float, bid_sz: float, strategy: str = "mm") -> QuoteIntent:
        bus = self.h.bus
        ev = QuoteIntent(id=self._id("q"), ts_event=time.time_ns(), source=strategy, strategy=strategy, market="BTC",
                         bid_px=bid_px, bid_sz=bid_sz)
        await bus.publish(bus.streams.intent(ACCT), [ev])
        return ev

    async def control(self, command: str, reason: str = "") -> Control:
        bus = self.h.bus
        ev = Control(id=self._id("c"), ts_event=time.time_ns(), source="operator", command=command,  # type: ignore[arg-type]
                     target="*", reason=reason)
        await bus.publish(bus.streams.control, [ev])
        return ev

    async def txs(self) -> int:
        """Transactions venue-sim took from the account so far."""
        return int((await self.h.venue_status())["accounts"].get(str(ACCT), {}).get("txs", 0))


def _position(evs: list[Event], strategy: str) -> float | None:
    snaps = [e for e in evs if isinstance(e, PositionSnapshot) and e.strategy == strategy and e.market == "BTC"]
    return snaps[-1].position if snaps else None


async def _wait_active(h, pred, timeout: float = 10.0) -> list[dict]:
    """venue-sim's resting BTC orders of the account once ``pred(orders)`` holds."""
    import asyncio

    deadline = time.monotonic() + timeout
    orders: list[dict] = []
    while time.monotonic() < deadline:
        orders = await h.active_orders(BTC_ID)
        if pred(orders):
            return orders
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out; venue-sim's active orders: {orders}")


async def test_target_changed_while_down_is_traded_after_the_restart(venue_executor):
    h = await venue_executor(_recording(), ["BTC"])
    d = _Driver(h)
    await d.bbo()
    await h.wait_for(lambda evs: "BTC" in h.svc.engine.bbo)  # the touch is known
    await d.target(0.001)
    await h.wait_for(lambda evs: _position(evs, "A") == pytest.approx(0.001))
    assert (await h.account_positions())[BTC_ID] == pytest.approx(0.001)

    await h.stop_executor()
    await d.target(0.003)  # the strategy changes its mind while the executor is down
    n_before = len(await h.bus.read_all(h.exec_stream))
    await h.start_executor()
    assert h.svc.engine.position("A", "BTC") == pytest.approx(0.001)  # folded from the exec stream

    await d.bbo()  # the first market data after the restart: the difference is traded
    evs = await h.wait_for(lambda evs: _position(evs, "A") == pytest.approx(0.003))
    new = evs[n_before:]
    buys = [e for e in new if isinstance(e, OrderAccepted)]
    assert [(e.side, e.size, e.time_in_force) for e in buys] == [("buy", pytest.approx(0.002), "ioc")]
    assert sum(e.size for e in new if isinstance(e, Fill) and e.strategy == "A") == pytest.approx(0.002)
    assert (await h.account_positions())[BTC_ID] == pytest.approx(0.003)


async def test_kill_survives_a_restart_until_resume(venue_executor):
    h = await venue_executor(_recording(), ["BTC"])
    d = _Driver(h)
    await d.bbo()
    await h.wait_for(lambda evs: "BTC" in h.svc.engine.bbo)
    await d.quote(114000.0, 0.0002)
    await _wait_active(h, lambda o: len(o) == 1)

    await d.control("kill", reason="operator test")
    await h.wait_for(lambda evs: any(isinstance(e, RiskState) and e.state == "halted"
                                     and e.reason == "kill switch: operator test" for e in evs))
    await _wait_active(h, lambda o: o == [])  # the kill canceled the resting quote

    await h.stop_executor()
    evs = await h.start_executor()
    assert (h.svc.engine.state, h.svc.engine.state_reason) == ("halted", "kill switch: operator test")
    last = [e for e in evs if isinstance(e, RiskState)][-1]  # published by the reconciliation
    assert (last.state, last.reason) == ("halted", "kill switch: operator test")

    txs = await d.txs()
    await d.bbo()
    t = await d.target(0.001)
    evs = await h.wait_for(lambda evs: any(isinstance(e, OrderRejected) and e.causation_id == t.id for e in evs))
    (rej,) = [e for e in evs if isinstance(e, OrderRejected) and e.causation_id == t.id]
    assert rej.code == 0 and rej.reason == "executor halted: kill switch: operator test"
    assert await d.txs() == txs and await h.active_orders(BTC_ID) == []

    n_before = len(evs)
    await d.control("resume")
    await h.wait_for(lambda evs: any(isinstance(e, RiskState) and e.state == "running" for e in evs[n_before:]))
    # the strategy re-sends its refused target (strategies retry a code-0 refusal); now it trades
    await d.target(0.001)
    await h.wait_for(lambda evs: _position(evs, "A") == pytest.approx(0.001))
    assert await d.txs() == txs + 1  # one IOC
    assert (await h.account_positions())[BTC_ID] == pytest.approx(0.001)


async def test_resting_quote_is_back_on_the_venue_after_a_restart(venue_executor):
    # an ungraceful stop: the quote stays on the venue, cancel_on_start cancels it at the restart
    h = await venue_executor(_recording(), ["BTC"], services={"executor": {
        "http_port": 0, "reconcile_retry_s": 0.3, "cancel_on_shutdown": False}})
    d = _Driver(h)
    await d.bbo()
    await h.wait_for(lambda evs: "BTC" in h.svc.engine.bbo)
    q = await d.quote(114000.0, 0.0002)
    (before,) = await _wait_active(h, lambda o: len(o) == 1)
    assert (before["is_ask"], before["price"], before["remaining_base_amount"]) == (False, "114000.0", "0.00020")

    await h.stop_executor()
    assert await h.active_orders(BTC_ID) == [before]  # kept: cancel_on_shutdown is off
    txs = await d.txs()
    await h.start_executor()
    await _wait_active(h, lambda o: o == [])  # cancel_on_start canceled it during reconciliation
    assert await d.txs() == txs + 1

    n_before = len(await h.bus.read_all(h.exec_stream))
    await d.bbo()  # the restored wish is placed at the first market data
    (after,) = await _wait_active(h, lambda o: len(o) == 1)
    assert (after["is_ask"], after["price"], after["remaining_base_amount"]) == (False, "114000.0", "0.00020")
    assert after["client_order_index"] != before["client_order_index"]
    evs = await h.wait_for(lambda evs: any(isinstance(e, OrderAccepted) for e in evs[n_before:]))
    (acc,) = [e for e in evs[n_before:] if isinstance(e, OrderAccepted)]
    assert (acc.strategy, acc.causation_id, acc.time_in_force) == ("mm", q.id, "post_only")
    assert acc.client_order_index == after["client_order_index"]
    assert h.svc.engine.resting_orders("mm", "BTC") == [("buy", 114000.0, 0.0002)]


async def _foreign_order(h, coi: int = 42, price: float = 113000.0) -> dict:
    """A post-only BTC bid placed on the account by "another bot": same account, a client order
    index the executor never allocated, sent around the executor's engine. Returns it as
    venue-sim lists it."""
    from services.executor.engine import OrderCommand
    from services.executor.sending import send_one

    svc = h.svc
    m = svc.engine.markets["BTC"]
    cmd = OrderCommand(kind="create", market="BTC", market_id=m.market_id, client_order_index=coi, side="buy",
                       price=m.price_to_int(price), size=m.size_to_int(0.0002), tif="post_only", order_expiry=-1)
    res = await send_one(svc.rest, svc.nonces, svc.signer, cmd)
    assert res.ok, res
    orders = await _wait_active(h, lambda o: any(x["client_order_index"] == coi for x in o))
    return next(x for x in orders if x["client_order_index"] == coi)


def _cois(orders: list[dict]) -> list[int]:
    return sorted(o["client_order_index"] for o in orders)


async def _ours_and_foreign(h) -> tuple[dict, dict]:
    d = _Driver(h)
    await d.bbo()
    await h.wait_for(lambda evs: "BTC" in h.svc.engine.bbo)
    foreign = await _foreign_order(h)
    await d.quote(114000.0, 0.0002)
    orders = await _wait_active(h, lambda o: len(o) == 2)
    (ours,) = [o for o in orders if o["client_order_index"] != foreign["client_order_index"]]
    assert ours["client_order_index"] in h.svc.engine.orders
    return ours, foreign


async def test_shutdown_cancels_only_our_orders_by_default(venue_executor):
    h = await venue_executor(_recording(), ["BTC"])
    assert h.svc.ecfg.cancel_scope == "own"
    ours, foreign = await _ours_and_foreign(h)
    txs = await _Driver(h).txs()
    await h.stop_executor()
    left = await _wait_active(h, lambda o: len(o) == 1)
    assert _cois(left) == _cois([foreign])  # another bot's order survives our shutdown
    assert await _Driver(h).txs() == txs + 1  # one cancel tx (ours), no cancel-all


async def test_start_cancels_only_our_orders_by_default(venue_executor):
    h = await venue_executor(_recording(), ["BTC"], services={"executor": {
        "http_port": 0, "reconcile_retry_s": 0.3, "cancel_on_shutdown": False}})
    ours, foreign = await _ours_and_foreign(h)
    await h.stop_executor()
    assert len(await h.active_orders(BTC_ID)) == 2  # both kept: cancel_on_shutdown is off
    txs = await _Driver(h).txs()
    await h.start_executor()  # ours is known from its OrderAccepted on the exec stream
    assert _cois(await _wait_active(h, lambda o: len(o) == 1)) == _cois([foreign])
    assert await _Driver(h).txs() == txs + 1


async def test_cancel_scope_all_cancels_every_order_of_the_account(venue_executor):
    h = await venue_executor(_recording(), ["BTC"], services={"executor": {
        "http_port": 0, "reconcile_retry_s": 0.3, "cancel_scope": "all"}})
    await _ours_and_foreign(h)
    txs = await _Driver(h).txs()
    await h.stop_executor()
    await _wait_active(h, lambda o: o == [])  # today's cancel-all: the other bot's order too
    assert await _Driver(h).txs() == txs + 1


async def test_cancel_scope_none_cancels_nothing(venue_executor):
    h = await venue_executor(_recording(), ["BTC"], services={"executor": {
        "http_port": 0, "reconcile_retry_s": 0.3, "cancel_scope": "none"}})
    await _ours_and_foreign(h)
    txs = await _Driver(h).txs()
    await h.stop_executor()
    await h.start_executor()
    await h.wait_for(lambda evs: sum(isinstance(e, RiskState) and e.state == "running" for e in evs) >= 2)
    await asyncio.sleep(0.3)  # a cancel, had one been sent, would be taken by now
    assert len(await h.active_orders(BTC_ID)) == 2 and await _Driver(h).txs() == txs


async def test_copytrade_stop_loss_is_back_on_the_venue_after_a_restart(venue_executor):
    # a graceful stop: the shutdown cancels our orders, the stop included; the restart places it again
    from shared.events import StopLossIntent

    h = await venue_executor(_recording(), ["BTC"])
    d = _Driver(h)
    await d.bbo()
    await h.wait_for(lambda evs: "BTC" in h.svc.engine.bbo)
    await d.target(0.002, strategy="copytrade")
    await h.wait_for(lambda evs: _position(evs, "copytrade") == pytest.approx(0.002))
    sl = StopLossIntent(id="sl1", ts_event=time.time_ns(), source="copytrade", strategy="copytrade", market="BTC",
                        side="sell", trigger_price=113000.0, size=0.002)
    await h.bus.publish(h.bus.streams.intent(ACCT), [sl])
    (before,) = await _wait_active(h, lambda o: len(o) == 1)
    assert (before["is_ask"], before["trigger_price"], before["type"]) == (True, "113000.0", "stop-loss")

    await h.stop_executor()
    await _wait_active(h, lambda o: o == [])  # cancel_on_shutdown canceled it
    await h.start_executor()
    n_before = len(await h.bus.read_all(h.exec_stream))
    await d.bbo()  # the restored stop is placed at the first market data
    (after,) = await _wait_active(h, lambda o: len(o) == 1)
    assert (after["is_ask"], after["trigger_price"], after["type"], after["reduce_only"]) == (
        True, "113000.0", "stop-loss", True)
    assert after["remaining_base_amount"] == "0.00200"
    evs = await h.wait_for(lambda evs: any(isinstance(e, OrderAccepted) for e in evs[n_before:]))
    (acc,) = [e for e in evs[n_before:] if isinstance(e, OrderAccepted)]
    assert (acc.strategy, acc.causation_id, acc.order_type) == ("copytrade", "sl1", "stop-loss")
