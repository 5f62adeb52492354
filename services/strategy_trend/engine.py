"""The RSI+BB trend strategy of seed 000 as a pure engine: ``TrendEngine.on_event(ev) -> [ev]``.

Inputs: :class:`~shared.events.Bbo` of its markets (other book events and markets are ignored)
and, from the account's exec stream, :class:`~shared.events.Fill`,
:class:`~shared.events.OrderRejected`, :class:`~shared.events.OrderCanceled` and
:class:`~shared.events.PositionSnapshot` whose ``strategy`` is its own. Output:
:class:`~shared.events.TargetPosition` (signed base units: ``+size`` long, ``-size`` short,
``0`` flat), ``reference_price`` = the mid it decided on.

Rules (defaults of :class:`TrendConfig` in brackets):

- **Candles**: ``candle_interval_s`` [15 s] OHLC candles of the mid ``(bid + ask)/2`` built by
  :class:`shared.candles.CandleBuilder`; empty buckets up to ``candle_max_fill`` [20] are
  forward-filled with flat candles (the seed polled the last price every 5 s, so it always had a
  candle). There is no volume in a mid candle, so the seed's volume filter (skipped on
  zero-volume candles) does not exist here.
- **Indicators** on candle closes (``shared.indicators``): Wilder RSI(14) (no-movement reads as
  50), Bollinger(20, 2.0, population σ), EMA 8 and 21 (full history, SMA seed), Wilder ATR(14)
  on the candles' high/low/close, volatility = mean |close-to-close return| over the last 20
  returns in bps. Warm-up: 21 candles.
- **Entry** (only at a candle close, only when flat and with no target pending), at the mid of the
  event that closed the candle: ``vol_min_bps ≤ volatility ≤ vol_max_bps`` [2, 25] and
  ``|EMAf − EMAs| / EMAs · 1e4 ≥ trend_confirmation_bps`` [2]; then
  long if ``RSI > rsi_bullish_threshold + rsi_momentum_strength`` [60],
  ``bb_position ≥ 0.5 − bb_position_threshold`` [0.2] and ``EMAf > EMAs``;
  short if ``RSI < rsi_bearish_threshold − rsi_momentum_strength`` [40],
  ``bb_position ≤ 0.5 + bb_position_threshold`` [0.8] and ``EMAf < EMAs`` (long checked first).
  ``bb_position = (mid − lower)/(upper − lower)`` (0.5 on collapsed bands). "Price near/above the
  BB middle, within 30 % of the band" is read as the seed code does: a long is allowed anywhere
  from 30 % of the band width below the middle upwards (also above the upper band), i.e. not
  in the bottom 20 % of the band; a short mirrored.
- **Size**: ``clamp(ATR · atr_size_multiplier / mid, min_size, max_size)`` per market, rounded
  down to ``size_step``, never below ``min_size``.
- **Exit** (on every mid update while the position is not flat; first match wins):
  ``stop_loss`` (long: mid ≤ avg_entry·(1 − 4 bps)), ``take_profit`` (long: mid ≥
  avg_entry·(1 + 8 bps)), ``time_stop`` (``ts_event − entry fill ts ≥ max_hold_s`` [180 s]),
  ``trend_reversal`` (long: RSI < rsi_bearish_threshold [50]; short: RSI >
  rsi_bullish_threshold [50]); shorts mirrored. An exit is a ``TargetPosition`` of 0, like any
  other target.
- **Position** = fold of this strategy's ``Fill`` events per market, deduplicated by
  ``fill_id`` (delivery is at-least-once); ``avg_entry_price`` is the size-weighted mean of the
  fills that built the position; the entry time is that of the fill that opened it. What the
  engine *sent* never changes the position.
- **No spam**: after a target is emitted it is *pending* until the position reaches it. The
  same target is emitted again only when the order died (``OrderRejected``/``OrderCanceled`` of
  this strategy and market) or ``retry_after_s`` [30 s] passed without reaching it, and then at
  most once per candle (not in the candle it was last sent in). A different target (e.g. an exit
  while an entry is partly filled) is sent at once. An entry that was partly filled and then
  canceled is not topped up: the partial position is managed by the exit rules.
  An order the executor refused itself (``OrderRejected`` with ``code`` 0) is retried only after
  ``retry_after_s``; one it refused as unreachable (``code`` 1, e.g. a remainder below the
  market minimum) is not retried until the target changes. These rules, the fill fold and the emission are
  :class:`shared.strategy_base.TargetEngine` and :class:`~shared.strategy_base.Pending`.

Differences from the seed code (its QUIRKs, see seed-behaviour.md §1.2): the time stop is the real
``max_hold_s`` (the seed scaled 3 min down to 45 s with 15 s candles) and fires at ``≥``; RSI is
Wilder's, not Cutler's, and never divides by zero (only gains -> 100); the EMAs run over the full
history with an SMA seed instead of over the last n closes; ATR is Wilder's instead of a plain
mean of 14 true ranges; the position comes from fills, not from what was submitted; exits are
target-position intents like entries; exits are checked on every mid, entries at candle closes.

Time is only ``ts_event``. Output ids come from :func:`shared.events.child`, so the same inputs
always give byte-identical outputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.candles import Candle
from shared.config import StackConfig
from shared.events import Bbo, Event
from shared.indicators import ATR, EMA, RSI, Bands, Bollinger, RealizedVolBps
from shared.markets import MarketInfo
from shared.strategy_base import (
    TargetEngine,
    TargetState,
    band_state,
    clamp_size,
    signal_labels,
)

from .config import TrendConfig

SOURCE = "strategy-trend"

__all__ = ["SOURCE", "MarketState", "TrendEngine", "make_engine", "signal_labels"]


@dataclass(slots=True, kw_only=True)
class MarketState(TargetState):
    """Everything the engine keeps for one market (position, pending target: TargetState)."""

    rsi: RSI
    bb: Bollinger
    ema_fast: EMA
    ema_slow: EMA
    atr: ATR
    vol: RealizedVolBps
    n_candles: int = 0
    last_candle: Candle | None = None
    rsi_v: float | None = None
    bands: Bands | None = None
    ema_fast_v: float | None = None
    ema_slow_v: float | None = None
    atr_v: float | None = None
    vol_v: float | None = None
    bb_position: float | None = None


class TrendEngine(TargetEngine[MarketState]):
    """The RSI+BB trend strategy (see the module docstring); arguments of
    :class:`~shared.strategy_base.TargetEngine` (markets missing from ``cfg.sizes`` are
    sized from ``cfg.notional_usd``)."""

    SOURCE = SOURCE
    cfg: TrendConfig

    def _new_state(self, market: str) -> MarketState:
        c = self.cfg
        return MarketState(
            **self._target_state(market),
            rsi=RSI(c.rsi_period, flat_value=50.0),
            bb=Bollinger(c.bb_period, c.bb_std),
            ema_fast=EMA(c.ema_fast_period),
            ema_slow=EMA(c.ema_slow_period),
            atr=ATR(c.atr_period),
            vol=RealizedVolBps(c.volatility_period),
        )

    # ------------------------------------------------------------------------------------------
    # public API
    # ------------------------------------------------------------------------------------------

    def state(self, market: str) -> dict[str, Any]:
        """A snapshot of one market's indicators and position (for metrics and debugging)."""
        st = self._m[market]
        return {
            "candles": st.n_candles,
            "ready": self._ready(st),
            "mid": st.mid,
            "rsi": st.rsi_v,
            **band_state(st.bands, st.bb_position),
            "ema_fast": st.ema_fast_v,
            "ema_slow": st.ema_slow_v,
            "atr": st.atr_v,
            "volatility_bps": st.vol_v,
            **self._position_state(st),
        }

    # ------------------------------------------------------------------------------------------
    # market data
    # ------------------------------------------------------------------------------------------

    def _on_mid(self, ev: Bbo, mid: float, st: MarketState) -> list[Event]:
        closed = st.candles.update(ev.ts_event, mid)
        for c in closed:
            self._on_candle(c, st)
        if st.bands is not None:
            st.bb_position = st.bands.position(mid)
        # entries only at a candle close
        return self._exit_or_enter(ev, mid, st, bool(closed), lambda: self._entry(mid, st))

    def _on_candle(self, c: Candle, st: MarketState) -> None:
        st.n_candles += 1
        st.last_candle = c
        st.rsi_v = st.rsi.update(c.close)
        st.bands = st.bb.update(c.close)
        st.ema_fast_v = st.ema_fast.update(c.close)
        st.ema_slow_v = st.ema_slow.update(c.close)
        st.atr_v = st.atr.update(c.high, c.low, c.close)
        st.vol_v = st.vol.update(c.close)

    @staticmethod
    def _ready(st: MarketState) -> bool:
        return None not in (st.rsi_v, st.bands, st.ema_fast_v, st.ema_slow_v, st.atr_v, st.vol_v)

    # ------------------------------------------------------------------------------------------
    # decisions
    # ------------------------------------------------------------------------------------------

    def _reversal(self, st: MarketState) -> str | None:
        c = self.cfg
        long = st.pos.size > 0
        if st.rsi_v is not None:
            if long and st.rsi_v < c.rsi_bearish_threshold:
                return f"trend_reversal rsi={st.rsi_v:.2f}"
            if not long and st.rsi_v > c.rsi_bullish_threshold:
                return f"trend_reversal rsi={st.rsi_v:.2f}"
        return None

    def _entry(self, mid: float, st: MarketState) -> tuple[float, str] | None:
        if not self._ready(st):
            return None
        c = self.cfg
        rsi, bands, ef, es, vol = st.rsi_v, st.bands, st.ema_fast_v, st.ema_slow_v, st.vol_v
        assert rsi is not None and bands is not None and ef is not None and es is not None and vol is not None
        if not (c.vol_min_bps <= vol <= c.vol_max_bps):
            return None
        if es <= 0:
            return None
        trend_bps = abs(ef - es) / es * 1e4
        if trend_bps < c.trend_confirmation_bps:
            return None
        pos = bands.position(mid)
        if rsi > c.rsi_bullish_threshold + c.rsi_momentum_strength and pos >= 0.5 - c.bb_position_threshold \
                and ef > es:
            side, sign = "long", 1.0
        elif rsi < c.rsi_bearish_threshold - c.rsi_momentum_strength and pos <= 0.5 + c.bb_position_threshold \
                and ef < es:
            side, sign = "short", -1.0
        else:
            return None
        size = self._size(mid, st)
        reason = (f"entry {side} rsi={rsi:.2f} bb_pos={pos:.3f} trend={trend_bps:.2f}bps "
                  f"vol={vol:.2f}bps atr={st.atr_v:.6g} mid={mid:.6g}")
        return sign * size, reason

    def _size(self, mid: float, st: MarketState) -> float:
        raw = (st.atr_v or 0.0) * self.cfg.atr_size_multiplier / mid if mid > 0 else 0.0
        return clamp_size(raw, st.sizing)


def make_engine(cfg: StackConfig, market_info: Mapping[str, MarketInfo] | None = None) -> TrendEngine:
    """The engine as the service would build it from the stack config (used by backtests):
    section ``services.strategy-trend`` and its markets (or the stack's ``markets``);
    ``market_info``: metadata (lot, minimums) to size markets missing from ``sizes``.

    Raises:
        ConfigError: an invalid field, or no market.
    """
    tcfg = cfg.section("strategy-trend", TrendConfig)
    return TrendEngine(tcfg, tcfg.resolve_markets(cfg.markets), market_info=market_info)
