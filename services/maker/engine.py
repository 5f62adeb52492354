"""The maker as a pure engine: ``MakerEngine.on_event(ev) -> [ev]``.

Avellaneda-Stoikov quotes (seed 003/§4) combined with the risk features of the lighter-bot maker
(seed 001/§2). Time is only ``ts_event``; randomness only from :func:`_jitter_unit` (a hash of
``cfg.seed``, the market and the event time, so a quote's jitter does not depend on the history
of earlier draws: a restart or a different interleaving of inputs gives the same price); output
ids come from :func:`shared.events.derive_id`, so the same inputs give the same outputs, byte for
byte. Defaults of :class:`MakerConfig` in brackets; full rationale in ``docs/maker.md``.

Inputs: ``Bbo`` and ``Trade`` of its markets, ``ModelParams`` of this strategy (stream
``{ns}:params:maker``), and from the exec stream this strategy's ``Fill``, ``OrderAccepted``,
``OrderCanceled``, ``OrderRejected``. Outputs: ``QuoteIntent`` (post-only; a side with ``None``
price and 0 size is pulled) and the ``ModelParams`` it calibrated itself.

Rules, per market (prices in integer ticks ``tick_size``, mid ``s`` = (bid + ask)/2 in ticks):

1. **Inventory** ``inv`` = the maker's own position, the FIFO fold of its ``Fill`` events
   (deduplicated by ``fill_id``); ``q = inv / max_size`` (inventory in order clips, the clip
   being the size quoted at zero inventory).
2. **A-S** (Avellaneda & Stoikov 2008, eqs. 2.9/2.10 as used by seed 003), from the latest
   ``ModelParams`` with ``ok`` True (``ok`` False is counted, never used): reservation price
   ``r = s - q·γ·σ²·τ`` and total spread ``γσ²τ + (2/γ)·ln(1 + γ/k)`` with ``τ = horizon_s``
   [60 s] constant (a perp has no session end). |r − s| is capped at
   ``max_reservation_offset_bps`` [50]. Without params: ``require_params`` [false] → no quotes;
   else ``half_AS = 0`` and ``r = s − clamp(inv/soft_inventory, ±2)·fallback_skew_bps`` [2 bps].
3. **Volatility band** (seed 001 §2.2): every ``vol_sample_s`` [5 s] the mid is sampled;
   ``vol`` = EWMA of |Δmid|/mid in bps, α = 1 − exp(−ln2·dt/``vol_half_life_s`` [45]); the first
   change initialises it. ``factor = clamp((vol − 6)/(22 − 6), 0, 1)``; band full spread
   ``7 + 6·factor`` bps; size multiplier ``1.1 − 0.4·factor``; ×0.85 from 9 bps.
   **Pause** (both sides pulled) at vol ≥ 30 bps, resume when vol ≤ 18 bps and
   |inv| ≤ 25 % of ``soft_inventory``.
4. **Trend filter** (seed 001 §2.3): delta = mid change over the last 45 s in bps; neutral → up
   at ≥ +12, → down at ≤ −6; up → neutral below +6, down → neutral above −6. Up: quote
   ``trend_up_bias`` [bid] only, +2.5 bps; down: ``trend_down_bias`` [ask] only, +6 bps; while
   down (and ``cooldown`` s after it, 45 defensive / 20 aggressive) an up-trend's bias is
   forced to the down bias with ≥ 6 bps. When the biased side would grow |inv| beyond 60 % of
   ``soft_inventory``, both sides are quoted without the trend extra.
5. **Regimes** (§2.4): target defensive if down, in down-cooldown or PnL guard engaged, else
   aggressive; switch at most every ``min_dwell_s`` [60]; starts defensive. Defensive: size
   ×0.7, +2 bps; aggressive ×1.0, +0 bps.
6. **PnL guard** (§2.7, on FIFO realized PnL, not cash flow): every 15 s the realized PnL of
   the maker's fills of the last 300 s (fees deducted) is compared to −0.5 USD; 2 consecutive
   failures engage it for 120 s: +min(4, 8) bps, size ×max(0.6, 0.85); a passing check
   releases it.
7. **Prices**: ``half = max(half_AS, band/2) + (trend + regime + guard extras)/2`` (bps of the
   mid, in ticks), full spread capped at ``max_spread_bps`` [100]; at each requote a seeded
   jitter uniform in ±``randomize_bps``/2 [1 bps full spread] widens/narrows both sides (drawn
   from seed, market and event time);
   ``bid = floor(r − half)``, ``ask = ceil(r + half)``; post-only safety: bid ≤ best ask − 1
   tick, ask ≥ best bid + 1 tick.
8. **Size** (§2.6, quirk fixed: the regime multiplier is no longer discarded):
   ``max_size − (max_size − min_size)·min(1, |inv|/soft_inventory)``, × regime × volatility ×
   high-vol clip × guard multipliers, rounded down to ``size_step``, clamped to
   [min_size, max_size], then raised to the notional floor ``min_notional_usd`` [10.5] (the
   floor wins over ``max_size``: a smaller order would be refused). **Hard cap**: a side is
   trimmed to the room left under ``max_inventory_units`` and pulled when the room is below
   the minimum.
9. **Requote discipline**: a resting side is replaced only if its wanted price (before jitter)
   moved more than ``requote_threshold_bps`` [1.5] from the resting one, it is older than
   ``max_quote_age_s`` [30], or it was filled / ended by the venue; a size change alone does not
   replace it. Pulls go out at once; placements and replacements are limited to
   ``max_requotes_per_min`` [24] QuoteIntents per rolling 60 s over all markets. The
   QuoteIntent repeats the unchanged side, so the executor keeps that order (queue position).
10. **Calibration** (:mod:`services.maker.calibrator`): BBOs and trades of the last
    ``calibration_window_s`` [900] are kept; once they span ``min_calibration_span_s`` [300] and
    then every ``recalibrate_s`` [300] of event time, ``shared.calibration.calibrate`` is called.
    Inline (the default, backtests): at the triggering Bbo, its ``ModelParams`` is emitted (the
    runner writes it to ``{ns}:params:maker``) and used when ok, before quoting on that Bbo;
    params read back from that stream with an id this engine emitted are ignored. The live
    service (``calibration_thread``) builds the engine with ``calibrate_inline=False`` and
    calibrates in a worker thread; those params reach the engine through the stream.

Metrics-only figures (no effect on quotes): adverse selection = mid move after each fill at
``adverse_horizons_s`` [1, 10 s], bps, positive = against us (price fell after a buy, rose after
a sell); maker fill ratio = orders with a fill / orders accepted.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.config import StackConfig
from shared.events import (
    Bbo,
    Event,
    Fill,
    ModelParams,
    OrderAccepted,
    OrderCanceled,
    OrderRejected,
    QuoteIntent,
    Side,
    Trade,
    derive_id,
)
from shared.markets import KNOWN_MARKETS, MarketInfo
from shared.strategy_base import (
    MarketSizing,
    StrategyEngineBase,
    TopOfBook,
    died_at_venue,
    notional_sizing,
    own_state,
    unlisted_info,
)

from .calibrator import Calibrate, CalibrationJob, Calibrator, usable_bbo
from .config import SECTION, MakerConfig

log = logging.getLogger(__name__)

SOURCE = "maker"
NS = 1_000_000_000
EPS = 1e-12
LN2 = math.log(2.0)

__all__ = ["SOURCE", "FifoBook", "MakerConfig", "MakerEngine", "make_engine"]


class FifoBook:
    """FIFO lots of one market and the realized PnL they produce (USD).

    A fill first closes opposite lots from the front of the queue (oldest first, for longs
    *and* shorts: seed 001 inserted short lots at the front, i.e. LIFO; fixed), the remainder
    opens a lot at the back. Realized PnL of a close = ``(exit − entry)·size`` for a long lot,
    ``(entry − exit)·size`` for a short one; every fill's fee (USD, positive = paid) is deducted.
    """

    def __init__(self) -> None:
        self.lots: deque[list[float]] = deque()  # [signed size base units, price USD]
        self.realized = 0.0
        self._position = 0.0

    @property
    def position(self) -> float:
        """Signed base units (+ long): the sum of the lots, rounded to 1e-10 (kept up to date by
        :meth:`apply`, read on every quote)."""
        return self._position

    def apply(self, side: Side, size: float, price: float, fee: float = 0.0) -> float:
        """Fold one fill; returns the realized PnL it produced (USD, fee deducted)."""
        sign = 1.0 if side == "buy" else -1.0
        left = size
        pnl = -fee
        while left > EPS and self.lots and (self.lots[0][0] > 0) != (sign > 0):
            lot = self.lots[0]
            take = min(left, abs(lot[0]))
            pnl += (price - lot[1]) * take if lot[0] > 0 else (lot[1] - price) * take
            lot[0] += sign * take
            left -= take
            if abs(lot[0]) < 1e-10:
                self.lots.popleft()
        if left > 1e-10:
            self.lots.append([sign * left, price])
        self.realized += pnl
        p = sum(lot[0] for lot in self.lots)
        self._position = 0.0 if abs(p) < 1e-10 else round(p, 10)
        return pnl

    def reset_to(self, position: float, price: float) -> None:
        """Replace the lots by one lot of ``position`` (signed base units) at ``price`` USD
        (none when flat); realized PnL is kept."""
        self.lots.clear()
        if abs(position) >= 1e-10:
            self.lots.append([round(position, 10), price])
        self._position = 0.0 if abs(position) < 1e-10 else round(position, 10)


@dataclass(slots=True)
class SideQuote:
    """A side as last sent: ``base`` wanted price in ticks before jitter, ``ticks`` sent price,
    ``size`` base units, ``ts`` ns when placed."""

    base: int
    ticks: int
    size: float
    ts: int


@dataclass(slots=True)
class MState(TopOfBook):
    """Everything the engine keeps for one market."""

    market: str
    sizing: MarketSizing | None  # None / 0.0 below: not in the config, derived at the first mid
    tick: float
    soft: float
    hard: float
    now: int = 0
    bid: float | None = None
    ask: float | None = None
    params: ModelParams | None = None
    params_applied: int = 0
    params_rejected: int = 0
    calib_errors: int = 0
    # volatility
    vol: float | None = None
    sample_ts: int | None = None
    sample_mid: float | None = None
    paused: bool = False
    # trend
    trend_samples: deque[tuple[int, float]] = field(default_factory=deque)
    trend: str = "neutral"
    trend_delta_bps: float = 0.0
    cooldown_until: int = 0
    bias: str = "both"
    trend_extra_bps: float = 0.0
    # regime
    regime: str = "defensive"
    regime_since: int | None = None
    # inventory and PnL guard
    fifo: FifoBook = field(default_factory=FifoBook)
    realized_log: deque[tuple[int, float]] = field(default_factory=deque)
    guard_active: bool = False
    guard_until: int = 0
    guard_fails: int = 0
    guard_next: int | None = None
    guard_window_usd: float = 0.0
    # quotes
    quotes: dict[str, SideQuote | None] = field(default_factory=lambda: {"buy": None, "sell": None})
    dirty: set[str] = field(default_factory=set)
    requotes: int = 0
    deferred: int = 0
    half_ticks: float = 0.0
    reservation_offset_bps: float = 0.0
    band_bps: float = 0.0
    size: float = 0.0
    # fills and quality
    fills: int = 0
    accepted: int = 0
    filled_orders: set[int] = field(default_factory=set)
    adverse_due: dict[float, deque[tuple[int, str, float]]] = field(default_factory=dict)
    adverse_new: list[tuple[float, float]] = field(default_factory=list)
    adverse_sum: dict[float, float] = field(default_factory=dict)
    adverse_n: dict[float, int] = field(default_factory=dict)


def _jitter_unit(seed: int, market: str, ts_ns: int) -> float:
    """A uniform number in [0, 1) from ``(seed, market, ts_ns)``: the first 64 bits of
    :func:`shared.events.derive_id` (BLAKE2b) over 2**64. Keyed on the event time rather than
    drawn from a sequential RNG, so the quote placed at a given event time always gets the same
    jitter, whatever was drawn before (restarts, bus vs backtest input interleaving)."""
    return int(derive_id("maker-jitter", seed, market, ts_ns), 16) / 2.0**64


class MakerEngine(StrategyEngineBase):
    """The maker (see the module docstring).

    Args:
        cfg: the maker's configuration.
        markets: markets to quote; one missing from ``cfg.sizes``, ``tick_size``,
            ``soft_inventory`` or ``max_inventory_units`` gets the derived default at its first
            mid (:meth:`_size_unlisted`).
        source: ``source`` of the output events.
        calibrate: the calibration function, ``calibrate(bbos, trades, market, cfg, strategy=,
            order_size=, cause=, source=) -> ModelParams`` (default
            :func:`shared.calibration.calibrate`; tests pass a stub).
        seen_fills: how many fill ids to remember for deduplication.
        calibrate_inline: True: the engine's :class:`~services.maker.calibrator.Calibrator`
            calibrates at the triggering ``Bbo`` (backtests, lockstep); False: no calibration
            here, params come as ``ModelParams`` events (the live runner calibrates off its
            consume loop with :meth:`calibration_inputs`).
        market_info: metadata (lot, tick, minimums) for those derived defaults; a market not in
            it: ``KNOWN_MARKETS``, else guessed from its mid.
    """

    cfg: MakerConfig

    def __init__(self, cfg: MakerConfig, markets: list[str], source: str = SOURCE,
                 calibrate: Calibrate | None = None, seen_fills: int = 100_000,
                 calibrate_inline: bool = True,
                 market_info: Mapping[str, MarketInfo] | None = None) -> None:
        super().__init__(cfg, markets, source, seen_fills, market_info)
        self._m = {m: MState(market=m, sizing=cfg.sizes.get(m), tick=cfg.tick_size.get(m, 0.0),
                             soft=cfg.soft_inventory.get(m, 0.0), hard=cfg.max_inventory_units.get(m, 0.0))
                   for m in self.markets}
        self._calib_cfg: dict[str, Any] = {}
        self.calibrator = (Calibrator(cfg, self.markets, self.calibration_inputs, calibrate, source)
                           if calibrate_inline else None)
        self._own_params: deque[str] = deque(maxlen=1000)
        self._emits: deque[int] = deque()  # ts of QuoteIntents that placed/replaced, all markets

    # ------------------------------------------------------------------ public API

    def on_event(self, event: Event) -> list[Event]:
        """Consume one event; return the ``ModelParams`` and ``QuoteIntent`` it causes."""
        if isinstance(event, Bbo):
            st = self._m.get(event.market)
            if st is None or not usable_bbo(event):
                return []
            if st.sizing is None or not (st.tick and st.soft and st.hard):
                self._size_unlisted(st, event.mid)
            return self._on_bbo(event, st)
        if isinstance(event, Trade):
            st = self._m.get(event.market)
            if st is not None:
                st.now = max(st.now, event.ts_event)
                if self.calibrator is not None:
                    self.calibrator.observe(event, st.now)
            return []
        if isinstance(event, ModelParams):
            st = self._m.get(event.market)
            if st is None or event.strategy != self.name or event.id in self._own_params or not st.tick:
                return []  # (no tick yet: a market not in the config before its first mid)
            self._take_params(st, event)
            return self._quote(event, st)
        if isinstance(event, Fill | OrderAccepted | OrderCanceled | OrderRejected):
            st = own_state(event, self.name, self._m)
            if st is None:
                return []
            st.now = max(st.now, event.ts_event)
            if isinstance(event, Fill):
                if not self._fills.first(event.fill_id) or event.size <= 0:
                    return []
                self._on_fill(event, st)
            elif isinstance(event, OrderAccepted):
                st.accepted += 1
                return []
            else:
                if not died_at_venue(event):
                    return []  # refused by the executor (the same order would be refused again) or our own replacement
                if isinstance(event, OrderRejected):
                    st.dirty.add(event.side)
                else:
                    st.dirty.update(("buy", "sell"))  # e.g. canceled-post-only: find out which side by requoting
            self._guard_tick(st)
            return self._quote(event, st)
        return []

    def _size_unlisted(self, st: MState, mid: float) -> None:
        """Fill in what the config does not give for ``st.market`` at its first ``mid``: sizes
        from ``notional_usd``, the market's tick, soft/hard inventory caps as multiples of
        ``min_size`` (module docstring of :mod:`services.maker.config`)."""
        c = self.cfg
        info = unlisted_info(st.market, mid, self.market_info)
        if st.sizing is None:
            st.sizing = notional_sizing(c.notional_usd, mid, info)
        if not st.tick:
            st.tick = info.tick
        if not st.soft:
            st.soft = round(st.sizing.min_size * c.soft_inventory_orders, 12)
        if not st.hard:
            st.hard = round(st.sizing.min_size * c.max_inventory_orders, 12)

    def position(self, market: str) -> float:
        """The maker's inventory in ``market`` (signed base units), from its fills."""
        return self._m[market].fifo.position

    def adopt_position(self, market: str, position: float, avg_entry_price: float, ts_event: int) -> None:
        """Set the inventory of ``market`` to one lot of ``position`` at ``avg_entry_price``
        (the executor's snapshot when the fill history is gone:
        :meth:`~shared.strategy_base.StrategyEngineBase.take_snapshot`); both sides requote."""
        st = self._m[market]
        st.fifo.reset_to(position, avg_entry_price)
        st.dirty.update(("buy", "sell"))

    def drain_adverse(self, market: str) -> list[tuple[float, float]]:
        """Adverse-selection measurements completed since the last call: ``(horizon s, bps)``."""
        st = self._m[market]
        out, st.adverse_new = st.adverse_new, []
        return out

    def state(self, market: str) -> dict[str, Any]:
        """A snapshot of one market (metrics, logs, tests). Units in the keys' names."""
        st = self._m[market]
        p = st.params
        mid = st.mid
        q = {s: st.quotes[s] for s in ("buy", "sell")}
        bid = q["buy"].ticks * st.tick if q["buy"] else None
        ask = q["sell"].ticks * st.tick if q["sell"] else None
        spread = (ask - bid) / mid * 1e4 if (bid is not None and ask is not None and mid) else None
        return {
            "ts": st.now,
            "mid": mid,
            "bid_px": bid,
            "ask_px": ask,
            "bid_sz": q["buy"].size if q["buy"] else 0.0,
            "ask_sz": q["sell"].size if q["sell"] else 0.0,
            "quoted_spread_bps": spread,
            "reservation_offset_bps": st.reservation_offset_bps,
            "band_bps": st.band_bps,
            "inventory": st.fifo.position,
            "inventory_clips": st.fifo.position / st.sizing.max_size if st.sizing else 0.0,
            "sigma": self._conv(st, p)[0] if p else None,
            "A": p.A if p else None,
            "k": self._conv(st, p)[1] if p else None,
            "gamma": self._conv(st, p)[2] if p else None,
            "params_ok": p is not None,
            "params_applied": st.params_applied,
            "params_rejected": st.params_rejected,
            "calibration_errors": st.calib_errors,
            "volatility_bps": st.vol or 0.0,
            "vol_paused": st.paused,
            "trend": st.trend,
            "trend_delta_bps": st.trend_delta_bps,
            "trend_bias": {"both": 0, "ask": 1, "bid": -1}[st.bias],
            "down_cooldown": st.now < st.cooldown_until,
            "regime": st.regime,
            "regime_aggressive": st.regime == "aggressive",
            "pnl_guard": st.guard_active,
            "pnl_guard_window_usd": st.guard_window_usd,
            "realized_pnl_usd": st.fifo.realized,
            "quote_size": st.size,
            "requotes": st.requotes,
            "deferred_requotes": st.deferred,
            "fills": st.fills,
            "orders_accepted": st.accepted,
            "orders_filled": len(st.filled_orders),
            "fill_ratio": len(st.filled_orders) / st.accepted if st.accepted else None,
            "adverse_mean_bps": {h: st.adverse_sum[h] / n for h, n in st.adverse_n.items() if n},
            "dry_run": self.cfg.dry_run,
        }

    # ------------------------------------------------------------------ inputs

    def _on_bbo(self, ev: Bbo, st: MState) -> list[Event]:
        ts = ev.ts_event
        st.now = max(st.now, ts)
        st.bid, st.ask = ev.bid_px, ev.ask_px
        mid = ev.mid
        job = self.calibrator.observe(ev, st.now) if self.calibrator is not None else None
        self._adverse(st, mid)
        self._sample_vol(st, ts, mid)
        self._trend(st, ts, mid)
        self._guard_tick(st)
        self._regime(st)
        out: list[Event] = []
        params = self._calibrate_now(job, st) if job is not None else None
        if params is not None:
            out.append(params)
        out += self._quote(ev, st)
        return out

    def _on_fill(self, f: Fill, st: MState) -> None:
        st.fills += 1
        pnl = st.fifo.apply(f.side, f.size, f.price, f.fee)
        st.realized_log.append((f.ts_event, pnl))
        st.dirty.add(f.side)
        if f.client_order_index and len(st.filled_orders) < 1_000_000:
            st.filled_orders.add(f.client_order_index)
        ref = st.mid if st.mid is not None else f.price
        for h in self.cfg.adverse_horizons_s:
            st.adverse_due.setdefault(h, deque()).append((f.ts_event + int(h * NS), f.side, ref))

    def _take_params(self, st: MState, p: ModelParams) -> None:
        """Use ``p`` if ok (and not older than the current); count it otherwise."""
        if not p.ok:
            st.params_rejected += 1
            log.warning("maker %s: ModelParams %s not ok, ignored: %s", st.market, p.id, "; ".join(p.problems))
            return
        if st.params is not None and p.window_end < st.params.window_end:
            return
        st.params = p
        st.params_applied += 1

    def _calibrate_now(self, job: CalibrationJob, st: MState) -> ModelParams | None:
        """Inline mode: run ``job``, take and return its params (None when the fit raised)."""
        assert self.calibrator is not None
        try:
            p = self.calibrator.run(job)
        except Exception as exc:  # a failed fit must not stop quoting nor dead-letter the BBO
            self.calibration_failed(st.market, exc)
            return None
        self._own_params.append(p.id)
        self._take_params(st, p)
        return p

    def calibration_inputs(self, market: str) -> tuple[MarketInfo, Any, float]:
        """What a calibration of ``market`` needs besides its window: the market's metadata, the
        ``shared.calibration.CalibrationConfig`` and the clip size (``max_size``, base units)."""
        st = self._m[market]
        return self._market_info(st), self._calibration_cfg(st), st.sizing.max_size

    def calibration_failed(self, market: str, exc: BaseException) -> None:
        """Count and log a calibration of ``market`` that raised (quoting goes on)."""
        self._m[market].calib_errors += 1
        log.warning("maker %s: calibration failed: %s: %s", market, type(exc).__name__, exc)

    def _market_info(self, st: MState) -> MarketInfo:
        """The market's metadata for the calibration: Lighter's (``KNOWN_MARKETS``) when its tick
        matches the configured one, else built from the config (tick, lot, minimums)."""
        known = KNOWN_MARKETS.get(st.market)
        if known is not None and abs(known.tick - st.tick) < 1e-12:
            return known
        step = st.sizing.size_step or st.sizing.min_size
        return MarketInfo(symbol=st.market, market_id=-1, size_decimals=max(0, round(-math.log10(step))),
                          price_decimals=max(0, round(-math.log10(st.tick))), min_base_amount=st.sizing.min_size,
                          min_quote_amount=self.cfg.min_notional_usd)

    def _calibration_cfg(self, st: MState) -> Any:
        """``shared.calibration.CalibrationConfig`` from ``cfg.calibration``, with the maker's
        ``horizon_s`` (the same tau in the gamma backtest as in the quotes) and its inventory cap
        in clips, unless ``cfg.calibration`` sets them."""
        cc = self._calib_cfg.get(st.market)
        if cc is None:
            from shared.calibration import CalibrationConfig

            clips = max(1, math.floor(st.hard / st.sizing.max_size + 1e-9))
            cc = CalibrationConfig(**{"horizon_s": self.cfg.horizon_s, "max_inventory_clips": clips,
                                      **self.cfg.calibration})
            self._calib_cfg[st.market] = cc
        return cc

    # ------------------------------------------------------------------ rules

    def _adverse(self, st: MState, mid: float) -> None:
        for h, due in st.adverse_due.items():  # one queue per horizon: due times stay ordered
            while due and due[0][0] <= st.now:
                _t, side, ref = due.popleft()
                move = (mid - ref) / ref * 1e4
                bps = -move if side == "buy" else move
                st.adverse_new.append((h, bps))
                if len(st.adverse_new) > 10_000:
                    del st.adverse_new[:5_000]
                st.adverse_sum[h] = st.adverse_sum.get(h, 0.0) + bps
                st.adverse_n[h] = st.adverse_n.get(h, 0) + 1

    def _sample_vol(self, st: MState, ts: int, mid: float) -> None:
        c = self.cfg
        if st.sample_ts is not None and ts - st.sample_ts < c.vol_sample_s * NS:
            return
        if st.sample_mid is not None and st.sample_ts is not None:
            change = abs(mid - st.sample_mid) / st.sample_mid * 1e4
            if st.vol is None:
                st.vol = change
            else:
                a = 1.0 - math.exp(-LN2 * (ts - st.sample_ts) / NS / c.vol_half_life_s)
                st.vol += a * (change - st.vol)
        st.sample_ts, st.sample_mid = ts, mid
        vol = st.vol or 0.0
        if vol >= c.pause_bps:
            st.paused = True
        elif st.paused and vol <= c.resume_bps and abs(st.fifo.position) <= c.resume_inventory_frac * st.soft:
            st.paused = False

    def _trend(self, st: MState, ts: int, mid: float) -> None:
        c = self.cfg
        st.trend_samples.append((ts, mid))
        horizon = ts - int(c.trend_lookback_s * NS)
        while len(st.trend_samples) > 1 and st.trend_samples[0][0] < horizon:
            st.trend_samples.popleft()
        oldest = st.trend_samples[0][1]
        d = (mid - oldest) / oldest * 1e4
        st.trend_delta_bps = d
        if st.trend == "neutral":
            if d >= c.trend_up_bps:
                st.trend = "up"
            elif d <= -c.trend_down_bps:
                st.trend = "down"
        elif st.trend == "up" and d < c.trend_exit_bps:
            st.trend = "neutral"
        elif st.trend == "down" and d > -c.trend_exit_bps:
            st.trend = "neutral"
        if st.trend == "down":  # the cooldown runs from the last moment of the down-trend
            cd = c.defensive_cooldown_s if st.regime == "defensive" else c.aggressive_cooldown_s
            st.cooldown_until = max(st.cooldown_until, ts + int(cd * NS))
        bias, extra = "both", 0.0
        if st.trend == "up":
            bias, extra = c.trend_up_bias, c.trend_up_extra_bps
        elif st.trend == "down":
            bias, extra = c.trend_down_bias, c.trend_down_extra_bps
        if ts < st.cooldown_until and bias != "both":
            bias, extra = c.trend_down_bias, max(extra, c.trend_down_extra_bps)
        inv = st.fifo.position
        grows = (bias == "ask" and inv < 0) or (bias == "bid" and inv > 0)
        if grows and abs(inv) > c.trend_override_inventory_frac * st.soft:
            bias, extra = "both", 0.0
        st.bias, st.trend_extra_bps = bias, extra

    def _regime(self, st: MState) -> None:
        c = self.cfg
        if st.regime_since is None:
            st.regime_since = st.now
            return
        target = "defensive" if (st.trend == "down" or st.now < st.cooldown_until or st.guard_active) else "aggressive"
        if target != st.regime and st.now - st.regime_since >= c.min_dwell_s * NS:
            st.regime = target
            st.regime_since = st.now

    def _guard_tick(self, st: MState) -> None:
        c = self.cfg
        if not c.pnl_guard:
            return
        ts = st.now
        if st.guard_active and ts >= st.guard_until:
            st.guard_active = False
        if st.guard_next is None:
            st.guard_next = ts + int(c.pnl_check_s * NS)
            return
        if ts < st.guard_next:
            return
        st.guard_next = ts + int(c.pnl_check_s * NS)
        start = ts - int(c.pnl_window_s * NS)
        while st.realized_log and st.realized_log[0][0] <= start:
            st.realized_log.popleft()
        st.guard_window_usd = sum(p for _t, p in st.realized_log)
        if st.guard_window_usd <= c.pnl_floor_usd:
            st.guard_fails += 1
        else:
            st.guard_fails = 0
            st.guard_active = False
        if st.guard_fails >= c.pnl_trigger_checks:
            st.guard_active = True
            st.guard_until = ts + int(c.pnl_guard_ttl_s * NS)
            st.guard_fails = 0

    @staticmethod
    def _conv(st: MState, p: ModelParams) -> tuple[float, float, float]:
        """``(sigma, k, gamma)`` of ``p`` in the ticks of ``st`` (params may use another tick)."""
        r = p.tick_size / st.tick if p.tick_size > 0 else 1.0
        return p.sigma * r, p.k / r, p.gamma / r

    def _size(self, st: MState, mid: float) -> float:
        """The clip before the hard cap (rule 8), base units."""
        c = self.cfg
        sz = st.sizing
        inv = abs(st.fifo.position)
        size = sz.max_size - (sz.max_size - sz.min_size) * min(1.0, inv / st.soft)
        factor = self._vol_factor(st)
        size *= c.defensive_size_mult if st.regime == "defensive" else c.aggressive_size_mult
        size *= c.size_mult_low_vol - (c.size_mult_low_vol - c.size_mult_high_vol) * factor
        if (st.vol or 0.0) >= c.high_vol_clip_bps:
            size *= c.high_vol_clip_mult
        if st.guard_active:
            size *= max(c.pnl_min_size_mult, c.pnl_size_mult)
        step = sz.size_step or 0.0
        if step:
            size = math.floor(size / step + 1e-9) * step
        size = min(max(size, sz.min_size), sz.max_size)
        floor = c.min_notional_usd / mid
        if step:
            floor = math.ceil(floor / step - 1e-9) * step
        return round(max(size, floor, sz.min_size), 12)

    def _capped(self, st: MState, side: str, size: float, mid: float) -> float:
        """``size`` trimmed to the room under the hard cap; 0 when too small to trade."""
        inv = st.fifo.position
        room = st.hard - inv if side == "buy" else st.hard + inv
        if room + 1e-12 >= size:
            return size
        step = st.sizing.size_step or 0.0
        size = math.floor(room / step + 1e-9) * step if step else room
        if size < st.sizing.min_size - 1e-12 or size * mid < self.cfg.min_notional_usd - 1e-9:
            return 0.0
        return round(size, 12)

    def _vol_factor(self, st: MState) -> float:
        c = self.cfg
        return min(1.0, max(0.0, ((st.vol or 0.0) - c.vol_low_bps) / (c.vol_high_bps - c.vol_low_bps)))

    def _wanted(self, st: MState) -> tuple[dict[str, tuple[int, float, float] | None], float]:
        """Wanted ``{side: (base ticks, half-spread ticks, size) or None}`` and the tick value
        of 1 bp (rules 2-8; jitter is added at placement)."""
        c = self.cfg
        mid = st.mid
        none: dict[str, tuple[int, float, float] | None] = {"buy": None, "sell": None}
        if mid is None:
            return none, 0.0
        bp = mid / 1e4 / st.tick  # ticks per bp
        s = mid / st.tick
        st.band_bps = c.band_min_bps + (c.band_max_bps - c.band_min_bps) * self._vol_factor(st)
        inv = st.fifo.position
        p = st.params
        if p is not None:
            sigma, k, gamma = self._conv(st, p)
            q = inv / st.sizing.max_size
            offset = -q * gamma * sigma * sigma * c.horizon_s
            half_as = (gamma * sigma * sigma * c.horizon_s + (2.0 / gamma) * math.log1p(gamma / k)) / 2.0
        else:
            offset = -max(-2.0, min(2.0, inv / st.soft)) * c.fallback_skew_bps * bp
            half_as = 0.0
        cap = c.max_reservation_offset_bps * bp
        offset = max(-cap, min(cap, offset))
        st.reservation_offset_bps = offset / bp
        extra = st.trend_extra_bps + (c.defensive_extra_bps if st.regime == "defensive" else c.aggressive_extra_bps)
        if st.guard_active:
            extra += min(c.pnl_widen_bps, c.pnl_max_extra_bps)
        half = max(half_as, st.band_bps / 2.0 * bp) + extra / 2.0 * bp
        half = min(half, c.max_spread_bps / 2.0 * bp)
        st.half_ticks = half
        st.size = self._size(st, mid)
        if st.paused or (c.require_params and p is None):
            return none, bp
        r = s + offset
        out = dict(none)
        for side in ("buy", "sell"):
            if st.bias != "both" and st.bias != ("bid" if side == "buy" else "ask"):
                continue
            size = self._capped(st, side, st.size, mid)
            if size <= 0:
                continue
            base = math.floor(r - half) if side == "buy" else math.ceil(r + half)
            out[side] = (base, half, size)
        return out, bp

    def _place_ticks(self, st: MState, side: str, base: int, jitter_ticks: float) -> int:
        """Sent price in ticks: base widened by the jitter, kept post-only against the book."""
        assert st.bid is not None and st.ask is not None
        book_bid = math.floor(st.bid / st.tick + 1e-6)  # highest tick at or below the best bid
        book_ask = math.ceil(st.ask / st.tick - 1e-6)  # lowest tick at or above the best ask
        if side == "buy":
            t = math.floor(base - jitter_ticks + 1e-9)
            return max(1, min(t, book_ask - 1))
        t = math.ceil(base + jitter_ticks - 1e-9)
        return max(t, book_bid + 1)

    def _budget_ok(self, ts: int) -> bool:
        while self._emits and self._emits[0] <= ts - 60 * NS:
            self._emits.popleft()
        return len(self._emits) < self.cfg.max_requotes_per_min

    def _quote(self, cause: Event, st: MState) -> list[Event]:
        """Rule 9: diff the wanted quote against the sent one; emit a QuoteIntent on change."""
        c = self.cfg
        wanted, bp = self._wanted(st)
        if st.mid is None:
            return []
        ts = st.now
        changes: dict[str, tuple[int, float, float] | None] = {}
        for side in ("buy", "sell"):
            w, cur = wanted[side], st.quotes[side]
            if w is None:
                if cur is not None:
                    changes[side] = None
                continue
            if cur is None or side in st.dirty:
                changes[side] = w
                continue
            moved_bps = abs(w[0] - cur.base) / bp if bp else 0.0
            if moved_bps > c.requote_threshold_bps or ts - cur.ts >= c.max_quote_age_s * NS:
                changes[side] = w
        if not changes:
            return []
        placing = [s for s, w in changes.items() if w is not None]
        if placing and not self._budget_ok(ts):
            st.deferred += 1
            for s in placing:
                del changes[s]
            if not changes:
                return []
        jitter = (c.randomize_bps * (2.0 * _jitter_unit(c.seed, st.market, ts) - 1.0) / 2.0 * bp
                  if placing and c.randomize_bps else 0.0)
        for side, w in changes.items():
            if w is None:
                st.quotes[side] = None
            else:
                st.quotes[side] = SideQuote(base=w[0], ticks=self._place_ticks(st, side, w[0], jitter), size=w[2], ts=ts)
            st.dirty.discard(side)
        if placing:
            self._emits.append(ts)
        st.requotes += 1
        if c.dry_run:
            return []
        b, a = st.quotes["buy"], st.quotes["sell"]
        # stamped with the market's latest event time (a ModelParams cause may be older)
        return [QuoteIntent(id=derive_id(cause.id, self.source, "quote", st.market), ts_event=max(ts, cause.ts_event),
                            ts_recv=cause.ts_recv, source=self.source, causation_id=cause.id,
                            strategy=self.name, market=st.market,
                            bid_px=round(b.ticks * st.tick, 10) if b else None, bid_sz=b.size if b else 0.0,
                            ask_px=round(a.ticks * st.tick, 10) if a else None, ask_sz=a.size if a else 0.0,
                            post_only=c.post_only)]


def make_engine(cfg: StackConfig, source: str = SOURCE,
                market_info: Mapping[str, MarketInfo] | None = None) -> MakerEngine:
    """The engine as the service builds it from the stack config (used by backtests): section
    ``services.maker`` and its markets (or the stack's ``markets``); ``market_info``: metadata
    (lot, tick, minimums) of markets missing from the per-market settings.

    Raises:
        ConfigError: an invalid field, or no market.
    """
    mcfg = cfg.section(SECTION, MakerConfig)
    return MakerEngine(mcfg, mcfg.resolve_markets(cfg.markets), source=source, market_info=market_info)
