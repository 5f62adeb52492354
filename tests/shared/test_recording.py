"""Recording format: round trip, determinism, clear errors."""

import gzip

import pytest

from shared.events import Bbo, Trade
from shared.markets import MarketInfo
from shared.recording import RecordingError, RecordingHeader, read_header, read_recording, write_recording

BTC = MarketInfo(symbol="BTC", market_id=1, size_decimals=5, price_decimals=1, min_base_amount=0.0002, min_quote_amount=10.0)


def _events():
    return [Bbo(id="a", ts_event=1, market="BTC", bid_px=1.0, bid_sz=1.0, ask_px=1.1, ask_sz=2.0),
            Trade(id="b", ts_event=2, market="BTC", trade_id="7", price=1.1, size=0.5, taker_side="buy")]


def test_round_trip_and_byte_identical_rewrite(tmp_path):
    h = RecordingHeader(markets=[BTC], source="test")
    a, b = tmp_path / "a.jsonl.gz", tmp_path / "b.jsonl.gz"
    assert write_recording(a, h, _events()) == 2
    write_recording(b, h, _events())
    assert a.read_bytes() == b.read_bytes()
    header, events = read_recording(a)
    assert header.market("BTC") == BTC and list(events) == _events()
    assert read_header(a).source == "test"


def test_errors_name_file_and_line(tmp_path):
    with pytest.raises(RecordingError, match="no such recording"):
        read_header(tmp_path / "nope.jsonl.gz")
    bad = tmp_path / "bad.jsonl.gz"
    with gzip.open(bad, "wb") as f:
        f.write(b'{"format":"lighter-stack-recording","markets":[]}\n{"type":"bbo"}\n')
    _, events = read_recording(bad)
    with pytest.raises(RecordingError, match=r"bad.jsonl.gz:2"):
        list(events)
    notrec = tmp_path / "x.jsonl"
    notrec.write_text('{"format":"other","markets":[]}\n')
    with pytest.raises(RecordingError, match="expected"):
        read_header(notrec)
    with pytest.raises(KeyError, match="ETH"):
        read_header(bad).market("ETH")
