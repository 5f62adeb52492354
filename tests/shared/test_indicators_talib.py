"""TA-Lib parity: every indicator column, fed bar by bar, equals the TA-Lib C library on real
data (Bybit SOLUSDT 1m and Lighter PAXG 1m klines, the first 3,000 bars of each, in tests/fixtures)
on every row after warm-up, within 1e-8 × max(1, |TA-Lib|); the warm-up rows are exactly TA-Lib's NaN rows.
Also through :func:`lighter_stack.indicator_tool.run_indicators` (the written CSV is parsed back), and
the layout/row errors of the OHLCV reader."""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path

import numpy as np
import pytest

from lighter_stack.indicator_tool import (
    COLUMNS,
    Bar,
    OhlcvFormatError,
    detect_layout,
    indicator_rows,
    read_ohlcv,
    run_indicators,
)
from shared.indicators import AO

talib = pytest.importorskip("talib")

DATA = Path(__file__).resolve().parents[1] / "fixtures"  # slices, see tests/fixtures/*/PROVENANCE.md
SOL = DATA / "bybit_linear_SOLUSDT_1m_2025-05-30" / "SOLUSDT_1m.csv"
PAXG = DATA / "lighter_paxg_klines" / "klines_lighter_PAXG_1m.csv"
TOL = 1e-8


def reference(bars: list[Bar]) -> dict[str, np.ndarray]:
    h = np.array([b.high for b in bars])
    lo = np.array([b.low for b in bars])
    c = np.array([b.close for b in bars])
    med = (h + lo) / 2.0
    up, mid, low = talib.BBANDS(c, timeperiod=20, nbdevup=2.0, nbdevdn=2.0, matype=0)
    return {
        "sma_20": talib.SMA(c, 20), "ema_8": talib.EMA(c, 8), "ema_21": talib.EMA(c, 21),
        "rsi_14": talib.RSI(c, 14), "bb_upper_20_2": up, "bb_middle_20_2": mid, "bb_lower_20_2": low,
        "atr_14": talib.ATR(h, lo, c, 14), "ao_5_34": talib.SMA(med, 5) - talib.SMA(med, 34),
    }


def assert_matches(name: str, ours: np.ndarray, ref: np.ndarray) -> None:
    warm = np.isnan(ref)
    assert np.array_equal(np.isnan(ours), warm), f"{name}: warm-up rows differ from TA-Lib"
    assert warm.sum() < len(ref), f"{name}: no values"
    o, r = ours[~warm], ref[~warm]
    err = np.abs(o - r) / np.maximum(1.0, np.abs(r))
    worst = int(np.argmax(err))
    assert err[worst] <= TOL, f"{name}: row {int(np.flatnonzero(~warm)[worst])} ours {o[worst]!r} talib {r[worst]!r}"


def as_array(values) -> np.ndarray:
    return np.array([math.nan if v is None else v for v in values], dtype=float)


@pytest.fixture(scope="module", params=["sol", "paxg"])
def dataset(request):
    path = {"sol": SOL, "paxg": PAXG}[request.param]
    bars = read_ohlcv(path)
    return request.param, path, bars, reference(bars)


def test_bars_read_from_both_layouts(dataset):
    name, _path, bars, _ref = dataset
    assert len(bars) == 3_000  # the fixture slices (the full files: SOL 43,200 bars, PAXG 10,000)
    assert all(b.ts_ns - a.ts_ns == 60 * 10**9 for a, b in zip(bars[:50], bars[1:51], strict=True))
    if name == "sol":
        assert bars[0].ts == "2025-05-30 16:41:00+00:00" and bars[0].close == 157.94
        assert bars[0].ts_ns == 1_748_623_260 * 10**9
    else:
        assert bars[0].ts == "1758269820000.0" and bars[0].ts_ns == 1_758_269_820 * 10**9
        assert bars[0].high == 3664.12 and bars[0].low == 3660.89
        assert any(b.high == b.low for b in bars)  # zero-range bars are part of the test


def test_incremental_indicators_match_talib(dataset):
    _name, _path, bars, ref = dataset
    rows = list(indicator_rows(bars))
    for j, col in enumerate(COLUMNS):
        assert_matches(col, as_array(r[j] for r in rows), ref[col])


def test_run_indicators_csv_matches_talib(dataset, tmp_path):
    _name, path, bars, ref = dataset
    out = tmp_path / "sub" / "ind.csv"
    assert run_indicators(path, out) == len(bars)
    with open(out, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["timestamp", *COLUMNS]
    assert [r[0] for r in rows[1:]] == [b.ts for b in bars]
    for j, col in enumerate(COLUMNS, start=1):
        assert_matches(col, as_array(float(r[j]) if r[j] else None for r in rows[1:]), ref[col])
    # full precision: repr round-trips, so the file holds exactly the in-memory values
    last = list(indicator_rows(bars))[-1]
    assert [float(x) for x in rows[-1][1:]] == list(last)


def test_flat_and_zero_range_edge_cases_match_talib():
    """Long stretches of identical bars (no movement at all) and steps between them."""
    rng = np.random.default_rng(7)
    closes = np.repeat(3752.33 + np.round(rng.normal(0, 1, 60), 2), rng.integers(1, 60, 60))
    bars = [Bar(str(i), i, c, c, c, c, 0.0) for i, c in enumerate(closes.tolist())]
    rows = list(indicator_rows(bars))
    ref = reference(bars)
    for j, col in enumerate(COLUMNS):
        assert_matches(col, as_array(r[j] for r in rows), ref[col])


def test_ao_hand_values():
    ao = AO(2, 3)
    got = [ao.update(h, lo) for h, lo in [(2, 0), (4, 2), (6, 4), (5, 5)]]
    # medians 1, 3, 5, 5: SMA2 = 4, 5 ; SMA3 = 3, 13/3
    assert got[:2] == [None, None]
    assert got[2] == pytest.approx(1.0) and got[3] == pytest.approx(5 - 13 / 3)
    with pytest.raises(ValueError):
        AO(5, 5)


# ------------------------------------------------------------------------------ reader errors

def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "bars.csv"
    p.write_text(text)
    return p


def test_detect_layout():
    assert detect_layout(["timestamp", "open", "high", "low", "close", "volume"]) == "plain"
    assert detect_layout(["Open Time", "Open", "High", "Low", "Close", "Volume", "Close Time", "Ignore"]) == "binance"
    assert detect_layout(["time", "o", "h", "l", "c"]) is None


@pytest.mark.parametrize("text, line, words", [
    ("ts,price\n1,2\n", 1, "unknown OHLCV layout"),
    ("", 1, "empty file"),
    ("timestamp,open,high,low,close,volume\n2025-05-30 16:41:00+00:00,1,2,0.5,1.5,3\n"
     "2025-05-30 16:42:00+00:00,1,2,x,1.5,3\n", 3, "low 'x' is not a number"),
    ("timestamp,open,high,low,close,volume\n2025-05-30 16:41:00+00:00,1,2,0.5,1.5\n", 2, "5 fields"),
    ("timestamp,open,high,low,close,volume\nyesterday,1,2,0.5,1.5,3\n", 2, "not ISO-8601"),
    ("timestamp,open,high,low,close,volume\n2025-05-30 16:41:00,1,2,1.2,1.5,3\n", 2, "inconsistent bar"),
    ("timestamp,open,high,low,close,volume\n2025-05-30 16:41:00,1,2,0.5,1.5,3\n"
     "2025-05-30 16:41:00,1,2,0.5,1.5,3\n", 3, "not after the previous"),
    ("Open Time,Open,High,Low,Close,Volume\n1758269820000.0,1,2,0.5,1.5,0\nsoon,1,2,0.5,1.5,0\n", 3,
     "not epoch milliseconds"),
    ("Open Time,Open,High,Low,Close,Volume\n1758269820000.0,1,nan,0.5,1.5,0\n", 2, "finite"),
])
def test_reader_errors_name_file_and_line(tmp_path, text, line, words):
    p = write(tmp_path, text)
    with pytest.raises(OhlcvFormatError, match=words) as exc:
        read_ohlcv(p)
    assert isinstance(exc.value, ValueError)
    assert str(exc.value).startswith(f"{p}:{line}: ")


def test_run_indicators_broken_input_leaves_no_output(tmp_path):
    p = write(tmp_path, "timestamp,open,high,low,close,volume\n2025-05-30 16:41:00,1,2,0.5,1.5,3\nbad\n")
    out = tmp_path / "out.csv"
    with pytest.raises(OhlcvFormatError, match=rf"^{re.escape(str(p))}:3: "):
        run_indicators(p, out)
    assert not out.exists() and not list(tmp_path.glob("*.tmp"))


def test_missing_file(tmp_path):
    with pytest.raises(OhlcvFormatError, match="cannot open"):
        read_ohlcv(tmp_path / "nope.csv")


def test_indicators_command_writes_the_columns_and_rejects_bad_files(tmp_path):
    from typer.testing import CliRunner

    from lighter_stack.cli import app

    src = tmp_path / "bars.csv"
    lines = ["timestamp,open,high,low,close,volume"] + [
        f"2025-01-01 00:{i:02d}:00+00:00,{100 + i},{101 + i},{99 + i},{100.5 + i},1" for i in range(40)]
    src.write_text("\n".join(lines) + "\n")
    out = tmp_path / "ind.csv"
    res = CliRunner().invoke(app, ["indicators", "--csv", str(src), "--out", str(out)])
    assert res.exit_code == 0, res.output
    header = out.read_text().splitlines()[0].split(",")
    assert header[1:] == ["sma_20", "ema_8", "ema_21", "rsi_14", "bb_upper_20_2", "bb_middle_20_2",
                          "bb_lower_20_2", "atr_14", "ao_5_34"]
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    res = CliRunner().invoke(app, ["indicators", "--csv", str(bad), "--out", str(out)])
    assert res.exit_code == 2 and "bad.csv" in res.output
