"""Parsing real Lighter WS payloads (samples + the real market_stats capture) and the frame engine."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from shared.events import MarketStats, Trade, decode, encode
from shared.lighter_ws.engine import FeedEngine
from shared.lighter_ws.parse import (
    FrameError,
    decode_frame,
    parse_market_stats,
    parse_order_book,
    parse_trades,
    split_channel,
)
from shared.markets import KNOWN_MARKETS

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
SAMPLES = FIXTURES / "lighter-samples"
CAPTURE = FIXTURES / "lighter_ws_market_stats_2025-11-01" / "ws_raw.jsonl"


def sample(name: str) -> dict:
    return json.loads((SAMPLES / name).read_text())


def engine() -> FeedEngine:
    return FeedEngine(KNOWN_MARKETS.values(), "test")


def test_split_channel():
    assert split_channel({"channel": "order_book:0"}) == ("order_book", "0")
    assert split_channel({"channel": "market_stats:all"}) == ("market_stats", "all")
    assert split_channel({"channel": "height"}) == ("height", "")
    assert split_channel({"type": "update/trade"}) == ("trade", "")


def test_parse_trade_sample():
    msg = sample("ws_trade_update.json")
    [t] = parse_trades(msg, "ETH", ts_recv=99)
    assert isinstance(t, Trade)
    assert (t.market, t.trade_id, t.price, t.size) == ("ETH", "16164557907", 2181.83, 0.1336)
    assert t.taker_side == "sell"  # is_maker_ask false: the maker bought, the taker sold
    assert t.ts_event == 1773854156654 * 1_000_000 and t.ts_recv == 99
    assert t.source == "collector"
    assert decode(encode(t)) == t
    # is_maker_ask true -> taker bought; transaction_time (µs) when there is no timestamp
    tr = msg["trades"][0]
    tr.update(is_maker_ask=True, trade_id=1, trade_id_str="1")
    del tr["timestamp"]
    [t2] = parse_trades(msg, "ETH", 0)
    assert t2.taker_side == "buy" and t2.ts_event == 1773854156686065 * 1000 and t2.trade_id == "1"
    # ids stable by (symbol, trade_id); a trade in both lists is taken once
    msg["liquidation_trades"] = [copy.deepcopy(tr)]
    assert [x.id for x in parse_trades(msg, "ETH", 5)] == [t2.id]


@pytest.mark.parametrize(("mutate", "reason"), [
    (lambda t: t.update(price="abc"), "price 'abc' is not a number"),
    (lambda t: t.update(size="0.0000"), "size '0.0000' out of range"),
    (lambda t: t.pop("is_maker_ask"), "is_maker_ask"),
    (lambda t: [t.pop("trade_id"), t.pop("trade_id_str")], "no trade_id"),
    (lambda t: [t.pop("timestamp"), t.pop("transaction_time")], "neither timestamp nor transaction_time"),
])
def test_bad_trade_rejected_with_reason(mutate, reason):
    msg = sample("ws_trade_update.json")
    mutate(msg["trades"][0])
    with pytest.raises(FrameError, match=reason):
        parse_trades(msg, "ETH", 0)


def test_parse_market_stats_sample():
    [s] = parse_market_stats(sample("ws_market_stats_update.json"), {0: "ETH", 1: "BTC"}, ts_recv=1)
    assert isinstance(s, MarketStats)
    assert (s.market, s.mark_price, s.index_price, s.last_trade_price) == ("ETH", 2064.47, 2064.48, 2064.5)
    assert s.funding_rate == 0.000001 and s.open_interest == 27250.8411
    assert s.ts_event == 1774883844933 * 1_000_000


def test_parse_real_capture_market_stats_all():
    real = sample("ws_real_capture_market_stats_height.json")
    symbols = {0: "ETH", 1: "BTC"}
    sub = parse_market_stats(real["subscribed/market_stats"], symbols, ts_recv=123)
    assert [s.market for s in sub] == ["ETH", "BTC"]
    btc = sub[1]
    assert (btc.mark_price, btc.index_price, btc.last_trade_price) == (110210.9, 110234.6, 110216.2)
    assert btc.open_interest == 310448348.447627 and btc.funding_rate == 0.0012
    assert btc.ts_event == 123  # market_stats:all frames carry no timestamp -> receive time
    upd = parse_market_stats(real["update/market_stats"], symbols, ts_recv=124)
    assert [s.market for s in upd] == ["BTC"]
    # only configured markets are kept
    assert parse_market_stats(real["subscribed/market_stats"], {1: "BTC"}, 0)[0].market == "BTC"
    # same content -> same id on replay, whatever the receive time
    again = parse_market_stats(real["update/market_stats"], symbols, ts_recv=999)
    assert again[0].id == upd[0].id


def test_real_capture_file_through_engine():
    """The first 300 lines of the real capture: nothing crashes, stats come out for BTC/ETH,
    the non-native wrapper lines are dead-lettered, height frames are ignored."""
    e = engine()
    kinds: dict[str, int] = {}
    stats = 0
    dead = []
    with CAPTURE.open() as f:
        for i, line in enumerate(f):
            if i >= 300:
                break
            out = e.on_frame(line.rstrip("\n"), ts_recv=i)
            kinds[out.kind] = kinds.get(out.kind, 0) + 1
            stats += sum(isinstance(ev, MarketStats) for _, ev in out.routed)
            if out.dead_letter:
                dead.append(out.dead_letter)
            assert all(stream.startswith("test:md:stats:") for stream, _ in out.routed)
    assert kinds.get("connected", 0) >= 1 and kinds.get("market_stats", 0) > 100
    assert kinds.get("other", 0) > 0  # height
    assert stats > 0
    assert all("no type" in d for d in dead)


def test_wrapper_line_is_dead_lettered():
    with CAPTURE.open() as f:
        wrapper = next(line for line in f if line.startswith('{"ts"'))
    out = engine().on_frame(wrapper, 0)
    assert out.kind == "invalid" and out.dead_letter == "frame has no type" and out.routed == []


@pytest.mark.parametrize(("raw", "reason"), [
    (b"{not json", "invalid JSON"),
    (b"[1, 2]", "JSON list, expected an object"),
    (b'{"channel": "order_book:0", "type": "update/order_book", "order_book": {"bids": [{"price": "x", "size": "1"}],'
     b' "asks": [], "nonce": 5, "begin_nonce": 4}}', "bids[0].price 'x' is not a number"),
    (b'{"channel": "order_book:0", "type": "update/order_book", "order_book": {"bids": [], "asks": []}}',
     "neither nonce nor offset"),
    (b'{"channel": "order_book:7", "type": "subscribed/order_book", "order_book": {"bids": [], "asks": [], "nonce": 1}}',
     "market 7 is not collected"),
    (b'{"channel": "trade:0", "type": "update/trade"}', "without a trades list"),
    (b'{"channel": "market_stats:0", "type": "update/market_stats", "market_stats": {"market_id": 0}}',
     "lacks mark_price"),
])
def test_malformed_frames_give_reasons(raw, reason):
    out = engine().on_frame(raw, 0)
    assert out.kind == "invalid" and out.routed == []
    assert reason in out.dead_letter


def test_control_frames():
    e = engine()
    ctl = sample("ws_control_frames.json")
    assert e.on_frame(json.dumps(ctl["server_ping"]), 0).send == [{"type": "pong"}]
    assert e.on_frame(json.dumps(ctl["connected"]), 0).kind == "connected"
    assert e.on_frame(json.dumps(ctl["unsubscribed"]), 0).kind == "unsubscribed"
    assert e.on_frame(json.dumps(ctl["error_subscribe_failed_constructed"]), 0).kind == "error"
    assert e.on_frame(json.dumps(ctl["error_nested_form"]), 0).kind == "error"
    assert e.on_frame(json.dumps(sample("ws_height_update.json")), 0).kind == "other"
    assert e.subscriptions()[:3] == [{"type": "subscribe", "channel": "order_book/0"},
                                     {"type": "subscribe", "channel": "trade/0"},
                                     {"type": "subscribe", "channel": "market_stats/0"}]


def test_engine_routes_and_dedups_trades():
    e = engine()
    raw = (SAMPLES / "ws_trade_update.json").read_text()
    out = e.on_frame(raw, 0)
    assert [s for s, _ in out.routed] == ["test:md:trade:ETH"]
    assert e.on_frame(raw, 1).routed == []  # resent on resubscribe: published once


def test_engine_gap_sends_unsubscribe_then_subscribe():
    e = engine()
    e.on_frame((SAMPLES / "ws_order_book_subscribed.json").read_text(), 0)
    out = e.on_frame((SAMPLES / "ws_order_book_update.json").read_text(), 0)
    assert out.gap and out.routed == []
    assert out.send == [{"type": "unsubscribe", "channel": "order_book/0"},
                        {"type": "subscribe", "channel": "order_book/0"}]


def test_decode_frame_and_order_book_time_fallbacks():
    assert decode_frame(b'{"type": "ping"}') == {"type": "ping"}
    msg = sample("ws_order_book_subscribed.json")
    for d in (msg, msg["order_book"]):
        d.pop("last_updated_at")
    assert parse_order_book(msg, 1).ts_event == 1778138582602 * 1_000_000
    msg.pop("timestamp")
    assert parse_order_book(msg, 42).ts_event == 42
