"""Order-book builder for one Lighter market (pure: no I/O, no clock).

Lighter's ``order_book/{id}`` channel (``lighter-api.md`` section 5.3):

- the first message after subscribing, ``subscribed/order_book``, is a snapshot of the top
  aggregated levels, with ``nonce`` (and ``begin_nonce: 0``);
- every ``update/order_book`` lists only changed levels; each size **replaces** the level's size
  and size 0 deletes the level;
- an update is contiguous when its ``begin_nonce`` equals the previous message's ``nonce``
  (the snapshot counts). Otherwise updates were lost: the book is dropped and the channel must
  be resubscribed (unsubscribe + subscribe) to get a new snapshot. Updates that arrive before
  that snapshot are ignored.

Older frames have no ``begin_nonce`` (e.g. ``ws_order_book_update_older_no_nonce.json``): they
are applied, but continuity cannot be checked for them (:attr:`ApplyResult.unchecked` is set,
and their :class:`BookDelta` carries the book's previous nonce as ``begin_nonce``).

:meth:`BookBuilder.apply` returns the events to publish: a :class:`BookSnapshot` per snapshot, a
:class:`BookDelta` per applied update, each followed by a derived :class:`Bbo` after a snapshot
or whenever the top of book (best price or size on either side) changed. No Bbo is derived
while a side of the book is empty.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from shared.events import Bbo, BookDelta, BookSnapshot, Event, derive_id
from shared.lighter_ws.parse import SOURCE, BookMessage

Top = tuple[float, float, float, float]


class Status(StrEnum):
    """What :meth:`BookBuilder.apply` did with a message."""

    SNAPSHOT = "snapshot"  # book (re)built from a snapshot
    APPLIED = "applied"  # contiguous update applied
    UNCHECKED = "unchecked"  # update without begin_nonce applied, continuity not checked
    GAP = "gap"  # begin_nonce != last nonce: book dropped, resubscribe
    IGNORED = "ignored"  # update while no book (before the first / a fresh snapshot)


@dataclass(slots=True)
class ApplyResult:
    """Outcome of one message.

    Attributes:
        status: see :class:`Status`.
        events: events to publish in order (``BookSnapshot``/``BookDelta``, then maybe ``Bbo``).
        resubscribe: True exactly once per detected gap: the client must unsubscribe and
            subscribe ``order_book/{market_id}`` again.
        expected_nonce / got_begin_nonce: on a gap, the book's last nonce and the update's
            ``begin_nonce``.
    """

    status: Status
    events: list[Event] = field(default_factory=list)
    resubscribe: bool = False
    expected_nonce: int | None = None
    got_begin_nonce: int | None = None

    @property
    def unchecked(self) -> bool:
        """True when an update was applied without a continuity check (older format)."""
        return self.status is Status.UNCHECKED


class BookBuilder:
    """Builds the aggregated book of one market from Lighter order-book messages.

    Args:
        symbol: our market symbol (``BTC``), used in events and ids.

    Attributes:
        bids, asks: ``{price USD: size base units}`` of the current book (empty when not synced).
        nonce: nonce of the last applied message (``None`` when not synced).
        gaps: number of gaps detected so far.
    """

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}
        self.nonce: int | None = None
        self.gaps = 0
        self._top: Top | None = None

    @property
    def synced(self) -> bool:
        """True while the book holds a snapshot plus contiguous updates."""
        return self.nonce is not None

    def reset(self) -> None:
        """Drop the book (e.g. on disconnect); updates are ignored until the next snapshot."""
        self.bids.clear()
        self.asks.clear()
        self.nonce = None
        self._top = None

    def sorted_bids(self, depth: int | None = None) -> list[tuple[float, float]]:
        """Bids best (highest price) first, as ``(price, size)``; ``depth`` levels at most."""
        return sorted(self.bids.items(), key=lambda kv: -kv[0])[:depth]

    def sorted_asks(self, depth: int | None = None) -> list[tuple[float, float]]:
        """Asks best (lowest price) first, as ``(price, size)``; ``depth`` levels at most."""
        return sorted(self.asks.items())[:depth]

    def top(self) -> Top | None:
        """``(bid_px, bid_sz, ask_px, ask_sz)`` of the current book, ``None`` if a side is empty."""
        if not self.bids or not self.asks:
            return None
        bp = max(self.bids)
        ap = min(self.asks)
        return (bp, self.bids[bp], ap, self.asks[ap])

    def apply(self, msg: BookMessage, ts_recv: int = 0) -> ApplyResult:
        """Apply one parsed order-book message.

        Args:
            msg: a :class:`shared.lighter_ws.parse.BookMessage` of this builder's market.
            ts_recv: local receive time in ns (copied into the events).

        Returns:
            the :class:`ApplyResult`; its events carry ``ts_event = msg.ts_event`` and ids
            ``derive_id(symbol, kind, nonce)``.
        """
        if msg.snapshot:
            self.bids = {p: s for p, s in msg.bids if s > 0}
            self.asks = {p: s for p, s in msg.asks if s > 0}
            self.nonce = msg.nonce
            ev = BookSnapshot(id=derive_id(self.symbol, "book_snapshot", msg.nonce), ts_event=msg.ts_event,
                              ts_recv=ts_recv, source=SOURCE, market=self.symbol,
                              bids=self.sorted_bids(), asks=self.sorted_asks(), nonce=msg.nonce)
            self._top = None  # always derive a Bbo after a snapshot
            return ApplyResult(Status.SNAPSHOT, [ev, *self._bbo(msg, ts_recv)])

        if self.nonce is None:
            return ApplyResult(Status.IGNORED)
        if msg.begin_nonce is not None and msg.begin_nonce != self.nonce:
            expected = self.nonce
            self.gaps += 1
            self.reset()
            return ApplyResult(Status.GAP, resubscribe=True, expected_nonce=expected,
                               got_begin_nonce=msg.begin_nonce)

        begin = msg.begin_nonce if msg.begin_nonce is not None else self.nonce
        for side, levels in ((self.bids, msg.bids), (self.asks, msg.asks)):
            for price, size in levels:
                if size > 0:
                    side[price] = size
                else:
                    side.pop(price, None)
        self.nonce = msg.nonce
        ev = BookDelta(id=derive_id(self.symbol, "book_delta", msg.nonce), ts_event=msg.ts_event,
                       ts_recv=ts_recv, source=SOURCE, market=self.symbol,
                       bids=list(msg.bids), asks=list(msg.asks), nonce=msg.nonce, begin_nonce=begin)
        status = Status.APPLIED if msg.begin_nonce is not None else Status.UNCHECKED
        return ApplyResult(status, [ev, *self._bbo(msg, ts_recv)])

    def _bbo(self, msg: BookMessage, ts_recv: int) -> list[Event]:
        top = self.top()
        if top is None or top == self._top:
            if top is None:
                self._top = None
            return []
        self._top = top
        return [Bbo(id=derive_id(self.symbol, "bbo", msg.nonce), ts_event=msg.ts_event, ts_recv=ts_recv,
                    source=SOURCE, market=self.symbol, bid_px=top[0], bid_sz=top[1], ask_px=top[2], ask_sz=top[3])]
