"""Avellaneda-Stoikov calibration: sigma, A, k and gamma of one market from recorded mids and trades.

:func:`calibrate` turns a window of :class:`~shared.events.Bbo` and :class:`~shared.events.Trade`
events of one market into a :class:`~shared.events.ModelParams` event. Every price is counted in
integer **ticks** of the market (``tick = 10**-price_decimals`` USD), time in seconds, inventory
``q`` in order **clips** (one quote = one clip of ``order_size`` base units). The method (details
and reasons in ``docs/calibration.md``):

1. **Grid.** The mid ``(bid + ask) / 2`` is sampled every ``interval_s`` seconds from the first
   Bbo to the last input event, forward-filled (the last Bbo at or before each grid time). An
   interval starting more than ``max_gap_s`` after the market's last Bbo or trade is a data gap
   (a feed outage, not a quiet market) and is left out of every estimate below.
2. **sigma** (ticks per sqrt(s)): GARCH(1,1) with constant mean and Student-t errors
   (``arch.arch_model``) fitted by maximum likelihood on the grid returns (mid changes in ticks)
   multiplied by ``garch_scale / std(returns)`` (so ``arch`` sees returns of standard deviation
   ``garch_scale``, inside its recommended range); its variance forecast averaged over the
   ``horizon_s / interval_s`` steps ahead is scaled back. Fallback: the standard deviation of the
   last ``rolling_window_s`` of returns (the last value of a rolling standard deviation). The
   rolling value is used when GARCH cannot be fitted (fewer than ``min_returns`` returns, no
   convergence, a non-finite value) or when the two differ by more than ``max_sigma_ratio``
   times. Both are reported (``sigma_garch``, ``sigma_rolling``, ``sigma_source``).
3. **A, k** (lambda(delta) = A exp(-k delta), Avellaneda & Stoikov 2008, eq. 2.11; A per second,
   k per tick): the trades of one taker order (same time, same side) are one arrival at its
   deepest price. An arrival in grid interval ``(t_i, t_i+1]`` is at distance
   ``delta = (price - mid_i)`` ticks for a taker buy and ``(mid_i - price)`` for a taker sell,
   ``mid_i`` being the mid the quote of that interval was computed from. For ``delta`` = ``step,
   2 step, ... max_delta_ticks``: ``lambda(delta)`` = arrivals at distance ``>= delta`` per second
   and per side (both sides pooled, divided by 2 x duration). ``A, k`` by weighted nonlinear least
   squares (``scipy.optimize.curve_fit``, Poisson weights ``sqrt(n) / T``, start from a log-linear
   fit) on the deltas with at least ``min_hits`` arrivals. Fit quality: R^2 of lambda and of
   log(lambda), standard errors of A and k, share of the arrivals beyond ``max_delta_ticks``.
4. **gamma** (per tick, per clip): ``gamma_candidates`` log-spaced values whose inventory skew
   per clip ``gamma sigma^2 horizon_s`` runs from ``min_skew_ticks`` to ``max_skew_ticks``. Each
   is backtested on the same grid (:func:`backtest_gamma`): every interval quote bid/ask around
   the reservation price ``r = s - q gamma sigma^2 tau`` with total spread
   ``gamma sigma^2 tau + (2/gamma) ln(1 + gamma/k)`` (A&S eqs. 3.17-3.18 with ``tau = horizon_s``
   fixed), a recorded taker trade through a quote fills one clip at the quote price, maker fees
   are paid, inventory is capped at ``max_inventory_clips``. **Rule:** among candidates with at
   least ``min_fills`` fills, the one with the highest Sharpe ratio of its per-interval equity
   changes (marked to the mid) is chosen; ties go to the smaller gamma. The Sharpe ratio is
   invariant to the size of the spread, so (unlike the seed's rule "widest spread among the
   profitable ones") it does not favour wide quotes that fill rarely.

``ok`` is False when a value a quoting engine needs (sigma, A, k, gamma) could not be estimated
or failed a quality check; ``problems`` then says why. Entries starting with ``warning:`` are
notes (the sigma fallback engaged, gamma at the edge of its grid, a losing backtest) that do
not make the parameters unusable on their own.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from shared.events import Bbo, Event, ModelParams, Trade, derive_id
from shared.markets import MarketInfo

WARN = "warning: "


class CalibrationConfig(BaseModel):
    """Settings of :func:`calibrate` (all times in seconds of event time, distances in ticks).

    The defaults suit an hour of top-of-book data sampled every second; the maker service embeds
    this model in its configuration section."""

    model_config = ConfigDict(extra="forbid")
    interval_s: float = Field(default=1.0, gt=0, description="return sampling interval, s; the mid is forward-filled on this grid")
    max_gap_s: float | None = Field(default=30.0, gt=0, description="grid intervals starting more than this long after the market's last Bbo or trade are a data gap, left out of every estimate, s; null = never")
    min_returns: int = Field(default=100, ge=10, description="fewer grid returns: no GARCH fit, rolling std only")
    rolling_window_s: float = Field(default=900.0, gt=0, description="rolling std of returns over the last this many seconds (sigma fallback)")
    max_sigma_ratio: float = Field(default=5.0, gt=1, description="use the rolling sigma when GARCH and rolling differ by more than this factor")
    garch_scale: float = Field(default=10.0, gt=0, description="returns are scaled to this standard deviation before the GARCH fit")
    max_delta_ticks: int = Field(default=200, ge=2, description="largest distance from the mid in the intensity fit, ticks")
    delta_step_ticks: int = Field(default=1, ge=1, description="step of the distances in the intensity fit, ticks (deltas step, 2 step, ...)")
    min_hits: int = Field(default=3, ge=1, description="distances with fewer arrivals are left out of the A, k fit")
    min_fit_points: int = Field(default=5, ge=3, description="fewer usable distances: the A, k fit is reported as failed")
    min_ak_r2: float = Field(default=0.5, ge=0, le=1, description="A, k fit with a lower R^2 of lambda is reported as failed")
    gamma_candidates: int = Field(default=25, ge=2, description="number of log-spaced gamma candidates backtested")
    min_skew_ticks: float = Field(default=0.1, gt=0, description="smallest candidate inventory skew per clip gamma*sigma^2*horizon, ticks")
    max_skew_ticks: float = Field(default=200.0, gt=0, description="largest candidate inventory skew per clip, ticks")
    horizon_s: float = Field(default=60.0, gt=0, description="A-S horizon tau (T - t) used in the quotes of the gamma backtest and the sigma forecast, s")
    max_inventory_clips: int = Field(default=10, ge=1, description="gamma backtest: no quote on the side that would take |q| beyond this, clips")
    min_fills: int = Field(default=6, ge=1, description="gamma candidates with fewer backtest fills are not eligible")
    maker_fee: float | None = Field(default=None, ge=0, description="maker fee fraction in the gamma backtest; null = the market's maker_fee")


@dataclass(frozen=True)
class Grid:
    """The sampled market of one calibration window.

    Attributes:
        t0: first grid time, ns; grid time ``i`` is ``t0 + i * interval_s``.
        mid: mid at each grid time, ticks (float, half ticks possible), shape ``(N + 1,)``.
        bid / ask: best bid / ask at each grid time, integer ticks, shape ``(N + 1,)``.
        buy_hi: deepest taker-buy price in interval ``(t_i, t_i+1]``, ticks (``-inf`` if none), shape ``(N,)``.
        sell_lo: deepest taker-sell price in each interval, ticks (``+inf`` if none), shape ``(N,)``.
        dist: distance of every taker order from its interval's mid, ticks, sorted (orders in
            data-gap intervals left out).
        n_orders: number of taker orders (trades of one order merged) inside the grid.
        live: per interval ``(t_i, t_i+1]``, True unless ``t_i`` is in a data gap (more than
            ``max_gap_s`` after the last Bbo or trade), shape ``(N,)``.
    """

    t0: int
    interval_s: float
    mid: np.ndarray
    bid: np.ndarray
    ask: np.ndarray
    buy_hi: np.ndarray
    sell_lo: np.ndarray
    dist: np.ndarray
    n_orders: int
    live: np.ndarray

    @property
    def duration_s(self) -> float:
        """Time covered by live intervals (data gaps excluded), s."""
        return float(np.count_nonzero(self.live)) * self.interval_s

    @property
    def returns(self) -> np.ndarray:
        """Mid changes over the live intervals, ticks, in time order."""
        return np.diff(self.mid)[self.live]


def build_grid(bbos: Sequence[Bbo], trades: Sequence[Trade], tick: float, interval_s: float, t_end: int,
               max_gap_s: float | None = None) -> Grid:
    """Sample the mid every ``interval_s`` s and assign the taker orders to grid intervals.

    Args:
        bbos: Bbo events of one market in time order, with ``0 < bid < ask``.
        trades: Trade events of the same market in time order.
        tick: tick size, USD.
        interval_s: grid step, s.
        t_end: last grid time is the last ``t0 + i * interval_s <= t_end`` (ns).
        max_gap_s: an interval whose start is more than this long after the last Bbo or trade
            is not live (a data gap); None: every interval is live.

    Raises:
        ValueError: no Bbo.
    """
    if not bbos:
        raise ValueError("no usable Bbo (need 0 < bid < ask)")
    step = int(round(interval_s * 1e9))
    bt = np.fromiter((b.ts_event for b in bbos), dtype=np.int64, count=len(bbos))
    bid = np.rint(np.fromiter((b.bid_px for b in bbos), dtype=float, count=len(bbos)) / tick)
    ask = np.rint(np.fromiter((b.ask_px for b in bbos), dtype=float, count=len(bbos)) / tick)
    t0 = int(bt[0])
    n = max(0, (t_end - t0) // step)
    grid = t0 + step * np.arange(n + 1, dtype=np.int64)
    idx = np.searchsorted(bt, grid, side="right") - 1
    g_bid, g_ask = bid[idx], ask[idx]
    mid = (g_bid + g_ask) / 2.0
    live = np.ones(n, dtype=bool)
    if max_gap_s is not None and n:
        ev_t = np.sort(np.concatenate([bt, np.fromiter((t.ts_event for t in trades), dtype=np.int64, count=len(trades))]))
        last = ev_t[np.searchsorted(ev_t, grid[:-1], side="right") - 1]
        live = grid[:-1] - last <= int(round(max_gap_s * 1e9))
    # one taker order = the trades with the same time and side; its deepest price counts
    orders: dict[tuple[int, str], float] = {}
    for tr in trades:
        key = (tr.ts_event, tr.taker_side)
        px = tr.price / tick
        old = orders.get(key)
        if old is None:
            orders[key] = px
        else:
            orders[key] = max(old, px) if tr.taker_side == "buy" else min(old, px)
    buy_hi = np.full(n, -np.inf)
    sell_lo = np.full(n, np.inf)
    dists: list[np.ndarray] = []
    used = 0
    for side, sign in (("buy", 1.0), ("sell", -1.0)):
        ts = np.array([k[0] for k in orders if k[1] == side], dtype=np.int64)
        px = np.array([v for k, v in orders.items() if k[1] == side], dtype=float)
        j = np.searchsorted(grid, ts, side="left") - 1  # grid[j] < ts <= grid[j+1]
        keep = (j >= 0) & (j < n)
        used += int(keep.sum())
        keep[keep] &= live[j[keep]]
        j, px = j[keep], px[keep]
        if side == "buy":
            np.maximum.at(buy_hi, j, px)
        else:
            np.minimum.at(sell_lo, j, px)
        dists.append(sign * (px - mid[j]))
    dist = np.sort(np.concatenate(dists)) if dists else np.zeros(0)
    return Grid(t0, interval_s, mid, g_bid, g_ask, buy_hi, sell_lo, dist, used, live)


# ---------------------------------------------------------------------------------------------
# sigma
# ---------------------------------------------------------------------------------------------


@dataclass
class SigmaFit:
    """Both sigma estimates (ticks per sqrt(s)) and what happened."""

    sigma: float
    source: str
    garch: float | None
    rolling: float | None
    problems: list[str]
    fit: dict[str, float | None]


def garch_sigma(returns: np.ndarray, cfg: CalibrationConfig) -> tuple[float, dict[str, float | None]]:
    """GARCH(1,1), constant mean, Student-t errors, fitted with ``arch`` on ``returns`` (ticks per
    interval) scaled to standard deviation ``cfg.garch_scale``.

    Returns:
        ``(sigma, fit)``: the square root of the forecast variance averaged over the next
        ``round(horizon_s / interval_s)`` intervals, in ticks per sqrt(s), and fit figures
        (``garch_loglik``, ``garch_omega``, ``garch_alpha``, ``garch_beta``, ``garch_nu``,
        ``garch_persistence``, ``garch_scale``).

    Raises:
        ValueError: the returns do not vary, or the fit did not converge or gave a non-finite value.
    """
    from arch import arch_model

    std = float(np.std(returns, ddof=1))
    if not math.isfinite(std) or std <= 0:
        raise ValueError("returns do not vary")
    scale = cfg.garch_scale / std
    steps = max(1, round(cfg.horizon_s / cfg.interval_s))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = arch_model(returns * scale, mean="Constant", vol="GARCH", p=1, q=1, dist="t", rescale=False)
        res = model.fit(disp="off", show_warning=False)
        if res.convergence_flag != 0:
            raise ValueError(f"no convergence (optimizer flag {res.convergence_flag})")
        var = res.forecast(horizon=steps, reindex=False).variance.to_numpy()[-1]
    p = res.params
    fit: dict[str, float | None] = {
        "garch_loglik": float(res.loglikelihood), "garch_omega": float(p["omega"]),
        "garch_alpha": float(p["alpha[1]"]), "garch_beta": float(p["beta[1]"]), "garch_nu": float(p["nu"]),
        "garch_persistence": float(p["alpha[1]"] + p["beta[1]"]), "garch_scale": scale,
    }
    sigma = math.sqrt(float(np.mean(var))) / scale / math.sqrt(cfg.interval_s)
    if not all(v is not None and math.isfinite(v) for v in fit.values()) or not math.isfinite(sigma):
        raise ValueError("non-finite parameter or forecast")
    return sigma, fit


def rolling_sigma(returns: np.ndarray, cfg: CalibrationConfig) -> float:
    """Standard deviation (ddof 1) of the last ``rolling_window_s`` of ``returns`` (ticks per
    interval; all of them if fewer; data gaps do not count), in ticks per sqrt(s); NaN with
    fewer than 2 returns."""
    w = max(2, round(cfg.rolling_window_s / cfg.interval_s))
    tail = returns[-w:]
    if len(tail) < 2:
        return math.nan
    return float(np.std(tail, ddof=1)) / math.sqrt(cfg.interval_s)


def estimate_sigma(returns: np.ndarray, cfg: CalibrationConfig) -> SigmaFit:
    """sigma from the grid returns (ticks per interval, data gaps left out): GARCH with the
    rolling fallback (module docstring, step 2)."""
    problems: list[str] = []
    fit: dict[str, float | None] = {}
    roll = rolling_sigma(returns, cfg)
    fit["sigma_rolling_returns"] = float(min(len(returns), max(2, round(cfg.rolling_window_s / cfg.interval_s))))
    garch: float | None = None
    if len(returns) < cfg.min_returns:
        problems.append(f"{WARN}sigma: {len(returns)} returns < min_returns {cfg.min_returns}, no GARCH fit")
    else:
        try:
            garch, gfit = garch_sigma(returns, cfg)
            fit.update(gfit)
        except Exception as exc:  # whatever arch raises on odd data is a failed fit, never a crash
            problems.append(f"{WARN}sigma: GARCH fit failed ({type(exc).__name__}: {exc})"[:300])
    rolling = roll if math.isfinite(roll) else None
    use_garch = garch is not None and garch > 0
    if garch is not None and not garch > 0:
        problems.append(f"{WARN}sigma: GARCH gave {garch:.6g}, using rolling")
    if use_garch and garch is not None and rolling is not None:
        ratio = garch / rolling if rolling > 0 else math.inf
        fit["sigma_ratio"] = _fin(ratio)
        if ratio > cfg.max_sigma_ratio or ratio < 1.0 / cfg.max_sigma_ratio:
            problems.append(f"{WARN}sigma: GARCH {garch:.6g} and rolling {rolling:.6g} differ by more than "
                            f"{cfg.max_sigma_ratio:g}x, using rolling")
            use_garch = False
    if use_garch and garch is not None:
        return SigmaFit(garch, "garch", garch, rolling, problems, fit)
    if rolling is None:
        problems.append("sigma: fewer than 2 returns")
        return SigmaFit(0.0, "rolling", garch, rolling, problems, fit)
    if rolling <= 0:
        problems.append(f"sigma: the mid did not move in the last {cfg.rolling_window_s:g} s (rolling std 0)")
        return SigmaFit(0.0, "rolling", garch, rolling, problems, fit)
    return SigmaFit(rolling, "rolling", garch, rolling, problems, fit)


# ---------------------------------------------------------------------------------------------
# A, k
# ---------------------------------------------------------------------------------------------


@dataclass
class IntensityFit:
    """lambda(delta) = A exp(-k delta): A per s, k per tick (0.0 when not estimated)."""

    A: float
    k: float
    ok: bool
    problems: list[str]
    fit: dict[str, float | None]
    deltas: np.ndarray
    lam: np.ndarray


def intensity_curve(dist: np.ndarray, duration_s: float, cfg: CalibrationConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Empirical lambda(delta): ``(deltas, hits, lambda)`` for deltas ``step, 2 step, ...,
    max_delta_ticks`` (ticks); ``hits`` = arrivals at distance ``>= delta`` (both sides),
    ``lambda = hits / (2 duration_s)`` per second per side. ``dist`` must be sorted."""
    deltas = np.arange(cfg.delta_step_ticks, cfg.max_delta_ticks + 1, cfg.delta_step_ticks, dtype=float)
    hits = len(dist) - np.searchsorted(dist, deltas, side="left")
    return deltas, hits.astype(float), hits / (2.0 * duration_s)


def fit_intensity(dist: np.ndarray, duration_s: float, cfg: CalibrationConfig) -> IntensityFit:
    """Fit A and k (module docstring, step 3). Never raises: a failed fit has ``ok=False``."""
    from scipy.optimize import curve_fit

    deltas, hits, lam = intensity_curve(dist, duration_s, cfg) if duration_s > 0 else (np.zeros(0),) * 3
    use = hits >= cfg.min_hits
    pos = dist[dist > 0]
    fit: dict[str, float | None] = {
        "ak_points": float(use.sum()), "ak_delta_max_used": float(deltas[use][-1]) if use.any() else None,
        # share of the arrivals beyond the mid that lie past the largest distance of the curve
        "ak_beyond_max_frac": float(np.mean(pos > cfg.max_delta_ticks)) if len(pos) else None,
    }
    if use.sum() < cfg.min_fit_points:
        return IntensityFit(0.0, 0.0, False, [f"A, k: {int(use.sum())} distances with >= {cfg.min_hits} arrivals "
                                              f"< min_fit_points {cfg.min_fit_points}"], fit, deltas, lam)
    d, y, n = deltas[use], lam[use], hits[use]
    sig = np.sqrt(n) / (2.0 * duration_s)

    def model(x: np.ndarray, a: float, k: float) -> np.ndarray:
        return a * np.exp(-k * x)

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            slope, icpt = np.polyfit(d, np.log(y), 1, w=np.sqrt(n))  # start values
            p0 = (float(np.exp(icpt)), float(max(-slope, 1e-6)))
            popt, pcov = curve_fit(model, d, y, p0=p0, sigma=sig, absolute_sigma=True, maxfev=5000)
    except Exception as exc:  # whatever scipy/numpy raise is a failed fit, never a crash
        return IntensityFit(0.0, 0.0, False, [f"A, k: curve_fit failed ({type(exc).__name__}: {exc})"[:300]],
                            fit, deltas, lam)
    a, k = float(popt[0]), float(popt[1])
    pred = model(d, a, k)
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - float(np.sum((y - pred) ** 2)) / ss_tot if ss_tot > 0 else math.nan
    ly = np.log(y)
    ss_tot_l = float(np.sum((ly - ly.mean()) ** 2))
    r2_log = 1.0 - float(np.sum((ly - np.log(np.maximum(pred, 1e-300))) ** 2)) / ss_tot_l if ss_tot_l > 0 else math.nan
    se = np.sqrt(np.diag(pcov)) if np.all(np.isfinite(pcov)) else np.array([math.nan, math.nan])
    fit.update({"ak_r2": _fin(r2), "ak_r2_log": _fin(r2_log), "A_se": _fin(float(se[0])), "k_se": _fin(float(se[1])),
                "ak_lambda_first": float(y[0]), "ak_lambda_last": float(y[-1])})
    problems = []
    if not (math.isfinite(a) and a > 0 and math.isfinite(k) and k > 0):
        problems.append(f"A, k: fit gave A={a:.6g}, k={k:.6g} (need finite and > 0)")
        return IntensityFit(_pos(a), _pos(k), False, problems, fit, deltas, lam)
    if not (math.isfinite(r2) and r2 >= cfg.min_ak_r2):
        problems.append(f"A, k: R^2 {r2:.3g} < min_ak_r2 {cfg.min_ak_r2:g}")
    if 1.0 / k > float(d[-1]):
        problems.append(f"{WARN}A, k: the decay length 1/k = {1.0 / k:.4g} ticks (about the A-S quote depth) lies "
                        f"beyond the fitted distances (up to {float(d[-1]):g} ticks): the quotes extrapolate the fit")
    return IntensityFit(a, k, not problems, problems, fit, deltas, lam)


# ---------------------------------------------------------------------------------------------
# gamma
# ---------------------------------------------------------------------------------------------


def as_quote_offsets(gamma: np.ndarray, sigma: float, k: float, tau_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Avellaneda-Stoikov (2008) eqs. 3.17-3.18 with a fixed horizon ``tau_s``.

    Args:
        gamma: risk aversion per tick per clip, any shape.
        sigma: ticks per sqrt(s). k: per tick. tau_s: s.

    Returns:
        ``(skew, half_spread)`` in ticks: reservation price ``r = mid - q * skew`` (q in clips)
        and quotes ``r -/+ half_spread``; ``skew = gamma sigma^2 tau``, ``half_spread =
        (gamma sigma^2 tau + (2/gamma) ln(1 + gamma/k)) / 2``.
    """
    skew = gamma * sigma**2 * tau_s
    half = (skew + (2.0 / gamma) * np.log1p(gamma / k)) / 2.0
    return skew, half


@dataclass
class GammaBacktest:
    """Per-candidate results of :func:`backtest_gamma` (arrays of the candidates' shape)."""

    gamma: np.ndarray
    pnl_ticks: np.ndarray  # final equity, ticks x clips, marked to the last mid
    sharpe: np.ndarray  # mean / std of per-interval equity changes (NaN without variation)
    fills: np.ndarray
    buys: np.ndarray
    sells: np.ndarray
    max_abs_q: np.ndarray
    half_spread: np.ndarray
    skew: np.ndarray


def backtest_gamma(grid: Grid, gammas: np.ndarray, sigma: float, k: float, cfg: CalibrationConfig,
                   maker_fee: float) -> GammaBacktest:
    """Quote every candidate gamma on the grid (module docstring, step 4), all candidates at once.

    Each interval ``(t_i, t_i+1]``: bid = floor(r - half), ask = ceil(r + half) in ticks from the
    mid and inventory at ``t_i``, kept post-only (bid <= best ask - 1, ask >= best bid + 1). The
    bid fills one clip at its price if a taker sell in the interval reached it (price <= bid), the
    ask if a taker buy did (price >= ask); no quote on a side that would take ``|q|`` beyond
    ``max_inventory_clips``. Each fill pays ``maker_fee * price``. Equity = cash + q * mid. Data
    gap intervals (``grid.live`` False) have no quotes and their equity change (the inventory
    times the mid jump across the gap) is left out of the PnL and the Sharpe ratio.
    """
    skew, half = as_quote_offsets(gammas, sigma, k, cfg.horizon_s)
    n = len(grid.mid) - 1
    g = len(gammas)
    qmax = cfg.max_inventory_clips
    active = np.flatnonzero((np.isfinite(grid.buy_hi) | np.isfinite(grid.sell_lo)) & grid.live)
    mid, best_bid, best_ask = grid.mid.tolist(), grid.bid.tolist(), grid.ask.tolist()
    sell_lo, buy_hi = grid.sell_lo.tolist(), grid.buy_hi.tolist()
    none = np.zeros(g)
    q = np.zeros(g)
    col_b: list[np.ndarray] = []
    col_s: list[np.ndarray] = []
    col_cash: list[np.ndarray] = []
    for j in active.tolist():  # sequential in the inventory; vectorised over the candidates
        r = mid[j] - q * skew
        b = s = none
        cash = none
        if sell_lo[j] != math.inf:  # a taker sell in the interval: does it reach our bid?
            bid = np.minimum(np.floor(r - half), best_ask[j] - 1.0)
            b = ((bid >= sell_lo[j]) & (q < qmax)) * 1.0
            cash = cash - b * bid * (1.0 + maker_fee)
        if buy_hi[j] != -math.inf:  # a taker buy: does it reach our ask?
            ask = np.maximum(np.ceil(r + half), best_bid[j] + 1.0)
            s = ((ask <= buy_hi[j]) & (q > -qmax)) * 1.0
            cash = cash + s * ask * (1.0 - maker_fee)
        q = q + b - s
        col_b.append(b)
        col_s.append(s)
        col_cash.append(cash)
    # Equity change of interval j: fills (cash + the clips at the closing mid) + q_before x mid
    # move. Between two active intervals q is constant, so the sums over those stretches come
    # from prefix sums of the live mid moves: memory O(candidates x active intervals), not x N.
    live = grid.live
    dm = np.diff(grid.mid)
    p1 = np.concatenate(([0.0], np.cumsum(np.where(live, dm, 0.0))))
    p2 = np.concatenate(([0.0], np.cumsum(np.where(live, dm * dm, 0.0))))
    m = int(np.count_nonzero(live))
    if len(active):
        fb, fs, cash_a = np.array(col_b).T, np.array(col_s).T, np.array(col_cash).T  # (g, K)
        dq = fb - fs
        q_after = np.cumsum(dq, axis=1)
        q_before = q_after - dq
        at = cash_a + dq * grid.mid[active + 1] + q_before * dm[active]
        nxt = np.append(active[1:], n)
        seg1 = p1[nxt] - p1[active + 1]
        seg2 = p2[nxt] - p2[active + 1]
        total = at.sum(axis=1) + (q_after * seg1).sum(axis=1)
        total_sq = (at * at).sum(axis=1) + (q_after * q_after * seg2).sum(axis=1)
        buys, sells = fb.sum(axis=1), fs.sum(axis=1)
        max_q = np.abs(q_after).max(axis=1)
    else:
        total = total_sq = buys = sells = max_q = np.zeros(g)
    mean = total / m if m else np.zeros(g)
    var = (total_sq - m * mean * mean) / (m - 1) if m > 1 else np.zeros(g)
    std = np.sqrt(np.maximum(var, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        sharpe = np.where(std > 1e-12 * (np.abs(mean) + 1.0), mean / std, np.nan)
    pnl = total
    return GammaBacktest(gammas, pnl, sharpe, buys + sells, buys, sells, max_q, half, skew)


def gamma_grid(sigma: float, cfg: CalibrationConfig) -> np.ndarray:
    """The candidates: ``gamma_candidates`` log-spaced gammas (per tick per clip) whose skew per
    clip ``gamma sigma^2 horizon_s`` runs from ``min_skew_ticks`` to ``max_skew_ticks``."""
    var_tau = sigma**2 * cfg.horizon_s
    lo, hi = sorted((cfg.min_skew_ticks, cfg.max_skew_ticks))
    return np.geomspace(lo / var_tau, hi / var_tau, cfg.gamma_candidates)


def choose_gamma(bt: GammaBacktest, cfg: CalibrationConfig) -> tuple[int | None, list[str]]:
    """The rule: the eligible candidate (``fills >= min_fills``, finite Sharpe) with the highest
    Sharpe ratio; ties go to the smaller gamma (first index). ``None`` if none is eligible."""
    ok = (bt.fills >= cfg.min_fills) & np.isfinite(bt.sharpe)
    if not ok.any():
        return None, [f"gamma: no candidate had >= min_fills {cfg.min_fills} backtest fills "
                      f"(most: {int(bt.fills.max()) if len(bt.fills) else 0})"]
    score = np.where(ok, bt.sharpe, -np.inf)
    i = int(np.argmax(score))
    problems = []
    if i in (0, len(bt.gamma) - 1):
        problems.append(f"{WARN}gamma: chosen candidate is at the {'low' if i == 0 else 'high'} edge of the grid")
    if bt.pnl_ticks[i] <= 0:
        problems.append(f"{WARN}gamma: the chosen candidate did not make money in the backtest "
                        f"({bt.pnl_ticks[i]:.6g} ticks x clips)")
    return i, problems


# ---------------------------------------------------------------------------------------------
# calibrate
# ---------------------------------------------------------------------------------------------


def _fin(x: float | None) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def _pos(x: float | None) -> float:
    return float(x) if x is not None and math.isfinite(x) and x > 0 else 0.0


def calibrate(bbos: Sequence[Bbo], trades: Sequence[Trade], market: MarketInfo,
              cfg: CalibrationConfig | None = None, *, strategy: str = "maker",
              order_size: float | None = None, cause: Event | None = None,
              source: str = "calibrator") -> ModelParams:
    """Estimate the Avellaneda-Stoikov parameters of ``market`` (module docstring).

    Args:
        bbos: Bbo events (only those of ``market.symbol`` with ``0 < bid < ask`` are used), in
            time order (they are sorted by ``ts_event`` if not).
        trades: Trade events (only those of ``market.symbol``), in time order.
        market: the market; its tick converts prices to ticks and its ``maker_fee`` is the
            backtest fee unless ``cfg.maker_fee`` is set.
        cfg: settings (default :class:`CalibrationConfig`).
        strategy: the strategy the parameters are for (``ModelParams.strategy``).
        order_size: clip size in base units; only used to report the backtest PnL in USD
            (``fit["gamma_pnl_usd"]``).
        cause: the event that triggered the calibration; the output id is derived from it
            (else from the inputs) and it becomes ``causation_id``.
        source: ``ModelParams.source``.

    Returns:
        A :class:`ModelParams` with ``ts_event`` = the time of the last input event used and
        ``window_start``/``window_end`` = first Bbo / last input event (ns). Deterministic.

    Raises:
        ValueError: no usable Bbo of the market (the only error; bad fits give ``ok=False``).
    """
    cfg = cfg or CalibrationConfig()
    sym = market.symbol
    tick = market.tick
    bb = [b for b in bbos if b.market == sym and 0 < b.bid_px < b.ask_px
          and math.isfinite(b.bid_px) and math.isfinite(b.ask_px)]
    if not bb:
        raise ValueError(f"calibrate {sym}: no usable Bbo (need events of market {sym} with 0 < bid < ask)")
    bb.sort(key=lambda e: e.ts_event)
    tr = sorted((t for t in trades if t.market == sym and t.price > 0 and math.isfinite(t.price)),
                key=lambda e: e.ts_event)
    t_start = bb[0].ts_event
    tr = [t for t in tr if t.ts_event > t_start]
    t_end = max(bb[-1].ts_event, tr[-1].ts_event if tr else 0)
    grid = build_grid(bb, tr, tick, cfg.interval_s, t_end, cfg.max_gap_s)
    problems: list[str] = []
    fit: dict[str, float | None] = {}
    returns = grid.returns
    n_ret = len(returns)

    sg = estimate_sigma(returns, cfg)
    problems += sg.problems
    fit.update(sg.fit)

    ak = fit_intensity(grid.dist, grid.duration_s, cfg)
    problems += ak.problems
    fit.update(ak.fit)

    fee = market.maker_fee if cfg.maker_fee is None else cfg.maker_fee
    gamma = 0.0
    n_cand = 0.0
    if sg.sigma > 0 and ak.k > 0 and n_ret > 1:
        gammas = gamma_grid(sg.sigma, cfg)
        n_cand = float(len(gammas))
        bt = backtest_gamma(grid, gammas, sg.sigma, ak.k, cfg, fee)
        i, gp = choose_gamma(bt, cfg)
        problems += gp
        fit["gamma_eligible"] = float(np.sum((bt.fills >= cfg.min_fills) & np.isfinite(bt.sharpe)))
        if i is not None:
            gamma = float(bt.gamma[i])
            fit.update({"gamma_index": float(i), "gamma_sharpe": _fin(float(bt.sharpe[i])),
                        "gamma_pnl_ticks": _fin(float(bt.pnl_ticks[i])), "gamma_fills": float(bt.fills[i]),
                        "gamma_buys": float(bt.buys[i]), "gamma_sells": float(bt.sells[i]),
                        "gamma_max_abs_q": float(bt.max_abs_q[i]), "gamma_half_spread_ticks": float(bt.half_spread[i]),
                        "gamma_skew_ticks": float(bt.skew[i]), "gamma_min": float(gammas[0]), "gamma_max": float(gammas[-1])})
            if order_size is not None:
                fit["gamma_pnl_usd"] = _fin(float(bt.pnl_ticks[i]) * tick * order_size)
    else:
        problems.append("gamma: not evaluated (needs sigma > 0 and k > 0)")

    sigma = _pos(sg.sigma)
    blocking = [p for p in problems if not p.startswith(WARN)]
    ok = not blocking and all(x > 0 for x in (sigma, _pos(ak.A), _pos(ak.k), gamma))
    if not ok and not blocking:
        problems.append("a parameter is not finite and positive")
    inputs: dict[str, float] = {
        "bbos": float(len(bb)), "trades": float(len(tr)), "taker_orders": float(grid.n_orders),
        "returns": float(n_ret), "duration_s": grid.duration_s,
        "gap_s": float(np.count_nonzero(~grid.live)) * cfg.interval_s, "horizon_s": cfg.horizon_s,
        "max_delta_ticks": float(cfg.max_delta_ticks), "delta_step_ticks": float(cfg.delta_step_ticks),
        "gamma_candidates": n_cand, "maker_fee": float(fee), "max_inventory_clips": float(cfg.max_inventory_clips),
    }
    if order_size is not None:
        inputs["order_size"] = float(order_size)
    last_id = max((bb[-1], tr[-1]) if tr else (bb[-1],), key=lambda e: e.ts_event).id
    if cause is not None:
        env = {"id": derive_id(cause.id, source, strategy, sym), "ts_recv": cause.ts_recv, "causation_id": cause.id}
    else:
        env = {"id": derive_id(source, strategy, sym, t_start, t_end, len(bb), len(tr), bb[-1].id, last_id,
                               cfg.model_dump_json()), "ts_recv": 0, "causation_id": None}
    return ModelParams(
        **env, ts_event=t_end, source=source, strategy=strategy, market=sym,
        sigma=sigma, A=_pos(ak.A), k=_pos(ak.k), gamma=gamma, tick_size=tick, mid=float(bb[-1].mid),
        interval_s=cfg.interval_s, window_start=t_start, window_end=t_end, sigma_source=sg.source,  # type: ignore[arg-type]
        sigma_garch=_fin(sg.garch), sigma_rolling=_fin(sg.rolling), ok=ok, problems=problems,
        fit={k_: _fin(v) for k_, v in fit.items()}, inputs=inputs,
    )


# ---------------------------------------------------------------------------------------------
# the `lighter-stack calibrate` command
# ---------------------------------------------------------------------------------------------

UNITS: dict[str, str] = {
    "sigma": "ticks/sqrt(s)", "sigma_garch": "ticks/sqrt(s)", "sigma_rolling": "ticks/sqrt(s)",
    "A": "1/s (arrivals per second per side at the mid)", "k": "1/tick",
    "gamma": "1/(tick*clip) (inventory q counted in order clips)", "tick_size": "USD", "mid": "USD",
    "interval_s": "s", "window_start": "ns", "window_end": "ns", "horizon_s": "s",
    "half_spread_ticks": "ticks", "half_spread_bps": "bps of mid", "skew_ticks_per_clip": "ticks",
    "sigma_bps_per_sqrt_s": "bps of mid/sqrt(s)",
}


def summary(p: ModelParams, horizon_s: float) -> dict[str, object]:
    """The JSON summary the command prints: every field of ``p``, its units, and the A-S quote
    offsets at zero inventory over ``horizon_s`` (``half_spread_ticks``/``_bps``,
    ``skew_ticks_per_clip``; None when a parameter is not positive)."""
    import msgspec

    out: dict[str, object] = msgspec.to_builtins(p)
    half = skew = None
    if p.sigma > 0 and p.k > 0 and p.gamma > 0:
        s, h = as_quote_offsets(np.array([p.gamma]), p.sigma, p.k, horizon_s)
        skew, half = float(s[0]), float(h[0])
    out["horizon_s"] = horizon_s
    out["half_spread_ticks"] = half
    out["half_spread_bps"] = half * p.tick_size / p.mid * 1e4 if half is not None and p.mid > 0 else None
    out["skew_ticks_per_clip"] = skew
    out["sigma_bps_per_sqrt_s"] = p.sigma * p.tick_size / p.mid * 1e4 if p.mid > 0 else None
    out["units"] = UNITS
    return out


def calibration_settings(raw_maker: dict[str, object] | None) -> CalibrationConfig:
    """The :class:`CalibrationConfig` of a stack config's ``services.maker`` section: its
    ``calibration`` mapping, with ``horizon_s`` taken from the maker's ``horizon_s`` unless the
    mapping sets it (so calibration and quoting use the same tau).

    Raises:
        pydantic.ValidationError: an unknown or invalid calibration setting.
    """
    raw = dict(raw_maker or {})
    calib = dict(raw.get("calibration") or {})  # type: ignore[call-overload]
    if "horizon_s" in raw and "horizon_s" not in calib:
        calib["horizon_s"] = raw["horizon_s"]
    return CalibrationConfig.model_validate(calib)
