"""Fill recovery: venue trades of the account that the executor did not process live -- trades
made while it was down (killed, crashed) or while its account feed was disconnected -- become
exactly one ``Fill`` per (trade, our side), as if they had arrived live.

Where they come from (the runner): the account trade feed's ``subscribed`` snapshots (every
session's: on Lighter only the recent trades) and, at reconciliation, the account's REST trade
history (``GET trades``, newest first, back to :meth:`FillRecovery.recovery_since_ns`;
:mod:`services.executor.recovery`). Both go through :meth:`FillRecovery.on_missed_trade`.

Rules, per side of a trade that is ours (our account on that side):

- already seen -- a ``Fill`` of that (venue trade id, side) is on the exec stream (folded at
  start, :meth:`Restore.restore`) or was made in this run -- nothing (exactly once: the feed
  snapshot and the REST history may report the same trade, and fill ids are derived from the
  trade id, side and strategy, so a consumer dedups a repeat anyway);
- the order is known (its ``OrderAccepted`` is on the exec stream, or it was placed in this
  run): attributed to its strategies as live (FIFO over the order's allocation; a stop's fill
  moves the strategy's standing target as live);
- the order is unknown (another bot on the account, an order whose ``OrderAccepted`` was lost,
  no client order index): ``cfg.unattributed_strategy`` with a ``Fill.reason`` saying so
  (:func:`unattributed_reason`) -- as live -- **if** the trade is not older than the start of
  what the executor accounts for (:meth:`unknown_trade_recoverable`: the newest venue trade it
  accounted for, else its first order); an older one is history from before the executor traded
  the account and is only marked seen.

The account position is **not** moved by a recovered trade (``account=False``): the venue's
position reports (the REST account at reconciliation, the positions channel) already include
it; only the strategies' virtual positions move, and ``PositionSnapshot``\\ s are published.

State: ``trade_anchor_ns`` (venue time, ns, of the newest venue trade of the account accounted
for: a ``Fill`` on the exec stream or processed in this run; None before any),
``first_order_ns`` (event time, ns, of the oldest order of ours known: the exec stream's first
``OrderAccepted`` or this run's first accepted order; None before any), ``recovered_fills``
(counts of the recovered sides: ``attributed``, ``unattributed``, ``seen`` -- marked seen
only)."""

from __future__ import annotations

from shared.events import Event, Fill
from shared.venue.reports import VenueTrade

UNATTRIBUTED_PREFIX = "unattributed: "
"""Start of the ``Fill.reason`` of a fill of an order the executor does not know."""
RECOVERED_PREFIX = "recovered after a restart; "
"""Start of the ``Fill.reason`` of such a fill recovered from the trade history or a snapshot."""


def unattributed_reason(client_order_index: int, recovered: bool = False) -> str:
    """``Fill.reason`` of a fill given to ``cfg.unattributed_strategy``: why no strategy got it
    (``client_order_index`` 0: the trade named no client order index), prefixed with
    :data:`RECOVERED_PREFIX` when it was not seen live."""
    why = (f"client order index {client_order_index} is not an order of this executor" if client_order_index
           else "the venue trade names no client order index")
    return (RECOVERED_PREFIX if recovered else "") + UNATTRIBUTED_PREFIX + why


class FillRecovery:
    """Fill recovery: a part of :class:`~services.executor.engine.Engine` (a mixin working on
    the engine's state; see the module docstring)."""

    def _init_fill_recovery(self) -> None:
        """Set up this part's state (called by the engine's constructor)."""
        self.trade_anchor_ns: int | None = None
        self.first_order_ns: int | None = None
        self.recovered_fills = {"attributed": 0, "unattributed": 0, "seen": 0}

    def _note_trade(self, ts_ns: int) -> None:
        """A venue trade of the account at ``ts_ns`` (venue time) is accounted for."""
        if ts_ns and (self.trade_anchor_ns is None or ts_ns > self.trade_anchor_ns):
            self.trade_anchor_ns = ts_ns

    def _note_order(self, ts_ns: int) -> None:
        """An order of ours exists since ``ts_ns`` (its ``OrderAccepted``'s event time)."""
        if ts_ns and (self.first_order_ns is None or ts_ns < self.first_order_ns):
            self.first_order_ns = ts_ns

    def recovery_since_ns(self) -> int | None:
        """How far back (venue time, ns) the runner reads the account's trade history at
        reconciliation: the newest venue trade accounted for (:attr:`trade_anchor_ns`: trades
        after it were missed), else the first order of ours known (nothing of ours traded
        before it), else None (the exec stream knows nothing of ours: nothing to recover)."""
        return self.trade_anchor_ns if self.trade_anchor_ns is not None else self.first_order_ns

    def unknown_trade_recoverable(self, ts_ns: int) -> bool:
        """Whether a missed trade at ``ts_ns`` (venue time) of an order this engine does not
        know is the account's (then it is attributed to ``cfg.unattributed_strategy`` as live)
        rather than history from before the executor traded the account: not older than
        :meth:`recovery_since_ns`."""
        since = self.recovery_since_ns()
        return since is not None and ts_ns >= since

    def on_missed_trade(self, trade: VenueTrade) -> list[Event]:
        """A trade of the account that may not have been seen live (a ``subscribed`` snapshot
        of the account trade feed, or the REST trade history read at reconciliation): one
        ``Fill`` per strategy share of each of our sides not seen yet, attributed as live (see
        the module docstring), with ``PositionSnapshot``\\ s; the account position is left as
        the venue's position reports give it. Sides already seen yield nothing; sides of unknown
        orders from before anything of ours are only marked seen. Returns the events."""
        mine = [(side, coi) for side, acct, coi in (("buy", trade.bid_account, trade.bid_client_order_index),
                                                     ("sell", trade.ask_account, trade.ask_client_order_index))
                if acct == self.account and trade.trade_id and (trade.trade_id, side) not in self.seen_trades]
        if not mine or trade.market_id not in self.by_id:
            return []
        outs = self.on_venue_trade(trade, account=False, recovered=True)
        fills = [e for e in outs if isinstance(e, Fill)]
        for side, _coi in mine:
            got = [f for f in fills if f.side == side]
            if not got:
                self.recovered_fills["seen"] += 1
            elif got[0].reason.startswith(RECOVERED_PREFIX + UNATTRIBUTED_PREFIX):
                self.recovered_fills["unattributed"] += 1
            else:
                self.recovered_fills["attributed"] += 1
        return outs
