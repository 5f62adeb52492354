"""The recorder's pure part: which read entries are written when.

:class:`RecorderBuffer` holds the rows read from the streams and not yet written, and the read
position of every stream. Rows of an hour are written once the hour has closed (the clock passed
to :meth:`RecorderBuffer.take` is past the hour's end), and every row at least every ``flush_s``
seconds (:meth:`RecorderBuffer.take` with ``everything=True``); writing is idempotent
(:func:`shared.archive.write_rows` merges by entry id), so a partial hour written early is
completed later without duplicates. No I/O and no wall clock here: the runner passes the time.
"""

from __future__ import annotations

from collections.abc import Iterable

from shared.archive import Row, hour_start_ms, split_id

HOUR_MS = 3_600_000


class RecorderBuffer:
    """Read rows waiting to be written, and read positions.

    Attributes:
        positions: stream -> newest entry id read (``None`` = read from the start).
        newest_ms: stream -> entry time (ms) of the newest row read.
    """

    def __init__(self) -> None:
        self.positions: dict[str, str | None] = {}
        self.newest_ms: dict[str, int] = {}
        self._rows: dict[str, list[Row]] = {}

    def follow(self, stream: str, after: str | None) -> bool:
        """Start following ``stream`` after entry id ``after``; False if already followed."""
        if stream in self.positions:
            return False
        self.positions[stream] = after
        if after:
            self.newest_ms[stream] = split_id(after)[0]
        return True

    def add(self, stream: str, rows: Iterable[Row]) -> int:
        """Buffer rows read from ``stream`` (in entry order); advances its position. Returns the count."""
        rows = list(rows)
        if rows:
            self._rows.setdefault(stream, []).extend(rows)
            self.positions[stream] = rows[-1].entry_id
            self.newest_ms[stream] = rows[-1].entry_ms
        return len(rows)

    def pending(self) -> dict[str, int]:
        """Rows buffered per stream."""
        return {s: len(r) for s, r in self._rows.items() if r}

    def take(self, now_ms: int, everything: bool = False) -> list[Row]:
        """Remove and return the rows to write: those of hours that ended at or before ``now_ms``
        (ms since the epoch), or all of them when ``everything``."""
        out: list[Row] = []
        for stream, rows in self._rows.items():
            if everything:
                out.extend(rows)
                self._rows[stream] = []
                continue
            cut = 0
            while cut < len(rows) and hour_start_ms(rows[cut].entry_ms) + HOUR_MS <= now_ms:
                cut += 1
            out.extend(rows[:cut])
            self._rows[stream] = rows[cut:]
        return out

    def put_back(self, rows: Iterable[Row]) -> None:
        """Return rows whose write failed to the front of their streams' buffers."""
        by: dict[str, list[Row]] = {}
        for r in rows:
            by.setdefault(r.stream, []).append(r)
        for stream, rs in by.items():
            self._rows[stream] = rs + self._rows.get(stream, [])
