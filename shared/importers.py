"""Importers: third-party market-data files -> the project's recording format.

Top-of-book CSV folders
-----------------------
The layout written by the djienne ``LIGHTER_data_collector`` (bundled copy in
``data/lighter_djienne_collector_2025-09-15/``, see its ``PROVENANCE.md``):

- ``prices_<SYM>.csv``: ``timestamp,bid_price,bid_size,ask_price,ask_size[,market_id]``, one row
  per order-book update with the best bid and ask (prices in USD, sizes in base units). The
  ``market_id`` column exists only in rows of the first recording session; later rows have
  5 fields. Consecutive rows often repeat the same top of book (an update deeper in the book).
- ``trades_<SYM>.csv``: ``timestamp,price,size,side,trade_id,usd_amount`` where ``side`` is the
  taker side (``buy``/``sell``).

Timestamps are naive ISO-8601, taken as UTC, with or without fractional seconds. Files are NOT
sorted (recording sessions were appended). :func:`import_top_of_book_csv` turns such a folder
into :class:`shared.events.Bbo` and :class:`shared.events.Trade` events (``source`` =
``"recording"``, ``ts_event`` in ns), sorted by ``(ts_event, symbol, kind, file line)``, with
consecutive duplicate BBOs per market dropped. Event ids are derived from symbol, kind and row
content (plus an occurrence counter for identical rows), so they are the same on every import.

Output is deterministic: the same folder gives byte-identical recordings
(:func:`write_top_of_book_recording`, :func:`build_bundled_recording`).
"""

from __future__ import annotations

import csv
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

import msgspec

from shared.config import REPO_ROOT
from shared.events import Bbo, Trade, derive_id
from shared.markets import KNOWN_MARKETS, MarketInfo
from shared.recording import RecordingError, RecordingHeader, write_recording

SOURCE = "recording"

PRICES_COLUMNS = ("timestamp", "bid_price", "bid_size", "ask_price", "ask_size")
PRICES_OPTIONAL = "market_id"
TRADES_COLUMNS = ("timestamp", "price", "size", "side", "trade_id", "usd_amount")

BUNDLED_CSV_DIR = REPO_ROOT / "data" / "lighter_djienne_collector_2025-09-15"
BUNDLED_RECORDING = REPO_ROOT / "data" / "recordings" / "lighter-2025-09-15-btc-eth.jsonl.gz"
BUNDLED_SYMBOLS = ("BTC", "ETH")
BUNDLED_SOURCE = (
    "Lighter (zkLighter) mainnet top-of-book + trades, BTC/ETH perps, 2025-09-15. "
    "Recorded by the WebSocket collector of https://github.com/djienne/LIGHTER_data_collector "
    "(files lighter_data/{prices,trades}_{BTC,ETH}.csv, commit fec71d83b64589640ac17a7dcb5ccee64d7c4504); "
    "no licence stated, used as test data. Copied byte-for-byte to data/lighter_djienne_collector_2025-09-15/ "
    "(see PROVENANCE.md there) and imported with shared.importers.build_bundled_recording()."
)

_HOUR_NS = 3600 * 10**9

_FILE_RE = re.compile(r"^prices_(?P<sym>[A-Za-z0-9]+)\.csv$")
_KIND_RANK = {"bbo": 0, "trade": 1}
_BACKSTEP_SEGMENT_NS = 60 * 10**9  # a backward time jump larger than this starts a new file segment
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class ClockShift:
    """Add ``shift_ns`` to every row stamped in ``[start_ns, end_ns)`` (ns since the epoch, as
    read from the file), to repair a recording session stamped with the wrong clock."""

    start_ns: int
    end_ns: int
    shift_ns: int
    reason: str


class CsvImportError(RecordingError):
    """A CSV file is missing or has a bad header or row; the message starts with ``path:line``."""


@dataclass(slots=True)
class Segment:
    """A run of rows in file order without a backward time jump of more than 60 s.

    ``first_line``/``last_line`` are 1-based file lines; ``first_ts``/``last_ts`` the raw
    timestamp strings at those lines. Several segments in one file mean appended sessions.
    """

    first_line: int
    last_line: int
    first_ts: str
    last_ts: str
    rows: int


@dataclass
class ImportStats:
    """What an import read, kept and dropped (per symbol unless noted).

    Attributes:
        bbo_rows: data rows read from ``prices_<SYM>.csv``.
        bbo_rows_with_market_id: of those, rows with a filled ``market_id`` (first session).
        bbo_duplicates_dropped: rows dropped because the top of book (prices and sizes) equals
            the previous kept row of the same market in time order.
        bbo_events: Bbo events kept (= rows - duplicates dropped).
        bbo_crossed: kept BBOs with ``bid_px >= ask_px`` (kept as recorded).
        trade_rows: data rows read from ``trades_<SYM>.csv`` (= Trade events).
        trade_id_inversions: adjacent trades (time order) whose numeric trade id decreases; Lighter
            trade ids grow with time, so a non-zero count points at a clock problem in the file.
        timestamps_without_fraction: rows whose timestamp has no fractional seconds.
        segments: per file name, its :class:`Segment` list (file order).
        inferred_markets: symbols whose :class:`MarketInfo` was inferred from the data.
        first_ts_ns / last_ts_ns: time span of the output events (ns since epoch, all markets).
        events: total events in the output.
    """

    bbo_rows: dict[str, int] = field(default_factory=dict)
    bbo_rows_with_market_id: dict[str, int] = field(default_factory=dict)
    bbo_duplicates_dropped: dict[str, int] = field(default_factory=dict)
    bbo_events: dict[str, int] = field(default_factory=dict)
    bbo_crossed: dict[str, int] = field(default_factory=dict)
    trade_rows: dict[str, int] = field(default_factory=dict)
    trade_id_inversions: dict[str, int] = field(default_factory=dict)
    timestamps_without_fraction: dict[str, int] = field(default_factory=dict)
    segments: dict[str, list[Segment]] = field(default_factory=dict)
    inferred_markets: list[str] = field(default_factory=list)
    first_ts_ns: int = 0
    last_ts_ns: int = 0
    events: int = 0


def parse_timestamp_ns(text: str) -> int:
    """ISO-8601 timestamp -> ns since the Unix epoch (exact integer arithmetic).

    Naive timestamps are taken as UTC; fractional seconds are optional (up to microseconds).

    Raises:
        ValueError: not an ISO-8601 timestamp.
    """
    dt = datetime.fromisoformat(text.strip())
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    td = dt - _EPOCH
    return (td.days * 86_400 + td.seconds) * 10**9 + td.microseconds * 1_000


# The first session of the 2025-09-15 files (file order: 22:56-23:19) was stamped in local time
# (UTC+2): its Lighter trade ids (123888336..123919935) are all smaller than those of the second
# session (21:22-21:58 UTC, ids from 123923256), and trade ids grow with time; shifted back 2 h it
# ends at 21:19 UTC, just before the second session begins. See the folder's PROVENANCE.md.
BUNDLED_CLOCK_SHIFTS: tuple[ClockShift, ...] = (
    ClockShift(start_ns=parse_timestamp_ns("2025-09-15T22:30:00"), end_ns=parse_timestamp_ns("2025-09-16T00:00:00"),
               shift_ns=-2 * _HOUR_NS, reason="session stamped in UTC+2 local time; trade ids place it before 21:22 UTC"),
)


def _num(path: Path, line: int, name: str, text: str, *, positive: bool = False) -> float:
    try:
        v = float(text)
    except ValueError:
        raise CsvImportError(f"{path}:{line}: {name} {text!r} is not a number") from None
    if not math.isfinite(v) or v < 0 or (positive and v == 0):
        raise CsvImportError(f"{path}:{line}: {name} {text!r} must be a finite number {'> 0' if positive else '>= 0'}")
    return v


def _ts(path: Path, line: int, text: str) -> int:
    try:
        return parse_timestamp_ns(text)
    except ValueError:
        raise CsvImportError(f"{path}:{line}: timestamp {text!r} is not ISO-8601") from None


def _decimals(text: str) -> int:
    try:
        exp = Decimal(text).normalize().as_tuple().exponent
    except InvalidOperation:
        return 0
    return max(0, -exp) if isinstance(exp, int) else 0


def _read_rows(path: Path, expected: tuple[str, ...], optional: str | None) -> Iterable[tuple[int, list[str]]]:
    """Yield ``(line_number, fields)`` of the data rows; checks the header."""
    try:
        f = open(path, newline="", encoding="utf-8")
    except OSError as exc:
        raise CsvImportError(f"{path}:0: cannot open: {exc.strerror}") from None
    with f:
        reader = csv.reader(f)
        try:
            header = next(reader, None)
            if header is None:
                raise CsvImportError(f"{path}:1: empty file, expected header {','.join(expected)}")
            cols = tuple(h.strip() for h in header)
            if cols != expected and cols != (*expected, optional):
                want = ",".join(expected) + (f"[,{optional}]" if optional else "")
                raise CsvImportError(f"{path}:1: unexpected header {','.join(cols)!r}, expected {want}")
            for row in reader:
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                yield reader.line_num, row
        except csv.Error as exc:
            raise CsvImportError(f"{path}:{reader.line_num}: malformed CSV: {exc}") from None
        except UnicodeDecodeError as exc:
            raise CsvImportError(f"{path}: not UTF-8 text: {exc}") from None


class _SegmentTracker:
    def __init__(self) -> None:
        self.segments: list[Segment] = []
        self._last_ns: int | None = None

    def add(self, line: int, ts_text: str, ts_ns: int) -> None:
        if self._last_ns is None or ts_ns < self._last_ns - _BACKSTEP_SEGMENT_NS:
            self.segments.append(Segment(line, line, ts_text, ts_text, 0))
        seg = self.segments[-1]
        seg.last_line, seg.last_ts, seg.rows = line, ts_text, seg.rows + 1
        self._last_ns = ts_ns


@dataclass(slots=True)
class _Row:
    ts: int
    symbol: str
    kind: str
    line: int
    event: Bbo | Trade


def _read_prices(path: Path, symbol: str, market: MarketInfo | None, stats: ImportStats,
                 seen_ids: Counter) -> tuple[list[_Row], dict]:
    rows: list[_Row] = []
    seg = _SegmentTracker()
    file_ids: set[str] = set()
    n = with_id = nofrac = 0
    px_dec = sz_dec = 0
    for line, r in _read_rows(path, PRICES_COLUMNS, PRICES_OPTIONAL):
        if len(r) not in (5, 6):
            raise CsvImportError(f"{path}:{line}: expected 5 or 6 fields "
                                 f"({','.join(PRICES_COLUMNS)}[,market_id]), got {len(r)}")
        ts = _ts(path, line, r[0])
        bid_px = _num(path, line, "bid_price", r[1], positive=True)
        bid_sz = _num(path, line, "bid_size", r[2])
        ask_px = _num(path, line, "ask_price", r[3], positive=True)
        ask_sz = _num(path, line, "ask_size", r[4])
        if len(r) == 6 and r[5].strip():
            try:
                mid = int(r[5])
            except ValueError:
                raise CsvImportError(f"{path}:{line}: market_id {r[5]!r} is not an integer") from None
            if market is not None and mid != market.market_id:
                raise CsvImportError(f"{path}:{line}: market_id {mid} does not match {symbol} "
                                     f"market_id {market.market_id}")
            file_ids.add(str(mid))
            with_id += 1
        if "." not in r[0]:
            nofrac += 1
        px_dec = max(px_dec, _decimals(r[1]), _decimals(r[3]))
        sz_dec = max(sz_dec, _decimals(r[2]), _decimals(r[4]))
        seg.add(line, r[0], ts)
        content = (symbol, "bbo", r[0].strip(), *(x.strip() for x in r[1:5]))
        k = seen_ids[content]
        seen_ids[content] += 1
        ev = Bbo(id=derive_id(*content, k), ts_event=ts, source=SOURCE, market=symbol,
                 bid_px=bid_px, bid_sz=bid_sz, ask_px=ask_px, ask_sz=ask_sz)
        rows.append(_Row(ts, symbol, "bbo", line, ev))
        n += 1
    stats.bbo_rows[symbol] = n
    stats.bbo_rows_with_market_id[symbol] = with_id
    stats.timestamps_without_fraction[path.name] = nofrac
    stats.segments[path.name] = seg.segments
    return rows, {"market_ids": file_ids, "price_decimals": px_dec, "size_decimals": sz_dec}


def _read_trades(path: Path, symbol: str, stats: ImportStats, seen_ids: Counter) -> list[_Row]:
    rows: list[_Row] = []
    seg = _SegmentTracker()
    nofrac = 0
    for line, r in _read_rows(path, TRADES_COLUMNS, None):
        if len(r) != 6:
            raise CsvImportError(f"{path}:{line}: expected 6 fields ({','.join(TRADES_COLUMNS)}), got {len(r)}")
        ts = _ts(path, line, r[0])
        price = _num(path, line, "price", r[1], positive=True)
        size = _num(path, line, "size", r[2], positive=True)
        side = r[3].strip().lower()
        if side not in ("buy", "sell"):
            raise CsvImportError(f"{path}:{line}: side {r[3]!r} must be buy or sell")
        trade_id = r[4].strip()
        if not trade_id:
            raise CsvImportError(f"{path}:{line}: empty trade_id")
        if r[5].strip():
            _num(path, line, "usd_amount", r[5])
        if "." not in r[0]:
            nofrac += 1
        seg.add(line, r[0], ts)
        content = (symbol, "trade", *(x.strip() for x in r))
        k = seen_ids[content]
        seen_ids[content] += 1
        ev = Trade(id=derive_id(*content, k), ts_event=ts, source=SOURCE, market=symbol,
                   trade_id=trade_id, price=price, size=size, taker_side=side)  # type: ignore[arg-type]
        rows.append(_Row(ts, symbol, "trade", line, ev))
    stats.trade_rows[symbol] = len(rows)
    stats.timestamps_without_fraction[path.name] = nofrac
    stats.segments[path.name] = seg.segments
    return rows


def _discover(folder: Path) -> list[str]:
    return sorted(m.group("sym") for p in folder.iterdir() if (m := _FILE_RE.match(p.name)))


def _provenance_source(folder: Path) -> str:
    prov = folder / "PROVENANCE.md"
    if not prov.is_file():
        return f"top-of-book CSV folder {folder.name}"
    lines = prov.read_text(encoding="utf-8").splitlines()
    title = next((ln.lstrip("# ").strip() for ln in lines if ln.startswith("#")), folder.name)
    extra = [ln.lstrip("- ").strip() for ln in lines
             if ln.lstrip("- ").lower().startswith(("source repo", "commit", "licence", "license"))]
    return " ".join([f"{title}.", *extra, f"(folder {folder.name}, see its PROVENANCE.md)"])


def _trade_id_key(tid: str) -> int | None:
    try:
        return int(tid)
    except ValueError:
        return None


def import_top_of_book_csv(
    folder: str | Path,
    symbols: Iterable[str] | None = None,
    markets: Mapping[str, MarketInfo] | None = None,
    source: str | None = None,
    clock_shifts: Sequence[ClockShift] = (),
) -> tuple[RecordingHeader, list[Bbo | Trade], ImportStats]:
    """Import a folder of ``prices_<SYM>.csv`` / ``trades_<SYM>.csv`` files.

    Args:
        folder: the folder holding the CSV files.
        symbols: symbols to import (default: every ``prices_<SYM>.csv`` in the folder, sorted).
            A missing ``trades_<SYM>.csv`` is allowed (no trades for that market).
        markets: metadata per symbol, overriding :data:`KNOWN_MARKETS`. For a symbol in
            neither, a :class:`MarketInfo` is inferred from the data (``market_id`` from the
            column or -1, decimals from the widest number seen, minimum amounts 0) and listed
            in ``stats.inferred_markets``.
        source: header ``source`` text (default: built from the folder's ``PROVENANCE.md``).
        clock_shifts: time corrections applied to rows before sorting (listed in the header
            notes); the bundled recording uses :data:`BUNDLED_CLOCK_SHIFTS`.

    Returns:
        ``(header, events, stats)``: the recording header (``depth="top"``), the Bbo and Trade
        events sorted by ``(ts_event, symbol, kind (bbo before trade), file line)``, and
        :class:`ImportStats`.

    Raises:
        CsvImportError: the folder or a ``prices_<SYM>.csv`` file is missing, a header is wrong,
            or a row is broken (wrong field count, bad timestamp or number, bad side, market_id
            not matching the market); the message names the file and line.
    """
    root = Path(folder)
    if not root.is_dir():
        raise CsvImportError(f"{root}: no such folder")
    syms = sorted(dict.fromkeys(symbols)) if symbols is not None else _discover(root)
    if not syms:
        raise CsvImportError(f"{root}: no prices_<SYM>.csv files")
    known = {**KNOWN_MARKETS, **(dict(markets) if markets else {})}
    stats = ImportStats()
    rows: list[_Row] = []
    infos: list[MarketInfo] = []
    seen_ids: Counter = Counter()
    for sym in syms:
        ppath = root / f"prices_{sym}.csv"
        if not ppath.is_file():
            raise CsvImportError(f"{ppath}:0: no such file (symbol {sym})")
        market = known.get(sym)
        prows, seen = _read_prices(ppath, sym, market, stats, seen_ids)
        if market is None:
            ids = seen["market_ids"]
            market = MarketInfo(symbol=sym, market_id=int(next(iter(ids))) if len(ids) == 1 else -1,
                                size_decimals=seen["size_decimals"], price_decimals=seen["price_decimals"],
                                min_base_amount=0.0, min_quote_amount=0.0)
            stats.inferred_markets.append(sym)
        infos.append(market)
        rows.extend(prows)
        tpath = root / f"trades_{sym}.csv"
        if tpath.is_file():
            rows.extend(_read_trades(tpath, sym, stats, seen_ids))
        else:
            stats.trade_rows[sym] = 0

    for shift in clock_shifts:
        for r in rows:
            if shift.start_ns <= r.ts < shift.end_ns:
                r.ts += shift.shift_ns
                r.event = msgspec.structs.replace(r.event, ts_event=r.ts)
    rows.sort(key=lambda r: (r.ts, r.symbol, _KIND_RANK[r.kind], r.line))

    events: list[Bbo | Trade] = []
    last_top: dict[str, tuple[float, float, float, float]] = {}
    last_tid: dict[str, int] = {}
    dropped = Counter({s: 0 for s in syms})
    crossed = Counter({s: 0 for s in syms})
    inversions = Counter({s: 0 for s in syms})
    for r in rows:
        ev = r.event
        if isinstance(ev, Bbo):
            top = (ev.bid_px, ev.bid_sz, ev.ask_px, ev.ask_sz)
            if last_top.get(r.symbol) == top:
                dropped[r.symbol] += 1
                continue
            last_top[r.symbol] = top
            if ev.bid_px >= ev.ask_px:
                crossed[r.symbol] += 1
        else:
            tid = _trade_id_key(ev.trade_id)
            if tid is not None:
                if r.symbol in last_tid and tid < last_tid[r.symbol]:
                    inversions[r.symbol] += 1
                last_tid[r.symbol] = tid
        events.append(ev)

    stats.bbo_duplicates_dropped = dict(dropped)
    stats.bbo_crossed = dict(crossed)
    stats.trade_id_inversions = dict(inversions)
    stats.bbo_events = {s: stats.bbo_rows[s] - dropped[s] for s in syms}
    stats.events = len(events)
    if events:
        stats.first_ts_ns, stats.last_ts_ns = events[0].ts_event, events[-1].ts_event

    notes = (
        "depth=top: one level per side (best bid/ask) from prices_<SYM>.csv as Bbo events, consecutive "
        f"duplicate tops per market dropped ({', '.join(f'{s} {dropped[s]}' for s in syms)}); "
        "trades from trades_<SYM>.csv as Trade events (taker side). Timestamps: naive ISO-8601 taken as UTC. "
        "No book snapshots/deltas, no market stats."
    )
    for shift in clock_shifts:
        notes += (f" Clock correction: rows stamped {shift.start_ns} <= ts < {shift.end_ns} ns shifted by "
                  f"{shift.shift_ns / 1e9:+.0f} s ({shift.reason}).")
    if any(inversions.values()):
        notes += (" WARNING: trade ids decrease in time order "
                  f"({', '.join(f'{s} {inversions[s]}x' for s in syms)}): the files' clocks are inconsistent "
                  "between recording sessions (see PROVENANCE.md).")
    if stats.inferred_markets:
        notes += f" Market metadata inferred from the data for: {', '.join(stats.inferred_markets)}."
    header = RecordingHeader(markets=infos, source=source or _provenance_source(root), depth="top", notes=notes)
    return header, events, stats


def write_top_of_book_recording(
    folder: str | Path,
    out: str | Path,
    symbols: Iterable[str] | None = None,
    markets: Mapping[str, MarketInfo] | None = None,
    source: str | None = None,
    clock_shifts: Sequence[ClockShift] = (),
) -> ImportStats:
    """Import ``folder`` with :func:`import_top_of_book_csv` and write the recording to ``out``
    (``*.jsonl.gz``, deterministic bytes). Returns the import stats.

    Raises:
        CsvImportError: see :func:`import_top_of_book_csv`.
    """
    header, events, stats = import_top_of_book_csv(folder, symbols=symbols, markets=markets, source=source,
                                                   clock_shifts=clock_shifts)
    write_recording(out, header, events)
    return stats


def build_bundled_recording(out: str | Path | None = None, folder: str | Path | None = None) -> ImportStats:
    """Regenerate the bundled BTC+ETH recording ``data/recordings/lighter-2025-09-15-btc-eth.jsonl.gz``
    from ``data/lighter_djienne_collector_2025-09-15/`` (or ``folder``), to ``out`` (default: the
    bundled path). Byte-identical on every run.

    Usage: ``python -c "from shared.importers import build_bundled_recording as b; print(b())"``.

    Raises:
        CsvImportError: see :func:`import_top_of_book_csv`.
    """
    return write_top_of_book_recording(folder or BUNDLED_CSV_DIR, out or BUNDLED_RECORDING,
                                       symbols=BUNDLED_SYMBOLS, markets=KNOWN_MARKETS, source=BUNDLED_SOURCE,
                                       clock_shifts=BUNDLED_CLOCK_SHIFTS)
