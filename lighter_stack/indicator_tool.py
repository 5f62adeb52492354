"""OHLCV bar files -> indicator columns (the ``lighter-stack indicators`` tool).

Input: a CSV of time-ordered OHLCV bars in one of two layouts, detected from the header
(column names compared exactly after stripping spaces; extra trailing columns are allowed):

- ``plain``: ``timestamp,open,high,low,close,volume`` with an ISO-8601 timestamp (naive = UTC),
  e.g. the Bybit export ``SOLUSDT_1m.csv``;
- ``binance``: the Binance klines layout ``Open Time,Open,High,Low,Close,Volume,Close Time,...``
  with ``Open Time`` in epoch milliseconds (integer or float text such as ``1758269820000.0``),
  e.g. ``klines_lighter_PAXG_1m.csv``.

:func:`read_ohlcv` returns the bars (:class:`Bar`); :func:`iter_ohlcv` streams them. Every row is
checked: the right number of fields, finite non-negative numbers, ``low <= open, close <= high``,
strictly increasing timestamps. Any problem raises :class:`OhlcvFormatError` (a ``ValueError``)
whose message starts with ``<file>:<line>:``.

:func:`run_indicators` writes one output row per input bar: the input timestamp text unchanged,
then :data:`COLUMNS` (SMA(20), EMA(8), EMA(21), RSI(14), Bollinger(20, 2) upper/middle/lower,
ATR(14), Awesome Oscillator(5, 34)), each empty while that indicator warms up and otherwise the
float's ``repr`` (shortest text that reads back to the same double). The values equal TA-Lib's
(see ``docs/indicators.md`` and ``tests/shared/test_indicators_talib.py``).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

from shared.importers import parse_timestamp_ns
from shared.indicators import AO, ATR, EMA, RSI, SMA, Bollinger

PLAIN_COLUMNS = ("timestamp", "open", "high", "low", "close", "volume")
BINANCE_COLUMNS = ("Open Time", "Open", "High", "Low", "Close", "Volume")
LAYOUTS: dict[str, tuple[str, ...]] = {"plain": PLAIN_COLUMNS, "binance": BINANCE_COLUMNS}

#: Output columns after ``timestamp``, in order.
COLUMNS = (
    "sma_20", "ema_8", "ema_21", "rsi_14",
    "bb_upper_20_2", "bb_middle_20_2", "bb_lower_20_2",
    "atr_14", "ao_5_34",
)


class OhlcvFormatError(ValueError):
    """An OHLCV file is missing, has an unknown header layout, or a broken row; the message
    names the file and the 1-based line (``path:line: what``)."""


@dataclass(frozen=True, slots=True)
class Bar:
    """One OHLCV bar.

    Attributes:
        ts: the timestamp text exactly as in the file (echoed by :func:`run_indicators`).
        ts_ns: bar start in ns since the Unix epoch.
        open, high, low, close: prices (quote currency, e.g. USD).
        volume: traded volume as given by the source (base units for both bundled files).
        line: the 1-based line number in the file (for error messages downstream).
    """

    ts: str
    ts_ns: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    line: int = 0


def detect_layout(header: Iterable[str]) -> str | None:
    """Name of the layout (``plain`` / ``binance``) a header row belongs to, or ``None``."""
    cols = tuple(h.strip() for h in header)
    for name, want in LAYOUTS.items():
        if cols[: len(want)] == want:
            return name
    return None


def _epoch_ms_to_ns(text: str) -> int:
    d = Decimal(text.strip())
    if not d.is_finite():
        raise ValueError(text)
    return int(d * 1_000_000)


def _float(path: Path, line: int, name: str, text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise OhlcvFormatError(f"{path}:{line}: {name} {text!r} is not a number") from None
    if not math.isfinite(v) or v < 0:
        raise OhlcvFormatError(f"{path}:{line}: {name} {text!r} must be a finite number >= 0")
    return v


def iter_ohlcv(path: str | Path) -> Iterator[Bar]:
    """Stream the bars of an OHLCV CSV (layout detected from the header, see the module doc).

    Raises:
        OhlcvFormatError: missing/unreadable file, unknown header, or a broken row.
    """
    p = Path(path)
    try:
        f = open(p, newline="", encoding="utf-8")
    except OSError as exc:
        raise OhlcvFormatError(f"{p}:0: cannot open: {exc.strerror}") from None
    with f:
        reader = csv.reader(f)
        line = 1
        try:
            header = next(reader, None)
            if header is None:
                raise OhlcvFormatError(f"{p}:1: empty file, expected an OHLCV header")
            layout = detect_layout(header)
            if layout is None:
                raise OhlcvFormatError(
                    f"{p}:1: unknown OHLCV layout {','.join(h.strip() for h in header)!r}; expected "
                    f"{','.join(PLAIN_COLUMNS)!r} or {','.join(BINANCE_COLUMNS)!r},..."
                )
            cols = LAYOUTS[layout]
            width = len(header)
            prev_ns: int | None = None
            for row in reader:
                line = reader.line_num
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                if len(row) != width:
                    raise OhlcvFormatError(f"{p}:{line}: {len(row)} fields, expected {width}")
                ts = row[0].strip()
                try:
                    ts_ns = parse_timestamp_ns(ts) if layout == "plain" else _epoch_ms_to_ns(ts)
                except (ValueError, InvalidOperation, OverflowError):
                    kind = "ISO-8601" if layout == "plain" else "epoch milliseconds"
                    raise OhlcvFormatError(f"{p}:{line}: {cols[0]} {ts!r} is not {kind}") from None
                o, h, lo, c, v = (_float(p, line, cols[i], row[i]) for i in range(1, 6))
                if not lo <= min(o, c) or not max(o, c) <= h:
                    raise OhlcvFormatError(
                        f"{p}:{line}: inconsistent bar: need low <= open, close <= high "
                        f"(open {o!r}, high {h!r}, low {lo!r}, close {c!r})"
                    )
                if prev_ns is not None and ts_ns <= prev_ns:
                    raise OhlcvFormatError(f"{p}:{line}: {cols[0]} {ts!r} is not after the previous bar's")
                prev_ns = ts_ns
                yield Bar(ts, ts_ns, o, h, lo, c, v, line)
        except csv.Error as exc:
            raise OhlcvFormatError(f"{p}:{reader.line_num}: malformed CSV: {exc}") from None
        except UnicodeDecodeError as exc:
            raise OhlcvFormatError(f"{p}:{line}: not UTF-8 text: {exc}") from None


def read_ohlcv(path: str | Path) -> list[Bar]:
    """All bars of an OHLCV CSV, in file order. See :func:`iter_ohlcv` for layouts and errors."""
    return list(iter_ohlcv(path))


class IndicatorSet:
    """The indicators of :data:`COLUMNS`, fed one bar at a time (O(1) per bar)."""

    def __init__(self) -> None:
        self.sma20, self.ema8, self.ema21, self.rsi14 = SMA(20), EMA(8), EMA(21), RSI(14)
        self.bb, self.atr14, self.ao = Bollinger(20, 2.0), ATR(14), AO(5, 34)

    def update(self, bar: Bar) -> tuple[float | None, ...]:
        """Values of :data:`COLUMNS` after ``bar`` (``None`` while an indicator warms up)."""
        c = bar.close
        bands = self.bb.update(c)
        up, mid, low = (None, None, None) if bands is None else (bands.upper, bands.middle, bands.lower)
        return (self.sma20.update(c), self.ema8.update(c), self.ema21.update(c), self.rsi14.update(c),
                up, mid, low, self.atr14.update(bar.high, bar.low, c), self.ao.update(bar.high, bar.low))


def indicator_rows(bars: Iterable[Bar]) -> Iterator[tuple[float | None, ...]]:
    """Per bar, the values of :data:`COLUMNS` (``None`` while warming up)."""
    ind = IndicatorSet()
    for b in bars:
        yield ind.update(b)


def run_indicators(csv_in: Path, csv_out: Path) -> int:
    """Read the OHLCV CSV ``csv_in`` and write ``timestamp`` + :data:`COLUMNS` to ``csv_out``
    (parent folders created). Returns the number of data rows written.

    The output is written to a temporary sibling and renamed, so a broken input leaves no
    partial ``csv_out``.

    Raises:
        OhlcvFormatError: unknown layout or a broken row (message ``file:line: ...``).
    """
    src, dst = Path(csv_in), Path(csv_out)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".tmp")
    n = 0
    try:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(("timestamp", *COLUMNS))
            ind = IndicatorSet()
            for bar in iter_ohlcv(src):
                vals = ind.update(bar)
                w.writerow((bar.ts, *("" if v is None else repr(v) for v in vals)))
                n += 1
        tmp.replace(dst)
    finally:
        tmp.unlink(missing_ok=True)
    return n
