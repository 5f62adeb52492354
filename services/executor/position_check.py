"""Position check: the venue's account position per market against the sum of the strategies'
virtual positions the executor attributes (``cfg.unattributed_strategy`` included).

Every fill the executor attributes moves one strategy's virtual position and, live, the account
position by the same amount (an internal cross moves two strategies by opposite amounts), so the
two agree as long as no fill is lost. A difference means fills the executor never attributed: a
fill lost (e.g. while it was down, beyond what the trade history gave back), a position held
before the executor traded the account, a manual trade the feed did not report.

When: at reconciliation (:meth:`Engine.set_reconciled`), on every venue position report
(:meth:`VenueReports.on_venue_position`: the positions channel, the backtest's matching engine)
and whenever the runner asks (:meth:`check_positions`, every ``order_check_s``). Not before
reconciliation (the venue's positions are not read yet), and a market with an IOC of ours in
flight is skipped until it finished (a position report may be ahead of the trade reports that
attribute it).

Output: a :class:`~shared.events.PositionMismatch` each time the difference of a market changes
by at least one lot (``mismatch`` True), and when it is gone (``mismatch`` False); none while
they agree. Differences below half a lot are rounding.

State: ``_mismatch`` (market -> difference in lots last published, absent when none),
``position_mismatches`` (count of ``mismatch`` True events)."""

from __future__ import annotations

from shared.events import Event, PositionMismatch

from .common import EPS, _Out


class PositionCheck:
    """Position check: a part of :class:`~services.executor.engine.Engine` (a mixin working on
    the engine's state; see the module docstring)."""

    def _init_position_check(self) -> None:
        """Set up this part's state (called by the engine's constructor)."""
        self._mismatch: dict[str, int] = {}
        self.position_mismatches = 0
        self._checks = 0

    def strategies_position(self, market: str) -> float:
        """Sum of the strategies' virtual positions in ``market`` (signed base units)."""
        return round(sum(st.position for (_, mk), st in self.strats.items() if mk == market), 10)

    def position_difference(self, market: str) -> float:
        """The venue's account position in ``market`` minus :meth:`strategies_position` (signed
        base units)."""
        return round(self.account_pos.get(market, 0.0) - self.strategies_position(market), 10)

    def position_mismatch(self) -> dict[str, float]:
        """The markets whose difference was last published as a mismatch: market -> difference
        (base units); empty when every market agrees."""
        return {mk: round(lots * self.markets[mk].lot, self.markets[mk].size_decimals)
                for mk, lots in sorted(self._mismatch.items())}

    def check_positions(self, market: str | None = None, ts_ns: int | None = None) -> list[Event]:
        """Compare the account position with the strategies' sum in ``market`` (None: every
        market) and return a ``PositionMismatch`` per market whose difference changed by a lot
        or more since the last one published (see the module docstring). ``ts_ns``: the events'
        time (default: the engine's clock)."""
        if not self.reconciled:
            return []
        markets = [market] if market is not None else sorted(self.markets)
        ts = self.now if ts_ns is None else ts_ns
        self._checks += 1
        out = _Out(key=f"poscheck:{self._checks}:{ts}", ts=ts)
        for mk in markets:
            m = self.markets.get(mk)
            if m is None or abs(self._account_in_flight(mk)) > EPS:
                continue
            diff = self.position_difference(mk)
            lots = round(diff / m.lot)
            if lots == self._mismatch.get(mk, 0):
                continue
            account, strategies = self.account_pos.get(mk, 0.0), self.strategies_position(mk)
            positions = {s: st.position for (s, k), st in sorted(self.strats.items()) if k == mk and st.position}
            if lots:
                self._mismatch[mk] = lots
                self.position_mismatches += 1
                shares = ", ".join(f"{s} {p:g}" for s, p in positions.items()) or "none"
                reason = (f"account position {account:g} {mk} on the venue, strategies {strategies:g} ({shares}): "
                          f"{diff:+g} {mk} not attributed")
            else:
                self._mismatch.pop(mk, None)
                reason = f"account position {account:g} {mk} matches the strategies again"
            out.add(PositionMismatch, market=mk, account_position=account, strategies_position=strategies,
                    difference=diff if lots else 0.0, mismatch=bool(lots), positions=positions, reason=reason)
        return out.events
