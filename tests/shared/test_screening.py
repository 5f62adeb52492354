"""Input screening (shared/screening.py): each kind of well-typed nonsense gets its reason, good
inputs pass, the price band follows real moves (confirmed) but never a lone bad top, and the
table of which events belong on which stream is the documented one."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict

from shared.config import ScreeningConfig, StackConfig, check_sections
from shared.events import (
    EVENT_TYPES,
    Bbo,
    BookDelta,
    BookSnapshot,
    CancelIntent,
    Control,
    Fill,
    ModelParams,
    OrderAccepted,
    QuoteIntent,
    RestingOrders,
    StopLossIntent,
    TargetPosition,
    Trade,
)
from shared.screening import STREAM_EVENTS, Screener, stream_kind

NS = "paper"
S = 1_000_000_000
T0 = 1_757_973_376 * S
WALL = T0 / 1e9 + 3600.0  # the consumer's wall clock: an hour after the data
BOOK, TRADE, INTENT, EXEC = f"{NS}:md:book:BTC", f"{NS}:md:trade:BTC", f"{NS}:intent:1001", f"{NS}:exec:1001"
DOCS = Path(__file__).resolve().parents[2] / "docs"


def screener(**kw) -> Screener:
    return Screener(NS, ScreeningConfig(**kw.pop("cfg", {})), wall=lambda: WALL, **kw)


def bbo(bid: float, ask: float, t: float = 0.0, market: str = "BTC", i: int = 0, **kw) -> Bbo:
    fields = {"id": f"b{i}-{t}-{bid}", "ts_event": T0 + int(t * S), "bid_sz": 1.0, "ask_sz": 1.0, **kw}
    return Bbo(market=market, bid_px=bid, ask_px=ask, **fields)


def target(strategy: str = "trend", tgt: float = 0.001, market: str = "BTC", **kw) -> TargetPosition:
    return TargetPosition(id="tp", ts_event=kw.pop("ts_event", T0), strategy=strategy, market=market, target=tgt, **kw)


def reason(s: Screener, ev, stream: str) -> str:
    why = s.reason(ev, stream)
    assert why is not None, f"{ev} passed"
    return why


def test_stream_kinds():
    assert stream_kind(NS, BOOK) == ("book", "BTC")
    assert stream_kind(NS, f"{NS}:md:trade:ETH") == ("trade", "ETH")
    assert stream_kind(NS, f"{NS}:md:stats:SOL") == ("stats", "SOL")
    assert stream_kind(NS, INTENT) == ("intent", "1001")
    assert stream_kind(NS, EXEC) == ("exec", "1001")
    assert stream_kind(NS, f"{NS}:params:maker") == ("params", "maker")
    assert stream_kind(NS, f"{NS}:control") == ("control", "")
    for other in (f"{NS}:dlq", f"{NS}:md:book:", f"{NS}:md:depth:BTC", "live:md:book:BTC", "t:in", f"{NS}:exec"):
        assert stream_kind(NS, other) is None


def test_stream_table_is_the_documented_one():
    """docs/internals.md "Streams" names the event classes of each stream; STREAM_EVENTS is that table."""
    text = (DOCS / "internals.md").read_text()
    table = text[text.index("## Streams"):]
    kinds = {"md:book": "book", "md:trade": "trade", "md:stats": "stats", "intent": "intent", "exec": "exec",
             "params": "params", "control": "control"}
    classes = {cls.__name__ for cls in EVENT_TYPES.values()}
    seen = {}
    for line in table.splitlines():
        m = re.match(r"\| `\{ns\}:([a-z:]+?)(?::\{[A-Za-z]+\})?` \|[^|]*\|(.*)\|$", line)
        if m and m.group(1) in kinds:
            seen[kinds[m.group(1)]] = {n for n in re.findall(r"`([A-Za-z]+)`", m.group(2)) if n in classes}
    assert seen == {k: {c.__name__ for c in v} for k, v in STREAM_EVENTS.items()}


def test_every_event_type_belongs_on_exactly_one_stream_kind():
    """A new event type must be given its stream here, or every consumer dead-letters it."""
    kinds = [cls for classes in STREAM_EVENTS.values() for cls in classes]
    assert sorted(c.__name__ for c in kinds) == sorted(c.__name__ for c in EVENT_TYPES.values())


def test_good_inputs_pass():
    s = screener(strategies={"trend", "maker"}, known_markets_only=True)
    good = [
        (bbo(115_000.0, 115_000.1), BOOK),
        (BookSnapshot(id="s1", ts_event=T0, market="BTC", bids=[(115_000.0, 1.0), (114_999.0, 2.0)],
                      asks=[(115_000.1, 1.0)], nonce=5), BOOK),
        (BookDelta(id="d1", ts_event=T0, market="BTC", bids=[(114_990.0, 0.0)], asks=[], nonce=6, begin_nonce=5),
         BOOK),
        (Trade(id="tr", ts_event=T0, market="BTC", trade_id="1", price=115_010.0, size=0.01, taker_side="buy"), TRADE),
        (target("trend", -0.002), INTENT),
        (QuoteIntent(id="q", ts_event=T0, strategy="maker", market="BTC", bid_px=114_990.0, bid_sz=0.0002,
                     ask_px=None, ask_sz=0.0), INTENT),
        (RestingOrders(id="r", ts_event=T0, strategy="maker", market="ETH", orders=[("buy", 4_000.0, 0.005)]), INTENT),
        (StopLossIntent(id="sl", ts_event=T0, strategy="trend", market="BTC", side="sell", trigger_price=0.0,
                        size=0.0), INTENT),  # size 0 only cancels: no trigger needed
        (CancelIntent(id="c", ts_event=T0, strategy="maker", market=None), INTENT),
        (Fill(id="f", ts_event=T0, fill_id="f1", strategy="A,B", market="BTC", side="sell", price=115_000.0,
              size=0.0002), EXEC),
        (Control(id="k", ts_event=T0, command="pause", target="nobody"), f"{NS}:control"),
        (ModelParams(id="p", ts_event=T0, strategy="maker", market="BTC", sigma=1.0, A=1.0, k=0.01, gamma=0.1,
                     tick_size=0.1, mid=115_000.0, interval_s=1.0, window_start=T0 - S, window_end=T0),
         f"{NS}:params:maker"),
        (bbo(1.0, 1.1, market="X"), "t:in"),  # a stream of no known kind: no stream/market match check
    ]
    for ev, stream in good:
        assert s.reason(ev, stream) is None, ev


@pytest.mark.parametrize(("ev", "stream", "expect"), [
    # the entries
    (bbo(1.0, 1e12), BOOK, "bad-price: ask_px 1000000000000.0 is above BTC's largest price"),
    (bbo(1.0, 1e8), BOOK, "wide-spread: BTC bid 1.0 ask 100000000.0"),
    (bbo(4_000.0, 4_000.5, market="ETH"), BOOK, "wrong-market: a bbo of 'ETH' on paper:md:book:BTC"),
    (bbo(115_000.0, 115_000.1, bid_sz=-1.0), BOOK, "bad-size: bid_sz -1.0 is negative"),
    (bbo(115_000.0, 115_000.1, ask_sz=1e12), BOOK, "bad-size: ask_sz 1000000000000.0 is beyond BTC's largest order"),
    (target("ghost"), INTENT, "unknown-strategy: 'ghost' is not a strategy of the config (known: maker, trend)"),
    (Fill(id="f", ts_event=T0, fill_id="f1", strategy="trend", market="BTC", side="buy", price=1.0, size=1.0), INTENT,
     "wrong-stream: a fill event does not belong on paper:intent:1001 (it takes target_position, quote, "
     "resting_orders, stop_loss, cancel)"),
    (target(tgt=1e12), INTENT, "bad-size: target 1000000000000.0 is beyond BTC's largest order"),
    (target(tgt=-1e12), INTENT, "bad-size: target -1000000000000.0 is beyond BTC's largest order"),
    (QuoteIntent(id="q", ts_event=T0, strategy="maker", market="BTC", bid_px=100.0, bid_sz=-0.1), INTENT,
     "bad-size: bid_sz -0.1 is negative"),
    (RestingOrders(id="r", ts_event=T0, strategy="maker", market="BTC", orders=[("buy", -5.0, 0.1)]), INTENT,
     "bad-price: orders[0] price -5.0 is not positive"),
    (StopLossIntent(id="sl", ts_event=T0, strategy="trend", market="BTC", side="sell", trigger_price=0.0,
                    size=0.001), INTENT, "bad-price: trigger_price 0.0 is not positive"),
    (target(market="DOGE"), INTENT, "unknown-market: 'DOGE' (known: BTC, ETH)"),
    (CancelIntent(id="c", ts_event=T0, strategy="ghost"), INTENT, "unknown-strategy: 'ghost'"),
    # the rest of the table
    (bbo(115_000.1, 115_000.0), BOOK, "crossed-book: BTC bid 115000.1 >= ask 115000.0"),
    (bbo(115_000.0, 115_000.0), BOOK, "crossed-book: BTC bid 115000.0 >= ask 115000.0"),
    (bbo(0.0, 115_000.0), BOOK, "bad-price: bid_px 0.0 is not positive"),
    (bbo(0.01, 0.02), BOOK, "bad-price: bid_px 0.01 is below one tick (0.1) of BTC"),
    (bbo(115_000.0, float("nan")), BOOK, "bad-number: ask_px nan is not finite"),
    (bbo(115_000.0, 115_000.1, ts_event=-5), BOOK, "bad-time: ts_event -5 is not positive"),
    (bbo(115_000.0, 115_000.1, ts_event=2**70), BOOK, "bad-number: ts_event 1180591620717411303424 is outside int64"),
    (bbo(115_000.0, 115_000.1, ts_event=int((WALL + 3600) * S)), BOOK, "bad-time: ts_event"),
    (bbo(115_000.0, 115_000.1, id=""), BOOK, "bad-envelope: empty id"),
    (bbo(115_000.0, 115_000.1, schema_version=2), BOOK, "bad-envelope: schema_version 2 (this code reads 1)"),
    (BookSnapshot(id="s", ts_event=T0, market="BTC", bids=[(1.0, 1.0), (2.0, 1.0)], asks=[], nonce=1), BOOK,
     "crossed-book: BTC snapshot bids are not best (highest) first"),
    (BookSnapshot(id="s", ts_event=T0, market="BTC", bids=[(115_000.0, 0.0)], asks=[], nonce=1), BOOK,
     "bad-size: bids[0] size 0.0 is not positive"),
    (BookDelta(id="d", ts_event=T0, market="BTC", bids=[], asks=[(115_000.0, -1.0)], nonce=2, begin_nonce=1), BOOK,
     "bad-size: asks[0] size -1.0 is negative"),
    (Trade(id="t", ts_event=T0, market="BTC", trade_id="1", price=115_000.0, size=0.0, taker_side="buy"), TRADE,
     "bad-size: size 0.0 is not positive"),
    (Trade(id="t", ts_event=T0, market="BTC", trade_id="1", price=115_000.0, size=1.0, taker_side="buy"), BOOK,
     "wrong-stream: a trade event does not belong on paper:md:book:BTC"),
    (Fill(id="f", ts_event=T0, fill_id="f1", strategy="trend", market="BTC", side="buy", price=115_000.0,
          size=-0.1), EXEC, "invalid fill: size must be a finite number > 0, got -0.1"),
    (Fill(id="f", ts_event=T0, fill_id="f1", strategy="trend", market="BTC", side="buy", price=115_000.0,
          size=1e12), EXEC, "bad-size: size 1000000000000.0 is beyond BTC's largest order"),
    (OrderAccepted(id="oa", ts_event=T0, strategy="trend", market="BTC", client_order_index=1, side="buy",
                   price=115_000.0, size=-1.0), EXEC, "bad-size: size -1.0 is negative"),
    (target(), EXEC, "wrong-stream: a target_position event does not belong on paper:exec:1001"),
    (bbo(115_000.0, 115_000.1), f"{NS}:control", "wrong-stream: a bbo event does not belong on paper:control"),
    (ModelParams(id="p", ts_event=T0, strategy="other", market="BTC", sigma=1.0, A=1.0, k=0.01, gamma=0.1,
                 tick_size=0.1, mid=1.0, interval_s=1.0, window_start=0, window_end=1), f"{NS}:params:maker",
     "wrong-market: ModelParams of strategy 'other' on paper:params:maker"),
    (ModelParams(id="p", ts_event=T0, strategy="maker", market="BTC", sigma=0.0, A=1.0, k=0.01, gamma=0.1,
                 tick_size=0.1, mid=1.0, interval_s=1.0, window_start=0, window_end=1), f"{NS}:params:maker",
     "bad-params: ok params of BTC with sigma not > 0"),
])
def test_each_bad_entry_gets_its_reason(ev, stream, expect):
    s = screener(strategies={"trend", "maker"}, known_markets_only=True)
    assert reason(s, ev, stream).startswith(expect)


def test_price_band_rejects_a_lone_bad_top_and_believes_a_confirmed_move():
    s = screener(cfg={"max_jump_pct": 20, "confirm_s": 10, "confirm_count": 3})
    assert s.reason(bbo(100_000.0, 100_000.2, 0), BOOK) is None  # the first top: no reference, sane
    assert s.reason(bbo(101_000.0, 101_000.2, 1), BOOK) is None  # 1 %: a move, the reference follows
    assert s.mids["BTC"] == pytest.approx(101_000.1)
    why = reason(s, bbo(130_000.0, 130_000.2, 2), BOOK)  # a lone 29 % jump
    assert why.startswith("price-band: BTC mid 130000.1 is 28.7% from the last good mid 101000.1 (max_jump_pct 20")
    assert s.reason(bbo(101_100.0, 101_100.2, 3), BOOK) is None  # back to normal: the glitch is forgotten
    # a trade far from the mid: dead-lettered, the reference is the book's
    tr = Trade(id="tr", ts_event=T0 + 4 * S, market="BTC", trade_id="9", price=50_000.0, size=0.01, taker_side="sell")
    assert reason(s, tr, TRADE).startswith("price-band: BTC trade price 50000 is 50.5% from the last good mid")
    # a real crash to 60 %: tops keep coming at the new level; believed after 10 s and 3 tops
    assert s.reason(bbo(60_000.0, 60_000.2, 10), BOOK) is not None
    assert s.reason(bbo(60_500.0, 60_500.2, 15), BOOK) is not None  # 2 tops, 5 s
    assert s.reason(bbo(60_400.0, 60_400.2, 18), BOOK) is not None  # 3 tops, 8 s
    assert s.reason(bbo(60_300.0, 60_300.2, 20.5), BOOK) is None  # 4 tops over 10.5 s: the new level
    assert s.mids["BTC"] == pytest.approx(60_300.1) and s.reanchored == 1
    assert s.reason(bbo(60_200.0, 60_200.2, 21), BOOK) is None
    # bad tops that disagree with each other never build a level
    for k, mid in enumerate([1_000.0, 500_000.0, 2_000.0, 300_000.0, 900.0, 450_000.0]):
        assert s.reason(bbo(mid, mid + 0.2, 30 + 5 * k), BOOK) is not None
    assert s.mids["BTC"] == pytest.approx(60_200.1)


def test_markets_are_independent_and_the_first_top_needs_a_sane_spread():
    s = screener()
    assert s.reason(bbo(100_000.0, 100_000.2), BOOK) is None
    assert s.reason(bbo(4_000.0, 4_000.1, market="ETH"), f"{NS}:md:book:ETH") is None
    assert s.mids == {"BTC": pytest.approx(100_000.1), "ETH": pytest.approx(4_000.05)}
    # SOL: not a known market (no tick limits); its first top is judged by the spread alone
    assert reason(s, bbo(100.0, 200.0, market="SOL"), f"{NS}:md:book:SOL").startswith("wide-spread")
    assert s.reason(bbo(150.0, 150.1, market="SOL"), f"{NS}:md:book:SOL") is None


def test_restore_reads_use_passes_and_count():
    s = screener(strategies={"trend"})
    assert s.passes(target(), INTENT) and not s.passes(target("x"), INTENT)
    assert s.rejected == 1


def test_strategy_names_from_the_config():
    assert StackConfig().strategy_names() is None  # nothing names a strategy: no check
    cfg = StackConfig(services={"strategy-trend": {"strategy": "trend2"}, "executor": {}})
    assert cfg.strategy_names() == {"trend2"}


    class Section(BaseModel):
        model_config = ConfigDict(extra="forbid")
        strategy: str = "dflt"

    class Other(BaseModel):
        model_config = ConfigDict(extra="forbid")
        strategy_like: str = "no"

    cfg = StackConfig(services={"a": {"strategy": "mine"}},
                      screening={"extra_strategies": ["bot"]})
    check_sections(cfg, {"a": Section, "b": Section, "c": Other})
    assert cfg.strategy_names() == {"mine", "dflt", "bot"}  # b is absent: its default counts
    cfg = StackConfig(screening={"strategies": ["only"], "extra_strategies": ["bot"]})
    assert cfg.strategy_names() == {"only", "bot"}
