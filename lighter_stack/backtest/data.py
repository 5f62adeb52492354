"""Backtest inputs: a recording, a Parquet archive, a top-of-book CSV folder or an OHLCV klines CSV
-> market data.

:func:`load_data` returns the markets and a (re-iterable) source of time-ordered market-data
events. Four inputs are recognised:

- a **recording** (``*.jsonl.gz`` / ``*.jsonl``, :mod:`shared.recording`): replayed as is;
- a **Parquet archive** (a folder with ``archive.json``, :mod:`shared.archive`, written by
  ``lighter-stack record`` or the recorder service): the ``Bbo`` and ``Trade`` events of its
  ``md:book:*``/``md:trade:*`` streams, sorted by ``ts_event``; market metadata from the
  archive's ``archive.json``, else known or inferred from the prices as for klines;
- a **folder** in the top-of-book + trades CSV layout (``prices_<SYM>.csv`` /
  ``trades_<SYM>.csv``, with or without the ``market_id`` column): imported with
  :func:`shared.importers.import_top_of_book_csv` (no clock corrections);
- an **OHLCV klines CSV** (``timestamp,open,high,low,close,volume`` or Binance's
  ``Open Time,Open,High,Low,Close,Volume,...``, read with :func:`lighter_stack.indicator_tool.read_ohlcv`):
  bars become a synthetic tick path (below).

Synthetic tick path of a bar (open time ``t``, bar length ``Δ`` = the smallest positive step
between consecutive rows, 60 s if there is a single row): four ticks at ``t``, ``t+Δ/4``,
``t+Δ/2``, ``t+3Δ/4`` with prices ``O``, then whichever of ``H``/``L`` is nearer to ``O``, then
the other, then ``C``. Each tick is a ``Bbo`` with ``bid = price`` (rounded to the tick) and
``ask = bid + 1 tick``, both sides displaying ``1,000,000 USD / price`` base units (so a backtest
order never runs out of displayed size), followed at the same time by a public ``Trade`` of
``volume / 4`` base units at the ask (price went up or stayed) or the bid (price went down).
Bars with a non-positive volume produce no trades. The true intra-bar path is unknown: this is an
assumption, and fills of resting orders inside a bar are optimistic or pessimistic by up to the
bar's range.

Symbols: a klines file's symbol is the file name up to the first ``_``/``-``/``.`` with a quote
suffix ``USDT``/``USDC``/``BUSD``/``USD``/``PERP`` removed (``SOLUSDT_1m.csv`` -> ``SOL``).
Market metadata: ``services.backtest.markets.<SYM>`` of the config if given, else
:data:`shared.markets.KNOWN_MARKETS` (BTC, ETH), else inferred: ``price_decimals`` = the most
decimals seen in the prices (at most 6), ``size_decimals = max(0, 6 - price_decimals)`` (Lighter's
markets follow roughly ``size + price decimals = 6``), ``min_base_amount`` one lot,
``min_quote_amount`` 10 USD, no fees. Markets with an unknown (negative) or duplicate
``market_id`` get ``1000 + i`` (i = position in the sorted symbol list).

Errors name the file and line: :class:`DataError` (a :class:`shared.recording.RecordingError`).
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import msgspec

from lighter_stack.indicator_tool import Bar, OhlcvFormatError, read_ohlcv
from shared.archive import ArchiveError, is_archive, market_data_events, read_meta
from shared.events import AnyEvent, Bbo, Trade, derive_id
from shared.importers import import_top_of_book_csv
from shared.markets import KNOWN_MARKETS, MarketInfo
from shared.recording import RecordingError, read_header, read_recording

SOURCE = "backtest-data"
SYNTH_NOTIONAL_USD = 1_000_000.0
QUOTE_SUFFIXES = ("USDT", "USDC", "BUSD", "USD", "PERP")


class DataError(RecordingError):
    """Backtest input missing, of an unknown kind, or broken; the message names file and line."""


@dataclass
class MarketData:
    """What a backtest replays.

    Attributes:
        kind: ``recording``, ``archive``, ``csv-folder`` or ``klines``.
        path: the input path.
        markets: the markets, in input order.
        events: a zero-argument callable returning a fresh iterator over the events in time order.
        total: the number of events if known cheaply (for the progress bar), else None.
        notes: how the input was read (assumptions), for the summary.
    """

    kind: str
    path: Path
    markets: list[MarketInfo]
    events: Callable[[], Iterator[AnyEvent]]
    total: int | None
    notes: list[str]


def symbol_from_filename(path: Path) -> str:
    """``SOLUSDT_1m.csv`` -> ``SOL``; ``BTC.csv`` -> ``BTC``."""
    stem = re.split(r"[_\-.]", path.name, maxsplit=1)[0].upper()
    for q in QUOTE_SUFFIXES:
        if stem.endswith(q) and len(stem) > len(q):
            return stem[: -len(q)]
    return stem


def _decimals(text: str) -> int:
    t = text.strip().lower()
    if "e" in t:
        return 6
    return len(t.split(".", 1)[1].rstrip("0")) if "." in t else 0


def infer_market(symbol: str, price_decimals: int, index: int = 0) -> MarketInfo:
    """Metadata for a symbol nobody described (see the module docstring)."""
    pd = max(0, min(6, price_decimals))
    sd = max(0, 6 - pd)
    return MarketInfo(symbol=symbol, market_id=1000 + index, size_decimals=sd, price_decimals=pd,
                      min_base_amount=10.0 ** -sd, min_quote_amount=10.0)


def _fix_ids(markets: list[MarketInfo]) -> list[MarketInfo]:
    """Give markets with a negative or duplicate market_id the id ``1000 + i``."""
    order = sorted(m.symbol for m in markets)
    seen: set[int] = set()
    out = []
    for m in markets:
        if m.market_id < 0 or m.market_id in seen:
            m = msgspec.structs.replace(m, market_id=1000 + order.index(m.symbol))
        seen.add(m.market_id)
        out.append(m)
    return out


def read_klines(path: Path) -> tuple[list[Bar], int]:
    """Read an OHLCV CSV with :func:`lighter_stack.indicator_tool.read_ohlcv` (layouts in the module
    docstring; rows strictly increasing in time).

    Returns ``(bars, price_decimals)`` (the most decimals of any price, at most 6).

    Raises:
        DataError: unreadable file, unknown header, a broken row (``path:line: ...``), or no rows.
    """
    try:
        bars = read_ohlcv(path)
    except OhlcvFormatError as exc:
        raise DataError(str(exc)) from None
    if not bars:
        raise DataError(f"{path}:2: no data rows")
    pdec = 0
    for b in bars[:5000]:
        for x in (b.open, b.high, b.low, b.close):
            pdec = max(pdec, _decimals(repr(x)))
    return bars, min(pdec, 6)


def bar_step_ns(bars: list[Bar]) -> int:
    """The bar length: the smallest positive step between consecutive bars (60 s for one bar)."""
    steps = [b.ts_ns - a.ts_ns for a, b in zip(bars, bars[1:], strict=False) if b.ts_ns > a.ts_ns]
    return min(steps) if steps else 60 * 10**9


def klines_events(bars: list[Bar], m: MarketInfo) -> Iterator[Bbo | Trade]:
    """The synthetic tick path of the bars (module docstring): Bbo then Trade per tick."""
    step = bar_step_ns(bars)
    offsets = (0, step // 4, step // 2, 3 * step // 4)
    tick = m.tick
    sym = m.symbol
    prev = None
    for i, b in enumerate(bars):
        near, far = (b.high, b.low) if abs(b.high - b.open) <= abs(b.open - b.low) else (b.low, b.high)
        for k, (off, px) in enumerate(zip(offsets, (b.open, near, far, b.close), strict=True)):
            ts = b.ts_ns + off
            ticks = m.price_to_int(px)
            bid = m.int_to_price(ticks)
            ask = m.int_to_price(ticks + 1)
            size = round(SYNTH_NOTIONAL_USD / max(px, tick), m.size_decimals) or m.lot
            yield Bbo(id=derive_id("kline-bbo", sym, ts), ts_event=ts, source=SOURCE, market=sym, bid_px=bid,
                      bid_sz=size, ask_px=ask, ask_sz=size)
            if b.volume > 0:
                up = prev is None or px >= prev
                tsize = round(b.volume / 4, m.size_decimals)
                if tsize > 0:
                    yield Trade(id=derive_id("kline-trade", sym, ts), ts_event=ts, source=SOURCE, market=sym,
                                trade_id=f"k{sym}-{i}-{k}", price=ask if up else bid, size=tsize,
                                taker_side="buy" if up else "sell")
            prev = px


def _merge(streams: list[Iterator[AnyEvent]]) -> Iterator[AnyEvent]:
    return heapq.merge(*streams, key=lambda e: e.ts_event)


def load_data(path: str | Path, market_overrides: Mapping[str, MarketInfo] | None = None) -> MarketData:
    """Open a backtest input (see the module docstring).

    Args:
        path: recording file, Parquet archive folder, CSV folder, or klines CSV (a folder of
            klines CSVs is also accepted: every ``*.csv`` in it, when it has no ``prices_*.csv``).
        market_overrides: metadata per symbol (``services.backtest.markets``), preferred over the
            known and inferred metadata.

    Raises:
        DataError: missing path, unknown kind, or a broken file (naming file and line).
    """
    p = Path(path)
    over = dict(market_overrides or {})
    if not p.exists():
        raise DataError(f"{p}: no such file or folder")
    if p.is_dir():
        if is_archive(p):
            return load_archive(p, over)
        if any(p.glob("prices_*.csv")):
            try:
                header, events, stats = import_top_of_book_csv(p, markets={**KNOWN_MARKETS, **over})
            except RecordingError as exc:
                raise DataError(str(exc)) from None
            markets = _fix_ids(list(header.markets))
            notes = [f"top-of-book CSV folder imported with shared.importers ({stats.events} events)"]
            if stats.inferred_markets:
                notes.append("market metadata inferred from the data for " + ", ".join(stats.inferred_markets))
            return MarketData("csv-folder", p, markets, lambda: iter(events), len(events), notes)
        files = sorted(p.glob("*.csv"))
        if not files:
            raise DataError(f"{p}: folder has neither prices_<SYM>.csv files nor klines *.csv files")
        return _load_klines(p, files, over)
    name = p.name.lower()
    if name.endswith(".jsonl.gz") or name.endswith(".jsonl"):
        header = read_header(p)
        markets = _fix_ids([over.get(m.symbol, m) for m in header.markets])

        def rec_events() -> Iterator[AnyEvent]:
            return read_recording(p)[1]

        return MarketData("recording", p, markets, rec_events, None,
                          [f"recording ({header.depth} depth): {header.notes[:200]}"])
    if name.endswith(".csv"):
        return _load_klines(p, [p], over)
    raise DataError(f"{p}: unknown input kind (want a *.jsonl.gz recording, a Parquet archive folder, "
                    "a CSV folder or an OHLCV *.csv)")


def load_archive(path: str | Path, market_overrides: Mapping[str, MarketInfo] | None = None,
                 start_ms: int | None = None, end_ms: int | None = None) -> MarketData:
    """A Parquet archive as backtest input (module docstring), optionally only the entries written
    in ``[start_ms, end_ms)`` (Redis entry time, ms since the epoch).

    Raises:
        DataError: not an archive, a broken file, or no Bbo/Trade in the range.
    """
    p = Path(path)
    over = dict(market_overrides or {})
    try:
        meta = read_meta(p)
        events = market_data_events(p, start_ms=start_ms, end_ms=end_ms)
    except ArchiveError as exc:
        raise DataError(str(exc)) from None
    if not events:
        raise DataError(f"{p}: archive has no Bbo or Trade events in its md:book/md:trade streams"
                        + (" in the time range" if start_ms is not None or end_ms is not None else ""))
    described = {m.symbol: m for m in meta.markets}
    symbols: list[str] = []
    pdec: dict[str, int] = {}
    for ev in events:
        sym = ev.market  # type: ignore[attr-defined]
        if sym not in pdec:
            symbols.append(sym)
            pdec[sym] = 0
        if isinstance(ev, Bbo) and pdec[sym] < 6:
            pdec[sym] = max(pdec[sym], _decimals(repr(ev.bid_px)), _decimals(repr(ev.ask_px)))
    order = sorted(symbols)
    markets: list[MarketInfo] = []
    notes = [f"Parquet archive of namespace {meta.namespace!r}: {len(events)} Bbo/Trade events"]
    for sym in order:
        m = over.get(sym) or described.get(sym) or KNOWN_MARKETS.get(sym)
        if m is None:
            m = infer_market(sym, pdec[sym], order.index(sym))
            notes.append(f"{sym}: market metadata inferred (price_decimals {m.price_decimals}, "
                         f"size_decimals {m.size_decimals}, market_id {m.market_id})")
        markets.append(m)
    return MarketData("archive", p, _fix_ids(markets), lambda: iter(events), len(events), notes)


def _load_klines(p: Path, files: Iterable[Path], over: dict[str, MarketInfo]) -> MarketData:
    loaded: list[tuple[str, list[Bar], int, Path]] = []
    for f in files:
        bars, pdec = read_klines(f)
        sym = symbol_from_filename(f)
        if any(s == sym for s, *_ in loaded):
            raise DataError(f"{f}:1: symbol {sym} already read from another file")
        loaded.append((sym, bars, pdec, f))
    order = sorted(s for s, *_ in loaded)
    markets: list[MarketInfo] = []
    notes = []
    for sym, bars, pdec, f in loaded:
        m = over.get(sym) or KNOWN_MARKETS.get(sym)
        if m is None:
            m = infer_market(sym, pdec, order.index(sym))
            notes.append(f"{sym}: market metadata inferred (price_decimals {m.price_decimals}, "
                         f"size_decimals {m.size_decimals}, market_id {m.market_id})")
        markets.append(m)
        notes.append(f"{f.name}: {len(bars)} bars of {bar_step_ns(bars) / 1e9:g} s as a synthetic 4-tick path "
                     "(O, nearer of H/L, other, C; 1-tick spread; synthetic trades of volume/4)")
    markets = _fix_ids(markets)
    by_sym = {m.symbol: m for m in markets}
    total = sum(8 * len(bars) for _, bars, _, _ in loaded)

    def events() -> Iterator[AnyEvent]:
        return _merge([klines_events(bars, by_sym[sym]) for sym, bars, _, _ in loaded])

    return MarketData("klines", p, markets, events, total, notes)
