"""PnL attribution of any strategy's fills: spread capture, inventory PnL, fees, by regime bucket.

Pure and deterministic (numpy only, no I/O, no clock): fills and market data in, plain dicts
out. Used by the backtest (``summary.json`` ``pnl_split``, ``report.html``) and by
``lighter-stack pnl-split`` (paper/live fills from the ledger against a recording).
Full description with a worked example: ``docs/pnl-attribution.md``.

**Mid path** (per market, USD): every ``Bbo`` with ``bid_px > 0`` and ``ask_px > 0`` sets
``mid = (bid_px + ask_px) / 2``; a ``Trade`` sets ``mid = price`` only while the market has not
had a usable ``Bbo`` yet (the backtest :class:`lighter_stack.backtest.metrics.Recorder` marks positions
the same way). ``mid(t)`` is the last mid with ``ts_event <= t``.

**Mid at a fill** ``m_i``: the last mid strictly **before** the fill's ``ts_event`` (market data
stamped at the fill's own time is what the fill reacted to; the backtest engine books the fill
before that event's mid); a fill before the market's first mid is measured against the first
mid.

**Split** (USD; ``d_i`` = +1 buy / -1 sell, ``s_i`` size in base units, ``p_i`` fill price,
``M`` the last mid of the market, ``q(t)`` the position from the fills with ``ts_event <= t``)::

    spread_capture = sum_i d_i * (m_i - p_i) * s_i          (buying below the mid is positive)
    inventory_pnl  = sum_k q(T_k) * (mid_k - mid_{k-1})     (every mid change k, at time T_k)
    fees           = sum_i fee_i                            (positive = paid)
    total          = spread_capture + inventory_pnl - fees

Identity: ``inventory_pnl = sum_i d_i * s_i * (M - m_i)`` (each fill's size rides every later mid
change), so ``total = sum_i d_i * s_i * (M - p_i) - fees``: the mark-to-market PnL at the last
mid, which is what the ledger's FIFO engine reports as realized + unrealized (open lots at
``M``, every fee charged), up to float rounding.

**Regime buckets** (per market, after seed 001 ``broomhead0/lighter-bot`` maker, see
``shared/reference/seed-behaviour.md`` §2.2-2.3): the mid is sampled on a grid of
``sample_s`` (5 s, the seed maker's loop period) from the market's first mid.

- volatility ``v_k`` (bps): EWMA of ``r_k = |mid_k - mid_{k-1}| / mid_{k-1} * 1e4`` between
  consecutive samples, ``v_k = a * r_k + (1 - a) * v_{k-1}`` with ``a = 1 - exp(-ln2 * dt /
  half_life)``, half-life 45 s; ``v_0 = 0`` and while ``v`` is exactly 0 the change itself is taken
  (seed quirk). Bucket ``low`` if ``v < 6``, ``mid`` if ``6 <= v < 22``, ``high`` if ``v >= 22``
  (the seed's spread band edges ``low_bps``/``high_bps``).
- trend ``delta_k = (mid_k - mid_{k-L}) / mid_{k-L} * 1e4`` with ``L`` = 45 s of samples
  (the oldest sample still in the window at the start): ``up`` if ``delta >= +12``, ``down`` if
  ``delta <= -6``, else ``flat`` (the seed's thresholds, without its exit hysteresis, so every
  instant is classified from the data alone).

The classification of sample ``k`` is in force on ``(t_k, t_{k+1}]`` (strictly after the
sample, so a bucket never uses data from its own future). Each fill's spread capture and fee goes
to the bucket in force at its ``ts_event``, each mid change's inventory PnL to the bucket in force
at the change. ``time_share_pct`` = time in the bucket / time covered (first mid to the end of
the data) x 100, summed over the markets the fills traded (all markets of the data when there
are no fills).

**Adverse selection** (markouts, bps): for a fill and horizon ``h`` (1 s and 10 s),
``-d_i * (mid(t_i + h) - m_i) / m_i * 1e4``: positive = the mid moved **against** the fill
(fell after a buy, rose after a sell). Fills whose ``t_i + h`` is past the end of the data are
left out; the report gives the mean and the count, over all fills and over maker fills.

**Orders** (when ``OrderAccepted`` events are given): ``orders_accepted`` (distinct
``(market, client_order_index)`` of the strategy, a comma-joined label of a shared order counts
for each named strategy), ``orders_filled`` (of those, with at least one fill),
``fill_ratio = orders_filled / orders_accepted``; ``resting_orders_accepted`` (time in force not
``ioc``), ``resting_orders_maker_filled`` (with a maker fill) and ``maker_fill_ratio``.
**Computation** (:class:`PnlAttribution`): one pass over the time-ordered market data and the
fills, online. Per market it keeps the current mid, the regime state (EWMA, the last
``trend_lookback_s / sample_s + 1`` samples), the adverse-selection markouts still waiting for
their horizon, the mid changes and fills of the last ``lag_s`` of event time (a fill may carry a
time slightly before the market data it was produced with: the backtest venue stamps trades in
whole ms), and per strategy the position and nine bucket sums; per fill it keeps its spread,
fee and markout values (for the per-market sums and the means). Memory is therefore bounded by
the number of fills, not by the length of the data. The batch functions (:func:`mid_paths`,
:func:`attribute`, :func:`attribute_all`, :func:`classify`, :func:`order_stats`) replay their
inputs through the same class.
"""

from __future__ import annotations

import math
from array import array
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from shared.events import Bbo, Fill, OrderAccepted, OrderCanceled, Trade
from shared.fill_ratios import FillRatios, order_stats
from shared.fill_ratios import round_json as _r

NS = 1_000_000_000
VOL_BUCKETS = ("low", "mid", "high")
TREND_BUCKETS = ("down", "flat", "up")
BUCKETS = tuple(f"{v}/{t}" for v in VOL_BUCKETS for t in TREND_BUCKETS)
_NB = len(BUCKETS)
_EMPTY: list[Any] = []
__all__ = ["BUCKETS", "MidPath", "PnlAttribution", "RegimeParams", "Regimes", "attribute", "attribute_all",
           "classify", "mid_paths", "order_stats"]


@dataclass(frozen=True, slots=True)
class RegimeParams:
    """Bucket and markout parameters (defaults: seed 001's maker, see the module docstring).

    Attributes:
        sample_s: mid sampling period of the regime grid, s.
        vol_half_life_s: EWMA half-life of the volatility, s.
        vol_low_bps / vol_high_bps: volatility bucket edges (``low < low_bps <= mid < high_bps <= high``).
        trend_lookback_s: trend window, s.
        trend_up_bps / trend_down_bps: ``up`` at or above, ``down`` at or below (negative).
        markouts_s: adverse-selection horizons, s.
    """

    sample_s: float = 5.0
    vol_half_life_s: float = 45.0
    vol_low_bps: float = 6.0
    vol_high_bps: float = 22.0
    trend_lookback_s: float = 45.0
    trend_up_bps: float = 12.0
    trend_down_bps: float = -6.0
    markouts_s: tuple[float, ...] = (1.0, 10.0)


@dataclass(slots=True)
class MidPath:
    """One market's mid path: ``ts`` (int64 ns, non-decreasing) and ``mid`` (float64 USD) of
    every mid change, and ``end_ns``, the end of the data (last market-data event of any market)."""

    ts: np.ndarray
    mid: np.ndarray
    end_ns: int

    def at(self, t: np.ndarray, strict: bool = False) -> np.ndarray:
        """Mid at each time of ``t`` (ns): the last mid at (``strict``: before) ``t``; the first
        mid for times before it. The path must not be empty."""
        idx = np.searchsorted(self.ts, t, side="left" if strict else "right") - 1
        return self.mid[np.clip(idx, 0, None)]


@dataclass(slots=True)
class Regimes:
    """The regime grid of one market: sample times ``grid`` (int64 ns), ``vol_bps``,
    ``trend_bps`` and ``bucket`` (int index into :data:`BUCKETS`) per sample, ``end_ns``."""

    grid: np.ndarray
    vol_bps: np.ndarray
    trend_bps: np.ndarray
    bucket: np.ndarray
    end_ns: int

    def bucket_at(self, t: np.ndarray) -> np.ndarray:
        """Bucket index in force at each time of ``t`` (ns): the sample strictly before ``t``
        (the first sample for earlier times)."""
        idx = np.searchsorted(self.grid, t, side="left") - 1
        return self.bucket[np.clip(idx, 0, len(self.grid) - 1)]

    def time_ns(self) -> np.ndarray:
        """Time in force of each bucket (ns, one entry per :data:`BUCKETS`) from the first sample
        to ``end_ns``."""
        dur = np.diff(np.append(self.grid, max(int(self.grid[-1]), self.end_ns)))
        return np.bincount(self.bucket, weights=dur.astype(np.float64), minlength=len(BUCKETS))


def _bps(num: float, den: float) -> float:
    """``num / den * 1e4`` with numpy's float semantics for ``den == 0`` (inf or nan, no error)."""
    try:
        return num / den * 1e4
    except ZeroDivisionError:
        return math.nan if num == 0 or num != num else math.copysign(math.inf, num) * math.copysign(1.0, den)


class _Scope:
    """The sums of one scope (the account total or one strategy) in one market."""

    __slots__ = ("pos", "spread", "inventory", "fees", "fills", "spread_vals", "fee_vals", "inv_sum", "inv_comp",
                 "mk_all", "mk_maker")

    def __init__(self, n_h: int) -> None:
        self.pos = 0.0  # position, base units (sequential sum of the signed sizes, in fill order)
        self.spread = [0.0] * _NB  # per bucket, USD (sequential sums, in fill / mid-change order)
        self.inventory = [0.0] * _NB
        self.fees = [0.0] * _NB
        self.fills = [0] * _NB
        self.spread_vals = array("d")  # per fill, USD: summed with numpy's pairwise sum at the end
        self.fee_vals = array("d")
        self.inv_sum = 0.0  # inventory PnL of the market: compensated (Neumaier) running sum
        self.inv_comp = 0.0
        self.mk_all = [array("d") for _ in range(n_h)]  # resolved markouts, bps, in fill order
        self.mk_maker = [array("d") for _ in range(n_h)]


class _Market:
    """Online state of one market (see :class:`PnlAttribution`)."""

    __slots__ = ("quoted", "first_mid", "tail", "mid", "mq", "fq", "done_ts", "done_mid", "scopes", "held", "next_g",
                 "last_b", "v", "prev", "window", "time", "pend", "rec", "path_ts", "path_mid", "end")

    def __init__(self, n_h: int, lb: int, b0: int, keep_path: bool) -> None:
        self.quoted = False  # has had a usable Bbo (Trades no longer set the mid)
        self.first_mid: float | None = None  # first mid appended (known before it is processed)
        self.tail: float | None = None  # last mid appended (repeats are not appended)
        self.mid: float | None = None  # mid of the processed part of the stream
        self.mq: deque[tuple[int, float]] = deque()  # mid changes waiting for the watermark
        self.fq: deque[tuple[int, int, Fill]] = deque()  # fills waiting (ts, arrival seq, fill)
        self.done_ts = -1  # ts of the last processed item; done_mid: it was a mid change
        self.done_mid = False
        self.scopes: dict[str | None, _Scope] = {}
        self.held: list[_Scope] = []  # scopes with a position in this market (inventory loop)
        self.next_g: int | None = None  # next regime sample time, ns
        self.last_b = b0  # bucket of the last sample (in force after it)
        self.v = 0.0  # EWMA volatility, bps
        self.prev: float | None = None  # mid of the last sample
        self.window: deque[float] = deque(maxlen=lb + 1)  # sample mids of the trend lookback
        self.time = [0.0] * _NB  # ns in force per bucket (sequential, in sample order)
        # markouts waiting for their horizon, per horizon: (due ns, side, mid at fill, maker, scopes)
        self.pend: list[deque[tuple[int, float, float, bool, tuple[_Scope, ...]]]] = [deque() for _ in range(n_h)]
        self.rec: list[list[Any]] | None = None  # classify(): grid, vol, trend, bucket per sample
        self.path_ts: list[int] | None = [] if keep_path else None
        self.path_mid: list[float] | None = [] if keep_path else None
        self.end = 0


class PnlAttribution:
    """Online PnL split of every strategy's fills (definitions: module docstring).

    ``on_event(ev) -> []`` has the strategy-engine shape, so the backtest runs it as a silent
    extra engine: it takes ``Bbo``/``Trade`` (the mid path, time-ordered), ``Fill``,
    ``OrderAccepted`` and ``OrderCanceled``; anything else is ignored. After the last event,
    :meth:`finish` closes the books and :meth:`results` gives the ``pnl_split`` objects.

    Fills and mid changes are processed in the order of the batch definition (by ``ts_event``; at
    equal times fills before the mid change) once the market data is ``lag_s`` past them, so a
    fill stamped up to ``lag_s`` before market data already seen is still exact. A fill arriving
    later than that is attributed at arrival against the current state and counted in
    ``late_fills`` (a note in the results).

    Args:
        params: bucket and markout parameters.
        lag_s: reordering window, s of event time (``math.inf``: everything is processed at
            :meth:`finish`, as the batch functions do).
        keep_paths: also keep every mid change and ``OrderAccepted`` (for :meth:`paths`; memory
            then grows with the data).

    Raises:
        ValueError: ``sample_s`` not positive.
    """

    def __init__(self, params: RegimeParams = RegimeParams(), lag_s: float = 1.0, keep_paths: bool = False) -> None:
        step = int(round(params.sample_s * NS))
        if step <= 0:
            raise ValueError("sample_s must be > 0")
        self.params = params
        self._step = step
        self._a = 1.0 - math.exp(-math.log(2.0) * params.sample_s / params.vol_half_life_s)
        self._lb = max(1, int(round(params.trend_lookback_s / params.sample_s)))
        self._hs = tuple(params.markouts_s)
        self._h_ns = tuple(int(round(h * NS)) for h in self._hs)
        self._b0 = self._bucket(0.0, 0.0)
        self._lag = None if math.isinf(lag_s) else int(lag_s * NS)
        self._keep = keep_paths
        self.kept_orders: list[OrderAccepted] = []
        self.markets: dict[str, _Market] = {}
        self.end_ns = 0  # last Bbo/Trade time of any market
        self._seq = 0
        self._nfills: dict[str | None, list[int]] = {}  # scope -> [fills, maker fills]
        self._fill_mkts: dict[str | None, dict[str, int]] = {}  # scope -> market -> fills
        self.orders = FillRatios()
        self.late_fills = 0
        self.finished = False

    # ------------------------------------------------------------------ input

    def on_event(self, ev: Any) -> list[Any]:
        """Take one event (see the class docstring); always returns ``[]``."""
        t = type(ev)
        if t is Bbo or t is Trade:
            ts = ev.ts_event
            if ts > self.end_ns:
                self.end_ns = ts
            mk = self.markets.get(ev.market)
            if mk is None:
                mk = self._market(ev.market)
            if t is Bbo:
                bid, ask = ev.bid_px, ev.ask_px
                if not (bid > 0 and ask > 0):
                    return _EMPTY
                mk.quoted = True
                mid = (bid + ask) / 2.0
            elif mk.quoted:
                return _EMPTY
            else:
                mid = ev.price
            if mid != mk.tail:
                self._append(mk, ts, mid)
            lag = self._lag
            if lag is not None:  # = self._drain(mk, w), called only when something is due
                w = self.end_ns - lag
                mq, fq = mk.mq, mk.fq
                if (mq and mq[0][0] < w) or (fq and fq[0][0] < w):
                    self._drain(mk, w)
        elif t is Fill:
            self.on_fill(ev)
        elif t is OrderAccepted:
            self.orders.accepted(ev)
            if self._keep:
                self.kept_orders.append(ev)
        elif t is OrderCanceled:
            self.orders.canceled(ev)
        return _EMPTY

    def _market(self, market: str) -> _Market:
        mk = self.markets.get(market)
        if mk is None:
            mk = self.markets[market] = _Market(len(self._hs), self._lb, self._b0, self._keep)
        return mk

    def on_mid(self, market: str, ts: int, mid: float) -> None:
        """A mid of ``market`` at ``ts`` (ns, non-decreasing per market; repeats are ignored).
        Does not move :attr:`end_ns` (``on_event`` does)."""
        mk = self.markets.get(market) or self._market(market)
        if mid != mk.tail:
            self._append(mk, ts, mid)
        if self._lag is not None:
            self._drain(mk, self.end_ns - self._lag)

    def _append(self, mk: _Market, ts: int, mid: float) -> None:
        if mk.tail is None:
            mk.first_mid = mid
        mk.tail = mid
        mk.mq.append((ts, mid))
        if mk.path_ts is not None:
            mk.path_ts.append(ts)
            mk.path_mid.append(mid)  # type: ignore[union-attr]

    def on_fill(self, f: Fill) -> None:
        """An attributed fill (any strategy)."""
        key = f.strategy
        maker = f.liquidity == "maker"
        for s in (None, key):
            n = self._nfills.get(s)
            if n is None:
                n = self._nfills[s] = [0, 0]
                self._fill_mkts[s] = {}
            n[0] += 1
            if maker:
                n[1] += 1
            fm = self._fill_mkts[s]
            fm[f.market] = fm.get(f.market, 0) + 1
        self.orders.fill(f.market, f.client_order_index, f.size, maker, (None, key))
        mk = self.markets.get(f.market) or self._market(f.market)
        ts = f.ts_event
        if ts < mk.done_ts or (ts == mk.done_ts and mk.done_mid):
            self.late_fills += 1
            self._fill(mk, f, mk.done_ts)
            return
        self._seq += 1
        item = (ts, self._seq, f)
        fq = mk.fq
        if fq and ts < fq[-1][0]:
            fq.append(item)
            srt = sorted(fq, key=lambda x: (x[0], x[1]))
            fq.clear()
            fq.extend(srt)
        else:
            fq.append(item)
        if self._lag is not None:
            self._drain(mk, self.end_ns - self._lag)

    # ------------------------------------------------------------------ processing

    def _drain(self, mk: _Market, w: int | None) -> None:
        """Process the market's queued fills and mid changes with ``ts < w`` (None: all), in
        time order, fills before mid changes at equal times; fills wait for the first mid."""
        mq, fq = mk.mq, mk.fq
        while True:
            if fq and mk.first_mid is not None and (not mq or fq[0][0] <= mq[0][0]):
                t = fq[0][0]
                if w is not None and t >= w:
                    return
                self._fill(mk, fq.popleft()[2], t)
            elif mq:
                t = mq[0][0]
                if w is not None and t >= w:
                    return
                self._mid(mk, *mq.popleft())
            else:
                return

    def _bucket(self, vol: float, trend: float) -> int:
        p = self.params
        vb = 0 if vol < p.vol_low_bps else 1 if vol < p.vol_high_bps else 2
        tb = 2 if trend >= p.trend_up_bps else 0 if trend <= p.trend_down_bps else 1
        return vb * 3 + tb

    def _advance(self, mk: _Market, t: int, cap: int) -> None:
        """Take the regime samples at the grid times ``g < t`` (and ``g <= cap``) with the
        current mid; the time of the previous sample goes to its bucket."""
        g = mk.next_g
        if g is None or g >= t or g > cap:
            return
        step = self._step
        fstep = float(step)
        m = mk.mid
        assert m is not None
        a = self._a
        a1 = 1.0 - a
        p = self.params
        lo, hi, up, down = p.vol_low_bps, p.vol_high_bps, p.trend_up_bps, p.trend_down_bps
        time = mk.time
        rec = mk.rec
        window = mk.window
        push = window.append
        v = mk.v
        b = mk.last_b
        prev = mk.prev
        lim = t if t <= cap else cap + 1  # g < t and g <= cap
        while g < lim:
            if prev is None:  # first sample: v = 0, trend against itself
                push(m)
                trend = _bps(m - m, m)
            else:
                time[b] += fstep
                if prev != 0.0:
                    rk = abs(m - prev) / prev * 1e4
                else:
                    rk = _bps(abs(m - prev), prev)
                v = rk if v == 0.0 else a * rk + a1 * v
                push(m)
                old = window[0]
                trend = (m - old) / old * 1e4 if old != 0.0 else _bps(m - old, old)
            prev = m
            # = self._bucket(v, trend)
            b = (0 if v < lo else 3 if v < hi else 6) + (2 if trend >= up else 0 if trend <= down else 1)
            if rec is not None:
                rec[0].append(g)
                rec[1].append(v)
                rec[2].append(trend)
                rec[3].append(b)
            g += step
        mk.v = v
        mk.last_b = b
        mk.prev = prev
        mk.next_g = g

    def _resolve(self, mk: _Market, t: int, end: int | None) -> None:
        """Markouts due before ``t`` take the current mid (``end``: those due at or before it;
        the others are dropped)."""
        m_now = mk.mid
        for j, dq in enumerate(mk.pend):
            while dq and (dq[0][0] < t if end is None else True):
                due, d, m, maker, scopes = dq.popleft()
                if end is not None and due > end:
                    continue
                adv = _bps(-d * (m_now - m), m)  # type: ignore[operator]
                for sc in scopes:
                    sc.mk_all[j].append(adv)
                    if maker:
                        sc.mk_maker[j].append(adv)

    def _fill(self, mk: _Market, f: Fill, t: int) -> None:
        self._advance(mk, t, self.end_ns if mk.end == 0 else mk.end)
        m = mk.mid if mk.mid is not None else mk.first_mid
        assert m is not None
        d = 1.0 if f.side == "buy" else -1.0
        sz = f.size
        spread = d * (m - f.price) * sz
        fee = f.fee
        b = mk.last_b
        scs = []
        for key in (None, f.strategy):
            sc = mk.scopes.get(key)
            if sc is None:
                sc = mk.scopes[key] = _Scope(len(self._hs))
            was = sc.pos
            sc.pos = was + d * sz
            if was == 0.0 and sc.pos != 0.0 and sc not in mk.held:
                mk.held.append(sc)
            sc.spread[b] += spread
            sc.fees[b] += fee
            sc.fills[b] += 1
            sc.spread_vals.append(spread)
            sc.fee_vals.append(fee)
            scs.append(sc)
        scopes = tuple(scs)
        maker = f.liquidity == "maker"
        ts = f.ts_event
        for j, h in enumerate(self._h_ns):
            mk.pend[j].append((ts + h, d, m, maker, scopes))
        if t > mk.done_ts:
            mk.done_ts, mk.done_mid = t, False

    def _mid(self, mk: _Market, ts: int, mid: float) -> None:
        if mk.mid is None:  # the first mid: starts the regime grid; earlier markouts take it
            mk.mid = mid
            mk.next_g = ts
            self._resolve(mk, ts, None)
        else:
            g = mk.next_g
            if g is not None and g < ts:
                self._advance(mk, ts, self.end_ns if mk.end == 0 else mk.end)
            for dq in mk.pend:
                if dq and dq[0][0] < ts:
                    self._resolve(mk, ts, None)
                    break
            b = mk.last_b
            dm = mid - mk.mid
            held = mk.held
            flat = False
            for sc in held:
                pos = sc.pos
                if pos == 0.0:
                    flat = True
                else:
                    x = pos * dm
                    sc.inventory[b] += x
                    s = sc.inv_sum  # Neumaier's compensated sum
                    u = s + x
                    if abs(s) >= abs(x):
                        sc.inv_comp += (s - u) + x
                    else:
                        sc.inv_comp += (x - u) + s
                    sc.inv_sum = u
            if flat:
                mk.held = [sc for sc in held if sc.pos != 0.0]
            mk.mid = mid
        mk.done_ts, mk.done_mid = ts, True

    def finish(self, ends: Mapping[str, int] | None = None) -> None:
        """Process everything still queued and close the regime grids and markouts at the end of
        the data (``ends``: per-market end, ns; default :attr:`end_ns`). Idempotent; events after
        it are not expected."""
        if self.finished:
            return
        self.finished = True
        for name, mk in self.markets.items():
            end = (ends or {}).get(name, self.end_ns)
            if mk.path_ts:
                end = max(end, mk.path_ts[-1])
            mk.end = end
            self._drain(mk, None)
            if mk.mid is None:
                continue
            self._advance(mk, end + 1, end)
            assert mk.next_g is not None
            g_last = mk.next_g - self._step
            mk.time[mk.last_b] += float(max(g_last, end) - g_last)
            self._resolve(mk, 0, end)

    # ------------------------------------------------------------------ output

    def paths(self) -> dict[str, MidPath]:
        """The mid path of every market seen (sorted by symbol; needs ``keep_paths``)."""
        out = {}
        for m in sorted(self.markets):
            mk = self.markets[m]
            if mk.path_ts:
                out[m] = MidPath(np.asarray(mk.path_ts, dtype=np.int64), np.asarray(mk.path_mid, dtype=np.float64),
                                 self.end_ns)
        return out

    def result(self, strategy: str | None = None, orders: bool = True) -> dict[str, Any]:
        """The split of ``strategy``'s fills (None: every fill); :meth:`finish` first.

        Returns:
            A JSON-ready dict (floats rounded to 6 decimals, USD unless named ``_bps``/``_pct``):
            ``spread_capture_usd``, ``inventory_pnl_usd``, ``fees_usd``, ``total_usd``, ``fills``,
            ``maker_fills``, ``by_market`` (the same four sums and fills per market), ``buckets``
            (per :data:`BUCKETS` label: the four sums, fills, ``time_share_pct``), ``by_volatility``
            and ``by_trend`` (marginals), ``adverse_selection_bps`` (``all``/``maker`` -> per horizon
            ``"<h>s"``: mean or None, and ``n_<h>s``), ``orders`` (None when ``orders`` is false)
            and ``notes`` (markets whose fills were left out for lack of a mid; late fills).
        """
        self.finish()
        n = _NB
        spread, inventory, fees = np.zeros(n), np.zeros(n), np.zeros(n)
        fills, time = np.zeros(n, dtype=np.int64), np.zeros(n)
        notes: list[str] = []
        per_market: dict[str, dict[str, Any]] = {}
        hs = self._hs
        mk_all: list[list[np.ndarray]] = [[] for _ in hs]
        mk_maker: list[list[np.ndarray]] = [[] for _ in hs]
        traded = self._fill_mkts.get(strategy, {})
        for market in sorted(traded):
            mk = self.markets[market]
            if mk.mid is None:
                notes.append(f"{market}: no mid in the data, its {traded[market]} fills are left out of the split")
                continue
            sc = mk.scopes[strategy]
            spread += np.asarray(sc.spread)
            fees += np.asarray(sc.fees)
            fills += np.asarray(sc.fills, dtype=np.int64)
            inventory += np.asarray(sc.inventory)
            time += np.asarray(mk.time)
            s = float(np.frombuffer(sc.spread_vals, dtype=np.float64).sum())
            i = sc.inv_sum + sc.inv_comp
            fe = float(np.frombuffer(sc.fee_vals, dtype=np.float64).sum())
            per_market[market] = {"spread_capture_usd": _r(s), "inventory_pnl_usd": _r(i), "fees_usd": _r(fe),
                                  "total_usd": _r(s + i - fe), "fills": traded[market]}
            for j in range(len(hs)):
                mk_all[j].append(np.frombuffer(sc.mk_all[j], dtype=np.float64))
                mk_maker[j].append(np.frombuffer(sc.mk_maker[j], dtype=np.float64))
        if not traded:
            for market in sorted(self.markets):
                if self.markets[market].mid is not None:
                    time += np.asarray(self.markets[market].time)
        if self.late_fills:
            notes.append(f"{self.late_fills} fills arrived more than the reordering window after market data past "
                         "their time; they were attributed at arrival")
        spread_t, inv_t, fees_t = float(spread.sum()), float(inventory.sum()), float(fees.sum())
        nf = self._nfills.get(strategy, [0, 0])
        acc = (spread, inventory, fees, fills, time)
        return {
            "spread_capture_usd": _r(spread_t), "inventory_pnl_usd": _r(inv_t), "fees_usd": _r(fees_t),
            "total_usd": _r(spread_t + inv_t - fees_t), "fills": nf[0], "maker_fills": nf[1],
            "by_market": per_market,
            "buckets": _table(acc, list(range(n)), BUCKETS),
            "by_volatility": _table(acc, [[3 * v + t for t in range(3)] for v in range(3)], VOL_BUCKETS),
            "by_trend": _table(acc, [[3 * v + t for v in range(3)] for t in range(3)], TREND_BUCKETS),
            "adverse_selection_bps": {"all": _markouts(hs, mk_all), "maker": _markouts(hs, mk_maker)},
            "orders": self.orders.stats(strategy) if orders else None,
            "notes": notes,
        }

    def results(self, strategies: Sequence[str], orders: bool = True) -> dict[str, dict[str, Any]]:
        """:meth:`result` for ``"total"`` (every fill) and each of ``strategies``."""
        out = {"total": self.result(None, orders)}
        for s in strategies:
            out[s] = self.result(s, orders)
        return out


def _table(acc: tuple[np.ndarray, ...], groups: list[Any], labels: Sequence[str]) -> dict[str, dict[str, Any]]:
    spread, inventory, fees, fills, time = acc
    total_t = float(time.sum())
    out = {}
    for g, label in zip(groups, labels, strict=True):
        s, i, fe = float(spread[g].sum()), float(inventory[g].sum()), float(fees[g].sum())
        out[label] = {"spread_capture_usd": _r(s), "inventory_pnl_usd": _r(i), "fees_usd": _r(fe),
                      "total_usd": _r(s + i - fe), "fills": int(np.sum(fills[g])),
                      "time_share_pct": _r(float(np.sum(time[g])) / total_t * 100.0, 4) if total_t > 0 else 0.0}
    return out


def _markouts(hs: Sequence[float], parts: list[list[np.ndarray]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for h, arrs in zip(hs, parts, strict=True):
        v = np.concatenate(arrs) if arrs else np.zeros(0)
        key = f"{h:g}s"
        out[key] = _r(float(v.mean()), 4) if len(v) else None
        out[f"n_{key}"] = len(v)
    return out


# ---------------------------------------------------------------------- batch (replays)


def mid_paths(events: Iterable[Any]) -> tuple[dict[str, MidPath], list[OrderAccepted]]:
    """The mid paths and ``OrderAccepted`` events of ``events`` (time-ordered), as
    :class:`PnlAttribution` sees them; returns (paths by market, sorted; order acceptances)."""
    acc = PnlAttribution(lag_s=math.inf, keep_paths=True)
    on = acc.on_event
    for ev in events:
        if type(ev) is not Fill:
            on(ev)
    return acc.paths(), acc.kept_orders


def _replay(fills: Iterable[Fill], paths: Mapping[str, MidPath], orders: Sequence[OrderAccepted] | None,
            params: RegimeParams) -> PnlAttribution:
    """A :class:`PnlAttribution` fed with ``orders``, then ``paths`` and ``fills`` (fills by
    ``ts_event``, ties in input order), finished at each path's end."""
    acc = PnlAttribution(params, lag_s=math.inf)
    for o in orders or ():
        acc.orders.accepted(o)
    ends = {}
    for market, p in paths.items():
        if len(p.ts) == 0:
            continue
        for t, m in zip(p.ts.tolist(), p.mid.tolist(), strict=True):
            acc.on_mid(market, t, m)
        ends[market] = max(int(p.end_ns), int(p.ts[-1]))
        acc.end_ns = max(acc.end_ns, ends[market])
    for f in sorted(fills, key=lambda f: f.ts_event):
        acc.on_fill(f)
    acc.finish(ends)
    return acc


def attribute(fills: Sequence[Fill], paths: Mapping[str, MidPath], orders: Sequence[OrderAccepted] | None = None,
              strategy: str | None = None, params: RegimeParams = RegimeParams()) -> dict[str, Any]:
    """The PnL split of ``fills`` (those of ``strategy``, or all when None) against ``paths``
    (:func:`mid_paths`), computed by replaying them through :class:`PnlAttribution`; the return
    value is :meth:`PnlAttribution.result`'s (``orders`` None: ``"orders": None``)."""
    own = [f for f in fills if strategy is None or f.strategy == strategy]
    return _replay(own, paths, orders, params).result(strategy, orders is not None)


def attribute_all(fills: Sequence[Fill], paths: Mapping[str, MidPath], strategies: Sequence[str],
                  orders: Sequence[OrderAccepted] | None = None,
                  params: RegimeParams = RegimeParams()) -> dict[str, dict[str, Any]]:
    """:func:`attribute` for ``"total"`` (every fill) and each strategy, in one replay."""
    return _replay(fills, paths, orders, params).results(strategies, orders is not None)


def classify(path: MidPath, params: RegimeParams = RegimeParams()) -> Regimes:
    """Volatility and trend buckets of a market on its sampling grid (module docstring), from
    the same online sampler as :class:`PnlAttribution`.

    Raises:
        ValueError: empty path or non-positive ``sample_s``.
    """
    if len(path.ts) == 0:
        raise ValueError("classify: empty mid path")
    if int(round(params.sample_s * NS)) <= 0:
        raise ValueError("classify: sample_s must be > 0")
    acc = PnlAttribution(params, lag_s=math.inf)
    mk = acc._market("_")
    mk.rec = [[], [], [], []]
    for t, m in zip(path.ts.tolist(), path.mid.tolist(), strict=True):
        acc.on_mid("_", t, m)
    end = max(int(path.end_ns), int(path.ts[-1]))
    acc.end_ns = end
    acc.finish({"_": end})
    g, v, tr, b = mk.rec
    return Regimes(np.asarray(g, dtype=np.int64), np.asarray(v, dtype=np.float64), np.asarray(tr, dtype=np.float64),
                   np.asarray(b, dtype=np.int64), end)
