"""Book builder on real Lighter sample payloads: snapshot, deltas, deletes, nonce gap, recovery."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from shared.events import Bbo, BookDelta, BookSnapshot
from shared.lighter_ws.book import BookBuilder, Status
from shared.lighter_ws.parse import parse_order_book

SAMPLES = Path(__file__).resolve().parents[2] / "fixtures" / "lighter-samples"


def sample(name: str) -> dict:
    return json.loads((SAMPLES / name).read_text())


@pytest.fixture
def snapshot() -> dict:
    return sample("ws_order_book_subscribed.json")


def delta(begin: int, nonce: int, bids=(), asks=(), ts_us: int = 1778138389700000) -> dict:
    """An update/order_book frame shaped like the real sample, with our levels and nonces."""
    msg = copy.deepcopy(sample("ws_order_book_update.json"))
    ob = msg["order_book"]
    ob["bids"] = [{"price": p, "size": s} for p, s in bids]
    ob["asks"] = [{"price": p, "size": s} for p, s in asks]
    ob["begin_nonce"], ob["nonce"] = begin, nonce
    ob["last_updated_at"] = msg["last_updated_at"] = ts_us
    return msg


def test_snapshot_builds_book_and_bbo(snapshot):
    b = BookBuilder("ETH")
    res = b.apply(parse_order_book(snapshot, ts_recv=5), ts_recv=5)
    assert res.status is Status.SNAPSHOT and not res.resubscribe
    snap, bbo = res.events
    assert isinstance(snap, BookSnapshot) and isinstance(bbo, Bbo)
    assert snap.market == "ETH" and snap.nonce == 904845
    assert snap.asks == [(2325.0, 99.0), (2341.25, 340.1028)]
    assert snap.bids == [(2000.0, 0.02)]
    assert snap.ts_event == 1778138389655150 * 1000  # last_updated_at, µs -> ns
    assert snap.ts_recv == 5 and snap.source == "collector"
    assert (bbo.bid_px, bbo.bid_sz, bbo.ask_px, bbo.ask_sz) == (2000.0, 0.02, 2325.0, 99.0)
    assert b.synced and b.nonce == 904845


def test_contiguous_deltas_replace_and_delete(snapshot):
    b = BookBuilder("ETH")
    b.apply(parse_order_book(snapshot, 0))
    # absolute replacement of the best ask's size -> BookDelta + new Bbo
    r1 = b.apply(parse_order_book(delta(904845, 904850, asks=[("2325.00", "12.5000")]), 0))
    assert r1.status is Status.APPLIED
    d, bbo = r1.events
    assert isinstance(d, BookDelta) and (d.begin_nonce, d.nonce) == (904845, 904850)
    assert d.asks == [(2325.0, 12.5)]
    assert bbo.ask_sz == 12.5
    # a deeper level changes: BookDelta only (top unchanged -> no Bbo)
    r2 = b.apply(parse_order_book(delta(904850, 904851, asks=[("2400.00", "1.0000")]), 0))
    assert [type(e) for e in r2.events] == [BookDelta]
    # size 0 deletes the best ask: the next level becomes the top
    r3 = b.apply(parse_order_book(delta(904851, 904852, asks=[("2325.00", "0.0000")]), 0))
    assert 2325.0 not in b.asks
    assert r3.events[-1].ask_px == 2341.25 and r3.events[-1].ask_sz == 340.1028
    # deleting a level that does not exist is harmless
    b.apply(parse_order_book(delta(904852, 904853, bids=[("1999.00", "0")]), 0))
    assert b.sorted_bids() == [(2000.0, 0.02)]
    assert b.sorted_asks() == [(2341.25, 340.1028), (2400.0, 1.0)]
    assert b.nonce == 904853 and b.gaps == 0


def test_injected_nonce_gap_resubscribe_then_recovery(snapshot):
    b = BookBuilder("ETH")
    b.apply(parse_order_book(snapshot, 0))
    b.apply(parse_order_book(delta(904845, 904846, bids=[("2001.00", "1.0000")]), 0))
    # the real update sample: its begin_nonce (9182389998) is not our last nonce -> gap
    gap = b.apply(parse_order_book(sample("ws_order_book_update.json"), 0))
    assert gap.status is Status.GAP and gap.resubscribe and gap.events == []
    assert (gap.expected_nonce, gap.got_begin_nonce) == (904846, 9182389998)
    assert not b.synced and b.bids == {} and b.asks == {} and b.gaps == 1
    # deltas before the new snapshot are ignored, and no second resubscribe is asked for
    ign = b.apply(parse_order_book(delta(9182390020, 9182390021, asks=[("2064.60", "1.0")]), 0))
    assert ign.status is Status.IGNORED and not ign.resubscribe and ign.events == []
    # new snapshot -> book rebuilt, deltas continue from its nonce
    snap2 = copy.deepcopy(snapshot)
    snap2["order_book"]["nonce"] = 9182391000
    rec = b.apply(parse_order_book(snap2, 0))
    assert rec.status is Status.SNAPSHOT and isinstance(rec.events[-1], Bbo)
    ok = b.apply(parse_order_book(delta(9182391000, 9182391005, bids=[("2100.00", "2.0000")]), 0))
    assert ok.status is Status.APPLIED and ok.events[-1].bid_px == 2100.0
    assert b.synced and b.nonce == 9182391005


def test_update_before_first_snapshot_is_ignored():
    b = BookBuilder("ETH")
    res = b.apply(parse_order_book(sample("ws_order_book_update.json"), 0))
    assert res.status is Status.IGNORED and not res.resubscribe


def test_older_frame_without_begin_nonce_is_applied_unchecked(snapshot):
    b = BookBuilder("ETH")
    b.apply(parse_order_book(snapshot, 0))
    old = sample("ws_order_book_update_older_no_nonce.json")
    bm = parse_order_book(old, ts_recv=7)
    assert bm.begin_nonce is None and bm.nonce == 3107818665
    assert bm.ts_event == 1763448665923 * 1_000_000  # no last_updated_at: timestamp (ms)
    res = b.apply(bm, 7)
    assert res.status is Status.UNCHECKED and res.unchecked and not res.resubscribe
    d = res.events[0]
    assert isinstance(d, BookDelta) and d.begin_nonce == 904845 and d.nonce == 3107818665
    assert b.asks[2979.64] == 61.9487 and 2979.36 not in b.bids


def test_event_ids_are_stable(snapshot):
    a, b = BookBuilder("ETH"), BookBuilder("ETH")
    ea = a.apply(parse_order_book(snapshot, 1), 1).events
    eb = b.apply(parse_order_book(snapshot, 2), 2).events
    assert [e.id for e in ea] == [e.id for e in eb]
    assert len({e.id for e in ea}) == len(ea)
