"""Executor engine: self-trade guard, inventory guards (GuardState) and the request budget."""

from __future__ import annotations

from collections import deque

import pytest
from executor_kit import BTC, MS, T0, S, lighter_trade, make_engine, of

from services.executor.engine import RATE_LIMITED, Engine, OrderCommand
from services.executor.venue import parse_order, parse_position, parse_trade
from shared.events import (
    Bbo,
    CancelIntent,
    GuardState,
    OrderCanceled,
    OrderRejected,
    QuoteIntent,
    RestingOrders,
    TargetPosition,
)


def make(**cfg) -> Engine:
    return make_engine((BTC,), **cfg)


def bbo(t: int = 0, bid: float = 115000.0, ask: float = 115001.0) -> Bbo:
    return Bbo(id=f"bbo{t}", ts_event=T0 + t, source="collector", market="BTC", bid_px=bid, bid_sz=1.0,
               ask_px=ask, ask_sz=1.0)


def quote(t: int, bid: float | None, ask: float | None, size: float = 0.0002, strategy: str = "mm") -> QuoteIntent:
    return QuoteIntent(id=f"q-{strategy}-{t}", ts_event=T0 + t, source=strategy, strategy=strategy, market="BTC",
                       bid_px=bid, bid_sz=size if bid else 0.0, ask_px=ask, ask_sz=size if ask else 0.0)


def target(strategy: str, tgt: float, t: int) -> TargetPosition:
    return TargetPosition(id=f"tp-{strategy}-{t}", ts_event=T0 + t, source=strategy, strategy=strategy,
                          market="BTC", target=tgt, max_slippage_bps=10.0)


def trade(trade_id: int, coi: int, size: str, price: str, side: str, maker: bool) -> dict:
    return lighter_trade(trade_id, coi, size, price, side, maker, taker_fee=0, maker_fee=0,
                         timestamp_ms=(T0 + S) // MS)


def guards(events, guard: str | None = None):
    return [(g.guard, g.side, g.engaged) for g in of(events, GuardState) if guard in (None, g.guard)]


def accept(e: Engine, cmds) -> None:
    for c in cmds:
        if c.kind == "create":
            e.on_send_result(c, True)


def canceled(e: Engine, c: OrderCommand) -> list:
    return e.on_venue_order(parse_order(1, {"client_order_index": c.client_order_index, "status": "canceled",
                                "remaining_base_amount": "0.00020"}))


# ---------------------------------------------------------------------------------- self-trade guard


def test_ioc_that_would_cross_another_strategys_bid_waits_for_its_cancel():
    e = make()
    e.on_event(bbo())
    e.on_event(quote(1, 115000.5, None))  # mm's bid is the best bid
    (bid,) = e.take_commands()
    accept(e, [bid])
    # the hedger sells: IOC limit 115000 * (1 - 10 bps) = 114885 is below mm's bid -> it would hit it
    outs = e.on_event(target("hedger", -0.0002, 2))
    cmds = e.take_commands()
    assert [(c.kind, c.client_order_index) for c in cmds] == [("cancel", bid.client_order_index)]
    (g,) = of(outs, GuardState)
    assert (g.guard, g.side, g.engaged) == ("self_trade", "sell", True) and "115000.5" in g.reason
    assert e.guard_engaged("self_trade", "BTC", "sell")
    # a repeated intent while held sends nothing new (the cancel is already on its way)
    assert e.on_event(target("hedger", -0.0002, 3)) == [] and e.take_commands() == []
    e.on_send_result(cmds[0], True)
    # the venue confirms the cancel -> the IOC goes out, the guard releases
    outs = canceled(e, bid)
    assert of(outs, OrderCanceled)[0].strategy == "mm"
    assert guards(outs) == [("self_trade", "sell", False)]
    (ioc,) = e.take_commands()
    assert (ioc.kind, ioc.side, ioc.tif, ioc.size, ioc.price) == ("create", "sell", "ioc", 20, 1148850)
    assert e.in_flight("hedger", "BTC") == pytest.approx(-0.0002)


def test_ioc_not_crossing_our_quotes_is_sent_at_once():
    e = make()
    e.on_event(bbo())
    e.on_event(quote(1, 114800.0, 115200.0))  # our bid below the IOC's limit 114885
    accept(e, e.take_commands())
    outs = e.on_event(target("hedger", -0.0002, 2))
    (ioc,) = e.take_commands()
    assert ioc.tif == "ioc" and ioc.price == 1148850 and not of(outs, GuardState)


def test_pending_quote_also_counts_and_failed_cancel_is_retried():
    e = make()
    e.on_event(bbo())
    e.on_event(quote(1, 115000.5, None))
    (bid,) = e.take_commands()  # not acknowledged yet: it may rest any moment
    e.on_event(target("hedger", -0.0002, 2))
    (cancel,) = e.take_commands()
    assert cancel.kind == "cancel"
    e.on_send_result(cancel, False, 21500, "transient")
    e.on_event(bbo(3))  # the next event re-sends the cancel; the IOC still waits
    assert [c.kind for c in e.take_commands()] == ["cancel"]
    canceled(e, bid)
    assert [c.tif for c in e.take_commands()] == ["ioc"]


def test_resting_order_through_our_other_side_is_refused():
    e = make()
    e.on_event(bbo())
    e.on_event(quote(1, None, 115000.8))  # mm's ask
    accept(e, e.take_commands())
    for post_only in (True, False):
        outs = e.on_event(RestingOrders(id=f"g{post_only}", ts_event=T0 + 2, source="grid", strategy="grid",
                                        market="BTC", orders=[("buy", 115000.9, 0.0002)], post_only=post_only))
        (rej,) = of(outs, OrderRejected)
        assert rej.code == 0 and rej.reason == ("self-trade guard: buy at 115000.9 would cross our own resting "
                                                "sell at 115000.8 (mm)")
        assert e.take_commands() == []
    # a buy below our ask is fine
    e.on_event(RestingOrders(id="g3", ts_event=T0 + 3, source="grid", strategy="grid", market="BTC",
                             orders=[("buy", 115000.7, 0.0002)]))
    assert [(c.kind, c.side) for c in e.take_commands()] == [("create", "buy")]


def test_gtt_order_waits_for_the_cancel_of_our_crossing_order_post_only_does_not():
    e = make()
    e.on_event(bbo())
    e.on_event(quote(1, None, 115000.8))
    (ask,) = e.take_commands()
    accept(e, [ask])
    # mm moves its ask up and grid wants a GTT buy through the old ask, in one batch
    outs = e.on_events([quote(2, None, 115003.0),
                        RestingOrders(id="g1", ts_event=T0 + 2, source="grid", strategy="grid", market="BTC",
                                      orders=[("buy", 115000.9, 0.0002)], post_only=False)])
    cmds = e.take_commands()
    assert [(c.kind, c.side) for c in cmds] == [("cancel", "sell"), ("create", "sell")]
    assert guards(outs, "self_trade") == [("self_trade", "buy", True)]
    accept(e, cmds)
    outs = canceled(e, ask)
    assert guards(outs, "self_trade") == [("self_trade", "buy", False)]
    (gtt,) = e.take_commands()
    assert (gtt.side, gtt.price, gtt.tif) == ("buy", 1150009, "gtt")
    # a post-only order cannot take: an old order being canceled does not hold it back
    e2 = make()
    e2.on_event(bbo())
    e2.on_event(quote(1, None, 115000.8))
    accept(e2, e2.take_commands())
    e2.on_events([quote(2, None, 115003.0),
                  RestingOrders(id="g1", ts_event=T0 + 2, source="grid", strategy="grid", market="BTC",
                                orders=[("buy", 115000.9, 0.0002)])])
    assert [(c.kind, c.side) for c in e2.take_commands()] == [("cancel", "sell"), ("create", "sell"),
                                                            ("create", "buy")]


def test_resting_order_waits_while_our_ioc_could_hit_it():
    e = make()
    e.on_event(bbo())
    e.on_event(target("hedger", -0.0002, 1))
    (ioc,) = e.take_commands()
    e.on_send_result(ioc, True)
    # while the sell IOC (limit 114885) is in flight, a bid at or above its limit would be hit by it
    outs = e.on_event(quote(2, 115000.5, 115010.0))
    assert [(c.side, c.price) for c in e.take_commands()] == [("sell", 1150100)]
    assert guards(outs, "self_trade") == [("self_trade", "buy", True)]
    e.on_venue_trade(parse_trade(1, trade(5, ioc.client_order_index, "0.00020", "115000.0", "sell", maker=False)))
    outs = e.on_venue_order(parse_order(1, {"client_order_index": ioc.client_order_index, "status": "filled"}))
    assert guards(outs, "self_trade") == [("self_trade", "buy", False)]
    assert [(c.side, c.price) for c in e.take_commands()] == [("buy", 1150005)]


# ---------------------------------------------------------------------------------- inventory guards


def test_position_limit_blocks_only_the_growing_side_and_releases():
    e = make(max_position={"BTC": 0.0004})
    e.on_event(bbo())
    outs = e.on_event(target("trend", 0.0004, 1))
    (ioc,) = e.take_commands()
    # the IOC in flight already fills the limit: buys are blocked, sells are not
    (g,) = of(outs, GuardState)
    assert (g.guard, g.market, g.side, g.engaged, g.limit) == ("max_position", "BTC", "buy", True, 0.0004)
    assert g.position == pytest.approx(0.0004)
    e.on_send_result(ioc, True)
    e.on_venue_trade(parse_trade(1, trade(1, ioc.client_order_index, "0.00040", "115001.0", "buy", maker=False)))
    e.on_venue_order(parse_order(1, {"client_order_index": ioc.client_order_index, "status": "filled"}))
    outs = e.on_event(quote(2, 114990.0, 115010.0))
    (rej,) = of(outs, OrderRejected)
    assert rej.side == "buy" and "max_position 0.0004 BTC" in rej.reason
    cmds = e.take_commands()
    assert [(c.side, c.size) for c in cmds] == [("sell", 20)]
    assert e.guard_engaged("max_position", "BTC", "buy") and not e.guard_engaged("max_position", "BTC", "sell")
    accept(e, cmds)
    # the ask fills: 0.0002 of room again -> released
    outs = e.on_venue_trade(parse_trade(1, trade(2, cmds[0].client_order_index, "0.00020", "115010.0", "sell", maker=True)))
    (g,) = of(outs, GuardState)
    assert (g.guard, g.side, g.engaged) == ("max_position", "buy", False) and g.position == pytest.approx(0.0002)


def test_engaging_cancels_resting_orders_of_the_blocked_side():
    e = make(max_position={"BTC": 0.001})
    e.on_event(bbo())
    e.on_event(quote(1, 114990.0, 115010.0))
    cmds = e.take_commands()
    accept(e, cmds)
    # the venue reports a position at the limit (e.g. a manual trade): our bid could only grow it
    outs = e.on_venue_position(parse_position(1, {"position": "0.00100", "sign": 1}))
    assert guards(outs) == [("max_position", "buy", True)]
    assert [(c.kind, c.client_order_index) for c in e.take_commands()] == [("cancel", cmds[0].client_order_index)]
    outs = e.on_venue_position(parse_position(1, {"position": "0.00050", "sign": 1}))
    assert guards(outs) == [("max_position", "buy", False)]


def test_notional_limit_blocks_and_releases_with_price():
    e = make(max_notional_usd={"BTC": 50.0})  # 50 USD ~ 0.000435 BTC at 115000
    e.on_event(bbo())
    e.on_venue_position(parse_position(1, {"position": "0.00030", "sign": -1}))
    outs = e.on_event(bbo(1))
    assert not of(outs, GuardState)  # room 0.000135 BTC... below the minimum of 0.0002
    assert e.guard_engaged("max_notional", "BTC", "sell") and not e.guard_engaged("max_notional", "BTC", "buy")
    outs = e.on_event(target("trend", -0.0005, 2))
    assert "max_notional_usd 50 USD" in of(outs, OrderRejected)[0].reason and e.take_commands() == []
    # the price halves: 50 USD is 0.00087 BTC, room 0.00057 -> released
    outs = e.on_event(bbo(3, bid=57500.0, ask=57501.0))
    (g,) = of(outs, GuardState)
    assert (g.guard, g.side, g.engaged, g.limit) == ("max_notional", "sell", False, 50.0)


def test_guard_events_only_on_change():
    e = make(max_position={"BTC": 0.0002})
    e.on_event(bbo())
    e.on_venue_position(parse_position(1, {"position": "0.00020", "sign": 1}))
    assert e.guard_engaged("max_position", "BTC", "buy")
    for t in range(1, 5):
        assert not of(e.on_event(bbo(t)), GuardState)
    assert e.guard_engagements == 1


# ---------------------------------------------------------------------------------- request budget


def test_cancel_and_create_of_a_requote_count_one_request():
    e = make()
    e.on_event(bbo())
    e.on_event(quote(1, 114990.0, 115010.0))
    accept(e, e.take_commands())
    assert e.budget_used() == 1
    e.on_event(quote(2, 114995.0, 115010.0))
    cmds = e.take_commands()
    assert [c.kind for c in cmds] == ["cancel", "create"] and e.budget_used() == 2
    # 16 orders in one step: two sendTxBatch requests of at most 15
    e.on_event(RestingOrders(id="g", ts_event=T0 + 3, source="grid", strategy="grid", market="BTC",
                             orders=[("buy", 114000.0 - 10 * k, 0.0002) for k in range(14)]))
    assert len(e.take_commands()) == 14 and e.budget_used() == 3
    premium = make(tier="premium")
    premium.on_event(bbo())
    premium.on_event(quote(1, 114990.0, 115010.0))
    premium.take_commands()
    assert premium.budget_used() == 6 and premium.budget_limit() == 24_000


def test_budget_exhaustion_defers_quote_updates_not_cancels():
    e = make(requests_per_minute=5, budget_reserve=0.2)  # quote updates may use 4
    e.on_event(bbo())
    for k in range(4):
        e.on_event(quote(1 + k * MS, 114000.0 - k, 116000.0))
        assert e.take_commands()
    assert e.budget_used() == 4
    e.on_event(quote(10 * MS, 113980.0, 116000.0))  # deferred: the old bid stays
    e.on_event(quote(11 * MS, 113970.0, 116000.0))  # replaces the deferred set
    assert e.take_commands() == [] and e.deferred_updates == 2
    assert e.resting_orders("mm", "BTC") == [("sell", 116000.0, 0.0002), ("buy", 113997.0, 0.0002)]
    # a taker order uses the reserve; the deferred update rides along in its batch (no extra request)
    e.on_event(target("hedger", 0.0002, 12 * MS))
    assert [(c.kind, c.tif, c.price) for c in e.take_commands()] == [
        ("create", "ioc", 1151160), ("cancel", "ioc", 0), ("create", "post_only", 1139700)]
    assert e.budget_used() == 5
    # a cancel is never deferred, even with the budget spent
    e.on_event(CancelIntent(id="c1", ts_event=T0 + 13 * MS, source="grid", strategy="mm", market="BTC"))
    assert sorted(c.side for c in e.take_commands() if c.kind == "cancel") == ["buy", "sell"]
    assert e.budget_remaining() < 0
    # ...and the cancel dropped the deferred set: nothing comes back when the budget does
    e.on_event(bbo(61 * S))
    assert e.take_commands() == []


def test_deferred_update_is_applied_when_the_budget_is_back():
    e = make(requests_per_minute=2, budget_reserve=0.0)
    e.on_event(bbo())
    e.on_event(quote(1, 114990.0, 115010.0))
    e.take_commands()
    e.on_event(quote(2, 114991.0, 115010.0))
    e.take_commands()
    e.on_event(quote(3, 114992.0, 115010.0))
    e.on_event(quote(4, 114993.0, 115010.0))
    assert e.take_commands() == []
    e.on_event(bbo(30 * S))  # still within the minute
    assert e.take_commands() == []
    e.on_event(bbo(60 * S + 1))  # the first request left the window: the latest wanted set goes out
    cmds = e.take_commands()
    assert [(c.kind, c.side, c.price) for c in cmds] == [("cancel", "buy", 0), ("create", "buy", 1149930)]


def test_rate_limited_create_is_reapplied_after_the_back_off_and_cancel_retried():
    e = make(rate_limit_backoff_s=5)
    e.on_event(bbo())
    e.on_event(quote(1, 114990.0, 115010.0))
    bid, ask = e.take_commands()
    outs = e.on_send_result(bid, False, RATE_LIMITED, "too many requests")
    assert of(outs, OrderRejected)[0].code == RATE_LIMITED
    e.on_send_result(ask, True)
    e.on_event(bbo(S))  # backing off: nothing yet
    assert e.take_commands() == [] and e.rate_limited == 1
    e.on_event(bbo(6 * S))
    (again,) = e.take_commands()
    assert (again.kind, again.side, again.price) == ("create", "buy", 1149900)
    # a rate-limited cancel is kept and sent again after the back-off
    e.on_send_result(again, True)
    e.on_event(CancelIntent(id="c", ts_event=T0 + 7 * S, source="mm", strategy="mm", market="BTC"))
    cancels = e.take_commands()
    assert len(cancels) == 2
    for c in cancels:
        e.on_send_result(c, False, RATE_LIMITED, "too many requests")
    e.on_event(bbo(8 * S))
    assert e.take_commands() == []
    e.on_event(bbo(13 * S))
    assert sorted(c.client_order_index for c in e.take_commands()) == sorted(c.client_order_index for c in cancels)


def test_requotes_stay_under_the_standard_budget():
    """A maker requoting every 200 ms for five minutes of event time, all accepted: no rolling
    minute holds more than 60 requests, and its last wanted quote is on the book at the end."""
    e = make()
    sent: deque[int] = deque()
    worst = 0
    for k in range(5 * 60 * 5):
        t = k * 200 * MS
        e.on_event(bbo(t))
        e.on_event(quote(t + 1, 114990.0 - (k % 7), 115010.0 + (k % 5)))
        cmds = e.take_commands()
        accept(e, cmds)
        for c in cmds:
            if c.kind == "cancel":
                canceled(e, c)
        if cmds:
            sent.append(t)
        while sent and sent[0] <= t - 60 * S:
            sent.popleft()
        worst = max(worst, len(sent))
    assert 40 <= worst <= 60
    assert e.deferred_updates > 0
    end = 5 * 60 * S + 60 * S
    e.on_event(bbo(end))
    accept(e, e.take_commands())
    k = 5 * 60 * 5 - 1
    assert sorted(e.resting_orders("mm", "BTC")) == [("buy", 114990.0 - (k % 7), 0.0002),
                                                     ("sell", 115010.0 + (k % 5), 0.0002)]


def test_taker_room_counts_our_resting_orders_on_its_side():
    e = make(max_position={"BTC": 0.0005})
    e.on_event(bbo())
    e.on_event(quote(1, 114000.0, None, size=0.0003))  # mm's bid could still fill
    accept(e, e.take_commands())
    outs = e.on_event(target("trend", 0.0005, 2))
    (rej,) = of(outs, OrderRejected)
    assert "with our resting buy orders +0.0003" in rej.reason and rej.size == pytest.approx(0.0003)
    (ioc,) = e.take_commands()
    assert (ioc.side, ioc.size) == ("buy", 20)


def test_rate_limited_ioc_is_sent_again_after_the_back_off():
    e = make(rate_limit_backoff_s=2)
    e.on_event(bbo())
    e.on_event(target("trend", 0.0002, 1))
    (ioc,) = e.take_commands()
    e.on_send_result(ioc, False, RATE_LIMITED, "too many requests")
    assert e.in_flight("trend", "BTC") == 0.0
    e.on_event(bbo(S))
    assert e.take_commands() == []
    e.on_event(bbo(3 * S))
    (again,) = e.take_commands()
    assert (again.side, again.size, again.tif) == ("buy", 20, "ioc")
    assert again.client_order_index == ioc.client_order_index + 1


def test_cancel_intent_drops_a_held_back_order_and_releases_the_guard():
    e = make()
    e.on_event(bbo())
    e.on_event(target("hedger", -0.0002, 1))
    (ioc,) = e.take_commands()
    e.on_send_result(ioc, True)
    e.on_event(quote(2, 115000.5, None))
    assert e.take_commands() == [] and e.guard_engaged("self_trade", "BTC", "buy")
    outs = e.on_event(CancelIntent(id="c", ts_event=T0 + 3, source="mm", strategy="mm", market="BTC"))
    assert guards(outs) == [("self_trade", "buy", False)]
    e.on_venue_order(parse_order(1, {"client_order_index": ioc.client_order_index, "status": "canceled",
                         "remaining_base_amount": "0.00020"}))
    assert e.take_commands() == []  # the dropped bid is not placed any more


def test_on_market_data_equals_on_events_for_market_data():
    def run(fast: bool):
        e = make(requests_per_minute=2, budget_reserve=0.0, max_notional_usd={"BTC": 50.0})
        feed = e.on_market_data if fast else (lambda ev: e.on_events([ev]))
        log: list = list(feed(bbo()))
        for t in range(1, 4):
            log += e.on_event(quote(t, 114990.0 + t, 115010.0))
            log.append(e.take_commands())
        log += e.on_venue_position(parse_position(1, {"position": "0.00030", "sign": -1}))
        for t, (b, a) in enumerate([(115000.0, 115001.0), (57500.0, 57501.0), (115000.0, 115001.0)]):
            log += feed(bbo((61 + t) * S, bid=b, ask=a))
            log.append(e.take_commands())
        return log
    fast, slow = run(True), run(False)
    assert fast == slow
    assert any(isinstance(x, GuardState) and x.guard == "max_notional" and not x.engaged for x in fast)
    assert any(isinstance(x, list) and any(c.kind == "create" and c.price == 1149930 for c in x) for x in fast)
