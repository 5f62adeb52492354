"""The in-process backtest loop: the live engines wired together without a bus or a clock.

Per market-data event, in time order:

1. the matching engine executes every pending transaction due at or before the event's time and
   applies the event (:meth:`MatchingEngine.on_market_data`); the updates concerning our account
   are turned into typed venue reports (:mod:`shared.venue.reports`: the same values the
   executor's venue client parses from venue-sim's JSON) and fed to the executor engine: trades
   first, then positions, then order updates;
2. the executor engine gets the event (its touch), then every strategy engine gets it;
3. the strategies' intents of that event go to the executor engine as one batch (they net, as
   intents arriving in one consumer batch do live);
4. executor commands are submitted to the matching engine with arrival = the event's time (the
   speed bump makes them execute later in sim time); the send result goes back to the executor;
5. executor outputs (``Fill``, ``OrderAccepted``, ...) go to every strategy (which may answer
   with more intents: back to 3) and fills to the ledger engine and the :class:`Recorder`.

All strategies share one account, netted by the executor exactly as live. Everything is driven
by event time; ids come from the engines; the result is deterministic.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from services.executor.config import ExecutorConfig
from services.executor.engine import Engine as ExecutorEngine
from services.executor.engine import OrderCommand
from shared.events import Bbo, Event, Fill, MarketStats, Trade
from shared.markets import MarketInfo
from shared.venue import lighter_json as LJ
from shared.venue.errors import VenueError
from shared.venue.matching import (
    STANDARD,
    CancelAll,
    CancelOrder,
    CreateOrder,
    FillUpdate,
    MatchingEngine,
    OrderUpdate,
    PositionUpdate,
    Tier,
    Update,
)
from shared.venue.reports import order_from_order, position_from_position, trade_from_fill

from .metrics import Recorder
from .strategies import StrategyEngine


class Backtest:
    """One account, its strategies, the executor, the venue model and the ledger, in process.

    Args:
        markets: the traded markets.
        strategies: strategy engines by name (each ``on_event(ev) -> list[Event]``).
        exec_cfg: the executor's config (limits, slippage).
        account: the simulated Lighter account index.
        tier: the venue tier (speed bump, fees); ``maker_fee``/``taker_fee`` override its fees.
        recorder: collects fills and metrics (default: a new :class:`Recorder`).
    """

    def __init__(self, markets: Iterable[MarketInfo], strategies: Mapping[str, StrategyEngine],
                 exec_cfg: ExecutorConfig, *, account: int = 1001, tier: Tier = STANDARD,
                 maker_fee: float | None = None, taker_fee: float | None = None,
                 recorder: Recorder | None = None) -> None:
        self.markets = list(markets)
        self.by_id = {m.market_id: m for m in self.markets}
        self.account = account
        self.executor = ExecutorEngine(exec_cfg, {m.symbol: m for m in self.markets}, account,
                                       next_client_order_index=1, reconciled=True)
        self.venue = MatchingEngine(self.markets, tier, maker_fee=maker_fee, taker_fee=taker_fee,
                                    public_updates=False)
        self.strategies = list(strategies.values())
        self.recorder = recorder if recorder is not None else Recorder(self.markets)
        self.now = 0
        self.events = 0
        self.nonce = 0
        self.exec_counts: dict[str, int] = {}

    # ------------------------------------------------------------------ driving

    def run(self, events: Iterable[Event]) -> None:
        """Process every event (time-ordered), then execute the transactions still pending."""
        self.feed(events)
        self.finish()

    def step(self, ev: Event) -> None:
        """Process one market-data event (see the module docstring)."""
        self.feed((ev,))

    def feed(self, events: Iterable[Event]) -> None:
        """Process events (time-ordered) as :meth:`step` does, one after the other, without
        :meth:`finish`. The loop keeps the engines' methods in local names (speed)."""
        rec = self.recorder
        mids = rec.mids
        venue = self.venue
        venue_md = venue.on_market_data
        ex = self.executor
        ex_md = ex.on_market_data  # = ex.on_events([ev]) for market data
        take_commands = ex.take_commands
        strategies = self.strategies
        only = strategies[0].on_event if len(strategies) == 1 else None
        pump = self._pump
        now = self.now
        for ev in events:
            ts = ev.ts_event
            if ts > now:
                self.now = now = ts
            self.events += 1
            if rec.last_ts < now < rec.next_sample_ns:  # = rec.on_time(now) between equity samples
                rec.last_ts = now
            else:
                rec.on_time(now)
            t = type(ev)
            if t is Bbo or t is Trade or t is MarketStats:
                ups = venue_md(ev)  # type: ignore[arg-type]
                if ups:
                    pump(self._venue_updates(ups))
                # = rec.on_market_data(ev)
                if t is Bbo:
                    bid, ask = ev.bid_px, ev.ask_px  # type: ignore[attr-defined]
                    if bid > 0 and ask > 0:
                        mids[ev.market] = (bid + ask) / 2.0  # type: ignore[attr-defined]
                elif t is Trade and ev.market not in mids:  # type: ignore[attr-defined]
                    mids[ev.market] = ev.price  # type: ignore[attr-defined]
                outs = ex_md(ev)
            else:
                if isinstance(ev, Bbo | Trade | MarketStats):
                    ups = venue_md(ev)
                else:
                    ups = venue.advance(ts)
                if ups:
                    pump(self._venue_updates(ups))
                rec.on_market_data(ev)
                outs = ex.on_events((ev,))
            cmds = take_commands()
            if cmds:
                outs = outs + self._send(cmds)
            if outs:
                pump(outs)
            if only is not None:
                intents = only(ev)
            else:
                intents = []
                for s in strategies:
                    r = s.on_event(ev)
                    if r:
                        intents.extend(r)
            if intents:
                pump(ex.on_events(intents) + self._submit())

    def finish(self) -> None:
        """Execute the transactions still pending (at their own times) and close the recorder."""
        while self.venue.next_pending_ns() is not None:
            t = self.venue.next_pending_ns()
            assert t is not None
            self.now = max(self.now, t)
            self.recorder.on_time(self.now)
            self._pump(self._venue_updates(self.venue.advance(t)))
        self.recorder.finish(self.now)

    # ------------------------------------------------------------------ plumbing

    def _pump(self, exec_outs: list[Event]) -> None:
        """Executor outputs -> ledger/recorder and strategies -> intents -> executor, until quiet."""
        strategies = self.strategies
        rec = self.recorder
        while exec_outs:
            intents: list[Event] = []
            for e in exec_outs:
                name = type(e).__name__
                self.exec_counts[name] = self.exec_counts.get(name, 0) + 1
                if type(e) is Fill:
                    rec.on_fill(e)
                for s in strategies:
                    r = s.on_event(e)
                    if r:
                        intents.extend(r)
            exec_outs = self.executor.on_events(intents) if intents else []
            exec_outs += self._submit()

    def _submit(self) -> list[Event]:
        """Submit the executor's commands to the venue at the current time; return its reactions."""
        cmds = self.executor.take_commands()
        return self._send(cmds) if cmds else []

    def _send(self, cmds: list[OrderCommand]) -> list[Event]:
        """Submit ``cmds`` to the venue at the current time; return the executor's reactions."""
        out: list[Event] = []
        for cmd in cmds:
            tx = self._tx(cmd)
            try:
                self.venue.submit(tx, self.now)
            except VenueError as exc:
                out += self.executor.on_send_result(cmd, False, exc.code, exc.message)
                continue
            self.nonce += 1
            out += self.executor.on_send_result(cmd, True, 200, "", tx.tx_hash)
        return out

    def _tx(self, cmd: OrderCommand) -> CreateOrder | CancelOrder | CancelAll:
        h = LJ.tx_hash_of(f"{self.account}:{self.nonce}:{cmd.kind}:{cmd.client_order_index}:{cmd.order_index}")
        if cmd.kind == "create":
            return CreateOrder(account=self.account, market_id=cmd.market_id, client_order_index=cmd.client_order_index,
                               base_amount=cmd.size, price=cmd.price, is_ask=cmd.side == "sell", order_type="limit",
                               time_in_force=cmd.tif, reduce_only=cmd.reduce_only,
                               order_expiry_ms=0 if cmd.tif == "ioc" else cmd.order_expiry, nonce=self.nonce,
                               tx_hash=h)
        if cmd.kind == "cancel":
            return CancelOrder(account=self.account, market_id=cmd.market_id,
                               index=cmd.order_index or cmd.client_order_index, tx_hash=h)
        return CancelAll(account=self.account, market_id=None, tx_hash=h)

    def _venue_updates(self, ups: list[Update]) -> list[Event]:
        """Our account's venue updates as typed reports -> executor (trades, positions, orders)."""
        acct = self.account
        fills: list[Any] = []
        positions: list[Any] = []
        orders: list[Any] = []
        for u in ups:
            t = type(u)
            if t is FillUpdate:
                f = u.fill  # type: ignore[union-attr]
                if f.taker_account == acct or f.maker_account == acct:
                    fills.append(f)
            elif t is PositionUpdate:
                if u.position.account == acct:  # type: ignore[union-attr]
                    positions.append(u.position)  # type: ignore[union-attr]
            elif t is OrderUpdate:
                if u.order.account == acct:  # type: ignore[union-attr]
                    orders.append(u.order)  # type: ignore[union-attr]
        if not (fills or positions or orders):
            return []
        ex = self.executor
        venue = self.venue
        out: list[Event] = []
        for f in fills:
            out += ex.on_venue_trade(trade_from_fill(self.by_id[f.market_id], f, taker_fee=venue.taker_fee,
                                                     maker_fee=venue.maker_fee))
        for p in positions:
            out += ex.on_venue_position(position_from_position(self.by_id[p.market_id], p))
        for o in orders:
            out += ex.on_venue_order(order_from_order(self.by_id[o.market_id], o))
        out += self._submit()
        return out
