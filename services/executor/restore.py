"""Restore at start-up: the exec stream's history (virtual positions, seen trade ids, the client
order index counter, order -> strategy map for late fills) and the strategies' standing wishes and
the operator's control state from the intent and control streams, applied at each market's first
touch.

State: ``_restored`` (market -> {(kind, strategy): intent} waiting for the market's first
touch), ``_restore_seq`` (target sequence number at the restore), ``restored_controls``."""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from shared.events import (
    CancelIntent,
    Control,
    Event,
    Fill,
    OrderAccepted,
    OrderRejected,
    PositionSnapshot,
    QuoteIntent,
    RestingOrders,
    StopLossIntent,
    TargetPosition,
)

from .common import MAX_CLIENT_ORDER_INDEX, PROTECTIVE_REASON, PROTECTIVE_SUFFIX, _Order, _Out


class Restore:
    """Restore at start-up: a part of :class:`~services.executor.engine.Engine` (a mixin
    working on the engine's state; see the module docstring)."""

    def _init_restore(self) -> None:
        """Set up this part's state (called by the engine's constructor)."""
        # intents restored at start-up, applied at the market's first market data (restore_intents)
        self._restored: dict[str, dict[tuple[str, str], Event]] = {}  # market -> {(kind, strategy): intent}
        self._restore_seq = 0  # target sequence number at the restore (newer targets beat a resumed flatten)
        self.restored_controls = 0  # Control events folded at the restore

    def restore(self, history: Iterable[Event]) -> None:
        """Fold the exec stream's history (our own outputs): virtual positions from the last
        ``PositionSnapshot`` per (strategy, market), seen venue trade ids from ``Fill``, the
        client order index counter from ``OrderAccepted``/``OrderRejected`` and the
        order -> strategy map of accepted orders (for late fills and fills missed while down,
        :meth:`FillRecovery.on_missed_trade`; stop-loss orders as stops, protective stops -- label
        ``<strategy>/protective-stop`` -- as the strategy's protective stops, for
        :meth:`adopt_protective_stop`), and where fill recovery starts (the newest venue fill's
        time, the first order's: :meth:`FillRecovery.recovery_since_ns`). The engine clock is not
        advanced (history holds runner events stamped with wall time, inputs may be in sim
        time)."""
        self._changed()
        max_coi = 0
        for ev in history:
            if isinstance(ev, PositionSnapshot):
                st = self._strat(ev.strategy, ev.market)
                st.position, st.avg_entry = ev.position, ev.avg_entry_price
            elif isinstance(ev, Fill) and ev.venue_trade_id:
                self.seen_trades.add((ev.venue_trade_id, ev.side))
                self._note_trade(ev.ts_event)  # venue time of the trade: missed ones are newer
            elif isinstance(ev, OrderAccepted | OrderRejected):
                max_coi = max(max_coi, ev.client_order_index)
                if isinstance(ev, OrderAccepted):
                    self._note_order(ev.ts_event)
                if isinstance(ev, OrderAccepted) and ev.market in self.markets:
                    m = self.markets[ev.market]
                    protective = ev.strategy.endswith(PROTECTIVE_SUFFIX)
                    first = (ev.strategy[:-len(PROTECTIVE_SUFFIX)] if protective else ev.strategy).split(",")[0]
                    self._remember_done(_Order(
                        coi=ev.client_order_index, market=ev.market, side=ev.side,
                        price=m.price_to_int(ev.price), size=m.size_to_int(ev.size),
                        tif=ev.time_in_force if ev.time_in_force in ("ioc", "gtt", "post_only") else "gtt",
                        kind="stop" if ev.order_type == "stop-loss" else "taker" if ev.time_in_force == "ioc"
                        else "quote",
                        alloc=[[first, ev.size]], cause_id=ev.causation_id or ev.id,
                        ts_event=ev.ts_event, status="done", reduce_only=ev.reduce_only, protective=protective,
                        reasons={first: PROTECTIVE_REASON} if protective else None))
        if max_coi + 1 > self.next_coi:
            self.next_coi = max_coi + 1
        if self.next_coi > MAX_CLIENT_ORDER_INDEX:
            self.next_coi = 1

    def restore_intents(self, intents: Iterable[Event]) -> int:
        """Restore the strategies' standing wishes from the intent stream, and the operator's
        control state from the control stream, at start-up (the runner reads both without
        consuming and merges them oldest first by Redis entry id; they may have been consumed
        before).

        ``Control`` events in the sequence are folded in order into the control state, which
        is rebuilt from scratch when there is any (the stream is the record): ``kill`` halts
        (until ``resume *``) and drops every earlier wish and flatten; ``pause`` drops the
        earlier wishes of its target (or all); ``resume`` clears as it does live (``resume *``
        also ends a flatten); ``flatten`` drops its target's earlier wishes and is **resumed**:
        ``flatten *`` restores REDUCING, and at each market's first market data (not halted) the
        strategies it names that hold a virtual position get a target of 0 again (no staleness
        check: the positions must still be closed), unless the strategy sent a newer target
        (restored, or live since the restore). Counted in ``restored_controls``;
        :meth:`control_summary` describes the result.

        Per (strategy, market) the latest :class:`~shared.events.TargetPosition` is kept, and
        the latest resting wish: a ``QuoteIntent``/``RestingOrders``, unless a later
        ``CancelIntent`` of that strategy for that market (or all markets) withdrew it, and the
        latest :class:`~shared.events.StopLossIntent` unless its size is 0 (a cancel) -- the
        shutdown canceled the stop on the venue. A ``pause`` keeps the stops (live, a pause
        leaves them resting: they protect the position); a ``kill`` or a ``flatten`` of the
        strategy drops them (live, both cancel them). They
        are applied at the market's first two-sided ``Bbo``/``BookSnapshot`` while the engine
        is not halted, exactly as if they had just arrived: targets are recorded and the market
        rebalanced (the strategies get the refusals), resting sets go through the diff and the
        risk gate, then stops are placed (also for a paused strategy, as they stood at the
        shutdown) if the strategy's virtual position is on the side the stop protects, at most
        that position's size (a stop that fired meanwhile left no position: not restored). An intent older than ``max_intent_age_ms`` before that market data's time is
        **not** restored (stale: dropped, its target not recorded). A newer intent of the same
        (strategy, market) arriving meanwhile replaces the restored one (before the market's
        first touch it takes the restored one's place and is applied with them, see
        :meth:`_join_restored`); ``pause``, ``kill``
        and ``flatten`` drop the restored wishes they concern. Returns how many wishes are kept
        (a flatten to resume counts once per market)."""
        self._changed()
        kept: dict[tuple[str, str, str], Event] = {}
        flattens: dict[str, Control] = {}  # target ("*" or a strategy) -> the flatten to resume
        controls = 0
        for ev in intents:
            if isinstance(ev, Control):
                if controls == 0:  # the control stream is the record: rebuild the state from it
                    self.killed, self.paused_all, self.flattening = None, False, False
                    self.paused = set()
                controls += 1
                self._control_state(ev)
                self._fold_control_wishes(ev, kept, flattens)
            elif isinstance(ev, TargetPosition | QuoteIntent | RestingOrders | StopLossIntent) and (
                    self.killed or self._paused(ev.strategy)):
                continue  # refused (and forgotten) live while killed, ignored while paused
            elif isinstance(ev, TargetPosition):
                kept.pop(("target", ev.strategy, ev.market), None)
                kept[("target", ev.strategy, ev.market)] = ev
            elif isinstance(ev, QuoteIntent | RestingOrders):
                kept.pop(("resting", ev.strategy, ev.market), None)
                kept[("resting", ev.strategy, ev.market)] = ev
            elif isinstance(ev, StopLossIntent):
                kept.pop(("stop", ev.strategy, ev.market), None)
                if ev.size > 0:  # size 0 only cancels
                    kept[("stop", ev.strategy, ev.market)] = ev
            elif isinstance(ev, CancelIntent):
                for k in [k for k in kept if k[0] == "resting" and k[1] == ev.strategy
                          and (ev.market is None or k[2] == ev.market)]:
                    del kept[k]
        self._restored = {}
        for who, ev in flattens.items():
            for market in self.markets:
                self._restored.setdefault(market, {})[("flatten", who)] = ev
        for (kind, strategy, market), ev in kept.items():
            if market in self.markets:
                self._restored.setdefault(market, {})[(kind, strategy)] = ev
        self._restore_seq = self._seq
        self.restored_controls = controls  # the state they give is published by set_reconciled
        return sum(len(v) for v in self._restored.values())

    @staticmethod
    def _fold_control_wishes(ev: Control, kept: dict[tuple[str, str, str], Event],
                             flattens: dict[str, Control]) -> None:
        """What a ``Control`` of the restored control stream does to the wishes restored so far
        (``kept``: (kind, strategy, market) -> intent) and the flattens to resume (``flattens``:
        target -> flatten): a kill drops all; ``resume *`` ends the flattens; pause and flatten
        drop their target's wishes (a pause not its stops: live, they stay resting); a flatten
        is recorded (``flatten *`` replaces the others)."""
        who = ev.target
        if ev.command == "kill":
            kept.clear()
            flattens.clear()
        elif ev.command == "resume":
            if who == "*":
                flattens.clear()
        elif ev.command in ("pause", "flatten"):
            for k in [k for k in kept if (who == "*" or k[1] == who)
                      and (k[0] != "stop" or ev.command == "flatten")]:
                del kept[k]
            if ev.command == "flatten":
                if who == "*":
                    flattens.clear()
                flattens[who] = ev

    def restored_intents(self) -> list[Event]:
        """The restored intents not applied yet (see :meth:`restore_intents`), by market."""
        return [ev for market in sorted(self._restored) for ev in self._restored[market].values()]

    def _join_restored(self, ev: Event) -> bool:
        """A live wish (``TargetPosition``, ``QuoteIntent``, ``RestingOrders``) for a market whose
        restored wishes still wait for its first touch (not halted, no two-sided market data
        yet) replaces the restored wish of the same (strategy, market) and is applied with them
        at that first market data, instead of being refused for lack of market data and
        forgotten. This happens when an intent published while the executor was down is
        delivered by the consumer group after reconciliation. Returns True if ``ev`` was taken."""
        if not isinstance(ev, TargetPosition | QuoteIntent | RestingOrders):
            return False
        wishes = self._restored.get(ev.market)
        if not wishes or ev.market in self.bbo or self.state == "halted" or self._paused(ev.strategy):
            return False
        key = ("target" if isinstance(ev, TargetPosition) else "resting", ev.strategy)
        wishes.pop(key, None)
        wishes[key] = ev
        return True

    def _supersede_restored(self, ev: Event) -> None:
        """Drop restored wishes that the live input ``ev`` replaces or withdraws."""
        drop: list[tuple[str, str, str | None]] = []  # (kind, strategy or "*", market or None)
        if isinstance(ev, TargetPosition):
            drop.append(("target", ev.strategy, ev.market))
        elif isinstance(ev, QuoteIntent | RestingOrders):
            drop.append(("resting", ev.strategy, ev.market))
        elif isinstance(ev, StopLossIntent):
            drop.append(("stop", ev.strategy, ev.market))
        elif isinstance(ev, CancelIntent):
            drop.append(("resting", ev.strategy, ev.market))
        elif isinstance(ev, Control) and ev.command in ("pause", "kill", "flatten"):
            who = "*" if ev.command == "kill" else ev.target
            drop += [("target", who, None), ("resting", who, None)]
            if ev.command != "pause":  # a kill ends a flatten to resume; a new flatten replaces it
                drop += [("flatten", who, None), ("stop", who, None)]  # ... and both cancel stops
        elif isinstance(ev, Control) and ev.command == "resume" and ev.target == "*":
            drop.append(("flatten", "*", None))
        for kind, strategy, market in drop:
            for mk in [market] if market is not None else list(self._restored):
                wishes = self._restored.get(mk)
                if not wishes:
                    continue
                for key in [k for k in wishes if k[0] == kind and (strategy == "*" or k[1] == strategy)]:
                    del wishes[key]
                if not wishes:
                    del self._restored[mk]

    def _restore_stop(self, ev: StopLossIntent, cause: Event) -> list[Event]:
        """Place the restored stop-loss ``ev`` (see :meth:`restore_intents`) if its strategy's
        virtual position in the market is on the side it protects (a sell stop: long), with its
        size clipped to that position (base units). Returns the events."""
        st = self.strats.get((ev.strategy, ev.market))
        held = st.position if st is not None else 0.0
        protected = held if ev.side == "sell" else -held
        if not protected > 0:
            return []
        if ev.size > protected:
            ev = msgspec.structs.replace(ev, size=protected)
        o = _Out(key=f"restore:{ev.market}:{cause.id}:{ev.id}", ts=cause.ts_event, causation_id=ev.id)
        self._on_stop(ev, o, restored=True)
        return o.events

    def _activate_restored(self, market: str, cause: Event) -> list[Event]:
        """Apply the restored wishes of ``market`` (its touch is known now; see
        :meth:`restore_intents`): targets first (recorded, one rebalance), then resting sets.
        A restored target older than a fill of the strategy's stop-loss in the market (a stop
        that triggered while the executor was down, :meth:`on_missed_trade`) is dropped: live,
        a stop fill moves the standing target to the new position. Nothing happens while halted
        or without a touch. Output ids derive from the market data
        event's id (and the intent's); orders name the intent (resting) or the market data
        event (the rebalance) as their cause. Returns the events."""
        out = _Out(key=f"restore:{market}:{cause.id}", ts=cause.ts_event, causation_id=cause.id)
        if self.state == "halted" or market not in self.bbo or market not in self.markets:
            return []
        wishes = self._restored.pop(market, {})
        triggered: set[str] = set()
        flat_who = {strategy for (kind, strategy) in wishes if kind == "flatten"}
        if flat_who:  # a flatten resumed: target 0 for its strategies with a position, unless newer
            triggered.update(s for s, _ in self._flatten_targets(flat_who, market, self._restore_seq))
        for (kind, strategy), ev in wishes.items():
            if kind != "target" or self._paused(strategy) or self._stale(ev):
                continue
            stopped = self._stop_fills.get((strategy, market))
            if stopped is not None and stopped >= ev.ts_event:
                continue  # a stop filled after it (e.g. while the executor was down): not bought back
            assert isinstance(ev, TargetPosition)
            st = self._strat(strategy, market)
            st.target = float(ev.target)
            self._seq += 1
            st.seq = self._seq
            st.slippage_bps = ev.max_slippage_bps if ev.max_slippage_bps > 0 else self.cfg.default_slippage_bps
            st.reason = ev.reason
            triggered.add(strategy)
        if triggered:
            self._rebalance(market, out, triggered)
        events = out.events
        for (kind, _strategy), ev in wishes.items():
            if kind != "resting":
                continue
            o = _Out(key=f"restore:{market}:{cause.id}:{ev.id}", ts=cause.ts_event, causation_id=ev.id)
            if isinstance(ev, QuoteIntent):
                self._on_quote(ev, o)
            elif isinstance(ev, RestingOrders):
                self._on_resting(ev, o)
            events += o.events
        for (kind, _strategy), ev in wishes.items():
            if kind == "stop" and not self._stale(ev):
                assert isinstance(ev, StopLossIntent)
                events += self._restore_stop(ev, cause)
        guards = _Out(key=f"restore:{market}:{cause.id}:guards", ts=cause.ts_event, causation_id=cause.id)
        self._eval_guards(market, guards)
        return events + guards.events
