"""Fill ratios of accepted orders: how many of a strategy's orders got a fill, and how many of its
resting orders got a maker fill (the **Orders** part of :mod:`shared.pnl_attribution`, which
keeps one :class:`FillRatios` online)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from shared.events import Fill, OrderAccepted, OrderCanceled


class FillRatios:
    """Fill ratios from ``OrderAccepted``/``OrderCanceled`` and fills, per scope (:mod:`shared.pnl_attribution`,
    **Orders**). Only live orders are held: an order is dropped when it is canceled/expired or
    its accepted size is filled; fills of orders not (yet) accepted are kept by key."""

    def __init__(self) -> None:
        self.seen = False
        # (market, coi) -> [remaining size, accepted size, {scope: [resting, filled, maker_filled]}]
        self.live: dict[tuple[str, int], list[Any]] = {}
        self.early: dict[tuple[str, int], dict[str | None, list[bool]]] = {}
        # scope -> [accepted, filled, resting accepted, resting maker-filled]
        self.counts: dict[str | None, list[int]] = {}

    def accepted(self, o: OrderAccepted) -> None:
        self.seen = True
        key = (o.market, o.client_order_index)
        e = self.live.get(key)
        if e is None:
            e = self.live[key] = [o.size, o.size, {}]
        states = e[2]
        early = self.early.get(key)
        resting = o.time_in_force != "ioc"
        for s in (None, *o.strategy.split(",")):
            if s in states:
                continue  # the first acceptance of an order counts (duplicates ignored)
            c = self.counts.setdefault(s, [0, 0, 0, 0])
            c[0] += 1
            if resting:
                c[2] += 1
            st = states[s] = [resting, False, False]
            f = early.get(s) if early else None
            if f:
                if f[0]:
                    st[1] = True
                    c[1] += 1
                if f[1] and resting:
                    st[2] = True
                    c[3] += 1

    def fill(self, market: str, coi: int, size: float, maker: bool, scopes: tuple[str | None, ...]) -> None:
        key = (market, coi)
        e = self.live.get(key)
        if e is None:
            ea = self.early.setdefault(key, {})
            for s in scopes:
                f = ea.setdefault(s, [False, False])
                f[0] = True
                f[1] = f[1] or maker
            return
        states = e[2]
        for s in scopes:
            st = states.get(s)
            if st is None:
                continue
            c = self.counts[s]
            if not st[1]:
                st[1] = True
                c[1] += 1
            if maker and st[0] and not st[2]:
                st[2] = True
                c[3] += 1
        e[0] -= size
        if e[0] <= 1e-9 * e[1]:
            del self.live[key]

    def canceled(self, o: OrderCanceled) -> None:
        self.live.pop((o.market, o.client_order_index), None)

    def stats(self, scope: str | None) -> dict[str, Any]:
        a, f, r, m = self.counts.get(scope, (0, 0, 0, 0))
        return {"orders_accepted": a, "orders_filled": f, "fill_ratio": round_json(f / a, 4) if a else None,
                "resting_orders_accepted": r, "resting_orders_maker_filled": m,
                "maker_fill_ratio": round_json(m / r, 4) if r else None}


def order_stats(fills: Sequence[Fill], orders: Sequence[OrderAccepted], strategy: str | None = None) -> dict[str, Any]:
    """Fill ratios of accepted orders (:mod:`shared.pnl_attribution`, **Orders**); ``fills`` should already be
    the strategy's own. Ratios are None when no order was accepted."""
    tr = FillRatios()
    for o in orders:
        tr.accepted(o)
    for f in fills:
        tr.fill(f.market, f.client_order_index, f.size, f.liquidity == "maker", (strategy,))
    return tr.stats(strategy)


def round_json(x: float, nd: int = 6) -> float:
    """Round for JSON (stable text across runs); -0.0 becomes 0.0."""
    v = round(float(x), nd)
    return 0.0 if v == 0 else v
