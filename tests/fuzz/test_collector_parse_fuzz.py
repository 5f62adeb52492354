"""Hostile input for the collector (issue 11, item 3): hypothesis fuzzing of the frame parser
(``shared/lighter_ws/parse.py``), the frame engine and the gap-checked book (``book.py``).

The contract under test:

- ``decode_frame`` / ``parse_order_book`` / ``parse_trades`` / ``parse_market_stats`` raise only
  :class:`FrameError` (with a reason) on any input: arbitrary JSON-ish frames, mutations of the
  real Lighter payloads in ``tests/fixtures/lighter-samples/``, arbitrary bytes;
- ``FeedEngine.on_frame`` never raises, and a frame it cannot use comes back with a short
  dead-letter reason and no events; its catch-all (``collector error: ...``) is never what
  answers, since that would be a parser bug; every event it routes survives ``encode``/``decode``;
- valid frames are all processed (no dead letter, every trade/level/stat published);
- the book never goes silently wrong: against a venue whose updates are dropped, repeated or
  reordered on the way, a synced book always equals the venue's book at the same nonce, and the
  published snapshot/delta chain is contiguous (what a downstream reader folds is the book);
- through the real client and a real Redis: every bad frame is in ``{ns}:dlq`` with its reason,
  every good one's events are on the streams.

Examples are bounded (``max_examples``) so the module runs in seconds: it is in the fast tier.
"""

from __future__ import annotations

import copy
import json
import os
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from byte_mutation import mutate_bytes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.collector.client import CollectorClient
from services.collector.config import CollectorConfig
from shared.bus import Bus, Streams
from shared.events import Bbo, BookDelta, BookSnapshot, MarketStats, Trade, decode, encode
from shared.lighter_ws.book import BookBuilder, Status
from shared.lighter_ws.engine import FeedEngine, FrameOutcome
from shared.lighter_ws.parse import (
    FrameError,
    decode_frame,
    parse_market_stats,
    parse_order_book,
    parse_trades,
)
from shared.markets import KNOWN_MARKETS
from shared.redis_util import async_client

SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "lighter-samples"
CAPTURE = Path(__file__).resolve().parents[1] / "fixtures" / "lighter_ws_market_stats_2025-11-01" / "ws_raw.jsonl"
NS = "fz"
SYMBOLS = {m.market_id: m.symbol for m in KNOWN_MARKETS.values()}
KINDS = {"order_book", "trade", "market_stats", "connected", "ping", "pong", "subscribed", "unsubscribed",
         "error", "shutdown", "other", "invalid"}
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "150"))  # FUZZ_EXAMPLES=2000 for a long run
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
# text with lone surrogates (st.text() leaves them out): a str that is not encodable as UTF-8
TEXT = st.text(max_size=60) | st.lists(st.characters() | st.integers(0xD800, 0xDFFF).map(chr), max_size=60).map("".join)


def _load(name: str) -> Any:
    return json.loads((SAMPLES / name).read_text())


def _real_frames() -> list[dict]:
    """The real frames the collector reads: book snapshot/update (new and old format), trades,
    stats of one market and of ``all``, height, control frames, and a few lines of the capture."""
    frames = [_load(n) for n in ("ws_order_book_subscribed.json", "ws_order_book_update.json",
                                 "ws_order_book_update_older_no_nonce.json", "ws_trade_update.json",
                                 "ws_market_stats_update.json", "ws_height_update.json")]
    frames += [v for k, v in _load("ws_control_frames.json").items() if isinstance(v, dict)]
    frames += [v for k, v in _load("ws_real_capture_market_stats_height.json").items() if isinstance(v, dict)]
    with CAPTURE.open() as f:
        frames += [json.loads(line) for _, line in zip(range(6), f, strict=False)]
    return frames


REAL = _real_frames()


def engine() -> FeedEngine:
    return FeedEngine(KNOWN_MARKETS.values(), NS)


# --- strategies ---------------------------------------------------------------------------------

_leaf = (st.none() | st.booleans() | st.integers() | st.just(10**400) | st.floats()
         | st.text(max_size=12)
         | st.sampled_from(["0", "1", "-1", "--1", "²", "١٢", " 7 ", "1e400", "nan", "-inf", "0.0000", "2064.54",
                            "1_0", "", "order_book:0", "trade:1", "market_stats:all", "update/order_book",
                            "subscribed/order_book", "update/trade", "update/market_stats"]))
_keys = st.text(max_size=8) | st.sampled_from([
    "type", "channel", "order_book", "bids", "asks", "price", "size", "nonce", "begin_nonce", "offset",
    "timestamp", "last_updated_at", "trades", "liquidation_trades", "trade_id", "trade_id_str", "is_maker_ask",
    "transaction_time", "market_stats", "market_id", "mark_price", "index_price", "current_funding_rate",
    "open_interest", "last_trade_price", "error", "0", "1"])
json_ish = st.recursive(_leaf, lambda c: st.lists(c, max_size=4) | st.dictionaries(_keys, c, max_size=5),
                        max_leaves=25)

frame_shaped = st.fixed_dictionaries(
    {"channel": st.sampled_from(["order_book:0", "order_book:1", "order_book:7", "trade:0", "trade:1",
                                 "market_stats:0", "market_stats:all", "order_book:²", "trade:x", "height"])
     | json_ish,
     "type": st.sampled_from(["subscribed/order_book", "update/order_book", "update/trade", "subscribed/trade",
                              "update/market_stats", "subscribed/market_stats", "ping", "connected"]) | json_ish},
    optional={"order_book": json_ish, "trades": json_ish, "liquidation_trades": json_ish,
              "market_stats": json_ish, "timestamp": json_ish, "last_updated_at": json_ish, "offset": json_ish})


def _paths(obj: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, (*prefix, i))
    return out


@st.composite
def mutated_real_frame(draw) -> dict:
    """A real frame with 1-4 structural mutations: a node deleted, replaced by any JSON-ish value,
    or its container emptied."""
    msg = copy.deepcopy(draw(st.sampled_from(REAL)))
    for _ in range(draw(st.integers(1, 4))):
        paths = [p for p in _paths(msg) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = msg
        for k in path[:-1]:
            parent = parent[k]
        op = draw(st.sampled_from(["delete", "replace", "replace", "empty"]))
        if op == "delete":
            del parent[path[-1]]
        elif op == "replace":
            parent[path[-1]] = draw(json_ish)
        else:
            node = parent[path[-1]]
            parent[path[-1]] = type(node)() if isinstance(node, dict | list | str) else None
    return msg


@st.composite
def mutated_real_bytes(draw) -> bytes:
    """The raw text of a real frame, truncated, with bytes flipped, deleted or inserted."""
    return mutate_bytes(draw, json.dumps(draw(st.sampled_from(REAL))).encode(), 5,
                        [b'"', b"{", b"]", b",", b"-", b"9"], max_insert=4)


# --- the contract -------------------------------------------------------------------------------


def check_parsers(msg: Any) -> None:
    """Every parser either answers or raises FrameError with a reason, whatever ``msg`` is."""
    for call in (lambda: parse_order_book(msg, 1), lambda: parse_trades(msg, "ETH", 1),
                 lambda: parse_market_stats(msg, SYMBOLS, 1)):
        try:
            call()
        except FrameError as exc:
            assert str(exc)


def check_outcome(e: FeedEngine, out: FrameOutcome) -> None:
    """What the client relies on: never a crash, a dead letter with a short reason and nothing
    published, or events that are publishable as they are."""
    assert isinstance(out, FrameOutcome) and out.kind in KINDS
    if out.dead_letter is not None:
        assert out.kind == "invalid" and out.routed == [] and not out.gap
        assert out.dead_letter and len(out.dead_letter) < 400, out.dead_letter
        assert not out.dead_letter.startswith("collector error"), out.dead_letter  # the catch-all: a parser bug
        return
    for stream, ev in out.routed:
        assert stream == e.route(ev) and stream.startswith(f"{NS}:md:")
        assert decode(encode(ev)) == ev  # encodable (no NaN, no bad type) and decodes back identical
    for book in e.books.values():
        assert all(p > 0 and s > 0 for p, s in [*book.bids.items(), *book.asks.items()])


def run_frame(e: FeedEngine, raw: bytes | str) -> FrameOutcome:
    out = e.on_frame(raw, 1_700_000_000_000_000_000)
    check_outcome(e, out)
    return out


@FUZZ
@given(frame_shaped)
def test_frame_shaped_junk_never_escapes_the_parsers(msg):
    check_parsers(msg)
    try:
        raw = orjson.dumps(msg)
    except TypeError:  # a Python-only value (int beyond 64 bits): fed to the parsers only
        return
    run_frame(engine(), raw)


@FUZZ
@given(json_ish)
def test_any_json_value_is_a_frame_or_a_dead_letter(value):
    check_parsers(value if isinstance(value, dict) else {"order_book": value, "trades": value,
                                                         "market_stats": value})
    try:
        raw = orjson.dumps(value)
    except TypeError:
        return
    out = run_frame(engine(), raw)
    if not isinstance(value, dict):
        assert out.dead_letter and "expected an object" in out.dead_letter


@FUZZ
@given(mutated_real_frame())
def test_mutated_real_payloads(msg):
    check_parsers(msg)
    try:
        raw = orjson.dumps(msg)
    except TypeError:
        return
    e = engine()
    # a snapshot first, so that mutated updates reach the book's gap check, not only its "not synced" branch
    run_frame(e, (SAMPLES / "ws_order_book_subscribed.json").read_bytes())
    run_frame(e, raw)


@FUZZ
@given(mutated_real_bytes() | st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_mutated_bytes(raw):
    e = engine()
    run_frame(e, (SAMPLES / "ws_order_book_subscribed.json").read_bytes())
    out = run_frame(e, raw)
    try:
        decode_frame(raw)
    except FrameError:
        assert out.dead_letter


@FUZZ
@given(TEXT)
def test_text_frames(text):
    run_frame(engine(), text)
    try:
        decode_frame(text)
    except FrameError as exc:
        assert str(exc)


# --- every good frame is processed --------------------------------------------------------------

_px = st.integers(1, 10**7).map(lambda i: f"{i / 100:.2f}")
_sz = st.integers(1, 10**7).map(lambda i: f"{i / 10000:.4f}")
_ts_ms = st.integers(1_600_000_000_000, 1_900_000_000_000)


@FUZZ
@given(st.sampled_from([0, 1]), st.lists(st.tuples(st.integers(1, 2**62), _px, _sz, st.booleans(), _ts_ms),
                                         min_size=1, max_size=6, unique_by=lambda t: t[0]))
def test_valid_trade_frames_are_all_published(mid, trades):
    msg = _load("ws_trade_update.json")
    msg["channel"] = f"trade:{mid}"
    tmpl = msg["trades"][0]
    msg["trades"] = [{**tmpl, "trade_id": tid, "trade_id_str": str(tid), "price": px, "size": sz,
                      "is_maker_ask": mk, "timestamp": ts} for tid, px, sz, mk, ts in trades]
    out = run_frame(engine(), orjson.dumps(msg))
    assert out.dead_letter is None and out.kind == "trade"
    got = [ev for _, ev in out.routed]
    assert [(t.trade_id, t.price, t.size, t.taker_side, t.ts_event, t.market) for t in got] == [
        (str(tid), float(px), float(sz), "buy" if mk else "sell", ts * 1_000_000, SYMBOLS[mid])
        for tid, px, sz, mk, ts in trades]
    assert all(isinstance(t, Trade) for t in got)


@FUZZ
@given(st.sampled_from([0, 1]), _px, _px, st.floats(-1, 1, allow_nan=False), _sz)
def test_valid_stats_frames_are_all_published(mid, mark, index, funding, oi):
    msg = _load("ws_market_stats_update.json")
    msg["channel"] = f"market_stats:{mid}"
    msg["market_stats"].update(market_id=mid, mark_price=mark, index_price=index,
                               current_funding_rate=repr(funding), open_interest=oi)
    out = run_frame(engine(), orjson.dumps(msg))
    assert out.dead_letter is None
    [(stream, s)] = out.routed
    assert isinstance(s, MarketStats) and stream == f"{NS}:md:stats:{SYMBOLS[mid]}"
    assert (s.mark_price, s.index_price, s.funding_rate, s.open_interest) == (
        float(mark), float(index), funding, float(oi))


# --- the book: a venue whose updates are lost, repeated or reordered -----------------------------

_level_px = st.integers(1000, 1020).map(lambda i: f"{i}.50")  # a small grid: levels collide and get deleted
_level = st.tuples(_level_px, st.sampled_from(["0", "0.0000", "1.2500", "3", "0.0001"]))


def book_frame(mid: int, snapshot: bool, nonce: int, begin: int | None, bids, asks) -> bytes:
    msg = _load("ws_order_book_subscribed.json" if snapshot else "ws_order_book_update.json")
    msg["channel"] = f"order_book:{mid}"
    ob = msg["order_book"]
    ob.update(nonce=nonce, bids=[{"price": p, "size": s} for p, s in bids],
              asks=[{"price": p, "size": s} for p, s in asks])
    if begin is None:
        ob.pop("begin_nonce", None)
    else:
        ob["begin_nonce"] = begin
    return orjson.dumps(msg)


def _fold(book: dict[float, float], levels) -> None:
    for p, s in levels:
        if float(s) > 0:
            book[float(p)] = float(s)
        else:
            book.pop(float(p), None)


@st.composite
def venue_session(draw):
    """A venue's book history (a snapshot then contiguous updates with nonces that skip, as
    Lighter's do) and what the channel delivers: each update dropped, repeated, swapped with the
    next or delivered; a resubscribe snapshot of the venue's current book now and then."""
    n = draw(st.integers(1, 25))
    nonce = draw(st.integers(1, 10**12))
    bids: dict[float, float] = {}
    asks: dict[float, float] = {}
    init_b = draw(st.lists(_level, max_size=5, unique_by=lambda lv: lv[0]))  # a snapshot lists a price once
    init_a = draw(st.lists(_level, max_size=5, unique_by=lambda lv: lv[0]))
    _fold(bids, init_b)
    _fold(asks, init_a)
    truth = {nonce: (dict(bids), dict(asks))}
    delivered: list[tuple[bool, int, int | None, list, list]] = [(True, nonce, 0, init_b, init_a)]
    for _ in range(n):
        begin, nonce = nonce, nonce + draw(st.integers(1, 30))
        ub, ua = draw(st.lists(_level, max_size=4)), draw(st.lists(_level, max_size=4))
        _fold(bids, ub)
        _fold(asks, ua)
        truth[nonce] = (dict(bids), dict(asks))
        upd = (False, nonce, begin, ub, ua)
        fate = draw(st.sampled_from(["deliver"] * 6 + ["drop", "repeat", "swap", "snapshot"]))
        if fate == "drop":
            continue
        if fate == "swap" and delivered and not delivered[-1][0]:
            delivered.insert(len(delivered) - 1, upd)
            continue
        delivered.append(upd)
        if fate == "repeat":
            delivered.append(upd)
        if fate == "snapshot":  # a resubscribe: the venue's book as it is now
            delivered.append((True, nonce, 0, [(f"{p:.2f}", str(s)) for p, s in bids.items()],
                              [(f"{p:.2f}", str(s)) for p, s in asks.items()]))
    return truth, delivered


@settings(max_examples=max(EXAMPLES, 200), deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([0, 1]), venue_session())
def test_book_is_never_silently_wrong(mid, session):
    truth, delivered = session
    e = engine()
    book = e.books[mid]
    folded_b: dict[float, float] = {}  # what a reader of the published stream holds
    folded_a: dict[float, float] = {}
    last_published: int | None = None
    for snapshot, nonce, begin, bids, asks in delivered:
        before = book.nonce
        out = run_frame(e, book_frame(mid, snapshot, nonce, begin, bids, asks))
        assert out.dead_letter is None and out.kind == "order_book"
        if snapshot:
            assert book.synced and book.nonce == nonce
        elif before is None:
            assert out.routed == [] and not book.synced  # ignored until the next snapshot
        elif begin != before:
            assert out.gap and out.routed == [] and not book.synced  # detected, not applied
            assert out.send == [{"type": "unsubscribe", "channel": f"order_book/{mid}"},
                                {"type": "subscribe", "channel": f"order_book/{mid}"}]
        else:
            assert not out.gap and book.nonce == nonce
        for _, ev in out.routed:
            if isinstance(ev, BookSnapshot):
                folded_b, folded_a = dict(ev.bids), dict(ev.asks)
            elif isinstance(ev, BookDelta):
                assert ev.begin_nonce == last_published  # the published chain is contiguous
                _fold(folded_b, ev.bids)
                _fold(folded_a, ev.asks)
            elif isinstance(ev, Bbo):
                assert (ev.bid_px, ev.ask_px) == (max(folded_b), min(folded_a))
            if isinstance(ev, BookSnapshot | BookDelta):
                last_published = ev.nonce
        if book.synced:  # the invariant: a synced book is the venue's book at that nonce
            assert (book.bids, book.asks) == truth[book.nonce]
            assert (folded_b, folded_a) == truth[book.nonce]


@FUZZ
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 50), st.none() | st.integers(0, 50),
                          st.lists(_level, max_size=3), st.lists(_level, max_size=3)), max_size=30))
def test_book_builder_any_nonce_sequence(msgs):
    """Arbitrary nonces (backwards, repeated, missing begin_nonce): each update is applied only on
    a synced book whose nonce is its begin_nonce (or flagged unchecked when it has none); a gap
    always empties the book and asks for one resubscribe."""
    b = BookBuilder("ETH")
    for snap, nonce, begin, bids, asks in msgs:
        before = b.nonce
        res = b.apply(parse_order_book(orjson.loads(book_frame(0, snap, nonce, begin, bids, asks)), 1), 1)
        if snap:
            assert res.status is Status.SNAPSHOT
        elif before is None:
            assert res.status is Status.IGNORED and res.events == [] and not b.synced
        elif begin is None:
            assert res.status is Status.UNCHECKED and res.unchecked and b.nonce == nonce
        elif begin != before:
            assert res.status is Status.GAP and res.resubscribe and res.events == []
            assert not b.synced and b.bids == {} and b.asks == {}
            assert (res.expected_nonce, res.got_begin_nonce) == (before, begin)
        else:
            assert res.status is Status.APPLIED and b.nonce == nonce
        assert res.resubscribe == (res.status is Status.GAP)


# --- through the real client and a real Redis ----------------------------------------------------

good_or_bad = st.one_of(
    st.sampled_from(REAL).map(orjson.dumps),
    mutated_real_frame().map(lambda m: orjson.dumps(m) if _dumpable(m) else b"{bad"),
    mutated_real_bytes(),
)


def _dumpable(m: Any) -> bool:
    try:
        orjson.dumps(m)
    except TypeError:
        return False
    return True


@settings(max_examples=max(EXAMPLES // 10, 15), deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(frames=st.lists(good_or_bad, min_size=1, max_size=12))
async def test_client_dead_letters_every_bad_frame_and_publishes_every_good_one(redis_url, frames):
    ns = f"fz-{uuid.uuid4().hex[:10]}"
    redis = async_client(redis_url)
    try:
        bus = Bus(redis, ns)
        eng = FeedEngine(KNOWN_MARKETS.values(), ns)
        client = CollectorClient("ws://127.0.0.1:1/unused", eng, bus, CollectorConfig())
        expected_dlq: list[tuple[bytes, str]] = []
        expected: dict[str, list] = {}
        for raw in frames:
            out = await client.handle(raw)  # ws=None: replies dropped
            if out.dead_letter is not None:
                expected_dlq.append((raw, out.dead_letter))
            for stream, ev in out.routed:
                expected.setdefault(stream, []).append(ev)
        dlq = await redis.xrange(Streams(ns).dlq)
        assert [(f[b"raw"], f[b"reason"].decode()) for _, f in dlq] == expected_dlq
        assert all(f[b"service"] == b"collector" and f[b"reason"] for _, f in dlq)
        for stream, evs in expected.items():
            got = await bus.read_all(stream)
            assert [d.event for d in got] == evs and all(d.error is None for d in got)
        keys = {k.decode() async for k in redis.scan_iter(match=f"{ns}:md:*")}
        assert keys == set(expected)
        assert client.dead_letters == len(expected_dlq)
        assert client.published == sum(len(v) for v in expected.values())
    finally:
        keys = [k async for k in redis.scan_iter(match=f"{ns}:*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()


def test_dead_letter_reasons_stay_short():
    """A megabyte of junk in a price is quoted cut, not whole, in the reason."""
    msg = _load("ws_trade_update.json")
    msg["trades"][0]["price"] = "x" * 1_000_000
    out = engine().on_frame(orjson.dumps(msg), 0)
    assert out.dead_letter is not None and len(out.dead_letter) < 200 and "..." in out.dead_letter


@pytest.mark.parametrize("key", ["²", "--1", "١", "1¹"])
def test_non_ascii_digits_are_a_frame_error(key):
    """``str.isdigit`` accepts these, ``int`` refuses them: the parser's integers are ASCII."""
    msg = _load("ws_order_book_update.json")
    msg["channel"] = f"order_book:{key}"
    with pytest.raises(FrameError, match="channel market id"):
        parse_order_book(msg, 0)
    msg = _load("ws_order_book_update.json")
    msg["order_book"]["nonce"] = key
    with pytest.raises(FrameError, match="nonce"):
        parse_order_book(msg, 0)
