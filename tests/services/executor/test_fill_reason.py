"""Fill.reason: the reason of the strategy's TargetPosition that the fill executes (internal cross or
the IOC's venue fills), "flatten" for a flatten control, empty for resting orders and quotes."""

from __future__ import annotations

from executor_kit import T0, lighter_trade, make_engine, of

from shared.events import Bbo, Control, Fill, RestingOrders, TargetPosition
from shared.venue.reports import VenueTrade


def bbo(i: int = 0) -> Bbo:
    return Bbo(id=f"bbo{i}", ts_event=T0 + i, source="collector", market="BTC", bid_px=115000.0, bid_sz=1.0,
               ask_px=115001.0, ask_sz=1.0)


def target(strategy: str, tgt: float, i: int, reason: str) -> TargetPosition:
    return TargetPosition(id=f"tp-{strategy}-{i}", ts_event=T0 + i, source=strategy, strategy=strategy,
                          market="BTC", target=tgt, reason=reason)


def trade(trade_id: int, coi: int, size: float, side: str, maker: bool = False) -> VenueTrade:
    d = lighter_trade(trade_id, coi, f"{size:.5f}", "115000.0", side, maker=maker)
    return VenueTrade(trade_id=str(trade_id), market_id=1, price=115000.0, size=size,
                      usd_amount=float(d["usd_amount"]), bid_account=d["bid_account_id"],
                      ask_account=d["ask_account_id"], bid_client_order_index=d["bid_client_id"],
                      ask_client_order_index=d["ask_client_id"], is_maker_ask=d["is_maker_ask"])


def test_internal_cross_and_ioc_fills_carry_their_targets_reasons():
    e = make_engine()
    e.on_event(bbo())
    outs = e.on_events([target("A", 0.002, 1, "signal"), target("B", -0.001, 2, "stop")])
    assert [(f.strategy, f.liquidity, f.reason) for f in of(outs, Fill)] == [
        ("A", "internal", "signal"), ("B", "internal", "stop")]
    (ioc,) = e.take_commands()
    e.on_send_result(ioc, True)
    # A changes its mind while its IOC is in flight: the IOC's fill keeps the reason it was sent for
    e.on_event(target("A", 0.002, 3, "take profit"))
    (f,) = of(e.on_venue_trade(trade(1, ioc.client_order_index, 0.001, "buy")), Fill)
    assert (f.strategy, f.liquidity, f.reason) == ("A", "taker", "signal")


def test_flatten_fills_say_flatten_and_resting_fills_have_no_reason():
    e = make_engine()
    e.on_event(bbo())
    e.on_event(target("A", 0.001, 1, "signal"))
    (ioc,) = e.take_commands()
    e.on_send_result(ioc, True)
    e.on_venue_trade(trade(1, ioc.client_order_index, 0.001, "buy"))
    e.on_event(RestingOrders(id="ro", ts_event=T0 + 2, source="grid", strategy="grid", market="BTC",
                             orders=[("buy", 114000.0, 0.0002)]))
    (rest,) = e.take_commands()
    e.on_send_result(rest, True)
    (f,) = of(e.on_venue_trade(trade(2, rest.client_order_index, 0.0002, "buy", maker=True)), Fill)
    assert (f.strategy, f.liquidity, f.reason) == ("grid", "maker", "")
    e.on_event(Control(id="fl", ts_event=T0 + 3, source="op", command="flatten", target="A"))
    (close,) = [c for c in e.take_commands() if c.kind == "create"]
    assert close.side == "sell"
    e.on_send_result(close, True)
    (f,) = of(e.on_venue_trade(trade(3, close.client_order_index, 0.001, "sell")), Fill)
    assert (f.strategy, f.reason) == ("A", "flatten")
