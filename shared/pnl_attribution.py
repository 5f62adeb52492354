"""PnL attribution of any strategy's fills: spread capture, inventory PnL, fees, by regime bucket.

Pure and deterministic (numpy only, no I/O, no clock): fills and market data in, plain dicts
out. Used by the backtest (``summary.json`` ``pnl_split``, ``report.html``) and by
``lighter-stack pnl-split`` (paper/live fills from the ledger against a recording).
Full description with a worked example: ``docs/pnl-attribution.md``.

**Mid path** (per market, USD): every ``Bbo`` with ``bid_px > 0`` and ``ask_px > 0`` sets
``mid = (bid_px + ask_px) / 2``; a ``Trade`` sets ``mid = price`` only while the market has not
had a usable ``Bbo`` yet (the backtest :class:`shared.backtest.metrics.Recorder` marks positions
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
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shared.events import Bbo, Fill, OrderAccepted, Trade

NS = 1_000_000_000
VOL_BUCKETS = ("low", "mid", "high")
TREND_BUCKETS = ("down", "flat", "up")
BUCKETS = tuple(f"{v}/{t}" for v in VOL_BUCKETS for t in TREND_BUCKETS)
_EMPTY: list[Any] = []


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


class MarketTap:
    """Collects the mid paths (and ``OrderAccepted`` events) from a stream of events.

    ``on_event(ev) -> []`` has the strategy-engine shape, so the backtest can run it as a silent
    extra engine that sees every market-data event and every executor output; any other events
    are ignored. Repeated mids are not stored (the path holds mid changes only).
    """

    def __init__(self) -> None:
        self._ts: dict[str, list[int]] = {}
        self._mid: dict[str, list[float]] = {}
        self._quoted: set[str] = set()
        self.orders: list[OrderAccepted] = []
        self.end_ns = 0

    def on_event(self, ev: Any) -> list[Any]:
        t = type(ev)
        if t is Bbo:
            if ev.ts_event > self.end_ns:
                self.end_ns = ev.ts_event
            if ev.bid_px > 0 and ev.ask_px > 0:
                self._quoted.add(ev.market)
                self._add(ev.market, ev.ts_event, (ev.bid_px + ev.ask_px) / 2.0)
        elif t is Trade:
            if ev.ts_event > self.end_ns:
                self.end_ns = ev.ts_event
            if ev.market not in self._quoted:
                self._add(ev.market, ev.ts_event, ev.price)
        elif t is OrderAccepted:
            self.orders.append(ev)
        return _EMPTY

    def _add(self, market: str, ts: int, mid: float) -> None:
        mids = self._mid.get(market)
        if mids is None:
            self._ts[market] = [ts]
            self._mid[market] = [mid]
        elif mids[-1] != mid:
            self._ts[market].append(ts)
            mids.append(mid)

    def paths(self) -> dict[str, MidPath]:
        """The mid path of every market seen (sorted by symbol)."""
        return {m: MidPath(np.asarray(self._ts[m], dtype=np.int64), np.asarray(self._mid[m], dtype=np.float64),
                           self.end_ns) for m in sorted(self._ts)}


def mid_paths(events: Iterable[Any]) -> tuple[dict[str, MidPath], list[OrderAccepted]]:
    """Run :class:`MarketTap` over ``events`` (time-ordered); returns (paths, order acceptances)."""
    tap = MarketTap()
    on = tap.on_event
    for ev in events:
        on(ev)
    return tap.paths(), tap.orders


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


def classify(path: MidPath, params: RegimeParams = RegimeParams()) -> Regimes:
    """Volatility and trend buckets of a market on its sampling grid (module docstring).

    Raises:
        ValueError: empty path or non-positive ``sample_s``.
    """
    if len(path.ts) == 0:
        raise ValueError("classify: empty mid path")
    step = int(round(params.sample_s * NS))
    if step <= 0:
        raise ValueError("classify: sample_s must be > 0")
    g0 = int(path.ts[0])
    end = max(path.end_ns, int(path.ts[-1]))
    grid = g0 + step * np.arange((end - g0) // step + 1, dtype=np.int64)
    m = path.at(grid)
    r = np.zeros(len(grid))
    if len(grid) > 1:
        r[1:] = np.abs(np.diff(m)) / m[:-1] * 1e4
    a = 1.0 - math.exp(-math.log(2.0) * params.sample_s / params.vol_half_life_s)
    vol = np.zeros(len(grid))
    v = 0.0
    for k in range(1, len(grid)):
        rk = float(r[k])
        v = rk if v == 0.0 else a * rk + (1.0 - a) * v
        vol[k] = v
    lb = max(1, int(round(params.trend_lookback_s / params.sample_s)))
    old = m[np.maximum(np.arange(len(grid)) - lb, 0)]
    trend = (m - old) / old * 1e4
    vb = np.where(vol < params.vol_low_bps, 0, np.where(vol < params.vol_high_bps, 1, 2))
    tb = np.where(trend >= params.trend_up_bps, 2, np.where(trend <= params.trend_down_bps, 0, 1))
    return Regimes(grid, vol, trend, (vb * 3 + tb).astype(np.int64), end)


@dataclass(slots=True)
class _Acc:
    """Per-bucket sums (arrays of len(BUCKETS))."""

    spread: np.ndarray = field(default_factory=lambda: np.zeros(len(BUCKETS)))
    inventory: np.ndarray = field(default_factory=lambda: np.zeros(len(BUCKETS)))
    fees: np.ndarray = field(default_factory=lambda: np.zeros(len(BUCKETS)))
    fills: np.ndarray = field(default_factory=lambda: np.zeros(len(BUCKETS), dtype=np.int64))
    time: np.ndarray = field(default_factory=lambda: np.zeros(len(BUCKETS)))


def attribute(fills: Sequence[Fill], paths: Mapping[str, MidPath], orders: Sequence[OrderAccepted] | None = None,
              strategy: str | None = None, params: RegimeParams = RegimeParams(),
              regimes: Mapping[str, Regimes] | None = None) -> dict[str, Any]:
    """The PnL split of ``fills`` (those of ``strategy``, or all when None) against ``paths``.

    Args:
        fills: attributed fills (any order; booked in ``ts_event`` order, ties in input order).
        paths: mid path per market (:class:`MarketTap` / :func:`mid_paths`).
        orders: the executor's ``OrderAccepted`` events (None: no order statistics).
        strategy: only this strategy's fills and orders.
        params: bucket and markout parameters.
        regimes: precomputed :func:`classify` results per market (to share across strategies).

    Returns:
        A JSON-ready dict (floats rounded to 6 decimals, USD unless named ``_bps``/``_pct``):
        ``spread_capture_usd``, ``inventory_pnl_usd``, ``fees_usd``, ``total_usd``, ``fills``,
        ``maker_fills``, ``by_market`` (the same four sums and fills per market), ``buckets``
        (per :data:`BUCKETS` label: the four sums, fills, ``time_share_pct``), ``by_volatility`` and
        ``by_trend`` (marginals), ``adverse_selection_bps`` (``all``/``maker`` -> per horizon
        ``"<h>s"``: mean or None, and ``n_<h>s``), ``orders`` (None without ``orders``) and
        ``notes`` (markets whose fills were left out for lack of a mid).
    """
    own = [f for f in fills if strategy is None or f.strategy == strategy]
    by_mkt: dict[str, list[Fill]] = {}
    for f in own:
        by_mkt.setdefault(f.market, []).append(f)
    regimes = dict(regimes or {})
    acc = _Acc()
    notes: list[str] = []
    per_market: dict[str, dict[str, Any]] = {}
    hs = tuple(params.markouts_s)
    mk_all: list[list[np.ndarray]] = [[] for _ in hs]
    mk_maker: list[list[np.ndarray]] = [[] for _ in hs]
    traded = sorted(by_mkt)
    for market in traded:
        fs = sorted(by_mkt[market], key=lambda f: f.ts_event)
        path = paths.get(market)
        if path is None or len(path.ts) == 0:
            notes.append(f"{market}: no mid in the data, its {len(fs)} fills are left out of the split")
            continue
        reg = regimes.get(market)
        if reg is None:
            reg = regimes[market] = classify(path, params)
        ts = np.fromiter((f.ts_event for f in fs), dtype=np.int64, count=len(fs))
        px = np.fromiter((f.price for f in fs), dtype=np.float64, count=len(fs))
        sz = np.fromiter((f.size for f in fs), dtype=np.float64, count=len(fs))
        d = np.fromiter((1.0 if f.side == "buy" else -1.0 for f in fs), dtype=np.float64, count=len(fs))
        fee = np.fromiter((f.fee for f in fs), dtype=np.float64, count=len(fs))
        maker = np.fromiter((f.liquidity == "maker" for f in fs), dtype=bool, count=len(fs))
        m_fill = path.at(ts, strict=True)
        spread = d * (m_fill - px) * sz
        # inventory: position after the fills at or before each mid change, times the change
        cq = np.concatenate(([0.0], np.cumsum(d * sz)))
        pos = cq[np.searchsorted(ts, path.ts[1:], side="right")]
        inv = pos * np.diff(path.mid)
        b_fill = reg.bucket_at(ts)
        b_inv = reg.bucket_at(path.ts[1:])
        n = len(BUCKETS)
        acc.spread += np.bincount(b_fill, weights=spread, minlength=n)
        acc.fees += np.bincount(b_fill, weights=fee, minlength=n)
        acc.fills += np.bincount(b_fill, minlength=n)
        acc.inventory += np.bincount(b_inv, weights=inv, minlength=n)
        acc.time += reg.time_ns()
        s, i, fe = float(spread.sum()), float(inv.sum()), float(fee.sum())
        per_market[market] = {"spread_capture_usd": _r(s), "inventory_pnl_usd": _r(i), "fees_usd": _r(fe),
                              "total_usd": _r(s + i - fe), "fills": len(fs)}
        for j, h in enumerate(hs):
            t_h = ts + int(round(h * NS))
            ok = t_h <= path.end_ns
            adv = -d * (path.at(t_h) - m_fill) / m_fill * 1e4
            mk_all[j].append(adv[ok])
            mk_maker[j].append(adv[ok & maker])
    if not traded:
        for market in sorted(paths):
            if len(paths[market].ts):
                reg = regimes.get(market) or classify(paths[market], params)
                acc.time += reg.time_ns()
    spread_t, inv_t, fees_t = float(acc.spread.sum()), float(acc.inventory.sum()), float(acc.fees.sum())
    out: dict[str, Any] = {
        "spread_capture_usd": _r(spread_t), "inventory_pnl_usd": _r(inv_t), "fees_usd": _r(fees_t),
        "total_usd": _r(spread_t + inv_t - fees_t), "fills": len(own),
        "maker_fills": sum(1 for f in own if f.liquidity == "maker"),
        "by_market": per_market,
        "buckets": _table(acc, list(range(len(BUCKETS))), BUCKETS),
        "by_volatility": _table(acc, [[3 * v + t for t in range(3)] for v in range(3)], VOL_BUCKETS),
        "by_trend": _table(acc, [[3 * v + t for v in range(3)] for t in range(3)], TREND_BUCKETS),
        "adverse_selection_bps": {"all": _markouts(hs, mk_all), "maker": _markouts(hs, mk_maker)},
        "orders": None if orders is None else order_stats(own, orders, strategy),
        "notes": notes,
    }
    return out


def _table(acc: _Acc, groups: list[Any], labels: Sequence[str]) -> dict[str, dict[str, Any]]:
    total_t = float(acc.time.sum())
    out = {}
    for g, label in zip(groups, labels, strict=True):
        s, i, fe = float(acc.spread[g].sum()), float(acc.inventory[g].sum()), float(acc.fees[g].sum())
        out[label] = {"spread_capture_usd": _r(s), "inventory_pnl_usd": _r(i), "fees_usd": _r(fe),
                      "total_usd": _r(s + i - fe), "fills": int(np.sum(acc.fills[g])),
                      "time_share_pct": _r(float(np.sum(acc.time[g])) / total_t * 100.0, 4) if total_t > 0 else 0.0}
    return out


def _markouts(hs: Sequence[float], parts: list[list[np.ndarray]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for h, arrs in zip(hs, parts, strict=True):
        v = np.concatenate(arrs) if arrs else np.zeros(0)
        key = f"{h:g}s"
        out[key] = _r(float(v.mean()), 4) if len(v) else None
        out[f"n_{key}"] = len(v)
    return out


def order_stats(fills: Sequence[Fill], orders: Sequence[OrderAccepted], strategy: str | None = None) -> dict[str, Any]:
    """Fill ratios of accepted orders (module docstring, **Orders**); ``fills`` should already be
    the strategy's own. Ratios are None when no order was accepted."""
    def mine(o: OrderAccepted) -> bool:
        return strategy is None or strategy in o.strategy.split(",")

    accepted: dict[tuple[str, int], OrderAccepted] = {}
    for o in orders:
        if mine(o):
            accepted.setdefault((o.market, o.client_order_index), o)
    filled = {(f.market, f.client_order_index) for f in fills}
    maker_filled = {(f.market, f.client_order_index) for f in fills if f.liquidity == "maker"}
    resting = [k for k, o in accepted.items() if o.time_in_force != "ioc"]
    n_filled = sum(1 for k in accepted if k in filled)
    n_maker = sum(1 for k in resting if k in maker_filled)
    return {"orders_accepted": len(accepted), "orders_filled": n_filled,
            "fill_ratio": _r(n_filled / len(accepted), 4) if accepted else None,
            "resting_orders_accepted": len(resting), "resting_orders_maker_filled": n_maker,
            "maker_fill_ratio": _r(n_maker / len(resting), 4) if resting else None}


def attribute_all(fills: Sequence[Fill], paths: Mapping[str, MidPath], strategies: Sequence[str],
                  orders: Sequence[OrderAccepted] | None = None,
                  params: RegimeParams = RegimeParams()) -> dict[str, dict[str, Any]]:
    """:func:`attribute` for each strategy and for ``"total"`` (every fill), sharing the regime
    classification of each market."""
    regimes = {m: classify(p, params) for m, p in sorted(paths.items()) if len(p.ts)}
    out = {"total": attribute(fills, paths, orders, None, params, regimes)}
    for s in strategies:
        out[s] = attribute(fills, paths, orders, s, params, regimes)
    return out


def _r(x: float, nd: int = 6) -> float:
    """Round for JSON (stable text across runs); -0.0 becomes 0.0."""
    v = round(float(x), nd)
    return 0.0 if v == 0 else v
