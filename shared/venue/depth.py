"""A synthetic depth ladder behind the recorded top of book (venue-sim's wall-clock mode).

A top-of-book recording shows one level per side. Without more, a taker larger than the touch
size fills only at the touch (the rest is canceled) and the public book can go empty, which the
SDK's market-order helpers (``SignerClient.create_market_order_limited_slippage`` /
``_if_slippage``, reading ``orderBookOrders``) do not survive. :class:`DepthLadder` adds levels
behind the touch that takers walk (paying slippage), that refill over time, and that never leave
a side empty.

The model (all integers: prices in ticks, sizes in lots, time in sim ns -- no clock, no
randomness, so a run is a pure function of its events):

* **Anchor.** Per side, the recorded touch price; when the recording's side is empty, the last
  recorded price of that side (clamped one tick away from the other side's touch so the book
  never crosses); before any price of a side was seen, the other side's touch. No price seen at
  all: no ladder.
* **Levels.** Synthetic level ``k = 1, 2, ...`` sits ``k * step`` ticks behind the anchor (bids
  below, asks above), ``step = step_ticks`` if > 0, else ``ceil(anchor * step_bps / 10_000)``
  (at least one tick). Bid levels stop at 1 tick, ask levels at ``MAX_PRICE``.
* **Sizes.** Level ``k`` holds ``max(1, round(ref * size_multiple * g(k)))`` lots, ``ref`` being
  the side's recorded touch size (the last non-zero one when the side is empty; before any, the
  market's ``min_base_amount``), ``g(k) = 1`` (``constant``), ``1 + size_growth * (k - 1)``
  (``linear``) or ``(1 + size_growth) ** (k - 1)`` (``geometric``).
* **Consumption and refill.** What takers take from a level is remembered by absolute price
  (so a touch move does not give it back). It refills linearly: ``refill_per_s`` times the
  level's full size per sim second (0 = never); a level is full again once its consumption is
  refilled. Reads never change state (the available size is computed from the time of the
  last take), so how often the book is looked at never changes a fill.
* **Display.** The public book shows the first ``levels`` synthetic levels that have size left
  (a fully consumed level is skipped and the next one deeper shows), so a side never empties.
* **Takers** walk the synthetic levels after the touch, best price first, up to their limit
  price and at most ``max_sweep_levels`` levels per order (a bound on work; the rest of an IOC
  is canceled, of a GTT rests). At one price the synthetic size comes before resting orders of
  simulated accounts (they queue behind it, as behind the recorded touch).

Resting orders of simulated accounts keep the top-of-book queue rules of
:mod:`shared.venue.matching` (an order behind the touch has an unknown queue): the ladder is a
taker-side liquidity model only; recorded trades never fill against it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Literal

import msgspec

from shared.venue.model import MAX_PRICE

SizeMode = Literal["constant", "linear", "geometric"]


class DepthModel(msgspec.Struct, frozen=True, kw_only=True):
    """Parameters of the synthetic ladder (see the module docstring for the formulas).

    Attributes:
        levels: synthetic levels shown per side behind the touch (>= 1).
        step_ticks: spacing between levels in ticks; 0 = use ``step_bps``.
        step_bps: spacing in basis points of the anchor price (rounded up, >= 1 tick).
        size_mode: ``constant``, ``linear`` or ``geometric`` growth of level sizes with depth.
        size_multiple: level-1 size as a multiple of the touch size.
        size_growth: growth per level (``linear``: + this fraction of level 1 per level;
            ``geometric``: x ``1 + size_growth`` per level).
        refill_per_s: fraction of a level's full size restored per sim second (0 = never).
        max_sweep_levels: most synthetic levels one taker order may walk.
    """

    levels: int = 10
    step_ticks: int = 0
    step_bps: float = 1.0
    size_mode: SizeMode = "constant"
    size_multiple: float = 1.0
    size_growth: float = 0.0
    refill_per_s: float = 0.1
    max_sweep_levels: int = 1000

    def describe(self) -> str:
        """One line for ``/sim/status``."""
        step = f"{self.step_ticks} ticks" if self.step_ticks > 0 else f"{self.step_bps:g} bps"
        return (f"recorded top-of-book plus a synthetic ladder: {self.levels} levels per side behind the touch, "
                f"{step} apart, sizes {self.size_mode} x{self.size_multiple:g} of the touch size "
                f"(growth {self.size_growth:g}), consumed by takers (best price first, up to "
                f"{self.max_sweep_levels} levels per order) and refilled at {self.refill_per_s:g} of a level "
                "per sim second; an empty recorded side anchors at its last price; resting orders keep the "
                "top-of-book queue rules")


class _Side:
    """One side's ladder state: last recorded price/size and consumption by price."""

    __slots__ = ("consumed", "last_px", "last_sz")

    def __init__(self) -> None:
        self.last_px: int | None = None
        self.last_sz = 0
        self.consumed: dict[int, tuple[int, int, int]] = {}  # price ticks -> (lots consumed, at sim ns, full lots)


class DepthLadder:
    """The synthetic ladder of one market (see the module docstring).

    Args:
        model: the parameters.
        min_lots: the market's ``min_base_amount`` in lots (reference size before any touch).
    """

    def __init__(self, model: DepthModel, min_lots: int) -> None:
        self.model = model
        self.min_lots = max(1, min_lots)
        self.bid = _Side()
        self.ask = _Side()

    # ------------------------------------------------------------------ recorded touch

    def on_touch(self, bid_px: int | None, bid_sz: int, ask_px: int | None, ask_sz: int) -> None:
        """Remember the recorded touch (called with every recorded quote change)."""
        if bid_px is not None and bid_sz > 0:
            self.bid.last_px, self.bid.last_sz = bid_px, bid_sz
        if ask_px is not None and ask_sz > 0:
            self.ask.last_px, self.ask.last_sz = ask_px, ask_sz

    def _anchor(self, is_ask: bool, bid_px: int | None, ask_px: int | None) -> int | None:
        """The side's anchor price in ticks (None: no price known at all)."""
        own, other = (ask_px, bid_px) if is_ask else (bid_px, ask_px)
        if own is not None:
            return own
        side = self.ask if is_ask else self.bid
        last = side.last_px
        if last is None:
            return other
        if other is None:
            return last
        return max(last, other + 1) if is_ask else min(last, other - 1)

    def _ref_size(self, is_ask: bool, touch_sz: int) -> int:
        side = self.ask if is_ask else self.bid
        if touch_sz > 0:
            return touch_sz
        return side.last_sz if side.last_sz > 0 else self.min_lots

    def _step(self, anchor: int) -> int:
        m = self.model
        if m.step_ticks > 0:
            return m.step_ticks
        return max(1, math.ceil(anchor * m.step_bps / 10_000))

    def _full(self, ref: int, k: int) -> int:
        m = self.model
        if m.size_mode == "linear":
            g = 1.0 + m.size_growth * (k - 1)
        elif m.size_mode == "geometric":
            g = (1.0 + m.size_growth) ** (k - 1)
        else:
            g = 1.0
        return max(1, round(ref * m.size_multiple * g))

    def _still_consumed(self, c: tuple[int, int, int], now_ns: int) -> int:
        """Lots of a consumption record ``(lots, at_ns, full_at_take)`` not refilled at ``now_ns``."""
        lots, at, full = c
        return max(0, lots - int(full * self.model.refill_per_s * max(0, now_ns - at) / 1e9))

    def _available(self, side: _Side, px: int, full: int, now_ns: int) -> int:
        c = side.consumed.get(px)
        if c is None:
            return full
        return max(0, full - self._still_consumed(c, now_ns))

    # ------------------------------------------------------------------ reads

    def levels(self, is_ask: bool, bid_px: int | None, bid_sz: int, ask_px: int | None, ask_sz: int,
               now_ns: int, limit: int | None = None,
               max_levels: int | None = None) -> Iterator[tuple[int, int, int]]:
        """Synthetic levels of a side with size left, best first: ``(price_ticks, lots left,
        full lots)``.

        Args:
            is_ask: the ask side (else the bid side).
            bid_px, bid_sz, ask_px, ask_sz: the recorded touch now (ticks/lots; None = empty).
            now_ns: sim time (for the refill).
            limit: stop at levels worse than this price (asks above, bids below).
            max_levels: stop after this many levels with size (default: ``model.levels``).
        """
        anchor = self._anchor(is_ask, bid_px, ask_px)
        if anchor is None:
            return
        side = self.ask if is_ask else self.bid
        ref = self._ref_size(is_ask, ask_sz if is_ask else bid_sz)
        step = self._step(anchor)
        want = self.model.levels if max_levels is None else max_levels
        # consumed levels are skipped; the scan is bounded by the shown levels plus the consumed ones
        scan = want + len(side.consumed)
        n = 0
        for k in range(1, scan + 1):
            px = anchor + k * step if is_ask else anchor - k * step
            if px < 1 or px > MAX_PRICE or n >= want:
                return
            if limit is not None and (px > limit if is_ask else px < limit):
                return
            full = self._full(ref, k)
            avail = self._available(side, px, full, now_ns)
            if avail > 0:
                n += 1
                yield px, avail, full

    # ------------------------------------------------------------------ takes

    def take(self, is_ask: bool, px: int, want: int, now_ns: int, full: int) -> int:
        """Take up to ``want`` lots from the synthetic level at ``px`` (full size ``full``) of
        the ``is_ask`` side at ``now_ns``; returns the lots taken (0 if the level is empty)."""
        q = min(want, self._available(self.ask if is_ask else self.bid, px, full, now_ns))
        if q > 0:
            self.consume(is_ask, px, q, now_ns, full)
        return q

    def consume(self, is_ask: bool, px: int, lots: int, now_ns: int, full: int) -> None:
        """A taker took ``lots`` from the synthetic level at ``px`` (full size ``full`` lots) on
        the ``is_ask`` side at ``now_ns``; fully refilled records of the side are forgotten."""
        side = self.ask if is_ask else self.bid
        c = side.consumed.get(px)
        still = self._still_consumed(c, now_ns) if c is not None else 0
        side.consumed[px] = (still + lots, now_ns, full)
        for p in [p for p, rec in side.consumed.items() if self._still_consumed(rec, now_ns) == 0]:
            del side.consumed[p]
