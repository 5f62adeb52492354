"""Seeded synthetic market data: a price simulator writing the project's recording format.

The mid price follows a random walk in log space on a fixed step of ``bbo_interval_ms``:

``log m_{k+1} = log m_k + drift·Δ + σ_r·√Δ·z_k + J_k``  (Δ in minutes, z_k standard normal)

- **volatility regimes**: the walk is in one regime ``r`` at a time (it starts in regime 0);
  ``σ_r = vol_bps[r]·1e-4`` per √minute. In each step it leaves regime ``r`` with probability
  ``1 − (1 − switch_prob_per_min[r])^Δ`` for one of the other regimes (uniformly chosen);
- **trends**: ``drift`` is ``trend_bps_per_min·1e-4·s`` per minute with the trend state
  ``s ∈ {−1, 0, +1}`` (starts at 0), which switches to one of the two other states with
  probability ``1 − (1 − trend_switch_prob_per_min)^Δ`` per step;
- **jumps**: with probability ``1 − (1 − jump_prob_per_min)^Δ`` per step a jump ``J_k`` of
  random sign and exponentially distributed size with mean ``jump_bps`` bps is added.

From the mid, each step emits one :class:`shared.events.Bbo`: the mid rounded to the tick grid of
the market, ``bid = mid − ⌊spread/2⌋`` ticks and ``ask = bid + spread`` ticks, with ``spread =
spread_ticks + U{0..spread_jitter_ticks}``; sizes uniform in ``bbo_size_base`` rounded to lots
(at least one lot). Public trades (:class:`shared.events.Trade`) arrive as a Poisson process of
``trade_rate_per_s``; each trade takes the quote in force (a buy lifts the ask, a sell hits the
bid, 50/50) with a log-normal size of median ``trade_size_median`` base units (σ = 1), rounded to
lots and at least the market minimum. Events are sorted by ``ts_event`` (a trade at the same
nanosecond as a BBO comes after it); ``ts_recv = ts_event``; ``source = "pricesim"``; ids derive
from the seed and the event number.

Only ``numpy.random.default_rng(seed)`` is used, with all random numbers drawn in a fixed order,
so the same parameters and seed give identical events and, through
:func:`shared.recording.write_recording` (gzip mtime 0), byte-identical files.

API: :func:`simulate_path` (the mid path with regime/trend/jump state, for analysis and tests),
:func:`simulate` → ``(RecordingHeader, list of events)``, :func:`write_simulated` (a file).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import msgspec
import numpy as np

from shared.events import Bbo, Trade, derive_id
from shared.markets import MarketInfo
from shared.recording import RecordingHeader, write_recording

SOURCE = "pricesim"

#: The default synthetic market: 2 price decimals (tick 0.01 USD), 3 size decimals (lot 0.001).
SIM_MARKET = MarketInfo(symbol="SIM", market_id=999, size_decimals=3, price_decimals=2,
                        min_base_amount=0.01, min_quote_amount=1.0)


class SimParams(msgspec.Struct, kw_only=True, frozen=True):
    """Simulator parameters (all documented in the module docstring).

    Attributes:
        market: the market simulated (tick = ``market.tick``, lot = ``market.lot``).
        start_price: initial mid in USD.
        start_ns: timestamp of the first BBO (ns since the epoch).
        duration_s: simulated time in seconds (BBOs at ``start_ns + k·interval``, k ≥ 0,
            while ``k·interval < duration``).
        bbo_interval_ms: time between BBO updates, milliseconds.
        spread_ticks: quoted spread in ticks (≥ 1).
        spread_jitter_ticks: extra random spread, uniform in 0..this many ticks.
        bbo_size_base: (min, max) size shown at the bid and at the ask, base units.
        vol_bps: volatility of each regime, bps of price per √minute (std of a 1-minute log
            return without jumps and drift).
        switch_prob_per_min: per regime, the probability per minute of leaving it.
        trend_bps_per_min: drift magnitude while trending, bps per minute.
        trend_switch_prob_per_min: probability per minute that the trend state changes.
        jump_prob_per_min: probability per minute of a price jump.
        jump_bps: mean jump size (exponential), bps.
        trade_rate_per_s: mean number of public trades per second (Poisson).
        trade_size_median: median trade size, base units (log-normal, σ = 1).
    """

    market: MarketInfo = SIM_MARKET
    start_price: float = 100.0
    start_ns: int = 1_750_000_000 * 10**9
    duration_s: float = 3600.0
    bbo_interval_ms: int = 250
    spread_ticks: int = 1
    spread_jitter_ticks: int = 1
    bbo_size_base: tuple[float, float] = (1.0, 50.0)
    vol_bps: tuple[float, ...] = (4.0, 15.0)
    switch_prob_per_min: tuple[float, ...] = (0.05, 0.1)
    trend_bps_per_min: float = 0.5
    trend_switch_prob_per_min: float = 0.05
    jump_prob_per_min: float = 0.05
    jump_bps: float = 30.0
    trade_rate_per_s: float = 2.0
    trade_size_median: float = 0.5

    def validate(self) -> None:
        """Raise ValueError naming the first bad parameter."""
        def bad(name: str, why: str) -> ValueError:
            return ValueError(f"SimParams.{name}: {why}, got {getattr(self, name)!r}")

        if not (self.start_price > 0 and math.isfinite(self.start_price)):
            raise bad("start_price", "must be a positive finite price")
        if not self.duration_s > 0:
            raise bad("duration_s", "must be > 0")
        if self.bbo_interval_ms < 1:
            raise bad("bbo_interval_ms", "must be >= 1")
        if self.spread_ticks < 1:
            raise bad("spread_ticks", "must be >= 1")
        if self.spread_jitter_ticks < 0:
            raise bad("spread_jitter_ticks", "must be >= 0")
        lo, hi = self.bbo_size_base
        if not 0 < lo <= hi:
            raise bad("bbo_size_base", "must be (min, max) with 0 < min <= max")
        if not self.vol_bps or any(v < 0 for v in self.vol_bps):
            raise bad("vol_bps", "must be one or more non-negative volatilities")
        if len(self.switch_prob_per_min) != len(self.vol_bps):
            raise bad("switch_prob_per_min", "needs one probability per regime of vol_bps")
        for name in ("switch_prob_per_min",):
            if any(not 0 <= p <= 1 for p in getattr(self, name)):
                raise bad(name, "probabilities must be in [0, 1]")
        for name in ("trend_switch_prob_per_min", "jump_prob_per_min"):
            if not 0 <= getattr(self, name) <= 1:
                raise bad(name, "must be a probability in [0, 1]")
        for name in ("trend_bps_per_min", "jump_bps", "trade_rate_per_s"):
            if not getattr(self, name) >= 0:
                raise bad(name, "must be >= 0")
        if not self.trade_size_median > 0:
            raise bad("trade_size_median", "must be > 0")


@dataclass(frozen=True)
class SimPath:
    """The simulated mid path, one entry per BBO step.

    Attributes:
        ts_ns: step timestamps (ns).
        mid: the continuous mid (USD) after the step's move (before rounding to ticks).
        regime: the volatility regime index used for the move into this step.
        trend: the trend state (−1, 0, +1) used for the move into this step.
        jump: the jump (log return) added in the move into this step, 0 when none.
    """

    ts_ns: np.ndarray
    mid: np.ndarray
    regime: np.ndarray
    trend: np.ndarray
    jump: np.ndarray


def _step_prob(p_per_min: float, dt_min: float) -> float:
    return 1.0 - (1.0 - p_per_min) ** dt_min


def simulate_path(params: SimParams, seed: int, rng: np.random.Generator | None = None) -> SimPath:
    """The mid path only (see the module docstring). Step 0 is ``start_price`` exactly."""
    params.validate()
    rng = np.random.default_rng(seed) if rng is None else rng
    interval_ns = params.bbo_interval_ms * 1_000_000
    steps = max(1, math.ceil(params.duration_s * 1e9 / interval_ns))
    dt_min = params.bbo_interval_ms / 60_000.0
    n_reg = len(params.vol_bps)

    z = rng.standard_normal(steps)
    u_regime = rng.random(steps)
    pick_regime = rng.random(steps)
    u_trend = rng.random(steps)
    pick_trend = rng.random(steps)
    u_jump = rng.random(steps)
    jump_size = rng.exponential(params.jump_bps * 1e-4, steps) if params.jump_bps > 0 else np.zeros(steps)
    jump_sign = np.where(rng.random(steps) < 0.5, -1.0, 1.0)

    p_leave = [_step_prob(p, dt_min) for p in params.switch_prob_per_min]
    p_trend = _step_prob(params.trend_switch_prob_per_min, dt_min)
    p_jump = _step_prob(params.jump_prob_per_min, dt_min)
    sig = [v * 1e-4 * math.sqrt(dt_min) for v in params.vol_bps]
    drift = params.trend_bps_per_min * 1e-4 * dt_min

    regime = np.zeros(steps, dtype=np.int64)
    trend = np.zeros(steps, dtype=np.int64)
    jump = np.zeros(steps)
    logp = np.empty(steps)
    lp = math.log(params.start_price)
    logp[0] = lp
    r, s = 0, 0
    for k in range(1, steps):
        if n_reg > 1 and u_regime[k] < p_leave[r]:
            others = [i for i in range(n_reg) if i != r]
            r = others[min(int(pick_regime[k] * len(others)), len(others) - 1)]
        if u_trend[k] < p_trend:
            s = (s + 1 + (2 if pick_trend[k] < 0.5 else 1)) % 3 - 1  # one of the two other states
        j = float(jump_sign[k] * jump_size[k]) if u_jump[k] < p_jump else 0.0
        lp += drift * s + sig[r] * float(z[k]) + j
        regime[k], trend[k], jump[k], logp[k] = r, s, j, lp
    ts = params.start_ns + np.arange(steps, dtype=np.int64) * interval_ns
    mid = np.exp(logp)
    mid[0] = params.start_price
    return SimPath(ts_ns=ts, mid=mid, regime=regime, trend=trend, jump=jump)


def simulate(params: SimParams | None = None, seed: int = 0) -> tuple[RecordingHeader, list[Bbo | Trade]]:
    """Simulate BBOs and trades. Returns the recording header and the events in time order.

    Raises:
        ValueError: a parameter is out of range (see :meth:`SimParams.validate`).
    """
    params = SimParams() if params is None else params
    rng = np.random.default_rng(seed)
    path = simulate_path(params, seed, rng)
    m = params.market
    steps = len(path.ts_ns)
    interval_ns = params.bbo_interval_ms * 1_000_000
    sym = m.symbol

    # BBO quotes on the tick grid
    lot_scale = 10 ** m.size_decimals
    jitter = rng.integers(0, params.spread_jitter_ticks + 1, steps)
    lo, hi = params.bbo_size_base
    bid_lots = np.maximum(1, np.rint(rng.uniform(lo, hi, steps) * lot_scale)).astype(np.int64)
    ask_lots = np.maximum(1, np.rint(rng.uniform(lo, hi, steps) * lot_scale)).astype(np.int64)
    spread = params.spread_ticks + jitter
    mid_ticks = np.rint(path.mid * 10**m.price_decimals).astype(np.int64)
    bid_ticks = np.maximum(mid_ticks - spread // 2, 1)
    ask_ticks = bid_ticks + spread

    # trades: Poisson counts per step, uniform offsets inside the step
    counts = rng.poisson(params.trade_rate_per_s * params.bbo_interval_ms / 1000.0, steps)
    total = int(counts.sum())
    offsets = rng.integers(0, interval_ns, total)  # sorted within each step below
    buys = rng.random(total) < 0.5
    min_lots = max(1, math.ceil(m.min_base_amount * lot_scale - 1e-9))
    trade_lots = np.maximum(min_lots, np.rint(params.trade_size_median * rng.lognormal(0.0, 1.0, total) * lot_scale))
    trade_lots = trade_lots.astype(np.int64)

    events: list[Bbo | Trade] = []
    t = 0
    for k in range(steps):
        ts = int(path.ts_ns[k])
        bid_px, ask_px = m.int_to_price(int(bid_ticks[k])), m.int_to_price(int(ask_ticks[k]))
        events.append(Bbo(id=derive_id(SOURCE, seed, "bbo", k), ts_event=ts, ts_recv=ts, source=SOURCE, market=sym,
                          bid_px=bid_px, bid_sz=m.int_to_size(int(bid_lots[k])),
                          ask_px=ask_px, ask_sz=m.int_to_size(int(ask_lots[k]))))
        c = int(counts[k])
        if c:
            for off in np.sort(offsets[t:t + c]):
                buy = bool(buys[t])
                tts = ts + int(off)
                events.append(Trade(id=derive_id(SOURCE, seed, "trade", t), ts_event=tts, ts_recv=tts, source=SOURCE,
                                    market=sym, trade_id=str(t + 1), price=ask_px if buy else bid_px,
                                    size=m.int_to_size(int(trade_lots[t])), taker_side="buy" if buy else "sell"))
                t += 1
    header = RecordingHeader(
        markets=[m], source=f"{SOURCE} seed={seed}", depth="top",
        notes="synthetic data from lighter_stack.pricesim; params: " + msgspec.json.encode(params).decode(),
    )
    return header, events


def write_simulated(path: str | Path, params: SimParams | None = None, seed: int = 0) -> int:
    """Simulate and write a recording (``*.jsonl.gz``) to ``path``; returns the event count."""
    header, events = simulate(params, seed)
    return write_recording(path, header, events)
