"""Executor: fills missed while the executor was down or disconnected (``fill_recovery.py``) become
exactly one ``Fill`` per venue trade side -- attributed to the strategy of a restored order, or
unattributed with a reason -- and the account position is compared with the strategies' sum
(``position_check.py``: ``PositionMismatch``). The runner's trade-history reader
(``recovery.py``) pages the venue's ``GET trades`` back to the last known fill."""

from __future__ import annotations

import logging

import pytest
from executor_kit import ACCT, BTC, MS, T0, S, lighter_trade, make_engine, of

from services.executor.config import ExecutorConfig
from services.executor.engine import Engine
from services.executor.recovery import read_trade_history
from services.executor.venue import parse_order, parse_trade
from shared.events import Bbo, Event, Fill, PositionMismatch, PositionSnapshot, QuoteIntent, TargetPosition
from shared.venue.reports import VenuePosition, VenueTrade

BID_COI, ASK_COI = 100, 101  # make_engine allocates from 100: the quote's bid, then its ask


def bbo(t: int) -> Bbo:
    return Bbo(id=f"bbo-{t}", ts_event=t, source="collector", market="BTC", bid_px=115000.0, bid_sz=1.0,
               ask_px=115001.0, ask_sz=1.0)


def trade(trade_id: int, coi: int, size: str, price: str, t_s: float, side: str = "buy",
          maker: bool = True) -> VenueTrade:
    """A BTC trade of the account's order ``coi`` at ``T0 + t_s`` seconds (ms resolution)."""
    t = parse_trade(1, lighter_trade(trade_id, coi, size, price, side=side, maker=maker,
                                     timestamp_ms=(T0 + int(t_s * S)) // MS))
    assert t is not None
    return t


def position(pos: float) -> VenuePosition:
    return VenuePosition(market_id=1, position=pos)


def first_run() -> tuple[Engine, list[Event]]:
    """The run before the kill: the maker quotes 0.0004 a side (both accepted); the bid fills
    0.0002 live at T0 + 1 s. Returns the engine and its exec stream."""
    e = make_engine(markets=(BTC,))
    hist: list[Event] = []
    hist += e.on_event(bbo(T0))
    hist += e.on_event(QuoteIntent(id="q1", ts_event=T0 + MS, source="maker", strategy="maker", market="BTC",
                                   bid_px=114000.0, bid_sz=0.0004, ask_px=116000.0, ask_sz=0.0004))
    cmds = e.take_commands()
    assert [c.client_order_index for c in cmds] == [BID_COI, ASK_COI]
    for c in cmds:
        hist += e.on_send_result(c, True, 200, "", "h")
    hist += e.on_venue_trade(trade(1, BID_COI, "0.00020", "114000.0", 1))
    return e, hist


# what happened on the venue while the executor was down: the rest of the bid, the whole ask in
# two trades, and another bot's order on the account
WHILE_DOWN = [
    trade(2, BID_COI, "0.00020", "114000.0", 5),
    trade(3, ASK_COI, "0.00010", "116000.0", 6, side="sell"),
    trade(4, ASK_COI, "0.00030", "116000.0", 7, side="sell"),
    trade(5, 424242, "0.00010", "115001.0", 8, maker=False),
]
# the account's trades before the executor's first order (e.g. a position opened and closed by hand)
BEFORE = [trade(90, 7, "0.00010", "110000.0", -60), trade(91, 8, "0.00010", "110000.0", -50, side="sell")]


def restarted(hist: list[Event]) -> Engine:
    e = Engine(ExecutorConfig(), {"BTC": BTC}, ACCT, next_client_order_index=500, reconciled=False)
    e.restore(hist)
    return e


def test_trades_made_while_down_become_exactly_one_fill_each_as_if_seen_live():
    old, hist = first_run()
    new = restarted(hist)
    assert new.position("maker", "BTC") == pytest.approx(0.0002)
    assert new.recovery_since_ns() == T0 + S  # the newest venue fill on the exec stream
    # the venue's position already holds the missed trades: 0.0004 - 0.0004 + 0.0001
    outs = new.on_venue_position(position(0.0001))
    history = [*BEFORE, trade(1, BID_COI, "0.00020", "114000.0", 1), *WHILE_DOWN]
    for t in history:  # the REST trade history (oldest first)
        outs += new.on_missed_trade(t)
    for t in WHILE_DOWN:  # ... and the trade feed's first snapshot repeats them
        outs += new.on_missed_trade(t)
    outs += new.set_reconciled(True, ts_ns=T0 + 10 * S)
    fills = of(outs, Fill)
    assert [(f.venue_trade_id, f.strategy, f.side, f.size, f.liquidity) for f in fills] == [
        ("2", "maker", "buy", 0.0002, "maker"), ("3", "maker", "sell", 0.0001, "maker"),
        ("4", "maker", "sell", 0.0003, "maker"), ("5", "_unattributed", "buy", 0.0001, "taker")]
    assert [f.client_order_index for f in fills] == [BID_COI, ASK_COI, ASK_COI, 424242]
    assert fills[3].reason == ("recovered after a restart; unattributed: client order index 424242 is not an order "
                               "of this executor")
    assert new.position("maker", "BTC") == 0.0 and new.position("_unattributed", "BTC") == pytest.approx(0.0001)
    assert new.account_pos["BTC"] == pytest.approx(0.0001)  # the venue's, not moved by the recovered trades
    assert of(outs, PositionMismatch) == []  # the account agrees with the strategies
    assert of(outs, PositionSnapshot)[-1].account_position == pytest.approx(0.0001)
    assert new.recovered_fills == {"attributed": 3, "unattributed": 1, "seen": 2}
    # the fills are those a run that was never killed would have made: same ids, sizes, fees
    live = of([e for t in WHILE_DOWN for e in old.on_venue_trade(t)], Fill)
    assert [(f.id, f.fill_id, f.strategy, f.size, f.fee) for f in fills] == [
        (f.id, f.fill_id, f.strategy, f.size, f.fee) for f in live]
    # a live repeat of a recovered trade is ignored
    assert new.on_venue_trade(WHILE_DOWN[0]) == []


def test_a_fresh_executor_does_not_adopt_the_accounts_older_trades():
    e = Engine(ExecutorConfig(), {"BTC": BTC}, ACCT, next_client_order_index=500, reconciled=False)
    e.restore([])
    assert e.recovery_since_ns() is None  # nothing of ours: no trade history to read
    assert [x for t in BEFORE for x in e.on_missed_trade(t)] == []
    assert ("90", "buy") in e.seen_trades and e.recovered_fills["seen"] == 2


def test_unknown_orders_before_the_first_known_order_are_history_after_it_the_accounts():
    old, hist = first_run()
    hist = [h for h in hist if not isinstance(h, Fill | PositionSnapshot)]  # no fill yet: only the orders
    e = restarted(hist)
    assert e.recovery_since_ns() == T0 + MS  # the quote's orders: nothing of ours traded before
    outs = e.on_missed_trade(trade(80, 31, "0.00010", "115000.0", -1))  # before our first order
    outs += e.on_missed_trade(trade(81, 31, "0.00010", "115000.0", 2))
    assert [(f.venue_trade_id, f.strategy) for f in of(outs, Fill)] == [("81", "_unattributed")]


def test_a_live_fill_of_an_unknown_order_says_why_it_is_unattributed():
    e = make_engine(markets=(BTC,))
    (f,) = of(e.on_venue_trade(trade(9, 4242, "0.00010", "115000.0", 1)), Fill)
    assert (f.strategy, f.reason) == ("_unattributed", "unattributed: client order index 4242 is not an order of "
                                                       "this executor")
    t = parse_trade(1, {**lighter_trade(10, 0, "0.00010", "115000.0"), "bid_client_id": 0})
    (g,) = of(e.on_venue_trade(t), Fill)
    assert g.reason == "unattributed: the venue trade names no client order index"


def test_a_trade_missed_while_the_feed_was_disconnected_comes_with_the_next_snapshot():
    e, _hist = first_run()
    e.on_venue_position(position(0.0002))
    # disconnected: trade 2 is not reported live; the reconnect's snapshot has 1 and 2, then positions
    outs = e.on_missed_trade(trade(1, BID_COI, "0.00020", "114000.0", 1))
    outs += e.on_missed_trade(WHILE_DOWN[0])
    assert [(f.venue_trade_id, f.size) for f in of(outs, Fill)] == [("2", 0.0002)]
    assert e.account_pos["BTC"] == pytest.approx(0.0002)  # left to the position report
    outs += e.on_venue_position(position(0.0004))
    assert of(outs, PositionMismatch) == [] and e.position("maker", "BTC") == pytest.approx(0.0004)


# ---------------------------------------------------------------------------- position check


def test_a_difference_is_reported_when_it_appears_changes_and_goes():
    e = make_engine(markets=(BTC,))
    assert e.on_venue_position(position(0.0)) == []
    e.on_venue_trade(trade(1, 4242, "0.00020", "115000.0", 1))  # unattributed: the sum follows the account
    assert of(e.on_venue_position(position(0.0002)), PositionMismatch) == []
    (m,) = of(e.on_venue_position(position(0.0005)), PositionMismatch)  # 0.0003 nobody's
    assert (m.market, m.mismatch, m.account_position, m.strategies_position) == ("BTC", True, 0.0005, 0.0002)
    assert m.difference == pytest.approx(0.0003) and m.positions == {"_unattributed": 0.0002}
    assert "+0.0003 BTC not attributed" in m.reason
    assert of(e.on_venue_position(position(0.0005)), PositionMismatch) == []  # unchanged: said once
    assert e.position_mismatch() == {"BTC": 0.0003}
    (m2,) = of(e.on_venue_position(position(0.0001)), PositionMismatch)
    assert m2.mismatch and m2.difference == pytest.approx(-0.0001)
    assert of(e.on_venue_position(position(0.0002 + 4e-6)), PositionMismatch)[0].mismatch is False  # < half a lot
    assert e.position_mismatch() == {} and e.position_mismatches == 2


def test_no_check_before_reconciliation_and_none_while_an_ioc_is_in_flight():
    e = Engine(ExecutorConfig(), {"BTC": BTC}, ACCT, next_client_order_index=500, reconciled=False)
    assert e.on_venue_position(position(0.001)) == []  # not reconciled: the venue's state is not read yet
    (m,) = of(e.set_reconciled(True, ts_ns=T0), PositionMismatch)
    assert m.mismatch and m.difference == 0.001 and m.ts_event == T0
    e2 = make_engine(markets=(BTC,))
    e2.on_event(bbo(T0))
    e2.on_event(TargetPosition(id="t", ts_event=T0 + 1, source="A", strategy="A", market="BTC", target=0.0002))
    (ioc,) = e2.take_commands()
    e2.on_send_result(ioc, True)
    # the position report is ahead of the IOC's trade report: not a mismatch
    assert of(e2.on_venue_position(position(0.0002)), PositionMismatch) == []
    e2.on_venue_trade(trade(3, ioc.client_order_index, "0.00020", "115001.0", 2, maker=False))
    e2.on_venue_order(parse_order(1, {"client_order_index": ioc.client_order_index, "status": "filled",
                                      "remaining_base_amount": "0"}))
    e2.on_venue_position(position(0.0002))
    assert e2.check_positions() == [] and e2.position("A", "BTC") == pytest.approx(0.0002)
    e2.account_pos["BTC"] = 0.0006  # e.g. a trade the feed never reported
    (m3,) = of(e2.check_positions(), PositionMismatch)
    assert m3.difference == pytest.approx(0.0004)


def test_the_engines_outputs_are_deterministic():
    def run() -> list[tuple[str, str]]:
        _old, hist = first_run()
        e = restarted(hist)
        outs = e.on_venue_position(position(0.0009))
        for t in WHILE_DOWN:
            outs += e.on_missed_trade(t)
        outs += e.set_reconciled(True, ts_ns=T0 + 10 * S)
        return [(type(o).__name__, o.id) for o in outs]
    assert run() == run() and ("PositionMismatch", run()[-1][1]) == run()[-1]


# ---------------------------------------------------------------------------- REST trade history


class _Rest:
    """``account_trades`` over a list of Lighter trades (newest first pages, cursor = offset)."""

    def __init__(self, trades: list[dict]) -> None:
        self.rows = sorted(trades, key=lambda t: (t["timestamp"], t["trade_id"]), reverse=True)
        self.calls: list[str] = []

    async def account_trades(self, account: int, auth: str, limit: int, cursor: str) -> tuple[list[dict], str]:
        assert (account, auth) == (ACCT, "tok")
        self.calls.append(cursor)
        start = int(cursor or 0)
        nxt = str(start + limit) if start + limit < len(self.rows) else ""
        return self.rows[start:start + limit], nxt


def _rows(n: int, t0_ms: int) -> list[dict]:
    return [lighter_trade(1000 + i, 7, "0.00010", "115000.0", timestamp_ms=t0_ms + i * 1000) for i in range(n)]


async def test_the_history_is_read_back_to_the_last_known_fill_oldest_first():
    t0_ms = T0 // MS
    rest = _Rest(_rows(250, t0_ms))
    since = T0 + 120 * S  # trades 120..249 are newer: two pages reach back past it
    got = await read_trade_history(rest, ACCT, "tok", since)
    assert rest.calls == ["", "100"]
    assert [t.trade_id for t in got] == [str(1000 + i) for i in range(50, 250)]  # both pages, oldest first
    assert all(a.ts_ns <= b.ts_ns for a, b in zip(got, got[1:], strict=False))


async def test_the_history_stops_at_the_last_page_or_after_max_pages(caplog):
    rest = _Rest(_rows(30, T0 // MS))
    assert len(await read_trade_history(rest, ACCT, "tok", T0 - S)) == 30 and rest.calls == [""]
    rest = _Rest(_rows(350, T0 // MS))
    with caplog.at_level(logging.WARNING, logger="executor"):
        got = await read_trade_history(rest, ACCT, "tok", T0 - S, max_pages=2)
    assert len(got) == 200 and rest.calls == ["", "100"]
    assert "2 pages read without reaching the last known fill" in caplog.text


async def test_malformed_history_entries_are_skipped_and_logged(caplog):
    rows = _rows(3, T0 // MS)
    rows[1] = {**rows[1], "size": "abc"}
    with caplog.at_level(logging.WARNING, logger="executor"):
        got = await read_trade_history(_Rest(rows), ACCT, "tok", T0 - S)
    assert [t.trade_id for t in got] == ["1000", "1002"] and "skipping malformed trade" in caplog.text
