"""The Renko + Awesome Oscillator divergence strategy of seed 000 as a pure engine:
``RenkoEngine.on_event(ev) -> [ev]``.

Inputs: :class:`~shared.events.Bbo` of its markets and, from the exec stream,
:class:`~shared.events.Fill`, :class:`~shared.events.OrderRejected`,
:class:`~shared.events.OrderCanceled`, :class:`~shared.events.PositionSnapshot` of its own
strategy. Output: :class:`~shared.events.TargetPosition` (``+size`` long, ``-size`` short,
``0`` flat), ``reference_price`` = the mid it decided on. Defaults of :class:`RenkoConfig` in
brackets.

- **Brick size** = Wilder ATR(``renko_atr_period`` [14]) of ``atr_candle_interval_s`` [15 s]
  OHLC candles of the mid × ``renko_atr_multiplier`` [1.0]; until the ATR is ready (15 candles)
  ``fallback_brick_bps`` [10 bps = 0.1 %] of the mid; never below ``min_brick_bps`` [0.5 bps] of
  the mid. Brick closes never enter the ATR. The size is read on every mid and applies to the
  bricks formed from that mid.
- **Bricks** (:class:`RenkoBuilder`): the first mid anchors the chart. A brick in the current
  direction forms when the mid is at least one brick size beyond the last brick close; it closes
  exactly one size from there. A reversal needs ``renko_reversal_bricks`` [2] sizes from the last
  close (standard Renko): the reversal brick opens at the last brick's open and closes one size
  beyond it (with 1, a reversal is one size from the last close, like the seed). One mid may form
  several bricks: they are formed in a loop until the mid is less than a brick away.
- **Indicators on bricks**: AO = SMA(``ao_fast_period`` [5]) − SMA(``ao_slow_period`` [34]) of
  the brick median price ``(high + low) / 2`` = ``(open + close) / 2``; Bollinger
  (``bb_period`` [20], ``bb_std`` [2.0], population σ) of brick closes; band position of the
  live mid. ``ao_trend``: AO of the last brick vs the one before.
- **Divergence** (:func:`find_divergences`) over the last ``renko_lookback`` [20] bricks: swing
  lows/highs are brick closes strictly below/above both neighbours. Bullish: the latest swing
  low is lower than the previous one while AO *at* the latest swing low is higher than AO at the
  previous one. Bearish mirrored on swing highs. A divergence is new when its latest swing brick
  was not used before (it is confirmed by the brick after it), so each one is seen once.
- **Strength** in [0, 1] with ``b`` = current brick size:
  ``s_price = min(1, |Δprice| / (divergence_price_bricks [2]·b))``,
  ``s_ao = min(1, |ΔAO| / (divergence_ao_bricks [1]·b))``, ``strength = √(s_price·s_ao)``.
  Enhanced (bullish with band position ≤ ``bb_enhancement_threshold`` [0.2], bearish ≥ 0.8):
  ``strength = min(1, strength·bb_enhancement_factor [1.5])`` and the reason says so.
- **Entry** (only when flat with no target pending, at the mid that formed the brick confirming
  a new divergence): strength ≥ ``min_divergence_strength`` [0.3]; bullish → long, bearish →
  short. Size = ``clamp(|AO|·ao_size_multiplier [0.1] / mid, min_size, max_size)`` per market,
  rounded down to ``size_step``.
- **Exit** (every mid while not flat, first match): stop loss [5 bps], take profit [10 bps]
  from the average entry, time stop (``max_hold_s`` [300 s] after the opening fill),
  ``ao_reversal`` (long: AO falling and < 0; short: AO rising and > 0).
- **Position** = this strategy's fills, deduplicated by ``fill_id``; no-spam/retry rules of
  :class:`shared.strategy_base.Pending` with the ATR candle as the retry bucket (as trend); a
  target refused as unreachable (``OrderRejected`` code 1) is not retried until it changes.

Time is only ``ts_event``; output ids come from :func:`shared.events.child`.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.config import StackConfig
from shared.events import Bbo, Event
from shared.indicators import ATR, SMA, Bands, Bollinger
from shared.markets import MarketInfo
from shared.strategy_base import (
    TargetEngine,
    TargetState,
    band_state,
    clamp_size,
    signal_labels,
)

from .config import SECTION, RenkoConfig

SOURCE = "strategy-renko"
MAX_BRICKS_PER_MID = 1000  # guard: a price jump of more bricks than this forms the rest on later mids

__all__ = ["SOURCE", "Brick", "Divergence", "RenkoBuilder", "RenkoEngine", "find_divergences",
           "make_engine", "signal_labels"]


@dataclass(frozen=True, slots=True)
class Brick:
    """A completed Renko brick: ``direction`` +1 up / −1 down, prices USD, ``size`` = |close −
    open|, ``ts`` the ``ts_event`` of the mid that formed it, ``seq`` 1, 2, ... per market."""

    seq: int
    ts: int
    open: float
    close: float
    direction: int
    size: float

    @property
    def high(self) -> float:
        return max(self.open, self.close)

    @property
    def low(self) -> float:
        return min(self.open, self.close)

    @property
    def median(self) -> float:
        """``(high + low) / 2``: the AO input."""
        return (self.open + self.close) / 2.0


class RenkoBuilder:
    """Renko bricks from a price stream (rules in the module docstring).

    Args:
        reversal_bricks: brick sizes from the last close a reversal needs (2 standard, 1 seed).
    """

    def __init__(self, reversal_bricks: int = 2) -> None:
        if reversal_bricks not in (1, 2):
            raise ValueError("reversal_bricks must be 1 or 2")
        self.reversal_bricks = reversal_bricks
        self.last_open: float | None = None
        self.last_close: float | None = None
        self.direction = 0
        self.seq = 0

    def update(self, ts: int, price: float, size: float) -> list[Brick]:
        """Add a price; return the bricks it completed (oldest first)."""
        if not (size > 0 and math.isfinite(size) and math.isfinite(price)):
            return []
        if self.last_close is None:
            self.last_open = self.last_close = price
            return []
        out: list[Brick] = []
        while len(out) < MAX_BRICKS_PER_MID:
            c, d = self.last_close, self.direction
            assert self.last_open is not None
            base = self.last_open if (self.reversal_bricks == 2 and d != 0) else c
            if d >= 0 and price >= c + size:
                o, nd = c, 1
            elif d <= 0 and price <= c - size:
                o, nd = c, -1
            elif d > 0 and price <= base - size:
                o, nd = base, -1
            elif d < 0 and price >= base + size:
                o, nd = base, 1
            else:
                break
            close = o + nd * size
            self.seq += 1
            out.append(Brick(self.seq, ts, o, close, nd, size))
            self.last_open, self.last_close, self.direction = o, close, nd
        return out


@dataclass(frozen=True, slots=True)
class Divergence:
    """A price/AO divergence between two swing points (``1`` previous, ``2`` latest)."""

    kind: str  # "bullish" | "bearish"
    swing_seq: int
    price1: float
    price2: float
    ao1: float
    ao2: float
    strength: float
    raw_strength: float
    enhanced: bool = False


def _last_two_swings(points: list[tuple[int, float, float | None]], sign: int) -> tuple[int, int] | None:
    """Indices ``(older, newer)`` of the last two swing lows (``sign`` −1: close below both
    neighbours) or highs (+1: above both) among ``(seq, close, ao)`` points that have an AO
    value, or None when there are fewer than two."""
    newer = -1
    for i in range(len(points) - 2, 0, -1):
        seq_close_ao = points[i]
        if seq_close_ao[2] is None:
            continue
        x, a, b = seq_close_ao[1], points[i - 1][1], points[i + 1][1]
        if (x > a and x > b) if sign > 0 else (x < a and x < b):
            if newer >= 0:
                return i, newer
            newer = i
    return None


def _new_swing(window: deque[tuple[int, float, float | None]]) -> bool:
    """Whether the point before the newest one is a swing low or high with an AO value (the
    only point that can have become a swing when the newest point arrived)."""
    if len(window) < 3:
        return False
    (_, a, _), (_, x, ao), (_, b, _) = window[-3], window[-2], window[-1]
    return ao is not None and ((x > a and x > b) or (x < a and x < b))


def divergence_strength(dprice: float, dao: float, brick_size: float, price_bricks: float = 2.0,
                        ao_bricks: float = 1.0) -> float:
    """``√(min(1, |dprice|/(price_bricks·b)) · min(1, |dao|/(ao_bricks·b)))`` in [0, 1]."""
    if brick_size <= 0:
        return 0.0
    sp = min(1.0, abs(dprice) / (price_bricks * brick_size))
    sa = min(1.0, abs(dao) / (ao_bricks * brick_size))
    return math.sqrt(sp * sa)


def find_divergences(points: list[tuple[int, float, float | None]], brick_size: float,
                     price_bricks: float = 2.0, ao_bricks: float = 1.0) -> list[Divergence]:
    """Divergences in a window of bricks given as ``(seq, close, AO at that brick)``, oldest
    first: at most one bullish (last two swing lows: lower close, higher AO) and one bearish
    (last two swing highs: higher close, lower AO). Swings without an AO value are not used.
    Strength before any Bollinger enhancement."""
    out: list[Divergence] = []
    for kind, sign in (("bullish", -1), ("bearish", 1)):
        sw = _last_two_swings(points, sign)
        if sw is None:
            continue
        (_, p1, a1), (seq2, p2, a2) = points[sw[0]], points[sw[1]]
        assert a1 is not None and a2 is not None
        if kind == "bullish" and not (p2 < p1 and a2 > a1):
            continue
        if kind == "bearish" and not (p2 > p1 and a2 < a1):
            continue
        s = divergence_strength(p2 - p1, a2 - a1, brick_size, price_bricks, ao_bricks)
        out.append(Divergence(kind, seq2, p1, p2, a1, a2, s, s))
    return out


@dataclass(slots=True, kw_only=True)
class MarketState(TargetState):
    """Everything the engine keeps for one market (position, pending target: TargetState)."""

    atr: ATR
    renko: RenkoBuilder
    ao_fast: SMA
    ao_slow: SMA
    bb: Bollinger
    window: deque[tuple[int, float, float | None]]
    atr_v: float | None = None
    brick_size: float | None = None
    ao_v: float | None = None
    ao_prev: float | None = None
    bands: Bands | None = None
    bb_position: float | None = None
    bricks: int = 0
    bricks_up: int = 0
    bricks_down: int = 0
    last_brick: Brick | None = None
    used_swing: dict[str, int] = field(default_factory=lambda: {"bullish": 0, "bearish": 0})
    divergences: dict[str, int] = field(default_factory=lambda: {"bullish": 0, "bearish": 0})
    last_divergence: Divergence | None = None


class RenkoEngine(TargetEngine[MarketState]):
    """The Renko+AO divergence strategy (see the module docstring); arguments of
    :class:`~shared.strategy_base.TargetEngine` (markets missing from ``cfg.sizes`` are
    sized from ``cfg.notional_usd``)."""

    SOURCE = SOURCE
    cfg: RenkoConfig

    def _new_state(self, market: str) -> MarketState:
        c = self.cfg
        return MarketState(
            **self._target_state(market),
            atr=ATR(c.renko_atr_period),
            renko=RenkoBuilder(c.renko_reversal_bricks),
            ao_fast=SMA(c.ao_fast_period),
            ao_slow=SMA(c.ao_slow_period),
            bb=Bollinger(c.bb_period, c.bb_std),
            window=deque(maxlen=c.renko_lookback),
        )

    # ------------------------------------------------------------------------------------------
    # public API (on_event, position: TargetEngine)
    # ------------------------------------------------------------------------------------------

    def state(self, market: str) -> dict[str, Any]:
        """A snapshot of one market's bricks, indicators and position (metrics, debugging)."""
        st = self._m[market]
        d = st.last_divergence
        return {
            "bricks": st.bricks,
            "bricks_up": st.bricks_up,
            "bricks_down": st.bricks_down,
            "brick_size": st.brick_size,
            "last_brick_close": st.renko.last_close,
            "atr": st.atr_v,
            "ao": st.ao_v,
            "ao_prev": st.ao_prev,
            **band_state(st.bands, st.bb_position),
            "divergences": dict(st.divergences),
            "last_divergence_kind": d.kind if d else None,
            "last_divergence_strength": d.strength if d else None,
            **self._position_state(st),
        }

    # ------------------------------------------------------------------------------------------
    # market data
    # ------------------------------------------------------------------------------------------

    def _brick_size(self, mid: float, st: MarketState) -> float:
        c = self.cfg
        size = st.atr_v * c.renko_atr_multiplier if st.atr_v is not None else mid * c.fallback_brick_bps / 1e4
        return max(size, mid * c.min_brick_bps / 1e4)

    def _on_mid(self, ev: Bbo, mid: float, st: MarketState) -> list[Event]:
        for candle in st.candles.update(ev.ts_event, mid):
            v = st.atr.update(candle.high, candle.low, candle.close)
            if v is not None:
                st.atr_v = v
        size = self._brick_size(mid, st)
        st.brick_size = size
        fresh: Divergence | None = None
        for brick in st.renko.update(ev.ts_event, mid, size):
            div = self._on_brick(brick, mid, st)
            if div is not None:
                fresh = div
        if st.bands is not None:
            st.bb_position = st.bands.position(mid)
        # entries only on a fresh divergence strong enough, with an AO value to size by
        signal = fresh is not None and fresh.strength >= self.cfg.min_divergence_strength and st.ao_v is not None
        return self._exit_or_enter(ev, mid, st, signal, lambda: self._entry(fresh, size, mid, st))

    def _entry(self, fresh: Divergence | None, brick: float, mid: float, st: MarketState) -> tuple[float, str]:
        """``(signed target, reason)`` of the entry on divergence ``fresh`` (brick size ``brick``)."""
        assert fresh is not None and st.ao_v is not None
        sign = 1.0 if fresh.kind == "bullish" else -1.0
        side = "long" if sign > 0 else "short"
        size = clamp_size(abs(st.ao_v) * self.cfg.ao_size_multiplier / mid, st.sizing)
        reason = (f"entry {side} divergence={fresh.kind} strength={fresh.strength:.3f} "
                  f"raw={fresh.raw_strength:.3f}{' bb_enhanced' if fresh.enhanced else ''} "
                  f"swing={fresh.price1:.6g}->{fresh.price2:.6g} ao={fresh.ao1:.4g}->{fresh.ao2:.4g} "
                  f"brick={brick:.6g} mid={mid:.6g}")
        return sign * size, reason

    def _on_brick(self, brick: Brick, mid: float, st: MarketState) -> Divergence | None:
        c = self.cfg
        st.bricks += 1
        st.last_brick = brick
        if brick.direction > 0:
            st.bricks_up += 1
        else:
            st.bricks_down += 1
        fast = st.ao_fast.update(brick.median)
        slow = st.ao_slow.update(brick.median)
        ao = fast - slow if fast is not None and slow is not None else None
        if ao is not None:
            st.ao_prev, st.ao_v = st.ao_v, ao
        st.bands = st.bb.update(brick.close)
        w = st.window
        w.append((brick.seq, brick.close, ao))
        fresh: Divergence | None = None
        if not _new_swing(w):
            # A point becomes a swing once, when its right neighbour (this brick) arrives, and
            # keeps its close and AO; so without a new swing the last two swings of each kind
            # are those of an earlier brick, whose divergence (if any) was taken then
            # (used_swing): find_divergences could only return divergences skipped below.
            return None
        for div in find_divergences(list(w), brick.size, c.divergence_price_bricks,
                                    c.divergence_ao_bricks):
            if div.swing_seq <= st.used_swing[div.kind]:
                continue  # this swing pair was seen already
            st.used_swing[div.kind] = div.swing_seq
            if st.bands is not None:
                pos = st.bands.position(mid)
                thr = c.bb_enhancement_threshold
                if (div.kind == "bullish" and pos <= thr) or (div.kind == "bearish" and pos >= 1.0 - thr):
                    div = Divergence(div.kind, div.swing_seq, div.price1, div.price2, div.ao1, div.ao2,
                                     min(1.0, div.raw_strength * c.bb_enhancement_factor), div.raw_strength, True)
            st.divergences[div.kind] += 1
            st.last_divergence = div
            fresh = div
        return fresh

    # ------------------------------------------------------------------------------------------
    # decisions
    # ------------------------------------------------------------------------------------------

    def _reversal(self, st: MarketState) -> str | None:
        ao, prev = st.ao_v, st.ao_prev
        if ao is not None and prev is not None:
            if st.pos.size > 0 and ao < prev and ao < 0:
                return f"ao_reversal ao={ao:.4g}"
            if st.pos.size < 0 and ao > prev and ao > 0:
                return f"ao_reversal ao={ao:.4g}"
        return None


def make_engine(cfg: StackConfig, source: str = SOURCE,
                market_info: Mapping[str, MarketInfo] | None = None) -> RenkoEngine:
    """The engine for a stack config: section ``services.strategy-renko`` and its markets;
    ``market_info``: metadata (lot, minimums) to size markets missing from ``sizes``.

    Raises:
        ConfigError: invalid section or no market.
    """
    rcfg = cfg.section(SECTION, RenkoConfig)
    return RenkoEngine(rcfg, rcfg.resolve_markets(cfg.markets), source=source, market_info=market_info)
