"""Executor: protective stops (``services.executor.protective_stop``) -- one reduce-only Lighter
stop-loss per (strategy, market) with a position and no stop of its own, kept in line with the
position without churn, attributed to the strategy, taken over after a restart."""

from __future__ import annotations

from executor_kit import ACCT, BTC, MS, T0, S, lighter_trade, make_engine, of

from services.executor.common import PROTECTIVE_SUFFIX
from services.executor.config import ExecutorConfig
from services.executor.engine import Engine
from services.executor.venue import parse_order, parse_trade
from shared.events import (
    Bbo,
    Control,
    Fill,
    OrderAccepted,
    OrderRejected,
    PositionSnapshot,
    StopLossIntent,
    TargetPosition,
)

PROTECT = {"enabled": True, "default_distance_bps": 200, "max_slippage_bps": 100, "resize_threshold": 0.5}
_trade_ids = iter(range(1000, 10_000))


def bbo(t: int, bid: float = 115000.0, ask: float = 115001.0) -> Bbo:
    return Bbo(id=f"bbo-{t}", ts_event=t, source="collector", market="BTC", bid_px=bid, bid_sz=1.0, ask_px=ask,
               ask_sz=1.0)


def target(strategy: str, tgt: float, t: int) -> TargetPosition:
    return TargetPosition(id=f"tp-{strategy}-{t}", ts_event=t, source=strategy, strategy=strategy, market="BTC",
                          target=tgt, max_slippage_bps=10.0)


def engine(**protect) -> Engine:  # noqa: ANN003
    return make_engine(protective_stop={**PROTECT, **protect})


def trade_to(e: Engine, strategy: str, tgt: float, t: int, price: str = "115001.0") -> list:
    """Send ``strategy``'s target, fill its IOC completely; returns the commands queued after the fill
    (the protective stop's)."""
    e.on_event(target(strategy, tgt, t))
    (ioc,) = [c for c in e.take_commands() if c.tif == "ioc" and c.order_type == "limit"]
    e.on_send_result(ioc, True)
    size = BTC.int_to_size(ioc.size)
    e.on_venue_trade(parse_trade(1, lighter_trade(next(_trade_ids), ioc.client_order_index, f"{size:.5f}", price,
                                                  side=ioc.side)))
    e.on_venue_order(parse_order(1, {"client_order_index": ioc.client_order_index, "status": "filled",
                                     "remaining_base_amount": "0"}))
    return e.take_commands()


def test_off_by_default_no_stop_follows_a_position():
    assert ExecutorConfig().protective_stop.enabled is False and ExecutorConfig().dead_man_switch_s == 0
    e = make_engine()
    e.on_event(bbo(T0))
    assert trade_to(e, "A", 0.002, T0 + 1) == []


def test_a_long_gets_a_reduce_only_sell_stop_below_its_entry_attributed_to_the_strategy():
    e = engine()
    e.on_event(bbo(T0))
    (c,) = trade_to(e, "A", 0.002, T0 + 1)
    assert (c.kind, c.order_type, c.side, c.size, c.reduce_only, c.tif) == ("create", "stop-loss", "sell", 200, True,
                                                                              "ioc")
    # entry 115001 is above the mid: the stop is 200 bps below the mid (never nearer the market)
    assert c.trigger_price == BTC.price_to_int(115000.5 * 0.98, "down")
    assert c.price == BTC.price_to_int(115000.5 * 0.98 * 0.99, "down")
    (acc,) = of(e.on_send_result(c, True, 200, "", "h"), OrderAccepted)
    assert acc.strategy == "A" + PROTECTIVE_SUFFIX and acc.order_type == "stop-loss" and acc.reduce_only
    # the stop triggers: its fill is A's, the target follows (no buy-back), no cancel of the filling stop
    outs = e.on_venue_trade(parse_trade(1, lighter_trade(7, c.client_order_index, "0.00200", "112700.0",
                                                         side="sell")))
    (f,) = of(outs, Fill)
    assert (f.strategy, f.side, f.size, f.reason) == ("A", "sell", 0.002, "protective-stop")
    assert of(outs, PositionSnapshot)[0].position == 0.0
    assert e.take_commands() == []
    e.on_venue_order(parse_order(1, {"client_order_index": c.client_order_index, "status": "filled",
                                     "remaining_base_amount": "0"}))
    e.on_event(bbo(T0 + 5 * S, 112600.0, 112601.0))
    assert e.take_commands() == []
    assert e.protective_status()["live"] == []


def test_a_short_gets_a_buy_stop_above_its_entry():
    e = engine(reference="entry")
    e.on_event(bbo(T0, 115100.0, 115101.0))
    (c,) = trade_to(e, "A", -0.002, T0 + 1, price="115000.0")  # sold at 115000, below the mid now
    assert (c.side, c.size) == ("buy", 200)
    assert c.trigger_price == BTC.price_to_int(115100.5 * 1.02, "up")  # the mid is the farther reference


def test_growth_within_the_threshold_keeps_the_stop_beyond_it_or_a_shrink_re_places_it():
    e = engine(resize_threshold=0.5)
    e.on_event(bbo(T0))
    (c,) = trade_to(e, "A", 0.002, T0 + 1)
    e.on_send_result(c, True)
    assert trade_to(e, "A", 0.0028, T0 + 2) == []  # +40%: within 50%, kept
    cancel, create = trade_to(e, "A", 0.004, T0 + 3)  # +100%: cancel + create in one step
    assert (cancel.kind, cancel.client_order_index) == ("cancel", c.client_order_index)
    assert (create.order_type, create.size) == ("stop-loss", 400)
    e.on_send_result(create, True)
    e.on_venue_order(parse_order(1, {"client_order_index": c.client_order_index, "status": "canceled",
                                     "remaining_base_amount": "0.002"}))
    cancel2, create2 = trade_to(e, "A", 0.0035, T0 + 4)  # shrank: a larger stop could close another's position
    assert cancel2.client_order_index == create.client_order_index and create2.size == 350
    e.on_send_result(create2, True)
    (flat,) = trade_to(e, "A", 0.0, T0 + 5)  # flat: only the cancel
    assert (flat.kind, flat.client_order_index) == ("cancel", create2.client_order_index)


def test_a_strategys_own_stop_replaces_the_protective_one_and_its_cancel_brings_it_back():
    e = engine()
    e.on_event(bbo(T0))
    (c,) = trade_to(e, "A", 0.002, T0 + 1)
    e.on_send_result(c, True)
    e.on_event(StopLossIntent(id="sl", ts_event=T0 + 2, source="A", strategy="A", market="BTC", side="sell",
                              trigger_price=113000.0, size=0.002))
    cancel, own = e.take_commands()
    assert (cancel.kind, cancel.client_order_index) == ("cancel", c.client_order_index)
    assert own.trigger_price == 1130000
    e.on_send_result(own, True)
    e.on_venue_order(parse_order(1, {"client_order_index": c.client_order_index, "status": "canceled",
                                     "remaining_base_amount": "0.002"}))
    assert e.take_commands() == []
    e.on_event(StopLossIntent(id="sl0", ts_event=T0 + 3, source="A", strategy="A", market="BTC", side="sell",
                              trigger_price=0.0, size=0.0))
    (cancel_own,) = e.take_commands()
    assert cancel_own.client_order_index == own.client_order_index
    e.on_venue_order(parse_order(1, {"client_order_index": own.client_order_index, "status": "canceled",
                                     "remaining_base_amount": "0.002"}))
    (again,) = e.take_commands()
    assert (again.kind, again.order_type, again.size) == ("create", "stop-loss", 200)


def test_nothing_is_placed_while_halted_and_resume_brings_the_stop_back():
    e = engine()
    e.on_event(bbo(T0))
    (c,) = trade_to(e, "A", 0.002, T0 + 1)
    e.on_send_result(c, True)
    e.on_event(Control(id="k", ts_event=T0 + 2, command="kill"))
    (ca,) = e.take_commands()
    assert ca.kind == "cancel_all"
    e.on_venue_order(parse_order(1, {"client_order_index": c.client_order_index, "status": "canceled",
                                     "remaining_base_amount": "0.002"}))
    e.on_event(bbo(T0 + 3))
    assert e.take_commands() == []
    e.on_event(Control(id="r", ts_event=T0 + 4, command="resume"))
    (again,) = e.take_commands()
    assert (again.order_type, again.side, again.size) == ("stop-loss", "sell", 200)


def test_a_refused_stop_waits_retry_s_unless_the_position_changes():
    e = engine(retry_s=30)
    e.on_event(bbo(T0))
    (c,) = trade_to(e, "A", 0.002, T0 + 1)
    (rej,) = of(e.on_send_result(c, False, 21732, "reduce-only"), OrderRejected)
    assert rej.strategy == "A" + PROTECTIVE_SUFFIX and rej.code == 21732
    for k in range(5):
        e.on_event(bbo(T0 + 2 + k * S))
        assert e.take_commands() == []
    e.on_event(bbo(T0 + 32 * S))
    (retry,) = e.take_commands()
    assert retry.order_type == "stop-loss" and retry.size == 200
    (rej2,) = of(e.on_send_result(retry, False, 21732, "reduce-only"), OrderRejected)
    (grown,) = trade_to(e, "A", 0.003, T0 + 33 * S)  # a new size: tried at once
    assert grown.size == 300


def test_a_re_placement_waits_for_budget_a_first_placement_does_not():
    e = engine(resize_threshold=0.0)
    e.on_event(bbo(T0))
    e.cfg.requests_per_minute = 5  # 4 for quote updates (20% reserve)
    (c,) = trade_to(e, "A", 0.002, T0 + 1)  # 2 requests: the IOC, the stop
    e.on_send_result(c, True)
    assert e.budget_used() == 2
    placed = trade_to(e, "A", 0.003, T0 + 2)  # the IOC (3), the re-placement (4: still fits)
    assert [x.kind for x in placed] == ["cancel", "create"] and e.budget_used() == 4
    e.on_send_result(placed[1], True)
    # budget for quote updates used up: the next re-placement waits, the live stop stays
    e.on_event(target("A", 0.004, T0 + 3))
    (ioc,) = e.take_commands()
    e.on_send_result(ioc, True)
    e.on_venue_trade(parse_trade(1, lighter_trade(77, ioc.client_order_index, "0.00100", "115001.0")))
    assert e.take_commands() == []
    assert [x["size"] for x in e.protective_status()["live"] if not x["cancel_requested"]] == [0.003]
    e.on_event(bbo(T0 + 61 * S))  # the minute rolled: the re-placement goes
    cmds = e.take_commands()
    assert [x.kind for x in cmds] == ["cancel", "create"] and cmds[1].size == 400


def test_each_strategy_gets_its_own_stop_and_an_excluded_one_none():
    e = engine(exclude=["B"])
    e.on_event(bbo(T0))
    (a,) = trade_to(e, "A", 0.002, T0 + 1)
    assert trade_to(e, "B", 0.003, T0 + 2) == []
    (c,) = trade_to(e, "C", -0.001, T0 + 3)
    assert (a.side, a.size, c.side, c.size) == ("sell", 200, "buy", 100)


def _history_of(e: Engine) -> list:
    """The exec stream of a run where A went long and got its protective stop."""
    hist: list = []
    hist += e.on_event(bbo(T0))
    e.on_event(target("A", 0.002, T0 + 1))
    (ioc,) = e.take_commands()
    hist += e.on_send_result(ioc, True)
    hist += e.on_venue_trade(parse_trade(1, lighter_trade(1, ioc.client_order_index, "0.00200", "115001.0")))
    (stop,) = e.take_commands()
    hist += e.on_send_result(stop, True)
    return hist


def test_after_a_restart_the_live_stop_is_adopted_not_duplicated():
    old = engine()
    hist = _history_of(old)
    (acc,) = [h for h in hist if isinstance(h, OrderAccepted) and h.order_type == "stop-loss"]
    new = Engine(ExecutorConfig(protective_stop=PROTECT), {"BTC": BTC}, ACCT, next_client_order_index=500,
                 reconciled=False)
    new.restore(hist)
    assert new.protective_coi(acc.client_order_index) == "A"
    assert new.adopt_protective_stop(1, acc.client_order_index, 9, "sell", 0.002, 112700.0)
    assert not new.adopt_protective_stop(1, 424242, 9, "sell", 0.002, 112700.0)  # not ours
    new.set_reconciled(True, ts_ns=T0 + 10 * S)
    new.on_event(bbo(T0 + 11 * S))
    assert new.take_commands() == []
    (live,) = new.protective_status()["live"]
    assert (live["strategy"], live["size"], live["client_order_index"]) == ("A", 0.002, acc.client_order_index)
    assert live["trigger"] == 112700.0


def test_after_a_restart_an_adopted_stop_of_the_wrong_size_is_re_placed_and_none_is_placed_without_one():
    old = engine()
    hist = _history_of(old)
    (acc,) = [h for h in hist if isinstance(h, OrderAccepted) and h.order_type == "stop-loss"]
    new = Engine(ExecutorConfig(protective_stop=PROTECT), {"BTC": BTC}, ACCT, next_client_order_index=500,
                 reconciled=False)
    new.restore(hist)
    new.adopt_protective_stop(1, acc.client_order_index, 9, "sell", 0.005, 112700.0)  # bigger than the position
    new.set_reconciled(True, ts_ns=T0 + 10 * S)
    new.on_event(bbo(T0 + 11 * S))
    cancel, create = new.take_commands()
    assert (cancel.kind, cancel.client_order_index, cancel.order_index) == ("cancel", acc.client_order_index, 9)
    assert (create.order_type, create.size) == ("stop-loss", 200)
    # the venue had none any more (canceled by the previous run's shutdown): placed at the first touch
    fresh = Engine(ExecutorConfig(protective_stop=PROTECT), {"BTC": BTC}, ACCT, next_client_order_index=500,
                   reconciled=False)
    fresh.restore(hist)
    fresh.set_reconciled(True, ts_ns=T0 + 10 * S)
    assert fresh.take_commands() == []  # no touch yet
    fresh.on_event(bbo(T0 + 11 * S))
    (c,) = fresh.take_commands()
    assert (c.order_type, c.size, c.client_order_index) == ("stop-loss", 200, 500)


def test_a_stop_fill_while_the_executor_was_down_is_attributed_at_restart_without_moving_the_account():
    old = engine()
    hist = _history_of(old)
    (acc,) = [h for h in hist if isinstance(h, OrderAccepted) and h.order_type == "stop-loss"]
    new = Engine(ExecutorConfig(protective_stop=PROTECT), {"BTC": BTC}, ACCT, next_client_order_index=500,
                 reconciled=False)
    new.restore(hist)
    assert new.position("A", "BTC") == 0.002
    new.set_account_position("BTC", 0.0)  # the venue's position report (REST) already holds the stop's fill
    fired = parse_trade(1, lighter_trade(50, acc.client_order_index, "0.00200", "112600.0", side="sell",
                                         timestamp_ms=1_757_973_400_000))
    other = parse_trade(1, lighter_trade(51, 99999, "0.00100", "112600.0"))
    outs = new.on_missed_trade(fired) + new.on_missed_trade(other)
    (f,) = of(outs, Fill)
    assert (f.strategy, f.size, f.reason) == ("A", 0.002, "protective-stop")
    assert new.position("A", "BTC") == 0.0 and new.account_pos["BTC"] == 0.0
    assert new.on_venue_trade(fired) == []  # seen: a live repeat is ignored
    assert ("51", "buy") in new.seen_trades


def test_protective_events_keep_ids_deterministic():
    runs = []
    for _ in range(2):
        e = engine()
        global _trade_ids
        _trade_ids = iter(range(1000, 10_000))
        e.on_event(bbo(T0))
        cmds = trade_to(e, "A", 0.002, T0 + MS)
        runs.append([(c.kind, c.client_order_index, c.cause_id, c.trigger_price) for c in cmds])
    assert runs[0] == runs[1]


def test_a_restored_target_older_than_a_stop_fill_from_while_down_is_not_bought_back():
    old = engine()
    hist = _history_of(old)
    (acc,) = [h for h in hist if isinstance(h, OrderAccepted) and h.order_type == "stop-loss"]
    new = Engine(ExecutorConfig(protective_stop=PROTECT), {"BTC": BTC}, ACCT, next_client_order_index=500,
                 reconciled=False)
    new.restore(hist)
    t = 1_757_973_400_000  # ms: the stop fired after the strategy's last target
    new.on_missed_trade(parse_trade(1, lighter_trade(60, acc.client_order_index, "0.00200", "112600.0", side="sell",
                                                     timestamp_ms=t)))
    new.restore_intents([target("A", 0.002, T0 + 1)])
    new.set_reconciled(True, ts_ns=t * MS)
    new.on_event(bbo(t * MS + 1))
    assert new.take_commands() == [] and new.position("A", "BTC") == 0.0
    # a target sent after the stop fired is pursued
    new.on_event(target("A", 0.001, t * MS + 2))
    (ioc,) = new.take_commands()
    assert (ioc.side, ioc.size, ioc.tif) == ("buy", 100, "ioc")
