"""Resting-order sets: a strategy's wanted resting orders per market (``RestingOrders``, or a
``QuoteIntent`` of at most one bid and one ask) diffed against its live orders: identical ones
kept (queue position), others canceled, missing ones placed post-only/GTT through the risk gate
and the self-trade guard.

Stop-loss orders (``StopLossIntent``) are kept here too: at most one live reduce-only
``stop-loss`` order per (strategy, market), replaced by each new intent (:meth:`_on_stop`).

State: ``_wanted`` ((strategy, market) -> latest wanted set), ``_pending`` (deferred sets:
``budget`` or ``blocked``, insertion-ordered), ``_blocked`` (sides held back by the
self-trade guard)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from shared.events import Control, Event, OrderRejected, QuoteIntent, RestingOrders, Side, StopLossIntent
from shared.markets import MarketInfo

from .common import MAX_OPEN_ORDERS_PER_MARKET, Tif, _Out


class RestingSets:
    """Resting-order sets: a part of :class:`~services.executor.engine.Engine` (a mixin
    working on the engine's state; see the module docstring)."""

    def _init_resting(self) -> None:
        """Set up this part's state (called by the engine's constructor)."""
        self._wanted: dict[tuple[str, str], tuple[Event, list[tuple[Side, float, float]], bool]] = {}
        self._pending: dict[tuple[str, str], Literal["budget", "blocked"]] = {}  # insertion-ordered
        self._blocked: dict[tuple[str, str], dict[Side, str]] = {}  # deferred by the self-trade guard
        # stop-losses waiting for the account position they reduce (strategy, market) -> intent
        self._held_stops: dict[tuple[str, str], tuple[StopLossIntent, bool]] = {}
        self.superseded_intents = 0  # intents replaced within their batch, never acted on (:meth:`_superseded`)

    def _superseded(self, events: Sequence[Event]) -> set[int]:
        """Indices of the ``QuoteIntent``/``RestingOrders`` of a consumer batch ``events`` that a
        later one of the same (strategy, market) in the batch replaces: acting on them would
        only place orders that the later one cancels again (two signatures and a request each).

        An intent is superseded by a later one ``L`` when ``L`` is not older (``ts_event``), no
        ``Control`` lies between them (a pause, kill or resume changes what either may do), and
        ``L`` will not be refused as stale (``max_intent_age_ms``) at its own place in the batch,
        where the engine's clock is the latest ``ts_event`` before it: then ``L``'s wanted set is
        applied whatever the earlier one did, and the end state is the same with fewer orders.
        A superseded intent emits nothing (not even the refusal of an invalid price of its own).
        Counted in ``superseded_intents``."""
        age_ns = (self.cfg.max_intent_age_ms or 0) * 1_000_000
        now = self.now
        clock: list[int] = []  # the engine's clock when each event is processed
        for ev in events:
            now = max(now, ev.ts_event)
            clock.append(now)
        out: set[int] = set()
        later: dict[tuple[str, str], tuple[int, int]] = {}  # key -> (ts_event, index) of the next live one
        for i in range(len(events) - 1, -1, -1):
            ev = events[i]
            if isinstance(ev, Control):
                later.clear()
            elif isinstance(ev, QuoteIntent | RestingOrders):
                key = (ev.strategy, ev.market)
                nxt = later.get(key)
                if nxt is not None and nxt[0] >= ev.ts_event:
                    out.add(i)
                elif not age_ns or ev.ts_event >= clock[i] - age_ns:
                    later[key] = (ev.ts_event, i)
                else:
                    later.pop(key, None)  # a stale one supersedes nothing
        return out

    def _on_quote(self, ev: QuoteIntent, out: _Out) -> None:
        """A QuoteIntent is a :class:`RestingOrders` of at most one bid and one ask."""
        wanted: list[tuple[Side, float, float]] = []
        if ev.bid_px is not None and ev.bid_px > 0 and ev.bid_sz > 0:
            wanted.append(("buy", ev.bid_px, ev.bid_sz))
        if ev.ask_px is not None and ev.ask_px > 0 and ev.ask_sz > 0:
            wanted.append(("sell", ev.ask_px, ev.ask_sz))
        self._set_resting(ev, ev.strategy, ev.market, wanted, ev.post_only, out)

    def _on_resting(self, ev: RestingOrders, out: _Out) -> None:
        self._set_resting(ev, ev.strategy, ev.market, list(ev.orders), ev.post_only, out)

    def _set_resting(self, ev: Event, strategy: str, market: str, wanted: list[tuple[Side, float, float]],
                     post_only: bool, out: _Out, deferred: bool = False) -> None:
        """Make ``strategy``'s live resting orders in ``market`` equal to ``wanted``.

        Matching is by (side, price ticks, requested size lots, time in force): an identical live
        order stays (its queue position is kept, also when it is partly filled or was clipped by
        the risk gate at placement), the live orders not wanted are canceled, and the wanted
        orders without a live twin are placed after the cancels, each through the risk gate
        (:meth:`_place_resting`). Prices are rounded never to be more aggressive (buy down, sell
        up), sizes down to lots.

        The wanted set is remembered per (strategy, market). An update that would place orders
        while the request budget has no room (:meth:`_quote_budget_ok`) is **deferred** whole:
        nothing is sent, the live orders stay, and the latest wanted set is applied by
        :meth:`_flush` on a later event once the budget is back (``deferred=True``: no staleness
        check, the set is the strategy's latest wish). An update that only cancels is never
        deferred. Orders held back by the self-trade guard are likewise re-tried when one of our
        orders in the market finishes."""
        if self._paused(strategy) or (not deferred and self._stale(ev)):
            return
        m = self.markets.get(market)
        if m is None:
            for side, px, sz in wanted:
                out.add(OrderRejected, strategy=strategy, market=market, client_order_index=0, side=side,
                        price=float(px), size=float(sz), code=0,
                        reason=f"market {market} is not traded by this executor")
            return
        tif: Tif = "post_only" if post_only else "gtt"
        want: list[tuple[Side, int, int, float]] = []  # side, ticks, lots, requested price (USD)
        valid: list[tuple[Side, float, float]] = []
        for side, px, sz in wanted:
            if side not in ("buy", "sell") or not (px > 0) or not (sz > 0) or not math.isfinite(px):
                out.add(OrderRejected, strategy=strategy, market=market, client_order_index=0,
                        side=side if side in ("buy", "sell") else "buy", price=float(px or 0.0),
                        size=float(sz or 0.0), code=0, reason="refused locally: invalid price or size")
                continue
            valid.append((side, px, sz))
            want.append((side, m.price_to_int(px, "down" if side == "buy" else "up"), self._lots(m, sz), px))
        key = (strategy, market)
        self._wanted[key] = (ev, valid, post_only)
        self._pending.pop(key, None)
        self._blocked.pop(key, None)
        unmatched = list(self._live_resting(market, strategy))
        new: list[tuple[Side, int, int, float]] = []
        for w in want:
            twin = next((r for r in unmatched if (r.side, r.price, r.req_size or r.size, r.tif)
                         == (w[0], w[1], w[2], tif)), None)
            if twin is None:
                new.append(w)
            else:
                unmatched.remove(twin)
        if new and self.state != "halted" and not self._quote_budget_ok():
            self._pending[key] = "budget"
            self.deferred_updates += 1
            return
        for rec in unmatched:
            self._cancel(rec, out)
        # nearest the touch first: buys by price descending, then sells ascending
        new.sort(key=lambda w: (0, -w[1]) if w[0] == "buy" else (1, w[1]))
        blocked: dict[Side, str] = {}
        for side, price, lots, px in new:
            why = self._place_resting(out, strategy, m, side, price, lots, px, tif)
            if why:
                blocked.setdefault(side, why)
        if blocked:
            self._pending[key] = "blocked"
            self._blocked[key] = blocked

    def _place_resting(self, out: _Out, strategy: str, m: MarketInfo, side: Side, price: int, lots: int,
                       px: float, tif: Tif) -> str:
        """Risk-gate and create one resting order (or refuse it with ``OrderRejected(code=0)``).

        Halted: refused. Self-trade guard: refused when it would cross one of our live resting
        orders of the other side (any strategy's, not being canceled); **held back** (returns
        the reason, nothing emitted) while it would cross one of our taker (IOC) orders in
        flight or held, or -- for a GTT order, which could take -- one of our other-side orders
        whose cancel is not confirmed yet. Reducing: only orders against the account position,
        and together with the same-side resting orders at most that position (sent
        reduce-only). Always: if the order and all same-side resting orders (also those being
        canceled) filled, the account position (plus in-flight IOC orders) stays within
        ``max_position`` and ``max_notional_usd`` (clipped, or refused when nothing fits); at
        most :data:`MAX_OPEN_ORDERS_PER_MARKET` live orders per market; the market minimums.

        Returns:
            ``""`` when placed or refused; the self-trade reason when held back.
        """
        market = m.symbol
        sg = 1 if side == "buy" else -1
        requested = lots
        if lots <= 0:
            self._reject(out, strategy, m, sg, px, "refused locally: size rounds to 0 lots")
            return ""
        if self.state == "halted":
            self._reject(out, strategy, m, sg * lots, px, f"resting orders refused while halted: {self.state_reason}")
            return ""
        crossing = self._crossing(market, side, price, None)
        other = "sell" if side == "buy" else "buy"
        live = [r for r in crossing if r.kind == "quote" and not r.cancel_requested]
        if live:
            r = live[0]
            self._reject(out, strategy, m, sg * lots, px,
                         f"self-trade guard: {side} at {m.price_str(price)} would cross our own resting "
                         f"{other} at {m.price_str(r.price)} ({self._owner(r)})")
            return ""
        transient = [r for r in crossing if r.kind == "taker" or tif != "post_only"]
        held = self._held.get(market)
        if transient or (held is not None and held[0] != side and self._crosses(side, price, held[1])):
            what = (f"our taker {other} IOC" if (held is not None and held[0] != side) or
                    any(r.kind == "taker" for r in transient) else f"our {other} order being canceled")
            return f"self-trade guard: {side} at {m.price_str(price)} waits for {what} in {market}"
        n_live = sum(1 for r in self.orders.values() if r.live and r.market == market and not r.cancel_requested)
        if n_live >= MAX_OPEN_ORDERS_PER_MARKET:
            self._reject(out, strategy, m, sg * lots, px,
                         f"refused locally: {MAX_OPEN_ORDERS_PER_MARKET} open orders in {market} already "
                         f"(Lighter's per-market limit of pending orders per account)")
            return ""
        lots, reduce_only = self._clip_resting(out, strategy, m, side, lots, px)
        if lots <= 0:
            return ""
        why = m.check_amount(m.int_to_size(lots), m.int_to_price(price))
        if why:
            self._reject(out, strategy, m, sg * lots, m.int_to_price(price), f"refused locally: {why}")
            return ""
        rec = self._create(out, m, side, price, lots, tif, self.cfg.quote_expiry, reduce_only, "quote",
                           [[strategy, m.int_to_size(lots)]])
        rec.req_size = requested
        return ""

    def _clip_resting(self, out: _Out, strategy: str, m: MarketInfo, side: Side, lots: int,
                      px: float) -> tuple[int, bool]:
        """The risk gate of a resting order of ``lots`` on ``side`` at ``px`` USD, counted with
        all our same-side resting orders filling: in the reducing state only against the account
        position and together with them at most that position (reduce-only); otherwise within
        ``max_position`` and ``max_notional_usd``. Refuses the clipped part
        (``OrderRejected(code=0)``). Returns ``(lots allowed, reduce_only)``."""
        market = m.symbol
        sg = 1 if side == "buy" else -1
        same_side = self._resting_exposure(market, side)
        account = self._inventory(market)
        exposure = account + sg * same_side  # worst case: every same-side resting order filled
        reduce_only = False
        if self.state == "reducing":
            if account * sg >= 0:
                self._reject(out, strategy, m, sg * lots, px,
                             f"reducing ({self.state_reason}): only orders that shrink the position")
                return 0, False
            room = abs(account) - same_side
            allowed = max(0, self._lots(m, room)) if room > 0 else 0
            if allowed < lots:
                self._reject(out, strategy, m, sg * (lots - allowed), px,
                             f"reducing ({self.state_reason}): resting orders limited to the position")
                lots = allowed
            reduce_only = True
        else:
            cap = self.cfg.position_limit(market)
            cap_why = f"max_position {cap:g} {market}"
            ncap = self.cfg.notional_limit(market) / px if px > 0 else 0.0
            if ncap < cap:
                cap, cap_why = ncap, f"max_notional_usd {self.cfg.notional_limit(market):g} USD"
            room = cap - sg * exposure
            allowed = max(0, self._lots(m, room)) if room > 0 else 0
            if allowed < lots:
                self._reject(out, strategy, m, sg * (lots - allowed), px,
                             f"resting order clipped by {cap_why}: account position {account:g} {market} plus "
                             f"all {side} orders resting ({same_side:g}) would exceed it if filled")
                lots = allowed
        return lots, reduce_only

    def _on_stop(self, ev: StopLossIntent, out: _Out, restored: bool = False) -> None:
        """Replace ``ev.strategy``'s stop-loss in ``ev.market``: cancel its live stop order,
        then (``size`` > 0) place a reduce-only ``stop-loss`` of ``size`` (rounded down to lots)
        triggered at ``trigger_price`` (sell stops rounded down, buy stops up: never nearer the
        market) whose worst price is ``max_slippage_bps`` beyond the trigger. Refused locally
        (``OrderRejected(code=0)``) while halted, for an unknown market, a bad price or size, or
        a size below the market minimums. Untriggered stops are off the book: the self-trade
        guard and the resting-order limits ignore them; a stop fill moves the strategy's
        standing target to its new position (:meth:`on_venue_trade`), so it is not bought back.
        Ignored while the strategy is paused, unless ``restored`` (a stop restored at start-up,
        see ``Restore.restore_intents``: it stood before the pause)."""
        if self._paused(ev.strategy) and not restored:
            return
        m = self.markets.get(ev.market)
        if m is None:
            out.add(OrderRejected, strategy=ev.strategy, market=ev.market, client_order_index=0, side=ev.side,
                    price=float(ev.trigger_price), size=float(ev.size), code=0,
                    reason=f"market {ev.market} is not traded by this executor")
            return
        self._cancel_stops(ev.strategy, ev.market, out)
        self._held_stops.pop((ev.strategy, ev.market), None)
        if not ev.size > 0:
            return
        sg = 1 if ev.side == "buy" else -1
        if ev.side in ("buy", "sell") and self.account_pos.get(ev.market, 0.0) * sg >= 0:
            # reduce-only: the venue refuses it (21732) while the account position it is to
            # reduce is not there yet (the taker order opening it waits out its speed bump):
            # held until a fill of ours in the market gives the position (place_held_stops)
            self._held_stops[(ev.strategy, ev.market)] = (ev, restored)
            return
        lots = self._lots(m, ev.size)
        if (ev.side not in ("buy", "sell") or not ev.trigger_price > 0 or not math.isfinite(ev.trigger_price)
                or lots <= 0):
            self._reject(out, ev.strategy, m, sg * max(lots, 1), float(ev.trigger_price or 0.0),
                         "refused locally: invalid stop-loss trigger or size")
            return
        if self.state == "halted":
            self._reject(out, ev.strategy, m, sg * lots, ev.trigger_price,
                         f"stop-loss refused while halted: {self.state_reason}")
            return
        trigger = m.price_to_int(ev.trigger_price, "up" if ev.side == "buy" else "down")
        worst = m.price_to_int(ev.trigger_price * (1 + sg * ev.max_slippage_bps / 1e4), "up" if sg > 0 else "down")
        why = m.check_amount(m.int_to_size(lots), m.int_to_price(worst))
        if why or worst < 1:
            self._reject(out, ev.strategy, m, sg * lots, ev.trigger_price, f"refused locally: {why or 'price'}")
            return
        self._create(out, m, ev.side, worst, lots, "ioc", self.cfg.quote_expiry, True, "stop",
                     [[ev.strategy, m.int_to_size(lots)]], reasons={ev.strategy: ev.reason or "stop-loss"},
                     trigger_price=trigger)

    def _place_held_stops(self, market: str, out: _Out) -> None:
        """Place the stop-losses held in ``market`` whose account position is now there (called
        after each fill of ours)."""
        for key in [k for k in self._held_stops if k[1] == market]:
            ev, restored = self._held_stops[key]
            sg = 1 if ev.side == "buy" else -1
            if self.account_pos.get(market, 0.0) * sg < 0:
                self._on_stop(ev, out, restored)

    def _cancel_stops(self, strategy: str | None, market: str | None, out: _Out | Event) -> None:
        """Cancel the live stop-loss orders of ``strategy`` in ``market`` (None = all), and
        forget the held ones."""
        for key in [k for k in self._held_stops if (market is None or k[1] == market)
                    and (strategy is None or k[0] == strategy)]:
            self._held_stops.pop(key, None)
        for rec in [r for r in self.orders.values() if r.live and r.kind == "stop" and not r.cancel_requested
                    and (market is None or r.market == market)
                    and (strategy is None or self._owner(r) == strategy)]:
            self._cancel(rec, out)

    def _forget_wanted(self, strategy: str | None, market: str | None) -> None:
        """Drop remembered (and deferred) wanted sets of ``strategy``/``market`` (None = all)."""
        for key in [k for k in self._wanted if (strategy is None or k[0] == strategy)
                    and (market is None or k[1] == market)]:
            self._wanted.pop(key, None)
            self._pending.pop(key, None)
            self._blocked.pop(key, None)
