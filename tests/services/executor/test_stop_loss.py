"""Executor: StopLossIntent -> one reduce-only Lighter stop-loss order per (strategy, market),
replaced by the next intent and cancelled by size 0; its fill is attributed to the strategy and
moves the strategy's target to its new position (no buy-back); untriggered stops are off the
book for the self-trade guard."""

from __future__ import annotations

import pytest
from executor_kit import BTC, T0, lighter_trade, make_engine, of

from services.executor.venue import parse_trade
from shared.events import Bbo, Fill, OrderAccepted, OrderRejected, StopLossIntent, TargetPosition


def bbo(i: int = 0, bid: float = 115000.0, ask: float = 115001.0) -> Bbo:
    return Bbo(id=f"bbo{i}", ts_event=T0 + i, source="collector", market="BTC", bid_px=bid, bid_sz=1.0,
               ask_px=ask, ask_sz=1.0)


def stop(i: int, trigger: float, size: float, side: str = "sell") -> StopLossIntent:
    return StopLossIntent(id=f"sl{i}", ts_event=T0 + i, source="copytrade", strategy="copytrade", market="BTC",
                          side=side, trigger_price=trigger, size=size)


def long_copytrade(e, size: float = 0.002):  # noqa: ANN001, ANN201
    e.on_event(bbo())
    e.on_event(TargetPosition(id="tp1", ts_event=T0 + 1, source="copytrade", strategy="copytrade", market="BTC",
                              target=size, max_slippage_bps=10.0))
    (c,) = e.take_commands()
    e.on_send_result(c, True)
    e.on_venue_trade(parse_trade(1, lighter_trade(1, c.client_order_index, f"{size:.5f}", "115001.0")))
    return c


def test_a_stop_intent_places_a_reduce_only_stop_loss_and_the_next_one_replaces_it():
    e = make_engine()
    long_copytrade(e)
    e.on_event(stop(2, 113000.0, 0.002))
    (c,) = e.take_commands()
    assert (c.kind, c.order_type, c.side, c.size, c.tif, c.reduce_only, c.order_expiry) == (
        "create", "stop-loss", "sell", 200, "ioc", True, -1)
    assert c.trigger_price == 1130000 and c.price == BTC.price_to_int(113000.0 * 0.99)  # 100 bps beyond
    acc = of(e.on_send_result(c, True), OrderAccepted)
    assert acc[0].order_type == "stop-loss" and acc[0].strategy == "copytrade" and acc[0].reduce_only
    e.on_event(stop(3, 113500.0, 0.003))
    cancel, create = e.take_commands()
    assert cancel.kind == "cancel" and cancel.client_order_index == c.client_order_index
    assert create.order_type == "stop-loss" and create.trigger_price == 1135000 and create.size == 300
    e.on_event(stop(4, 0.0, 0.0))  # size 0: only cancel
    (cancel2,) = e.take_commands()
    assert cancel2.kind == "cancel" and cancel2.client_order_index == create.client_order_index


def test_a_stop_fill_is_copytrades_and_is_not_bought_back():
    e = make_engine()
    long_copytrade(e)
    e.on_event(stop(2, 113000.0, 0.002))
    (c,) = e.take_commands()
    e.on_send_result(c, True)
    outs = e.on_venue_trade(parse_trade(1, lighter_trade(2, c.client_order_index, "0.00200", "112990.0",
                                                         side="sell")))
    (f,) = of(outs, Fill)
    assert (f.strategy, f.side, f.size, f.reason) == ("copytrade", "sell", 0.002, "stop-loss")
    e.on_event(bbo(5, 112900.0, 112901.0))
    assert e.take_commands() == []  # the target followed the position to 0


def test_an_untriggered_stop_does_not_trip_the_self_trade_guard_and_bad_stops_are_refused():
    e = make_engine()
    long_copytrade(e)
    e.on_event(stop(2, 114900.0, 0.002))
    (c,) = e.take_commands()
    e.on_send_result(c, True)
    # another strategy buys at the ask, above the stop's sell price: not a self-trade
    e.on_event(TargetPosition(id="tp9", ts_event=T0 + 9, source="trend", strategy="trend", market="BTC",
                              target=0.001, max_slippage_bps=10.0))
    (buy,) = e.take_commands()
    assert buy.side == "buy" and buy.order_type == "limit"
    rej = of(e.on_event(stop(10, 113000.0, 0.00001)), OrderRejected)  # 1 lot: below the minimums
    assert rej and "refused locally" in rej[0].reason and rej[0].strategy == "copytrade"
    rej = of(e.on_event(StopLossIntent(id="x", ts_event=T0 + 11, strategy="copytrade", market="DOGE", side="sell",
                                       trigger_price=1.0, size=1.0)), OrderRejected)
    assert "not traded" in rej[0].reason


@pytest.mark.parametrize("size", [0.002])
def test_a_halted_executor_refuses_stops(size: float):
    from shared.events import Control

    e = make_engine()
    long_copytrade(e, size)
    e.on_event(Control(id="k", ts_event=T0 + 3, command="kill"))
    e.take_commands()
    rej = of(e.on_event(stop(4, 113000.0, size)), OrderRejected)
    assert rej and "halted" in rej[0].reason


def test_flatten_cancels_the_strategys_stop_and_pause_keeps_it():
    from shared.events import Control

    e = make_engine()
    long_copytrade(e)
    e.on_event(stop(2, 113000.0, 0.002))
    (c,) = e.take_commands()
    e.on_send_result(c, True)
    e.on_event(Control(id="p", ts_event=T0 + 3, command="pause", target="copytrade"))
    assert e.take_commands() == []  # the stop protects the position while paused
    e.on_event(Control(id="r", ts_event=T0 + 4, command="resume", target="copytrade"))
    e.on_event(Control(id="f", ts_event=T0 + 5, command="flatten", target="copytrade"))
    cmds = e.take_commands()
    assert [(x.kind, x.client_order_index) for x in cmds if x.kind == "cancel"] == [("cancel", c.client_order_index)]
    assert any(x.kind == "create" and x.side == "sell" and x.order_type == "limit" for x in cmds)  # the flatten


def test_a_stop_before_its_position_is_held_until_a_fill_opens_it():
    # on the wall clock the taker that opens the position waits out its 300 ms speed bump while
    # the stop (reduce-only) would reach the venue at once and be refused (21732): it is held
    e = make_engine()
    e.on_event(bbo())
    e.on_event(TargetPosition(id="tp1", ts_event=T0 + 1, source="copytrade", strategy="copytrade", market="BTC",
                              target=0.002, max_slippage_bps=10.0))
    e.on_event(stop(2, 113000.0, 0.002))
    (taker,) = e.take_commands()  # no stop yet
    assert taker.order_type == "limit" and taker.tif == "ioc"
    e.on_send_result(taker, True)
    e.on_venue_trade(parse_trade(1, lighter_trade(1, taker.client_order_index, "0.00100", "115001.0")))
    (c,) = e.take_commands()  # the first fill opened the position: the stop goes out
    assert (c.order_type, c.side, c.size, c.reduce_only, c.trigger_price) == ("stop-loss", "sell", 200, True, 1130000)
    e.on_venue_trade(parse_trade(1, lighter_trade(2, taker.client_order_index, "0.00100", "115001.0")))
    assert e.take_commands() == []  # placed once


def test_a_held_stop_is_dropped_by_a_size_0_intent():
    e = make_engine()
    e.on_event(bbo())
    e.on_event(stop(2, 113000.0, 0.002))
    assert e.take_commands() == []
    e.on_event(stop(3, 0.0, 0.0))
    long_copytrade(e)
    assert [c for c in e.take_commands() if c.order_type == "stop-loss"] == []
