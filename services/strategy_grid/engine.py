"""The grid strategy of seed 002 as a pure engine: ``GridEngine.on_event(ev) -> [ev]``.

Inputs: :class:`~shared.events.Bbo` of its markets and, from the account's exec stream, its own
(``strategy == cfg.strategy``) :class:`~shared.events.Fill`, :class:`~shared.events.OrderRejected`
and :class:`~shared.events.OrderCanceled`. Output: :class:`~shared.events.RestingOrders`, the
complete set of resting limit orders it wants in one market; the executor diffs it against the
live orders (identical orders keep their queue position).

Rules (defaults of :class:`GridConfig` in brackets):

- **Anchor**: the first mid ``(bid + ask)/2`` of a market anchors its grid. Level ``i`` (an
  integer, ``-levels_per_side .. levels_per_side`` [4]) has the price
  ``anchor · (1 + i · spacing)``, ``spacing`` = ``spacing_pct`` [0.1 %]. A fresh grid has a buy
  at every level below the anchor and a sell at every level above it; level 0 is empty.
- **Classic grid on fills**: when the order of level ``i`` is completely filled (fills of this
  strategy, position = their fold, deduplicated by ``fill_id``; a fill is mapped to the level
  of its side whose price is nearest, within half a spacing), level ``i`` empties and the
  opposite order is set one level towards the anchor side it came from: a filled buy at ``i``
  puts a take-profit sell at ``i + 1``, a filled sell at ``i`` a buy at ``i - 1``. Partial
  fills only move the position (the order keeps resting).
- **Wanted set** (recomputed after every input): the grid's orders nearest the mid first, at
  most ``max_orders`` [8]; orders that would cross the current touch (a buy at or above the
  ask, a sell at or below the bid) are left out (post-only would be canceled); **inventory
  cap**: buys are included only while ``position + included buys ≤ max_position`` [BTC 0.001,
  ETH 0.025] (sells mirrored), so the side that grows the position stops first.
- **Recenter**: when ``|mid − anchor| / anchor > recenter_pct`` [0.5 %] the grid is rebuilt
  fresh around the mid (take-profit state dropped; the position is kept).
- **Cooldown**: a ``RestingOrders`` is emitted only when the wanted set differs from the last
  one emitted, and at most once per ``cooldown_s`` [10 s] of event time; a change during the
  cooldown is emitted by the first input after it. An order the venue refused or ended
  (``OrderRejected`` with a venue code, ``OrderCanceled`` other than a plain ``canceled``, e.g.
  ``canceled-post-only``) makes the next allowed emission resend the set.
- **Markets not in the config**: a market missing from ``sizes`` gets orders of
  ``notional_usd`` [25 USD] at its first mid (rounded up to the lot, at least the market's
  minimums), one missing from ``max_position`` a cap of ``max_position_orders`` [5] orders.
- **Dry run** (``dry_run``): everything above is computed and visible in :meth:`state` (and the
  runner's metrics), but nothing is emitted.

Time is only ``ts_event``; output ids come from :func:`shared.events.child`, so the same inputs
give identical outputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.config import StackConfig
from shared.events import (
    Bbo,
    Event,
    Fill,
    OrderCanceled,
    OrderRejected,
    RestingOrders,
    Side,
    child,
)
from shared.markets import MarketInfo
from shared.strategy_base import (
    StrategyEngineBase,
    TopOfBook,
    died_at_venue,
    notional_size,
    own_state,
    unlisted_info,
)

from .config import SECTION, GridConfig

SOURCE = "strategy-grid"
EPS = 1e-9

Order = tuple[Side, float, float]

__all__ = ["SOURCE", "GridConfig", "GridEngine", "MarketState", "make_engine"]


@dataclass(slots=True)
class MarketState(TopOfBook):
    market: str
    size: float
    cap: float
    anchor: float | None = None
    bid: float | None = None
    ask: float | None = None
    levels: dict[int, Side] = field(default_factory=dict)
    level_filled: dict[int, float] = field(default_factory=dict)
    position: float = 0.0
    now: int = 0
    wanted: tuple[Order, ...] = ()
    sent: tuple[Order, ...] | None = None
    last_emit: int | None = None
    resend: bool = False
    recenters: int = 0
    fills: int = 0
    emissions: int = 0


class GridEngine(StrategyEngineBase):
    """The grid strategy (see the module docstring).

    Args:
        cfg: the strategy's configuration.
        markets: markets to trade (each needs ``cfg.sizes`` and ``cfg.max_position``).
        source: ``source`` of the output events.
        seen_fills: how many fill ids to remember for deduplication.
    """

    cfg: GridConfig

    def __init__(self, cfg: GridConfig, markets: list[str], source: str = SOURCE,
                 seen_fills: int = 100_000, market_info: Mapping[str, MarketInfo] | None = None) -> None:
        super().__init__(cfg, markets, source, seen_fills, market_info)
        # 0.0: not in the config, derived at the first mid (_size_unlisted)
        self._m = {m: MarketState(market=m, size=cfg.sizes.get(m, 0.0), cap=cfg.max_position.get(m, 0.0))
                   for m in self.markets}

    # ------------------------------------------------------------------------------ public API

    def on_event(self, event: Event) -> list[Event]:
        """Consume one event; return the ``RestingOrders`` it causes (none in dry run)."""
        if isinstance(event, Bbo):
            st = self._m.get(event.market)
            if st is None or not (event.bid_px > 0 and event.ask_px > 0):
                return []
            st.now = max(st.now, event.ts_event)
            st.bid, st.ask = event.bid_px, event.ask_px
            if st.size == 0.0 or st.cap == 0.0:
                self._size_unlisted(st)
            self._on_mid(st)
            return self._maybe_emit(event, st)
        if isinstance(event, Fill | OrderRejected | OrderCanceled):
            st = own_state(event, self.name, self._m)
            if st is None:
                return []
            st.now = max(st.now, event.ts_event)
            if isinstance(event, Fill):
                if not self._on_fill(event, st):
                    return []
            else:
                if not died_at_venue(event):
                    return []  # refused by the executor (a resend would be refused again) or our own cancel
                st.resend = True
            return self._maybe_emit(event, st)
        return []

    def position(self, market: str) -> float:
        """The strategy's position in ``market`` (signed base units), from its fills."""
        return self._m[market].position

    def adopt_position(self, market: str, position: float, avg_entry_price: float, ts_event: int) -> None:
        """Set the position of ``market`` (the executor's snapshot when the fill history is gone:
        :meth:`~shared.strategy_base.StrategyEngineBase.take_snapshot`); the grid levels stay."""
        st = self._m[market]
        st.position = 0.0 if abs(position) < EPS else round(position, 10)

    def wanted(self, market: str) -> list[Order]:
        """The resting orders the grid wants in ``market`` now (``(side, price, size)``)."""
        return list(self._m[market].wanted)

    def state(self, market: str) -> dict[str, Any]:
        """A snapshot of one market's grid (for metrics, logs and tests)."""
        st = self._m[market]
        return {
            "anchor": st.anchor,
            "mid": st.mid,
            "levels": len(st.levels),
            "grid": dict(sorted(st.levels.items())),
            "wanted": list(st.wanted),
            "wanted_orders": len(st.wanted),
            "position": st.position,
            "recenters": st.recenters,
            "fills": st.fills,
            "emissions": st.emissions,
            "last_emit_ts": st.last_emit,
            "ts": st.now,
            "dry_run": self.cfg.dry_run,
        }

    def _size_unlisted(self, st: MarketState) -> None:
        """Order size and inventory cap of a market missing from ``sizes``/``max_position``, at
        its first mid: ``notional_usd`` on the lot and above the minimums; cap
        ``max_position_orders`` orders."""
        mid = st.mid
        assert mid is not None
        if st.size == 0.0:
            st.size = notional_size(self.cfg.notional_usd, mid, unlisted_info(st.market, mid, self.market_info))
        if st.cap == 0.0:
            st.cap = round(st.size * self.cfg.max_position_orders, 12)

    # ------------------------------------------------------------------------------ grid

    def _fresh(self, st: MarketState, mid: float) -> None:
        st.anchor = mid
        n = self.cfg.levels_per_side
        st.levels = {**{-k: "buy" for k in range(1, n + 1)}, **{k: "sell" for k in range(1, n + 1)}}
        st.level_filled = {}

    def _price(self, st: MarketState, i: int) -> float:
        assert st.anchor is not None
        return round(st.anchor * (1.0 + i * self.cfg.spacing), 8)

    def _on_mid(self, st: MarketState) -> None:
        mid = st.mid
        assert mid is not None
        if st.anchor is None:
            self._fresh(st, mid)
        elif abs(mid - st.anchor) / st.anchor * 100.0 > self.cfg.recenter_pct:
            self._fresh(st, mid)
            st.recenters += 1

    def _on_fill(self, f: Fill, st: MarketState) -> bool:
        """Apply a fill; False when it is a duplicate."""
        if not self._fills.first(f.fill_id):
            return False
        sg = 1.0 if f.side == "buy" else -1.0
        st.position = round(st.position + sg * f.size, 10)
        if abs(st.position) < EPS:
            st.position = 0.0
        st.fills += 1
        if st.anchor is None:
            return True
        tol = 0.5 * self.cfg.spacing * st.anchor
        best: tuple[float, int] | None = None
        for i, side in st.levels.items():
            if side != f.side:
                continue
            d = abs(self._price(st, i) - f.price)
            if d <= tol and (best is None or d < best[0]):
                best = (d, i)
        if best is None:
            return True  # an order of a previous grid (before a recenter): position only
        i = best[1]
        done = round(st.level_filled.get(i, 0.0) + f.size, 10)
        if done + EPS < st.size:
            st.level_filled[i] = done
            return True
        st.level_filled.pop(i, None)
        del st.levels[i]
        j = i + 1 if f.side == "buy" else i - 1
        st.levels[j] = "sell" if f.side == "buy" else "buy"
        st.level_filled.pop(j, None)
        return True

    def _compute_wanted(self, st: MarketState) -> tuple[Order, ...]:
        mid = st.mid
        if st.anchor is None or mid is None:
            return ()
        room = {"buy": st.cap - st.position, "sell": st.cap + st.position}
        chosen: list[Order] = []
        for i, side in sorted(st.levels.items(), key=lambda kv: (abs(self._price(st, kv[0]) - mid), kv[0])):
            if len(chosen) >= self.cfg.max_orders:
                break
            px = self._price(st, i)
            if (side == "buy" and st.ask is not None and px >= st.ask) or (
                    side == "sell" and st.bid is not None and px <= st.bid):
                continue
            if room[side] + EPS < st.size:
                continue
            room[side] -= st.size
            chosen.append((side, px, st.size))
        chosen.sort(key=lambda o: (o[0], -o[1] if o[0] == "buy" else o[1]))
        return tuple(chosen)

    def _maybe_emit(self, cause: Event, st: MarketState) -> list[Event]:
        st.wanted = self._compute_wanted(st)
        if st.anchor is None:
            return []
        if st.wanted == st.sent and not st.resend:
            return []
        if st.last_emit is not None and st.now - st.last_emit < self.cfg.cooldown_ns:
            return []
        st.sent = st.wanted
        st.last_emit = st.now
        st.resend = False
        st.emissions += 1
        if self.cfg.dry_run:
            return []
        return [RestingOrders(**child(cause, self.source, 0), strategy=self.name, market=st.market,
                              orders=list(st.wanted), post_only=self.cfg.post_only)]


def make_engine(cfg: StackConfig, source: str = SOURCE,
                market_info: Mapping[str, MarketInfo] | None = None) -> GridEngine:
    """The engine as the service would build it from the stack config (used by backtests):
    section ``services.strategy-grid`` and its markets (or the stack's ``markets``);
    ``market_info``: metadata (lot, minimums) to size markets missing from ``sizes``.

    Raises:
        ConfigError: an invalid field, or no market.
    """
    gcfg = cfg.section(SECTION, GridConfig)
    return GridEngine(gcfg, gcfg.resolve_markets(cfg.markets), source=source, market_info=market_info)
