"""Executor engine: netting, internal crosses, FIFO attribution, risk gate, determinism."""

from __future__ import annotations

import pytest
from executor_kit import ACCT, BTC, ETH, T0, lighter_trade, make_engine, of

from services.executor.config import ExecutorConfig
from services.executor.engine import Engine, OrderCommand
from services.executor.venue import parse_order, parse_position, parse_trade
from shared.events import (
    Bbo,
    CancelIntent,
    Control,
    Fill,
    OrderAccepted,
    OrderCanceled,
    OrderRejected,
    PositionSnapshot,
    QuoteIntent,
    RiskState,
    TargetPosition,
    encode,
)

make = make_engine


def bbo(i: int = 0, bid: float = 115000.0, ask: float = 115001.0, market: str = "BTC") -> Bbo:
    return Bbo(id=f"bbo{i}", ts_event=T0 + i, source="collector", market=market, bid_px=bid, bid_sz=1.0,
               ask_px=ask, ask_sz=1.0)


def target(strategy: str, tgt: float, i: int, market: str = "BTC", slip: float = 10.0) -> TargetPosition:
    return TargetPosition(id=f"tp-{strategy}-{i}", ts_event=T0 + i, source=strategy, strategy=strategy,
                          market=market, target=tgt, max_slippage_bps=slip)


trade = lighter_trade


def test_two_strategies_that_disagree_cross_internally_and_send_the_difference():
    e = make()
    e.on_event(bbo())
    outs = e.on_events([target("A", 0.002, 1), target("B", -0.001, 2)])
    fills = of(outs, Fill)
    assert [(f.strategy, f.side, f.size, f.liquidity, f.fee, f.venue_trade_id) for f in fills] == [
        ("A", "buy", 0.001, "internal", 0.0, ""), ("B", "sell", 0.001, "internal", 0.0, "")]
    assert all(f.price == 115000.5 for f in fills)  # the mid
    snaps = {s.strategy: s for s in of(outs, PositionSnapshot)}
    assert snaps["A"].position == 0.001 and snaps["B"].position == -0.001
    assert snaps["A"].account_position == 0.0
    cmds = e.take_commands()
    assert len(cmds) == 1
    c = cmds[0]
    assert (c.kind, c.market_id, c.side, c.size, c.tif, c.order_expiry, c.reduce_only) == (
        "create", 1, "buy", 100, "ioc", 0, False)  # 0.001 BTC = 100 lots
    # buy at ask * (1 + 10 bps) rounded down: 115001 * 1.001 = 115116.001 -> 1151160 ticks
    assert c.price == 1151160
    assert e.in_flight("A", "BTC") == pytest.approx(0.001) and e.in_flight("B", "BTC") == 0.0
    # venue accepts, then fills the order: attributed to A
    acc = e.on_send_result(c, True, 200, "", "hash1")
    assert of(acc, OrderAccepted)[0].strategy == "A" and of(acc, OrderAccepted)[0].time_in_force == "ioc"
    outs = e.on_venue_trade(parse_trade(1, trade(555, c.client_order_index, "0.00100", "115010.0")))
    f = of(outs, Fill)
    assert [(x.strategy, x.size, x.liquidity, x.venue_trade_id, x.client_order_index) for x in f] == [
        ("A", 0.001, "taker", "555", c.client_order_index)]
    assert f[0].fee == pytest.approx(0.001 * 115010.0 * 196 / 1e6)
    snap = of(outs, PositionSnapshot)[0]
    assert snap.position == pytest.approx(0.002) and snap.account_position == pytest.approx(0.001)
    assert snap.avg_entry_price == pytest.approx((115000.5 + 115010.0) / 2)
    assert e.in_flight("A", "BTC") == 0.0
    # the order update that shows it filled is terminal without an event
    assert e.on_venue_order(parse_order(1, {"client_order_index": c.client_order_index, "status": "filled",
                                "remaining_base_amount": "0.00000"})) == []
    # nothing left to do: same targets again -> no order
    assert e.on_events([target("A", 0.002, 3), target("B", -0.001, 4)]) == []
    assert e.take_commands() == []


def test_fifo_attribution_of_a_partial_fill_across_two_strategies():
    e = make()
    e.on_event(bbo())
    e.on_events([target("A", 0.001, 1), target("B", 0.002, 2)])
    (c,) = e.take_commands()
    assert c.size == 300 and c.side == "buy"
    e.on_send_result(c, True)
    # one venue trade of 0.0015: A (first intent) gets 0.001, B gets 0.0005
    outs = e.on_venue_trade(parse_trade(1, trade(700, c.client_order_index, "0.00150", "115001.0", maker=False)))
    fills = of(outs, Fill)
    assert [(f.strategy, f.size, f.venue_trade_id) for f in fills] == [("A", 0.001, "700"), ("B", 0.0005, "700")]
    assert len({f.fill_id for f in fills}) == 2
    assert sum(f.fee for f in fills) == pytest.approx(0.0015 * 115001.0 * 196 / 1e6)
    # the IOC remainder is canceled by the venue -> OrderCanceled, in-flight released
    outs = e.on_venue_order(parse_order(1, {"client_order_index": c.client_order_index, "status": "canceled-not-enough-liquidity",
                                "remaining_base_amount": "0.00150"}))
    (oc,) = of(outs, OrderCanceled)
    assert oc.remaining == 0.0015 and oc.reason == "canceled-not-enough-liquidity" and oc.strategy == "A,B"
    assert e.in_flight("B", "BTC") == 0.0
    # a duplicate trade report is ignored
    assert e.on_venue_trade(parse_trade(1, trade(700, c.client_order_index, "0.00150", "115001.0"))) == []
    # the next intent retries B's missing 0.0015
    e.on_event(target("B", 0.002, 3))
    (c2,) = e.take_commands()
    assert c2.size == 150 and c2.client_order_index == c.client_order_index + 1


def test_risk_clip_at_max_position():
    e = make()
    e.on_event(bbo())
    outs = e.on_event(target("A", 0.05, 1))  # max_position BTC 0.01
    (rej,) = of(outs, OrderRejected)
    assert rej.code == 0 and "max_position 0.01 BTC" in rej.reason and rej.size == pytest.approx(0.04)
    (c,) = e.take_commands()
    assert c.size == 1000  # 0.01 BTC


def test_max_notional_clip():
    e = make(max_notional_usd={"BTC": 500.0})
    e.on_event(bbo())
    outs = e.on_event(target("A", 0.01, 1))
    (rej,) = of(outs, OrderRejected)
    assert "max_notional_usd 500 USD" in rej.reason
    (c,) = e.take_commands()
    assert c.size == 434  # floor(500 / 115001 / 1e-5)


def test_below_minimum_is_refused_locally_with_a_clear_reason():
    e = make()
    e.on_event(bbo())
    outs = e.on_event(target("A", 0.0001, 1))  # BTC min_base_amount 0.0002
    (rej,) = of(outs, OrderRejected)
    assert rej.code == 1 and rej.client_order_index == 0  # unreachable: nothing in flight, not clipped
    assert "min_base_amount 0.0002" in rej.reason and "refused locally (unreachable" in rej.reason
    assert e.take_commands() == []


def test_sub_minimum_remainder_of_a_partly_filled_entry_is_unreachable_code_1():
    e = make()
    e.on_event(bbo())
    e.on_event(target("A", 0.001, 1))
    (c,) = e.take_commands()
    e.on_send_result(c, True)
    e.on_venue_trade(parse_trade(1, trade(1, c.client_order_index, "0.00095", "115001.0")))
    e.on_venue_order(parse_order(1, {"client_order_index": c.client_order_index, "status": "canceled",
                         "remaining_base_amount": "0.00005"}))
    outs = e.on_event(target("A", 0.001, 2))  # the strategy's retry: 0.00005 BTC left < 0.0002
    (rej,) = of(outs, OrderRejected)
    assert (rej.code, rej.strategy, rej.side, rej.size) == (1, "A", "buy", pytest.approx(0.00005))
    assert "unreachable: below the market minimum" in rej.reason and "min_base_amount" in rej.reason
    assert e.take_commands() == []


def test_sub_minimum_remainder_with_an_order_in_flight_stays_code_0():
    e = make()
    e.on_event(bbo())
    e.on_event(target("A", 0.001, 1))
    (c,) = e.take_commands()
    e.on_send_result(c, True)  # the IOC is in flight: if it ends unfilled the remainder grows
    (rej,) = of(e.on_event(target("A", 0.00105, 2)), OrderRejected)
    assert rej.code == 0 and rej.reason.startswith("refused locally: ")
    assert e.take_commands() == []


def test_sub_minimum_after_a_clip_stays_code_0():
    e = make(max_position={"BTC": 0.00021})
    e.on_event(bbo())
    e.on_venue_position(parse_position(1, {"market_id": 1, "sign": 1, "position": "0.00010"}))
    outs = e.on_event(target("A", 0.001, 1))  # clipped to 0.00011, which is below the minimum
    assert [r.code for r in of(outs, OrderRejected)] == [0, 0]
    assert e.take_commands() == []


def test_no_market_data_refuses():
    e = make()
    (rej,) = of(e.on_event(target("A", 0.001, 1)), OrderRejected)
    assert "no market data" in rej.reason
    assert e.take_commands() == []


def test_kill_switch_halts_and_cancels_all():
    e = make()
    e.on_event(bbo())
    outs = e.on_event(Control(id="k1", ts_event=T0 + 5, source="op", command="kill", reason="test"))
    (rs,) = of(outs, RiskState)
    assert rs.state == "halted" and "kill" in rs.reason
    cmds = e.take_commands()
    assert [c.kind for c in cmds] == ["cancel_all"]
    outs = e.on_event(target("A", 0.002, 6))
    (rej,) = of(outs, OrderRejected)
    assert "halted" in rej.reason
    assert e.take_commands() == []
    # resume * lifts the kill switch
    outs = e.on_event(Control(id="r1", ts_event=T0 + 7, source="op", command="resume"))
    assert of(outs, RiskState)[0].state == "running"


def test_kill_forgets_standing_targets_so_resume_trades_nothing_until_asked_again():
    e = make()
    e.on_event(bbo())
    e.on_event(Control(id="k1", ts_event=T0 + 5, source="op", command="kill", reason="test"))
    e.take_commands()
    e.on_event(target("A", 0.002, 6))  # refused while halted, but it was recorded before the fix
    e.on_event(Control(id="r1", ts_event=T0 + 7, source="op", command="resume"))
    # another strategy's target rebalances the market: A's pre-resume target must not trade
    outs = e.on_event(target("B", 0.001, 8))
    cmds = e.take_commands()
    assert [(c.kind, c.side, c.size) for c in cmds] == [("create", "buy", 100)]  # B's 0.001 BTC only
    assert not of(outs, OrderRejected)
    # A asks again after the resume: now it trades
    e.on_event(target("A", 0.002, 9))
    assert [(c.kind, c.size) for c in e.take_commands()] == [("create", 200)]


def test_reducing_only_shrinks():
    e = make()
    e.on_event(bbo())
    e.on_venue_position(parse_position(1, {"market_id": 1, "sign": 1, "position": "0.02000"}))  # over max 0.01
    assert e.state == "reducing"
    outs = e.on_event(target("A", 0.001, 1))
    assert "reducing" in of(outs, OrderRejected)[0].reason
    assert e.take_commands() == []
    outs = e.on_event(target("B", -0.005, 2))
    # A's standing +0.001 crosses internally with B; the remaining 0.004 is a reduce-only sell
    assert [(f.strategy, f.liquidity) for f in of(outs, Fill)] == [("A", "internal"), ("B", "internal")]
    (c,) = e.take_commands()
    assert c.side == "sell" and c.reduce_only and c.size == 400


def test_pause_ignores_intents_and_flatten_targets_zero():
    e = make()
    e.on_event(bbo())
    e.on_event(Control(id="p1", ts_event=T0 + 1, source="op", command="pause", target="A"))
    assert e.on_event(target("A", 0.002, 2)) == [] and e.take_commands() == []
    e.on_event(Control(id="p2", ts_event=T0 + 3, source="op", command="resume", target="A"))
    e.on_event(target("A", 0.002, 4))
    (c,) = e.take_commands()
    e.on_send_result(c, True)
    e.on_venue_trade(parse_trade(1, trade(1, c.client_order_index, "0.00200", "115001.0")))
    e.on_venue_order(parse_order(1, {"client_order_index": c.client_order_index, "status": "filled"}))
    outs = e.on_event(Control(id="f1", ts_event=T0 + 5, source="op", command="flatten", target="*"))
    assert of(outs, RiskState)[0].state == "reducing"
    (c2,) = e.take_commands()
    assert c2.side == "sell" and c2.size == 200 and c2.reduce_only


def test_quotes_place_keep_replace_and_cancel():
    e = make()
    e.on_event(bbo())
    q = QuoteIntent(id="q1", ts_event=T0 + 1, source="mm", strategy="mm", market="BTC", bid_px=114990.0,
                    bid_sz=0.001, ask_px=115010.0, ask_sz=0.001)
    e.on_event(q)
    cmds = e.take_commands()
    assert [(c.kind, c.side, c.tif, c.order_expiry, c.price) for c in cmds] == [
        ("create", "buy", "post_only", -1, 1149900), ("create", "sell", "post_only", -1, 1150100)]
    for c in cmds:
        e.on_send_result(c, True)
    # same quote -> nothing; new bid price -> cancel old bid + new bid; ask unchanged
    e.on_event(QuoteIntent(id="q2", ts_event=T0 + 2, source="mm", strategy="mm", market="BTC", bid_px=114990.0,
                           bid_sz=0.001, ask_px=115010.0, ask_sz=0.001))
    assert e.take_commands() == []
    e.on_event(QuoteIntent(id="q3", ts_event=T0 + 3, source="mm", strategy="mm", market="BTC", bid_px=114995.0,
                           bid_sz=0.001, ask_px=115010.0, ask_sz=0.001))
    cmds2 = e.take_commands()
    assert [(c.kind, c.side) for c in cmds2] == [("cancel", "buy"), ("create", "buy")]
    assert cmds2[0].order_index == cmds[0].client_order_index
    # maker fill on the ask -> attributed to mm as maker
    outs = e.on_venue_trade(parse_trade(1, trade(9, cmds[1].client_order_index, "0.00100", "115010.0", side="sell", maker=True)))
    (f,) = of(outs, Fill)
    assert (f.strategy, f.side, f.liquidity) == ("mm", "sell", "maker")
    assert f.fee == pytest.approx(0.001 * 115010.0 * 28 / 1e6)
    e.on_event(CancelIntent(id="c1", ts_event=T0 + 4, source="mm", strategy="mm", market="BTC"))
    kinds = [(c.kind, c.side) for c in e.take_commands()]
    assert ("cancel", "buy") in kinds


def test_venue_reject_and_unknown_order_fill():
    e = make()
    e.on_event(bbo())
    e.on_event(target("A", 0.002, 1))
    (c,) = e.take_commands()
    outs = e.on_send_result(c, False, 21739, "not enough margin")
    (rej,) = of(outs, OrderRejected)
    assert rej.code == 21739 and rej.client_order_index == c.client_order_index
    assert e.in_flight("A", "BTC") == 0.0
    # a fill of an order we do not know goes to the unattributed strategy
    (f,) = of(e.on_venue_trade(parse_trade(1, trade(42, 77, "0.00100", "115000.0"))), Fill)
    assert f.strategy == "_unattributed"


def _run_scenario() -> list[bytes]:
    e = make()
    out = e.on_event(bbo())
    out += e.on_events([target("A", 0.002, 1), target("B", -0.001, 2), target("C", 0.0005, 3)])
    cmds: list[OrderCommand] = e.take_commands()
    for c in cmds:
        out += e.on_send_result(c, True, 200, "", "h")
        out += e.on_venue_trade(parse_trade(1, trade(1000 + c.client_order_index, c.client_order_index, "0.00100", "115001.0")))
        out += e.on_venue_order(parse_order(1, {"client_order_index": c.client_order_index, "status": "canceled",
                                    "remaining_base_amount": "0.00050"}))
    return [encode(x) for x in out]


def test_deterministic_outputs():
    a, b = _run_scenario(), _run_scenario()
    assert a == b and len(a) > 5
    ids = [x for x in a]
    assert len(set(ids)) == len(ids)


def test_restore_from_exec_history():
    e = make()
    e.on_event(bbo())
    hist = e.on_events([target("A", 0.002, 1), target("B", -0.001, 2)])
    (c,) = e.take_commands()
    hist += e.on_send_result(c, True)
    hist += e.on_venue_trade(parse_trade(1, trade(555, c.client_order_index, "0.00100", "115010.0")))
    e2 = Engine(ExecutorConfig(), {"BTC": BTC, "ETH": ETH}, ACCT, next_client_order_index=1, reconciled=False)
    e2.restore(hist)
    assert e2.position("A", "BTC") == pytest.approx(0.002) and e2.position("B", "BTC") == pytest.approx(-0.001)
    assert e2.next_coi == c.client_order_index + 1
    assert e2.on_venue_trade(parse_trade(1, trade(555, c.client_order_index, "0.00100", "115010.0"))) == []
    assert e2.state == "halted"
    outs = e2.set_reconciled(True)
    assert of(outs, RiskState)[0].state == "running"


def test_dust_left_by_a_partial_fill_is_closed_reduce_only_at_the_minimum_size():
    """An entry IOC that only partly fills can leave a position below the market minimum. Its exit
    must still trade: reduce-only at the minimum size, which the venue clamps to the position."""
    e = make()
    e.on_event(bbo(0, bid=4510.0, ask=4510.5, market="ETH"))
    e.on_event(target("A", 0.005, 1, market="ETH"))
    (c,) = e.take_commands()
    e.on_send_result(c, True)
    e.on_venue_trade(parse_trade(0, trade(800, c.client_order_index, "0.0014", "4510.50", market_id=0)))
    e.on_venue_order(parse_order(0, {"client_order_index": c.client_order_index, "status": "canceled",
                         "remaining_base_amount": "0.0036"}))
    e.on_venue_position(parse_position(0, {"market_id": 0, "sign": 1, "position": "0.0014"}))
    outs = e.on_event(target("A", 0.0, 2, market="ETH"))
    assert not of(outs, OrderRejected)
    (close,) = e.take_commands()
    assert (close.side, close.reduce_only, close.size, close.tif) == ("sell", True, 50, "ioc")
    e.on_send_result(close, True)
    assert e.in_flight("A", "ETH") == pytest.approx(-0.0014)  # tracked at the dust, not the wire size
    fills = of(e.on_venue_trade(parse_trade(0, trade(801, close.client_order_index, "0.0014", "4510.00", side="sell",
                                         market_id=0))), Fill)
    assert [(f.strategy, f.side, f.size) for f in fills] == [("A", "sell", 0.0014)]


def test_a_partial_reduction_below_the_minimum_is_still_refused():
    e = make()
    e.on_event(bbo(0, bid=4510.0, ask=4510.5, market="ETH"))
    e.on_events([target("A", 0.01, 1, market="ETH"), target("B", 0.01, 2, market="ETH")])
    (c,) = e.take_commands()
    e.on_send_result(c, True)
    e.on_venue_trade(parse_trade(0, trade(900, c.client_order_index, "0.0200", "4510.50", market_id=0)))
    e.on_venue_position(parse_position(0, {"market_id": 0, "sign": 1, "position": "0.0200"}))
    outs = e.on_event(target("A", 0.008, 3, market="ETH"))  # sell 0.002 < 0.005 while B stays long
    (rej,) = of(outs, OrderRejected)
    assert "min_base_amount" in rej.reason and e.take_commands() == []


def test_finished_orders_leave_the_live_set_but_late_reports_still_find_them():
    e = make()
    e.on_event(bbo())
    for i in range(1, 6):  # five IOC round trips, each filled completely
        e.on_event(target("A", 0.001 if i % 2 else 0.0, i))
        (c,) = e.take_commands()
        e.on_send_result(c, True)
        side = "buy" if i % 2 else "sell"
        e.on_venue_trade(parse_trade(1, trade(1000 + i, c.client_order_index, "0.00100", "115001.0", side=side)))
        e.on_venue_order(parse_order(1, {"client_order_index": c.client_order_index, "status": "filled",
                             "remaining_base_amount": "0"}))
    assert e.orders == {} and len(e.done_orders) == 5
    # a late duplicate report of a finished order changes nothing
    assert e.on_venue_order(parse_order(1, {"client_order_index": c.client_order_index, "status": "canceled",
                                "remaining_base_amount": "0"})) == []
    assert e.on_venue_trade(parse_trade(1, trade(1005, c.client_order_index, "0.00100", "115001.0", side="buy"))) == []


def test_flatten_all_also_closes_the_account_position_no_strategy_holds():
    """A position the account held before start-up (reconciled, attributed to no strategy) is
    closed by ``flatten *`` together with the strategies' positions: the account ends flat."""
    from shared.venue.reports import VenuePosition

    e = make()
    e.on_event(bbo())
    e.on_event(target("A", 0.002, 1))
    (c,) = e.take_commands()
    e.on_send_result(c, True)
    e.on_venue_trade(parse_trade(1, trade(1, c.client_order_index, "0.00200", "115001.0")))
    e.on_venue_order(parse_order(1, {"client_order_index": c.client_order_index, "status": "filled"}))
    # the venue says the account holds 0.005: 0.003 more than strategy A's virtual 0.002
    e.on_venue_position(VenuePosition(market_id=1, position=0.005))
    outs = e.on_event(Control(id="f1", ts_event=T0 + 5, source="op", command="flatten", target="*"))
    assert of(outs, RiskState)[0].state == "reducing"
    (c2,) = e.take_commands()
    assert (c2.side, c2.size, c2.reduce_only) == ("sell", 500, True)  # the whole account: 0.005 BTC
    assert e.position("_unattributed", "BTC") == pytest.approx(0.003)
    e.on_send_result(c2, True)
    e.on_venue_trade(parse_trade(1, trade(2, c2.client_order_index, "0.00500", "115000.0", side="sell")))
    assert e.position("A", "BTC") == 0.0 and e.position("_unattributed", "BTC") == 0.0


def test_flatten_of_one_strategy_leaves_the_unattributed_position():
    from shared.venue.reports import VenuePosition

    e = make()
    e.on_event(bbo())
    e.on_venue_position(VenuePosition(market_id=1, position=0.003))
    e.on_event(Control(id="f1", ts_event=T0 + 5, source="op", command="flatten", target="A"))
    assert e.take_commands() == [] and e.position("_unattributed", "BTC") == 0.0


def test_flatten_all_adopts_nothing_while_an_ioc_is_unfilled():
    """A position report ahead of the trade report of our own IOC is not taken for a position
    no strategy holds."""
    from shared.venue.reports import VenuePosition

    e = make()
    e.on_event(bbo())
    e.on_event(target("A", 0.002, 1))
    (c,) = e.take_commands()
    e.on_send_result(c, True)
    e.on_venue_position(VenuePosition(market_id=1, position=0.002))  # the IOC filled; its trade not yet seen
    e.on_event(Control(id="f1", ts_event=T0 + 5, source="op", command="flatten", target="*"))
    assert e.position("_unattributed", "BTC") == 0.0
