"""shared/archive: rows from stream entries, hour partitions, idempotent merge by entry id, the
bus-order reader, the namespace guard and the market-data view."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from shared.archive import (
    ArchiveError,
    archived_key,
    count_rows,
    iter_rows,
    key_dir,
    key_matcher,
    last_entry_id,
    make_row,
    market_data_events,
    partition_path,
    read_after,
    read_meta,
    stream_names,
    write_meta,
    write_rows,
)
from shared.bus import Bus
from shared.events import Bbo, Control, Trade, encode
from shared.markets import KNOWN_MARKETS

H = 3_600_000
T0_MS = 1_757_894_400_000  # 2025-09-15 00:00:00 UTC


def bbo(i: int, ts: int) -> Bbo:
    return Bbo(id=f"b{i}", ts_event=ts, source="collector", market="BTC", bid_px=100.0 + i, bid_sz=1.0,
               ask_px=101.0 + i, ask_sz=1.0)


def row(key: str, ms: int, seq: int, ev) -> object:
    return make_row(f"ns:{key}", key, f"{ms}-{seq}", {b"event": encode(ev)})


def test_make_row_decodes_the_envelope_and_keeps_the_raw_bytes():
    ev = Trade(id="t1", ts_event=5, ts_recv=7, source="collector", market="ETH", trade_id="x", price=2.0,
               size=1.0, taker_side="buy")
    r = make_row("ns:md:trade:ETH", "md:trade:ETH", b"1700000000000-3", {b"event": encode(ev)})
    assert (r.entry_ms, r.entry_seq, r.type, r.id, r.ts_event, r.ts_recv, r.market, r.strategy) == (
        1_700_000_000_000, 3, "trade", "t1", 5, 7, "ETH", None)
    assert r.raw == encode(ev) and r.event() == ev and r.error is None


def test_make_row_of_a_dead_letter_and_of_a_broken_event():
    dl = make_row("ns:dlq", "dlq", "1-0", {b"raw": b"\xffjunk", b"reason": b"invalid event", b"service": b"x"})
    assert dl.raw == b"\xffjunk" and dl.type is None and dl.error == "no event field"
    assert json.loads(dl.fields) == {"reason": "invalid event", "service": "x"}
    bad = make_row("ns:control", "control", "2-0", {b"event": b'{"type":"nope"}'})
    assert bad.type is None and bad.error and bad.raw == b'{"type":"nope"}'


def test_keys_and_partition_paths(tmp_path):
    assert key_dir("md:book:BTC") == "md.book.BTC" and key_dir("params:a/b") == "params.a_b"
    assert partition_path(tmp_path, "md:book:BTC", T0_MS + 2 * H + 5) == tmp_path / "md.book.BTC" / "2025-09-15" / "02.parquet"
    assert all(archived_key(k) for k in ("md:book:BTC", "intent:1001", "exec:1001", "control", "params:maker", "dlq"))
    assert not any(archived_key(k) for k in ("md", "controls", "ledger:x", "lockstep:1"))


def test_write_is_idempotent_and_merges_by_entry_id(tmp_path):
    write_meta(tmp_path, "ns")
    rows = [row("md:book:BTC", T0_MS + i, 0, bbo(i, i)) for i in range(5)]
    assert write_rows(tmp_path, rows[:3]) == 3
    assert write_rows(tmp_path, rows[1:]) == 2  # two were already there
    assert write_rows(tmp_path, rows) == 0
    f = partition_path(tmp_path, "md:book:BTC", T0_MS)
    t = pq.read_table(f)
    assert t.column("entry_id").to_pylist() == [f"{T0_MS + i}-0" for i in range(5)]
    assert last_entry_id(tmp_path, "md:book:BTC") == f"{T0_MS + 4}-0"
    assert last_entry_id(tmp_path, "md:trade:BTC") is None
    assert count_rows(tmp_path) == 5


def test_rows_split_by_hour_and_read_back_in_bus_order(tmp_path):
    write_meta(tmp_path, "ns")
    book = [row("md:book:BTC", T0_MS + H - 1, 0, bbo(1, 10)), row("md:book:BTC", T0_MS + H, 0, bbo(2, 30))]
    trade = Trade(id="t", ts_event=20, market="BTC", trade_id="1", price=1.0, size=1.0, taker_side="sell")
    ctl = Control(id="c", ts_event=25, command="pause", target="grid")
    write_rows(tmp_path, [*book, row("md:trade:BTC", T0_MS + H - 1, 0, trade), row("control", T0_MS + H, 1, ctl)])
    assert (tmp_path / "md.book.BTC" / "2025-09-15" / "00.parquet").is_file()
    assert (tmp_path / "md.book.BTC" / "2025-09-15" / "01.parquet").is_file()
    got = [(r.key, r.id) for r in iter_rows(tmp_path)]
    # same ms: by ts_event; each stream keeps its own order
    assert got == [("md:book:BTC", "b1"), ("md:trade:BTC", "t"), ("control", "c"), ("md:book:BTC", "b2")]
    assert [r.id for r in iter_rows(tmp_path, key_matcher(["md:trade", "control"]))] == ["t", "c"]
    assert [e.id for e in market_data_events(tmp_path)] == ["b1", "t", "b2"]
    # entry-time ranges [start, end): whole hour files are skipped, boundary rows filtered
    assert [r.id for r in iter_rows(tmp_path, start_ms=T0_MS + H)] == ["c", "b2"]
    assert [r.id for r in iter_rows(tmp_path, end_ms=T0_MS + H)] == ["b1", "t"]
    assert [e.id for e in market_data_events(tmp_path, start_ms=T0_MS + H - 1, end_ms=T0_MS + H)] == ["b1", "t"]
    assert last_entry_id(tmp_path, "md:book:BTC") == f"{T0_MS + H}-0"


def test_meta_refuses_another_namespace_and_merges_markets(tmp_path):
    write_meta(tmp_path, "paper", [KNOWN_MARKETS["BTC"]])
    meta = write_meta(tmp_path, "paper", [KNOWN_MARKETS["ETH"]])
    assert [m.symbol for m in meta.markets] == ["BTC", "ETH"] == [m.symbol for m in read_meta(tmp_path).markets]
    with pytest.raises(ArchiveError, match="namespace 'paper'"):
        write_meta(tmp_path, "live")
    with pytest.raises(ArchiveError, match="not an archive"):
        read_meta(tmp_path / "nowhere")
    with pytest.raises(ArchiveError):
        list(iter_rows(tmp_path / "nowhere"))


async def test_stream_names_and_read_after(redis_client, namespace):
    bus = Bus(redis_client, namespace)
    ids = await bus.publish(bus.streams.book("BTC"), [bbo(i, i) for i in range(3)])
    await bus.publish(bus.streams.control, [Control(id="c", ts_event=1, command="kill")])
    await redis_client.xadd(f"{namespace}:lockstep:x", {b"a": b"1"})  # not archived
    await redis_client.set(f"{namespace}:md:book:ETH-not-a-stream", b"1")
    assert await stream_names(redis_client, namespace) == [f"{namespace}:control", f"{namespace}:md:book:BTC"]
    rows = await read_after(redis_client, namespace, bus.streams.book("BTC"), ids[0])
    assert [r.entry_id for r in rows] == ids[1:] and rows[0].key == "md:book:BTC"
    assert len(await read_after(redis_client, namespace, bus.streams.book("BTC"), None)) == 3
