"""Top-of-book CSV importer on the real bundled Lighter data (2025-09-15, BTC + ETH)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from shared.events import Bbo, Trade
from shared.importers import (
    BUNDLED_CSV_DIR,
    CsvImportError,
    build_bundled_recording,
    import_top_of_book_csv,
    parse_timestamp_ns,
    write_top_of_book_recording,
)
from shared.recording import RecordingError, read_recording

REPO = Path(__file__).resolve().parents[2]
CSV_DIR = REPO / "data" / "lighter_djienne_collector_2025-09-15"


@pytest.fixture(scope="module")
def imported():
    return import_top_of_book_csv(CSV_DIR)


def _data_rows(path: Path) -> list[str]:
    return [ln for ln in path.read_text().splitlines()[1:] if ln.strip()]


def test_bundled_dir_is_the_repo_copy():
    assert BUNDLED_CSV_DIR == CSV_DIR
    assert sorted(p.name for p in CSV_DIR.glob("*.csv")) == [
        "prices_BTC.csv", "prices_ETH.csv", "trades_BTC.csv", "trades_ETH.csv"]


def test_output_sorted_and_header(imported):
    header, events, stats = imported
    keys = [e.ts_event for e in events]
    assert keys == sorted(keys)
    assert [m.symbol for m in header.markets] == ["BTC", "ETH"]
    assert header.market("BTC").market_id == 1 and header.market("ETH").market_id == 0
    assert header.market("BTC").size_decimals == 5 and header.market("ETH").price_decimals == 2
    assert header.depth == "top" and "one level per side" in header.notes
    assert {e.source for e in events} == {"recording"}
    assert len({e.id for e in events}) == len(events)
    assert stats.events == len(events)


def test_row_counts_minus_dropped_duplicates(imported):
    _, events, stats = imported
    for sym in ("BTC", "ETH"):
        prices = len(_data_rows(CSV_DIR / f"prices_{sym}.csv"))
        trades = len(_data_rows(CSV_DIR / f"trades_{sym}.csv"))
        n_bbo = sum(1 for e in events if isinstance(e, Bbo) and e.market == sym)
        n_trade = sum(1 for e in events if isinstance(e, Trade) and e.market == sym)
        assert stats.bbo_rows[sym] == prices
        assert n_bbo == prices - stats.bbo_duplicates_dropped[sym] == stats.bbo_events[sym]
        assert n_trade == trades == stats.trade_rows[sym]
        assert stats.bbo_duplicates_dropped[sym] > 0
    assert stats.bbo_rows == {"BTC": 17974, "ETH": 17361}
    assert stats.trade_rows == {"BTC": 456, "ETH": 448}


def test_no_consecutive_duplicate_bbo_per_market(imported):
    _, events, _ = imported
    last: dict[str, tuple] = {}
    for e in events:
        if isinstance(e, Bbo):
            top = (e.bid_px, e.bid_sz, e.ask_px, e.ask_sz)
            assert last.get(e.market) != top
            last[e.market] = top


def test_both_sessions_present(imported):
    _, events, stats = imported
    # rows with market_id (first session) and without (second session) both imported
    for sym in ("BTC", "ETH"):
        assert 0 < stats.bbo_rows_with_market_id[sym] < stats.bbo_rows[sym]
        assert len(stats.segments[f"prices_{sym}.csv"]) == 2
        assert len(stats.segments[f"trades_{sym}.csv"]) == 2
    ts = [e.ts_event for e in events]
    # 21:22 .. 21:58 and 22:56 .. 23:19 (as recorded) are both in the output
    assert any(t < parse_timestamp_ns("2025-09-15T21:30:00") for t in ts)
    assert any(t > parse_timestamp_ns("2025-09-15T23:00:00") for t in ts)
    # the session clocks disagree (trade ids go backwards once per market): reported, not hidden
    assert stats.trade_id_inversions == {"BTC": 1, "ETH": 1}
    assert "WARNING" in imported[0].notes
    # second-session first line (file order) and the first-session first line are both events
    first_s2 = _data_rows(CSV_DIR / "trades_BTC.csv")[167].split(",")
    first_s1 = _data_rows(CSV_DIR / "trades_BTC.csv")[0].split(",")
    tids = {e.trade_id for e in events if isinstance(e, Trade)}
    assert first_s1[4] in tids and first_s2[4] in tids


def test_mixed_timestamp_formats(imported):
    _, events, stats = imported
    assert parse_timestamp_ns("2025-09-15T21:22:00") == 1757971320 * 10**9
    assert parse_timestamp_ns("2025-09-15T21:22:00.303000") == 1757971320303000000
    assert parse_timestamp_ns("2025-09-15T21:22:00.000001") == 1757971320000001000
    assert parse_timestamp_ns("2025-09-15T23:22:00+02:00") == 1757971320 * 10**9
    # the real trades files have rows without fractional seconds
    assert stats.timestamps_without_fraction["trades_BTC.csv"] == 1
    assert stats.timestamps_without_fraction["trades_ETH.csv"] == 2
    whole = [ln.split(",") for ln in _data_rows(CSV_DIR / "trades_ETH.csv") if "." not in ln.split(",")[0]]
    for row in whole:
        ns = parse_timestamp_ns(row[0])
        assert ns % 10**9 == 0
        assert any(isinstance(e, Trade) and e.trade_id == row[4] and e.ts_event == ns for e in events)


def test_trade_fields(imported):
    _, events, _ = imported
    t = next(e for e in events if isinstance(e, Trade) and e.trade_id == "123888336")
    assert (t.market, t.price, t.size, t.taker_side) == ("BTC", 115300.6, 0.00215, "buy")
    assert t.ts_event == parse_timestamp_ns("2025-09-15T22:56:14.175")


def test_determinism_byte_identical(tmp_path):
    a, b = tmp_path / "a.jsonl.gz", tmp_path / "b.jsonl.gz"
    build_bundled_recording(out=a)
    build_bundled_recording(out=b)
    assert a.read_bytes() == b.read_bytes()
    bundled = REPO / "data" / "recordings" / "lighter-2025-09-15-btc-eth.jsonl.gz"
    assert bundled.read_bytes() == a.read_bytes(), "bundled recording is stale: run build_bundled_recording()"


def test_recording_reads_back(recording_path):
    header, events = read_recording(recording_path)
    evs = list(events)
    assert len(evs) == 1751
    assert [m.symbol for m in header.markets] == ["BTC", "ETH"]
    assert all(a.ts_event <= b.ts_event for a, b in zip(evs, evs[1:], strict=False))


def _copy(tmp_path: Path, sym: str = "BTC") -> Path:
    d = tmp_path / "csv"
    d.mkdir()
    shutil.copy(CSV_DIR / f"prices_{sym}.csv", d)
    shutil.copy(CSV_DIR / f"trades_{sym}.csv", d)
    return d


def test_broken_row_names_file_and_line(tmp_path):
    d = _copy(tmp_path)
    p = d / "prices_BTC.csv"
    lines = p.read_text().splitlines(keepends=True)
    lines[99] = "2025-09-15T22:57:00.1,115300.1,not-a-number,115301.0,0.1\n"  # file line 100
    p.write_text("".join(lines))
    with pytest.raises(CsvImportError, match=r"prices_BTC\.csv:100: bid_size 'not-a-number'") as exc:
        import_top_of_book_csv(d)
    assert isinstance(exc.value, RecordingError)


@pytest.mark.parametrize(("line", "match"), [
    ("garbage\n", r"trades_BTC\.csv:3: expected 6 fields"),
    ("2025-13-45T00:00:00,1,1,buy,1,1\n", r"trades_BTC\.csv:3: timestamp"),
    ("2025-09-15T22:00:00,1,1,hold,1,1\n", r"trades_BTC\.csv:3: side 'hold'"),
])
def test_broken_trade_rows(tmp_path, line, match):
    d = _copy(tmp_path)
    p = d / "trades_BTC.csv"
    lines = p.read_text().splitlines(keepends=True)
    lines[2] = line
    p.write_text("".join(lines))
    with pytest.raises(CsvImportError, match=match):
        import_top_of_book_csv(d)


def test_broken_header_and_market_id(tmp_path):
    d = _copy(tmp_path)
    p = d / "prices_BTC.csv"
    text = p.read_text()
    p.write_text(text.replace("timestamp,bid_price", "time,bid_price", 1))
    with pytest.raises(CsvImportError, match=r"prices_BTC\.csv:1: unexpected header"):
        import_top_of_book_csv(d)
    lines = text.splitlines(keepends=True)
    lines[1] = lines[1].rstrip("\n").rsplit(",", 1)[0] + ",7\n"
    p.write_text("".join(lines))
    with pytest.raises(CsvImportError, match=r"prices_BTC\.csv:2: market_id 7 does not match BTC"):
        import_top_of_book_csv(d)


def test_missing_files(tmp_path):
    with pytest.raises(CsvImportError, match="no such folder"):
        import_top_of_book_csv(tmp_path / "nope")
    with pytest.raises(CsvImportError, match=r"prices_SOL\.csv:0: no such file"):
        import_top_of_book_csv(CSV_DIR, symbols=["SOL"])


def test_unknown_symbol_metadata_inferred(tmp_path):
    d = tmp_path / "x"
    d.mkdir()
    (d / "prices_FOO.csv").write_text(
        "timestamp,bid_price,bid_size,ask_price,ask_size,market_id\n"
        "2025-01-01T00:00:01,1.25,10,1.26,3.5,77\n"
        "2025-01-01T00:00:00.5,1.24,10,1.26,3.5,77\n")
    header, events, stats = import_top_of_book_csv(d)
    m = header.market("FOO")
    assert (m.market_id, m.price_decimals, m.size_decimals) == (77, 2, 1)
    assert stats.inferred_markets == ["FOO"] and stats.trade_rows == {"FOO": 0}
    assert [e.bid_px for e in events] == [1.24, 1.25]
    out = tmp_path / "foo.jsonl.gz"
    write_top_of_book_recording(d, out)
    assert len(list(read_recording(out)[1])) == 2


def test_import_csv_command_writes_a_recording_and_reports_errors(tmp_path):
    from typer.testing import CliRunner

    from lighter_stack.cli import app
    from shared.recording import read_recording

    out = tmp_path / "btc.jsonl.gz"
    res = CliRunner().invoke(app, ["import-csv", str(BUNDLED_CSV_DIR), "--out", str(out), "--symbol", "BTC"])
    assert res.exit_code == 0, res.output
    header, events = read_recording(out)
    assert [m.symbol for m in header.markets] == ["BTC"] and sum(1 for _ in events) == 453 + 456
    bad = CliRunner().invoke(app, ["import-csv", str(tmp_path / "missing"), "--out", str(out)])
    assert bad.exit_code == 2 and "no such folder" in bad.output


def test_bundled_recording_has_the_clock_correction_and_monotonic_trade_ids(recording_path):
    from shared.events import Trade
    from shared.recording import read_recording

    header, events = read_recording(recording_path)
    assert "Clock correction" in header.notes
    last: dict[str, int] = {}
    for ev in events:
        if isinstance(ev, Trade):
            assert int(ev.trade_id) > last.get(ev.market, 0)
            last[ev.market] = int(ev.trade_id)
