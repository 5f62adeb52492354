"""Executor engine: orders whose final update never arrives (stale-order checks) and the
strategies' standing wishes restored after a restart (``restore_intents``)."""

from __future__ import annotations

from executor_kit import ACCT, BTC, ETH, T0, S, make_engine

from services.executor.config import ExecutorConfig
from services.executor.engine import Engine, StaleOrder
from services.executor.venue import parse_order, parse_trade
from shared.events import (
    Bbo,
    CancelIntent,
    Control,
    OrderAccepted,
    OrderCanceled,
    QuoteIntent,
    RestingOrders,
    TargetPosition,
)

make = make_engine


def bbo(t: int, bid: float = 115000.0, ask: float = 115001.0, market: str = "BTC", i: int = 0) -> Bbo:
    return Bbo(id=f"bbo-{market}-{t}-{i}", ts_event=t, source="collector", market=market, bid_px=bid, bid_sz=1.0,
               ask_px=ask, ask_sz=1.0)


def target(strategy: str, tgt: float, t: int, market: str = "BTC", n: int = 0) -> TargetPosition:
    return TargetPosition(id=f"tp-{strategy}-{t}-{n}", ts_event=t, source=strategy, strategy=strategy,
                          market=market, target=tgt, max_slippage_bps=10.0)


# ---------------------------------------------------------------- stale orders


def _ioc_in_flight(e: Engine) -> int:
    e.on_event(bbo(T0))
    e.on_event(target("A", 0.001, T0 + 1))
    (cmd,) = e.take_commands()
    assert cmd.kind == "create" and cmd.tif == "ioc"
    e.on_send_result(cmd, True, 200, "", "h1")
    return cmd.client_order_index


def test_ioc_without_final_update_is_listed_stale_after_order_stale_s_of_event_time():
    e = make(order_stale_s=3.0)
    coi = _ioc_in_flight(e)
    e.on_event(bbo(T0 + 2 * S))
    assert e.stale_orders() == []
    e.on_event(bbo(T0 + 3 * S + 1))
    (st,) = e.stale_orders()
    assert st == StaleOrder(coi, 0, "BTC", 1, "ioc", 3 * S)


def test_rest_report_resolves_a_lost_ioc_and_the_retried_target_trades_again():
    e = make(order_stale_s=3.0)
    coi = _ioc_in_flight(e)
    assert e.in_flight("A", "BTC") == 0.001
    # the strategy re-sends its target (retry_after_s): nothing, the IOC still counts in flight
    e.on_event(target("A", 0.001, T0 + 4 * S, n=1))
    assert e.take_commands() == []
    assert [s.client_order_index for s in e.stale_orders()] == [coi]
    # the runner's REST check finds it expired unfilled: the same path as a WS order update
    outs = e.on_venue_order(parse_order(1, {"client_order_index": coi, "order_index": 77, "status": "canceled-expired",
                                "remaining_base_amount": "0.00100", "updated_at": 1_757_973_380_000}))
    (c,) = [o for o in outs if isinstance(o, OrderCanceled)]
    assert (c.client_order_index, c.remaining, c.reason) == (coi, 0.001, "canceled-expired")
    assert e.in_flight("A", "BTC") == 0 and e.stale_orders() == []
    # the next retry of the target is sent
    e.on_event(target("A", 0.001, T0 + 5 * S, n=2))
    (cmd,) = e.take_commands()
    assert (cmd.kind, cmd.tif, cmd.side, cmd.size) == ("create", "ioc", "buy", 100)
    assert cmd.client_order_index != coi
    # a late WS update of the first order changes nothing
    assert e.on_venue_order(parse_order(1, {"client_order_index": coi, "status": "canceled-expired",
                                "remaining_base_amount": "0.00100"})) == []


def test_order_unknown_to_the_venue_is_finished_unfilled_with_a_reason_and_late_fills_still_count():
    e = make(order_stale_s=3.0)
    coi = _ioc_in_flight(e)
    e.on_event(bbo(T0 + 4 * S))
    outs = e.on_order_unknown(coi)
    (c,) = [o for o in outs if isinstance(o, OrderCanceled)]
    assert c.remaining == 0.001 and c.reason.startswith("unknown to the venue after 3s")
    assert e.in_flight("A", "BTC") == 0 and e.stale_orders() == []
    assert e.on_order_unknown(coi) == []  # already finished
    # a fill that still arrives is attributed to the order's strategy
    fill = {"trade_id": 5, "size": "0.00100", "price": "115001.0", "usd_amount": "115.001",
            "ask_account_id": 9, "bid_account_id": ACCT, "ask_client_id": 0, "bid_client_id": coi,
            "is_maker_ask": True, "taker_fee": 0, "maker_fee": 0, "timestamp": 1_757_973_381_000}
    e.on_venue_trade(parse_trade(1, fill))
    assert e.position("A", "BTC") == 0.001


def test_lost_cancel_confirmation_releases_the_held_ioc_after_the_check():
    e = make(order_stale_s=3.0)
    e.on_event(bbo(T0))
    e.on_event(QuoteIntent(id="q1", ts_event=T0 + 1, source="mm", strategy="mm", market="BTC",
                           bid_px=114990.0, bid_sz=0.0002))
    (q,) = e.take_commands()
    e.on_send_result(q, True)
    e.on_venue_order(parse_order(1, {"client_order_index": q.client_order_index, "order_index": 55, "status": "open"}))
    # the hedger sells through mm's bid: the bid is canceled first, the IOC is held
    e.on_event(target("H", -0.0002, T0 + 2))
    (cancel,) = e.take_commands()
    assert cancel.kind == "cancel" and cancel.client_order_index == q.client_order_index
    e.on_send_result(cancel, True)
    assert e.guard_engaged("self_trade", "BTC", "sell")
    # the cancel confirmation is lost; 3 s later the order is stale ("cancel")
    e.on_event(bbo(T0 + 3 * S + 2))
    (st,) = e.stale_orders()
    assert (st.client_order_index, st.why, st.order_index) == (q.client_order_index, "cancel", 55)
    # still open at the venue: the cancel is sent again (bounded)
    assert e.on_order_still_open(q.client_order_index)
    (again,) = e.take_commands()
    assert again.kind == "cancel" and again.order_index == 55
    assert e.stale_orders() == []  # the re-sent cancel restarts the clock
    # the venue then lists it canceled: the held IOC goes out
    outs = e.on_venue_order(parse_order(1, {"client_order_index": q.client_order_index, "status": "canceled",
                                "remaining_base_amount": "0.00020"}))
    assert any(isinstance(o, OrderCanceled) for o in outs)
    (ioc,) = e.take_commands()
    assert (ioc.kind, ioc.tif, ioc.side) == ("create", "ioc", "sell")
    assert not e.guard_engaged("self_trade", "BTC", "sell")


def test_unknown_cancel_requested_order_releases_the_held_ioc():
    e = make(order_stale_s=3.0)
    e.on_event(bbo(T0))
    e.on_event(QuoteIntent(id="q1", ts_event=T0 + 1, source="mm", strategy="mm", market="BTC",
                           bid_px=114990.0, bid_sz=0.0002))
    (q,) = e.take_commands()
    e.on_send_result(q, True)
    e.on_event(target("H", -0.0002, T0 + 2))
    (cancel,) = e.take_commands()
    e.on_send_result(cancel, True)
    e.on_event(bbo(T0 + 4 * S))
    assert [s.why for s in e.stale_orders()] == ["cancel"]
    e.on_order_unknown(q.client_order_index)
    (ioc,) = e.take_commands()
    assert (ioc.tif, ioc.side) == ("ioc", "sell")


# ---------------------------------------------------------------- restored intents


def test_restored_target_is_pursued_at_the_first_bbo_and_stale_or_superseded_ones_are_not():
    e = make(max_intent_age_ms=60_000)
    t = T0 + 100 * S
    history = [
        target("A", 0.002, t - 10 * S),
        target("A", 0.001, t - 5 * S, n=1),          # latest of A/BTC
        target("OLD", 0.003, t - 120 * S),          # older than 60 s at the first BBO: stale
        target("B", -0.005, t - 2 * S, market="ETH"),
    ]
    assert e.restore_intents(history) == 3
    assert e.take_commands() == []
    # a newer live intent of B replaces the restored one before ETH's first BBO
    e.on_event(target("B", 0.0, t - S, market="ETH", n=1))
    e.take_commands()
    e.on_event(bbo(t))
    (cmd,) = e.take_commands()
    assert (cmd.market, cmd.side, cmd.size, cmd.tif) == ("BTC", "buy", 100, "ioc")
    assert ("OLD", "BTC") not in e.strats or e.strats[("OLD", "BTC")].target is None
    e.on_event(bbo(t + 1, bid=2500.0, ask=2500.1, market="ETH"))
    assert e.take_commands() == []  # B's restored -0.005 was superseded by its live 0
    assert e.restored_intents() == []


def test_restored_wishes_wait_while_halted_and_resting_sets_are_placed():
    e = Engine(ExecutorConfig(), {"BTC": BTC, "ETH": ETH}, ACCT, next_client_order_index=100, reconciled=False)
    t = T0 + 100 * S
    history = [
        QuoteIntent(id="q0", ts_event=t - 9 * S, source="mm", strategy="mm", market="BTC",
                    bid_px=114000.0, bid_sz=0.0002, ask_px=116000.0, ask_sz=0.0002),
        RestingOrders(id="g0", ts_event=t - 8 * S, source="grid", strategy="grid", market="BTC",
                      orders=[("buy", 113000.0, 0.0002)]),
        CancelIntent(id="c0", ts_event=t - 7 * S, source="grid", strategy="grid", market=None),
        RestingOrders(id="g1", ts_event=t - 6 * S, source="grid2", strategy="grid2", market="BTC",
                      orders=[("sell", 117000.0, 0.0002)]),
    ]
    assert e.restore_intents(history) == 2  # grid's set was withdrawn by its CancelIntent
    e.on_event(bbo(t))
    assert e.take_commands() == []  # halted: kept for later
    e.set_reconciled(True, ts_ns=t)
    outs = e.on_event(bbo(t + 1, i=1))
    cmds = e.take_commands()
    assert sorted((c.side, c.price, c.tif) for c in cmds) == [
        ("buy", 1140000, "post_only"), ("sell", 1160000, "post_only"), ("sell", 1170000, "post_only")]
    assert all(c.cause_id in ("q0", "g1") for c in cmds)
    for c in cmds:
        outs += e.on_send_result(c, True)
    assert sorted(a.strategy for a in outs if isinstance(a, OrderAccepted)) == ["grid2", "mm", "mm"]
    assert e.resting_orders("mm", "BTC") == [("buy", 114000.0, 0.0002), ("sell", 116000.0, 0.0002)]


def test_kill_drops_restored_wishes():
    e = make()
    e.restore_intents([target("A", 0.001, T0)])
    e.on_event(Control(id="k", ts_event=T0 + 1, source="op", command="kill"))
    e.take_commands()
    e.on_event(Control(id="r", ts_event=T0 + 2, source="op", command="resume"))
    e.on_event(bbo(T0 + 3))
    assert e.take_commands() == [] and e.restored_intents() == []


def test_restore_keeps_no_intent_sent_while_killed_or_paused_as_live_would():
    t = T0 + 10 * S
    e = make()
    kept = e.restore_intents([
        Control(id="k", ts_event=t - 9 * S, source="op", command="kill", reason="x"),
        target("A", 0.001, t - 8 * S),  # refused and forgotten live: halted by the kill
        Control(id="r", ts_event=t - 7 * S, source="op", command="resume"),
        Control(id="p", ts_event=t - 6 * S, source="op", command="pause", target="B"),
        target("B", 0.002, t - 5 * S),  # ignored live: B is paused
        target("C", 0.003, t - 4 * S),  # the only wish left
    ])
    assert kept == 1 and [ev.strategy for ev in e.restored_intents()] == ["C"]


def test_restore_is_deterministic_and_market_data_fast_path_matches_on_events():
    t = T0 + 10 * S
    hist = [target("A", 0.001, t - S), QuoteIntent(id="q", ts_event=t - S, source="mm", strategy="mm",
                                                   market="BTC", bid_px=114000.0, bid_sz=0.0002)]
    a, b = make(), make()
    a.restore_intents(hist)
    b.restore_intents(hist)
    md = [bbo(t, bid=2500.0, ask=2500.1, market="ETH"), bbo(t)]
    out_a = [o for ev in md for o in a.on_market_data(ev)]
    out_b = b.on_events(md)  # one batch: the general path
    assert out_a == out_b
    cmds = a.take_commands()
    assert cmds == b.take_commands()
    assert sorted((c.tif, c.side) for c in cmds) == [("ioc", "buy"), ("post_only", "buy")]
