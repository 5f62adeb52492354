"""lighter-stack record / replay: the commands against a real Redis, pacing, the new-namespace
guard, --only, --to-recording, and a Parquet archive as --data (same events and markets as the
recording it was made from)."""

from __future__ import annotations

import time

import pytest
import redis as redis_sync
from typer.testing import CliRunner

from lighter_stack.archive_tool import Item, archive_items, publish_items, recording_items, recording_key
from lighter_stack.backtest.data import DataError, load_data
from lighter_stack.cli import app
from shared.archive import count_rows, iter_rows, read_meta
from shared.events import Bbo, BookDelta, Control, MarketStats, Trade
from shared.recording import read_recording


@pytest.fixture
def sync_redis(redis_url):
    client = redis_sync.Redis.from_url(redis_url)
    made: list[str] = []
    yield client, made
    for ns in made:
        keys = list(client.scan_iter(match=f"{ns}:*"))
        if keys:
            client.delete(*keys)
    client.close()


def test_recording_keys():
    kw = {"id": "x", "ts_event": 1, "market": "SOL"}
    assert recording_key(Bbo(**kw, bid_px=1, bid_sz=1, ask_px=2, ask_sz=1)) == "md:book:SOL"
    assert recording_key(BookDelta(**kw, bids=[], asks=[], nonce=2, begin_nonce=1)) == "md:book:SOL"
    assert recording_key(Trade(**kw, trade_id="t", price=1, size=1, taker_side="buy")) == "md:trade:SOL"
    assert recording_key(MarketStats(**kw, mark_price=1, index_price=1)) == "md:stats:SOL"
    assert recording_key(Control(id="c", ts_event=1, command="kill")) is None


async def test_paced_publishing_follows_the_recorded_clock(redis_client, namespace):
    items = [Item("control", {b"event": b"{}"}, i * 500_000_000) for i in range(5)]  # 2 s recorded
    t0 = time.monotonic()
    seen: list[int] = []
    assert await publish_items(redis_client, namespace, iter(items), speed=10.0, on_progress=seen.append) == 5
    took = time.monotonic() - t0
    assert 0.18 <= took < 1.5  # 2 s at x10
    assert seen[-1] == 5 and await redis_client.xlen(f"{namespace}:control") == 5


def test_record_then_replay_through_the_cli(sync_redis, redis_url, namespace, recording_path, tmp_path, monkeypatch):
    client, made = sync_redis
    monkeypatch.setenv("REDIS_URL", redis_url)
    made += [namespace, f"{namespace}-b", f"{namespace}-c"]
    cli = CliRunner()
    res = cli.invoke(app, ["replay", str(recording_path), "--namespace", namespace, "--no-progress"])
    assert res.exit_code == 0, res.output
    n = sum(client.xlen(k) for k in client.scan_iter(match=f"{namespace}:md:*"))
    assert n == 1751 and f"into namespace {namespace}" in res.output
    client.xadd(f"{namespace}:dlq", {b"raw": b"junk", b"reason": b"invalid event"})

    out = tmp_path / "arch"
    res = cli.invoke(app, ["record", "--out", str(out), "--namespace", namespace])
    assert res.exit_code == 0, res.output
    assert count_rows(out) == n + 1 and read_meta(out).namespace == namespace
    res = cli.invoke(app, ["record", "--out", str(out), "--namespace", namespace])
    assert "0 new entries in 5 streams" in res.output  # 4 md streams + dlq; nothing twice
    res = cli.invoke(app, ["record", "--out", str(out), "--namespace", f"{namespace}-b"])
    assert res.exit_code == 2 and "archive of namespace" in res.output

    # replay into a fresh namespace; a namespace in use is refused
    res = cli.invoke(app, ["replay", str(out), "--namespace", namespace])
    assert res.exit_code == 2 and "already has keys" in res.output
    res = cli.invoke(app, ["replay", str(out), "--namespace", f"{namespace}-b", "--no-progress"])
    assert res.exit_code == 0, res.output
    for stream in client.scan_iter(match=f"{namespace}:*"):
        twin = stream.decode().replace(namespace, f"{namespace}-b", 1)
        assert [f for _, f in client.xrange(stream)] == [f for _, f in client.xrange(twin)]
    res = cli.invoke(app, ["replay", str(out), "--namespace", f"{namespace}-c", "--only", "md:trade:BTC"])
    assert res.exit_code == 0
    assert [k.decode() for k in client.scan_iter(match=f"{namespace}-c:*")] == [f"{namespace}-c:md:trade:BTC"]

    # --to-recording: what venue-sim replays; --data: the same events as the original recording
    rec = tmp_path / "back.jsonl.gz"
    res = cli.invoke(app, ["replay", str(out), "--to-recording", str(rec)])
    assert res.exit_code == 0 and "1751 market-data events" in res.output
    header, events = read_recording(rec)
    orig_header, orig = read_recording(recording_path)
    assert list(events) == list(orig)
    md = load_data(out)
    assert md.kind == "archive" and md.total == 1751
    assert [m.symbol for m in md.markets] == [m.symbol for m in orig_header.markets]
    assert md.markets == load_data(recording_path).markets
    assert list(md.events()) == list(load_data(recording_path).events())


def test_archive_items_keep_dead_letters(tmp_path, redis_url):
    from shared.archive import make_row, write_meta, write_rows

    write_meta(tmp_path, "ns")
    write_rows(tmp_path, [make_row("ns:dlq", "dlq", "5-0", {b"raw": b"\x00bad", b"reason": b"why"})])
    (item,) = archive_items(tmp_path)
    assert item.key == "dlq" and item.fields == {b"reason": b"why", b"raw": b"\x00bad"} and item.t_ns == 5_000_000
    assert [r.entry_id for r in iter_rows(tmp_path)] == ["5-0"]
    with pytest.raises(DataError, match="no Bbo or Trade"):
        load_data(tmp_path)


def test_time_range_of_an_archive(tmp_path):
    from lighter_stack.archive_tool import parse_time_ms
    from shared.archive import make_row, write_meta, write_rows
    from shared.events import encode

    assert parse_time_ms("2025-09-15") == 1_757_894_400_000
    assert parse_time_ms("2025-09-15T01:00") == 1_757_898_000_000
    assert parse_time_ms("2025-09-15T03:00+02:00") == 1_757_898_000_000
    write_meta(tmp_path / "a", "ns")
    day = 1_757_894_400_000
    write_rows(tmp_path / "a", [
        make_row("ns:md:book:BTC", "md:book:BTC", f"{day + i * 3_600_000}-0", {b"event": encode(
            Bbo(id=f"b{i}", ts_event=i, market="BTC", bid_px=100.0, bid_sz=1, ask_px=100.1, ask_sz=1))})
        for i in range(30)])
    rec = tmp_path / "day.jsonl.gz"
    cli = CliRunner()
    res = cli.invoke(app, ["replay", str(tmp_path / "a"), "--start", "2025-09-15T22:00", "--end", "2025-09-16",
                           "--to-recording", str(rec)])
    assert res.exit_code == 0, res.output
    assert [e.id for e in read_recording(rec)[1]] == ["b22", "b23"]
    res = cli.invoke(app, ["replay", str(tmp_path / "a"), "--start", "yesterday"])
    assert res.exit_code == 2 and "--start/--end" in res.output


def test_replay_errors(tmp_path):
    cli = CliRunner()
    res = cli.invoke(app, ["replay", str(tmp_path)])
    assert res.exit_code == 2 and "not a Parquet archive" in res.output
    res = cli.invoke(app, ["replay", str(tmp_path / "none.jsonl.gz")])
    assert res.exit_code == 2 and "no such recording" in res.output


def test_recording_items_follow_the_recording(recording_path):
    items = list(recording_items(recording_path))
    assert len(items) == 1751 and {i.key for i in items} == {"md:book:BTC", "md:book:ETH", "md:trade:BTC",
                                                             "md:trade:ETH"}
    assert [i.t_ns for i in items] == sorted(i.t_ns for i in items)
