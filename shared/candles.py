"""Time-bucketed OHLC candles built from ``(ts_ns, price)`` samples (e.g. the book mid).

A sample at ``ts_ns`` belongs to bucket ``floor(ts_ns / interval_ns)``; the candle of a bucket
starts at ``bucket · interval_ns`` (aligned to the Unix epoch, so 15 s candles start at
:00, :15, :30, :45). A candle is complete when the first sample of a **later** bucket arrives:
:meth:`CandleBuilder.update` then returns it. Nothing is emitted on a timer (engines have no
clock), so the last candle stays open until the next sample.

Empty buckets (no sample during a whole interval): by default they produce **no** candle, so
the series skips them. With ``fill_gaps=True`` each empty bucket between two samples becomes a
flat candle ``O = H = L = C = previous close`` with ``samples = 0``, which is what a poller
that reads the last known price every few seconds would have seen (the seed strategy's
behaviour), as long as the gap is at most ``max_fill`` buckets; a longer gap (a feed outage)
is not filled.

A sample older than the open bucket (out of order) is dropped and counted in ``late``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Candle:
    """One OHLC candle: ``start_ns`` is the bucket start (ns since the epoch), prices in the
    samples' unit (USD), ``samples`` the number of samples in it (0 for a filled gap)."""

    start_ns: int
    open: float
    high: float
    low: float
    close: float
    samples: int = 1


class CandleBuilder:
    """Builds fixed-interval candles from samples in time order.

    Args:
        interval_ns: candle length in nanoseconds (15 s = ``15_000_000_000``).
        fill_gaps: emit flat candles for empty buckets (see the module docstring).
        max_fill: the longest gap, in buckets, that ``fill_gaps`` fills.
    """

    def __init__(self, interval_ns: int, fill_gaps: bool = False, max_fill: int = 20) -> None:
        if interval_ns <= 0:
            raise ValueError(f"interval_ns must be positive, got {interval_ns}")
        self.interval_ns = int(interval_ns)
        self.fill_gaps = fill_gaps
        self.max_fill = max_fill
        self.late = 0
        self._bucket: int | None = None
        self._o = self._h = self._l = self._c = 0.0
        self._n = 0

    def bucket(self, ts_ns: int) -> int:
        """The bucket index of ``ts_ns``."""
        return ts_ns // self.interval_ns

    @property
    def current(self) -> Candle | None:
        """The open (incomplete) candle, or ``None`` before the first sample."""
        if self._bucket is None:
            return None
        return Candle(self._bucket * self.interval_ns, self._o, self._h, self._l, self._c, self._n)

    def update(self, ts_ns: int, price: float) -> list[Candle]:
        """Add a sample; return the candles it completed (oldest first, usually none or one)."""
        b = ts_ns // self.interval_ns
        if self._bucket is None:
            self._open(b, price)
            return []
        if b == self._bucket:
            if price > self._h:
                self._h = price
            if price < self._l:
                self._l = price
            self._c = price
            self._n += 1
            return []
        if b < self._bucket:
            self.late += 1
            return []
        done = [Candle(self._bucket * self.interval_ns, self._o, self._h, self._l, self._c, self._n)]
        gap = b - self._bucket - 1
        if self.fill_gaps and 0 < gap <= self.max_fill:
            c = self._c
            for k in range(self._bucket + 1, b):
                done.append(Candle(k * self.interval_ns, c, c, c, c, 0))
        self._open(b, price)
        return done

    def _open(self, bucket: int, price: float) -> None:
        self._bucket = bucket
        self._o = self._h = self._l = self._c = price
        self._n = 1
