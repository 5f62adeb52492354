"""The project's recording format: market data for venue-sim, replay and backtests.

A recording is a gzip-compressed JSON-lines file (``*.jsonl.gz``):

- line 1, the header: ``{"format": "lighter-stack-recording", "version": 1, "markets": [...],
  "source": "...", "depth": "...", "notes": "..."}`` where ``markets`` are
  :class:`shared.markets.MarketInfo` objects and ``depth`` says how much of the book the
  recording holds (``top`` = one level per side);
- every further line: one market-data event (:class:`shared.events.Bbo`,
  :class:`shared.events.Trade`, :class:`shared.events.MarketStats`, book snapshots/deltas) in the
  bus encoding, sorted by ``ts_event`` (ties keep file order).

Writing is deterministic (gzip mtime 0), so the same input gives the same bytes.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import msgspec

from shared.events import AnyEvent, DecodeError, decode, encode
from shared.markets import MarketInfo, market_builtins

FORMAT = "lighter-stack-recording"


class RecordingHeader(msgspec.Struct, kw_only=True):
    """First line of a recording."""

    format: str = FORMAT
    version: int = 1
    markets: list[MarketInfo]
    source: str = ""
    depth: str = "top"
    notes: str = ""

    def market(self, symbol: str) -> MarketInfo:
        """Metadata of ``symbol``. Raises KeyError if the recording has no such market."""
        for m in self.markets:
            if m.symbol == symbol:
                return m
        raise KeyError(f"recording has no market {symbol!r}; it has {[m.symbol for m in self.markets]}")


def header_builtins(header: RecordingHeader) -> dict[str, Any]:
    """The header as JSON-ready builtins, markets via :func:`shared.markets.market_builtins`
    (margin fractions only when not the defaults: older files stay byte-identical)."""
    d = msgspec.to_builtins(header)
    d["markets"] = [market_builtins(m) for m in header.markets]
    return d


class RecordingError(ValueError):
    """A recording file is missing, not a recording, or has a bad line (named in the message)."""


def write_recording(path: str | Path, header: RecordingHeader, events: Iterable[AnyEvent]) -> int:
    """Write ``header`` and ``events`` (already sorted by ``ts_event``); returns the event count."""
    n = 0
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as gz:
        gz.write(msgspec.json.encode(header_builtins(header)) + b"\n")
        for ev in events:
            gz.write(encode(ev) + b"\n")
            n += 1
    return n


def read_header(path: str | Path) -> RecordingHeader:
    """Read only the header of a recording.

    Raises:
        RecordingError: the file is missing or its first line is not a recording header.
    """
    with _open(path) as f:
        return _header(path, f.readline())


def read_recording(path: str | Path) -> tuple[RecordingHeader, Iterator[AnyEvent]]:
    """Open a recording: returns its header and a lazy iterator over its events.

    Raises:
        RecordingError: missing file, bad header, or (while iterating) a line that is not a
            valid event; the message names the file and line number.
    """
    f = _open(path)
    header = _header(path, f.readline())

    def events() -> Iterator[AnyEvent]:
        with f:
            for lineno, line in enumerate(f, start=2):
                if not line.strip():
                    continue
                try:
                    yield decode(line)
                except DecodeError as exc:
                    raise RecordingError(f"{path}:{lineno}: {exc}") from None

    return header, events()


def _open(path: str | Path) -> io.TextIOBase:
    p = Path(path)
    if not p.is_file():
        raise RecordingError(f"{p}: no such recording file")
    return io.TextIOWrapper(gzip.open(p, "rb"), encoding="utf-8") if p.suffix == ".gz" else open(p, encoding="utf-8")


def _header(path: str | Path, line: str) -> RecordingHeader:
    try:
        h = msgspec.json.decode(line, type=RecordingHeader)
    except (msgspec.DecodeError, msgspec.ValidationError, OSError) as exc:
        raise RecordingError(f"{path}:1: not a {FORMAT} header: {exc}") from None
    if h.format != FORMAT:
        raise RecordingError(f"{path}:1: format is {h.format!r}, expected {FORMAT!r}")
    return h
