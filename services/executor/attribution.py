"""Attribution: the virtual position of each strategy per market, built only from the fills the
executor attributed to it (FIFO over an order's allocation), with its average entry price.

State: ``strats`` ((strategy, market) -> position record), ``account_pos`` (what the venue
says the account holds, per market), ``_seq`` (target arrival counter)."""

from __future__ import annotations

from shared.events import PositionSnapshot

from .common import EPS, _Order, _Out, _Strat


class Attribution:
    """Attribution: a part of :class:`~services.executor.engine.Engine` (a mixin
    working on the engine's state; see the module docstring)."""

    def _init_attribution(self) -> None:
        """Set up this part's state (called by the engine's constructor)."""
        self.strats: dict[tuple[str, str], _Strat] = {}
        self.account_pos: dict[str, float] = {m: 0.0 for m in self.markets}
        self._seq = 0

    def _strat(self, strategy: str, market: str) -> _Strat:
        key = (strategy, market)
        st = self.strats.get(key)
        if st is None:
            st = self.strats[key] = _Strat()
        return st

    def _attribute(self, rec: _Order | None, size: float) -> list[tuple[str, float]]:
        if rec is None:
            return [(self.cfg.unattributed_strategy, size)]
        parts: list[tuple[str, float]] = []
        left = size
        for a in rec.alloc:
            if left <= EPS:
                break
            take = min(a[1], left)
            if take > EPS:
                a[1] = round(a[1] - take, 10)
                left = round(left - take, 10)
                parts.append((a[0], take))
        if left > EPS:  # more than allocated (should not happen): give it to the first owner
            owner = rec.alloc[0][0] if rec.alloc else self.cfg.unattributed_strategy
            parts.append((owner, left))
        merged: dict[str, float] = {}
        for s, q in parts:
            merged[s] = round(merged.get(s, 0.0) + q, 10)
        return list(merged.items())

    @staticmethod
    def _apply(st: _Strat, qty: float, price: float) -> None:
        """Add a signed fill of ``qty`` base units at ``price`` to a virtual position."""
        pos = st.position
        new = round(pos + qty, 10)
        if abs(pos) < EPS or (pos > 0) == (qty > 0):
            st.avg_entry = (abs(pos) * st.avg_entry + abs(qty) * price) / abs(new) if abs(new) > EPS else 0.0
        elif abs(new) < EPS:
            st.avg_entry = 0.0
        elif (new > 0) != (pos > 0):
            st.avg_entry = price
        st.position = 0.0 if abs(new) < EPS else new

    def _snapshot(self, out: _Out, strategy: str, market: str) -> None:
        st = self._strat(strategy, market)
        out.add(PositionSnapshot, strategy=strategy, market=market, position=st.position,
                avg_entry_price=st.avg_entry, account_position=self.account_pos.get(market, 0.0))

    def position(self, strategy: str, market: str) -> float:
        """Virtual position of ``strategy`` in ``market`` (signed base units)."""
        st = self.strats.get((strategy, market))
        return st.position if st else 0.0
