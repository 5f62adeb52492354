"""Backtest bookkeeping and statistics (definitions used in ``summary.json``).

- **trades**: closed FIFO round trips (:class:`services.ledger.engine.ClosedTrade`, one per
  closed lot or part of a lot); **win rate** = trades with ``pnl_usd > 0`` / trades x 100.
- **realized_pnl_usd**: sum of the closed trades' ``pnl_usd`` (net of the entry and exit fee
  shares); **unrealized_pnl_usd**: open lots valued at the last mid (last trade price when there
  is no quote), minus their entry fees; **pnl_usd** = realized + unrealized (= every fill's
  price effect minus every fee). **fees_usd**: sum of the fills' fees.
- **equity** = ``initial_capital_usd`` + pnl, sampled at the end of every ``equity_sample_s``
  (60 s) bucket of event time and at the last event; buckets without events repeat the previous
  value. Each strategy's curve uses the same initial capital.
- **max_drawdown_usd** = max over samples of (running peak - equity); **max_drawdown_pct** the
  same relative to the running peak, x 100.
- **sharpe**: per-sample (per-minute) simple returns of equity, ``mean / std (ddof 1) x
  sqrt(samples per year)`` (525,600 for 60 s samples), no risk-free rate; ``null`` with fewer
  than 2 returns or zero variance.
- **exposure_time_pct**: share of the event-time span (first to last event) with a non-zero
  position (a strategy: in any market, from its fills; the total: the account's net position).
- **turnover_usd**: sum of price x size of the fills (a strategy: all its fills, internal crosses
  included; the total: venue fills only, what the account traded).
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable
from typing import Any

import numpy as np

from services.ledger.engine import ClosedTrade, LedgerEngine
from shared.events import Bbo, Event, Fill, Trade
from shared.markets import MarketInfo

EPS = 1e-9
YEAR_S = 365 * 86_400


class Recorder:
    """Collects fills, closed trades, positions and the sampled equity curves of a backtest.

    Args:
        markets: traded markets.
        initial_capital: USD equity at the start (for returns and drawdown %).
        sample_s: equity sampling interval in seconds of event time.

    Memory: the fills and closed trades (one entry each), and per sample (every ``sample_s``
    of event time) 8 bytes for its time and for each equity curve and market mid
    (``sample_t``: ``array('q')`` of ns; ``equity[name]``, ``prices[symbol]``: ``array('d')``
    of USD); nothing else grows with the number of events.
    """

    def __init__(self, markets: Iterable[MarketInfo], initial_capital: float = 10_000.0,
                 sample_s: float = 60.0) -> None:
        self.markets = list(markets)
        self.capital = float(initial_capital)
        self.sample_ns = max(1, int(sample_s * 1e9))
        self.ledger = LedgerEngine()
        self.fills: list[Fill] = []
        self.closed: list[ClosedTrade] = []
        self.mids: dict[str, float] = {}
        self.pos: dict[tuple[str, str], float] = {}
        self.net: dict[str, float] = {}
        self.open_strats: set[str] = set()
        self.any_open = False
        self.exposure: dict[str, int] = {}
        self.exposure_total = 0
        self.fees: dict[str, float] = {}
        self.turnover: dict[str, float] = {}
        self.venue_turnover = 0.0
        self.realized: dict[str, float] = {}
        self.strategies: list[str] = []
        self.first_ts: int | None = None
        self.last_ts = 0
        self.bucket = 0
        # on_time() has work to do only at or after this time (the next sample); before it,
        # the caller may just set last_ts to a later time (Backtest.step does)
        self.next_sample_ns = 0
        self._exposure_ts = 0  # exposure is accounted up to this event time (see _account_exposure)
        # sampled curves as flat machine arrays (8 bytes a sample): they grow with event time
        self.sample_t: array[int] = array("q")
        self.equity: dict[str, array[float]] = {"total": array("d")}
        self.prices: dict[str, array[float]] = {m.symbol: array("d") for m in self.markets}
        self.zero_returns = 0

    # ------------------------------------------------------------------ inputs

    def add_strategy(self, name: str) -> None:
        if name not in self.realized:
            self.strategies.append(name)
            self.realized[name] = 0.0
            self.fees[name] = 0.0
            self.turnover[name] = 0.0
            self.exposure[name] = 0
            self.equity[name] = array("d", [self.capital]) * len(self.sample_t)

    def on_time(self, ts: int) -> None:
        """Event time advances to ``ts`` (equity sampling; exposure is the time between
        ``last_ts`` values with a position open, accounted when a fill changes what is open).

        Between samples this only sets ``last_ts``: a caller may do that itself for a ``ts``
        with ``last_ts < ts < next_sample_ns`` (the backtest loop does, for speed)."""
        if self.first_ts is None:
            self.first_ts = self.last_ts = self._exposure_ts = ts
            self.bucket = ts // self.sample_ns
            self.next_sample_ns = (self.bucket + 1) * self.sample_ns
            return
        if ts <= self.last_ts:
            return
        b = ts // self.sample_ns
        if b != self.bucket:
            self._sample((self.bucket + 1) * self.sample_ns)
            if b - self.bucket > 1:  # empty buckets: flat equity (one sample, the rest as zero returns)
                self._sample(b * self.sample_ns)
                self.zero_returns += b - self.bucket - 2
            self.bucket = b
            self.next_sample_ns = (b + 1) * self.sample_ns
        self.last_ts = ts

    def _account_exposure(self) -> None:
        """Add the time since the last accounting (to ``last_ts``) to the exposure of what is
        open now; called before a fill changes what is open, and before reading exposure."""
        dt = self.last_ts - self._exposure_ts
        if dt > 0:
            for s in self.open_strats:
                self.exposure[s] += dt
            if self.any_open:
                self.exposure_total += dt
        self._exposure_ts = self.last_ts

    def on_market_data(self, ev: Event) -> None:
        """Keep the last mid of the event's market (a two-sided Bbo's mid; a Trade's price until
        a quote is seen). The backtest loop does the same inline for exact Bbo/Trade events."""
        t = type(ev)
        if t is Bbo:
            if ev.bid_px > 0 and ev.ask_px > 0:  # type: ignore[attr-defined]
                self.mids[ev.market] = (ev.bid_px + ev.ask_px) / 2.0  # type: ignore[attr-defined]
        elif t is Trade and ev.market not in self.mids:  # type: ignore[attr-defined]
            self.mids[ev.market] = ev.price  # type: ignore[attr-defined]

    def on_fill(self, f: Fill) -> None:
        """An attributed fill from the executor."""
        self._account_exposure()
        self.add_strategy(f.strategy)
        self.fills.append(f)
        for ct in self.ledger.apply_fill(f):
            self.closed.append(ct)
            self.realized[ct.strategy] += ct.pnl_usd
        notional = f.price * f.size
        self.fees[f.strategy] += f.fee
        self.turnover[f.strategy] += notional
        if f.liquidity != "internal":
            self.venue_turnover += notional
        q = f.size if f.side == "buy" else -f.size
        key = (f.strategy, f.market)
        p = self.pos[key] = round(self.pos.get(key, 0.0) + q, 10)
        self.net[f.market] = round(self.net.get(f.market, 0.0) + q, 10)
        if abs(p) > EPS:
            self.open_strats.add(f.strategy)
        elif not any(abs(v) > EPS for (s, _), v in self.pos.items() if s == f.strategy):
            self.open_strats.discard(f.strategy)
        self.any_open = any(abs(v) > EPS for v in self.net.values())

    def finish(self, ts: int) -> None:
        """The run ended at ``ts``: take the last sample."""
        self.on_time(ts)
        self._account_exposure()
        self._sample(max(ts, self.last_ts))

    # ------------------------------------------------------------------ values

    def unrealized(self, strategy: str) -> float:
        """Open lots of ``strategy`` at the last mid, minus their entry fees (USD)."""
        total = 0.0
        for (s, m), _ in self.ledger.positions().items():
            if s != strategy:
                continue
            mid = self.mids.get(m)
            for lot in self.ledger.open_lots(s, m):
                px = lot.price if mid is None else mid
                total += lot.direction * (px - lot.price) * lot.size - lot.fee_per_unit * lot.size
        return total

    def _sample(self, t: int) -> None:
        self.sample_t.append(t)
        tot = self.capital
        for s in self.strategies:
            v = self.realized[s] + self.unrealized(s)
            self.equity[s].append(self.capital + v)
            tot += v
        self.equity["total"].append(tot)
        for m in self.prices:
            self.prices[m].append(self.mids.get(m, math.nan))

    # ------------------------------------------------------------------ statistics

    def stats(self, name: str) -> dict[str, Any]:
        """The metrics of a strategy, or of the account for ``name == "total"``."""
        strategies = self.strategies if name == "total" else [name]
        closed = [c for c in self.closed if name == "total" or c.strategy == name]
        wins = sum(1 for c in closed if c.pnl_usd > 0)
        losses = sum(1 for c in closed if c.pnl_usd < 0)
        realized = sum(self.realized.get(s, 0.0) for s in strategies)
        unreal = sum(self.unrealized(s) for s in strategies)
        eq = np.asarray(self.equity.get(name) or [self.capital], dtype=float)
        peak = np.maximum.accumulate(eq)
        dd = peak - eq
        dd_pct = np.where(peak > 0, dd / np.where(peak > 0, peak, 1.0) * 100.0, 0.0)
        self._account_exposure()
        span = (self.last_ts - self.first_ts) if self.first_ts is not None else 0
        exp_ns = self.exposure_total if name == "total" else self.exposure.get(name, 0)
        fills = [f for f in self.fills if name == "total" or f.strategy == name]
        positions = {m.symbol: 0.0 for m in self.markets}
        for (s, mk), v in sorted(self.pos.items()):
            if name == "total" or s == name:
                positions[mk] = round(positions.get(mk, 0.0) + v, 10)
        return {
            "trades": len(closed), "wins": wins, "losses": losses,
            "win_rate_pct": _r(wins / len(closed) * 100.0) if closed else None,
            "realized_pnl_usd": _r(realized), "unrealized_pnl_usd": _r(unreal), "pnl_usd": _r(realized + unreal),
            "fees_usd": _r(sum(self.fees.get(s, 0.0) for s in strategies)),
            "max_drawdown_usd": _r(float(dd.max()) if len(dd) else 0.0),
            "max_drawdown_pct": _r(float(dd_pct.max()) if len(dd_pct) else 0.0),
            "sharpe": self._sharpe(eq),
            "exposure_time_pct": _r(exp_ns / span * 100.0) if span > 0 else 0.0,
            "turnover_usd": _r(self.venue_turnover if name == "total" else self.turnover.get(name, 0.0)),
            "fills": len(fills),
            "internal_fills": sum(1 for f in fills if f.liquidity == "internal"),
            "final_position": positions,
        }

    def _sharpe(self, eq: np.ndarray) -> float | None:
        if len(eq) < 2:
            return None
        prev = eq[:-1]
        r = np.diff(eq) / np.where(prev != 0, prev, 1.0)
        if self.zero_returns:
            r = np.concatenate([r, np.zeros(self.zero_returns)])
        if len(r) < 2:
            return None
        sd = float(np.std(r, ddof=1))
        if not sd > 1e-15:
            return None
        return _r(float(np.mean(r)) / sd * math.sqrt(YEAR_S * 1e9 / self.sample_ns))


def _r(x: float, nd: int = 6) -> float:
    """Round for JSON (stable text across runs); -0.0 becomes 0.0."""
    v = round(float(x), nd)
    return 0.0 if v == 0 else v
