"""Netting: the strategies' target positions per market become internal crosses and at most one
venue order.

Per strategy the delta is ``d_i = target_i - virtual_i - in_flight_i`` (integer lots, rounded
toward zero). Opposite deltas cross internally at the mid (``Fill`` with ``liquidity="internal"``);
the net remainder goes through the risk gate (reducing state, ``max_position``,
``max_notional_usd`` counted in the worst case with our resting orders on that side filling),
the self-trade guard (crossing resting orders of ours are canceled first, the IOC is held) and
the market minimums, and becomes one marketable IOC limit order at the touch +/- slippage,
allocated FIFO (by intent arrival) to the strategies that wanted that direction."""

from __future__ import annotations

from typing import Any

from shared.events import Fill, OrderRejected, Side, TargetPosition, derive_id
from shared.markets import MarketInfo

from .common import EPS, _Out, _Strat


class Netting:
    """Netting: a part of :class:`~services.executor.engine.Engine` (a mixin
    working on the engine's state; see the module docstring)."""

    def _on_target(self, ev: TargetPosition, out: _Out, dirty: dict[str, tuple[_Out, set[str]]]) -> None:
        """Record a strategy's target (with its slippage and reason; ignored while the strategy
        is paused, refused for a market not traded here) and mark its market ``dirty`` for the
        batch's rebalance. A stale intent (``ts_event`` older than ``max_intent_age_ms`` before
        the engine's clock) is refused (``OrderRejected`` code 0, reason ``stale intent: ...``)
        and **not recorded**: a stale target is never stored as a wish, so no later rebalance
        (another strategy's target in the market) trades it; the strategy's earlier target
        stands, and the strategy re-sends its wish with a fresh time after the refusal."""
        if self._paused(ev.strategy):
            return
        if ev.market not in self.markets:
            out.add(OrderRejected, strategy=ev.strategy, market=ev.market, client_order_index=0,
                    side="buy" if ev.target >= 0 else "sell", price=0.0, size=abs(ev.target), code=0,
                    reason=f"market {ev.market} is not traded by this executor")
            return
        if self._stale(ev):
            held = self.strats.get((ev.strategy, ev.market))
            delta = float(ev.target) - (held.position if held is not None else 0.0)
            out.add(OrderRejected, strategy=ev.strategy, market=ev.market, client_order_index=0,
                    side="buy" if delta >= 0 else "sell", price=0.0, size=abs(delta), code=0,
                    reason=f"stale intent: ts_event {(self.now - ev.ts_event) / 1e9:.1f}s before the executor's "
                           f"clock (max_intent_age_ms {self.cfg.max_intent_age_ms}): target not recorded")
            return
        st = self._strat(ev.strategy, ev.market)
        st.target = float(ev.target)
        self._seq += 1
        st.seq = self._seq
        st.slippage_bps = ev.max_slippage_bps if ev.max_slippage_bps > 0 else self.cfg.default_slippage_bps
        st.reason = ev.reason
        prev = dirty.get(ev.market)
        triggered = prev[1] if prev else set()
        triggered.add(ev.strategy)
        dirty[ev.market] = (out, triggered)

    def _rebalance(self, market: str, out: _Out, triggered: set[str], report_clips: bool = True) -> None:
        """Net the strategies' deltas in ``market``: internal cross, then one IOC for the rest
        (risk gate, self-trade guard). ``triggered``: strategies whose new intent caused the
        call (they get the refusals when nothing can be sent); ``report_clips``: emit the
        ``OrderRejected`` of clipped parts (False when re-run for a held or retried order)."""
        m = self.markets[market]
        strats = [(s, st) for (s, mk), st in self.strats.items() if mk == market and st.target is not None]
        strats.sort(key=lambda x: x[1].seq)
        deltas: list[tuple[str, _Strat, int]] = []
        for s, st in strats:
            d = self._lots(m, st.target - st.position - self.in_flight(s, market))  # type: ignore[operator]
            if d:
                deltas.append((s, st, d))
        if not deltas:
            self._held.pop(market, None)
            return
        if self.state == "halted":
            self._held.pop(market, None)
            for s, st, d in deltas:
                if s in triggered:
                    self._reject(out, s, m, d, 0.0, f"executor halted: {self.state_reason}")
                    if self.killed:  # a kill forgets targets: after resume, strategies ask again
                        st.target = None
            return
        bbo = self.bbo.get(market)
        if bbo is None:
            for s, _, d in deltas:
                if s in triggered:
                    self._reject(out, s, m, d, 0.0, f"no market data (BBO) for {market} yet")
            return
        bid, ask = bbo
        remaining = self._cross_internally(m, deltas, (bid + ask) / 2.0, out)
        if not remaining:
            self._held.pop(market, None)
            return
        self._send_net(m, remaining, bid, ask, out, report_clips)

    def _cross_internally(self, m: MarketInfo, deltas: list[tuple[str, _Strat, int]], mid: float,
                          out: _Out) -> list[tuple[str, _Strat, int]]:
        """Cross opposite deltas (signed lots, in intent-arrival order) at ``mid`` USD, FIFO on
        both sides: an internal ``Fill`` (no fee, no venue order) and a ``PositionSnapshot`` per
        crossed strategy. Returns the deltas left for the venue (one direction only)."""
        market = m.symbol
        buy_total = sum(d for _, _, d in deltas if d > 0)
        sell_total = -sum(d for _, _, d in deltas if d < 0)
        cross = min(buy_total, sell_total)
        remaining: list[tuple[str, _Strat, int]] = []
        if cross > 0:
            left = {1: cross, -1: cross}
            crossed: list[tuple[str, int]] = []
            for s, st, d in deltas:
                sg = 1 if d > 0 else -1
                take = min(abs(d), left[sg])
                left[sg] -= take
                if take:
                    crossed.append((s, sg * take))
                if abs(d) - take:
                    remaining.append((s, st, sg * (abs(d) - take)))
            for s, q in crossed:
                size = m.int_to_size(abs(q))
                self._apply(self._strat(s, market), (1 if q > 0 else -1) * size, mid)
                out.add(Fill, fill_id=derive_id("internal", out.cause.id if out.cause else out.key, market, s),
                        strategy=s, market=market, side="buy" if q > 0 else "sell", price=mid, size=size,
                        fee=0.0, liquidity="internal", client_order_index=0, venue_trade_id="",
                        reason=self._strat(s, market).reason)
                self._snapshot(out, s, market)
        else:
            remaining = deltas
        return remaining

    def _clip_net(self, m: MarketInfo, side: Side, lots: int, touch: float) -> tuple[int, bool, str, float]:
        """The risk gate of a net venue order of ``lots`` on ``side`` at ``touch`` USD: in the
        reducing state only what shrinks the account position (sent reduce-only); otherwise
        clipped so that the inventory, with our resting orders on that side filling as well,
        stays within ``max_position`` and ``max_notional_usd``. Returns ``(lots, reduce_only,
        clip reason or "", inventory)``."""
        market = m.symbol
        sg = 1 if side == "buy" else -1
        exposure = self._inventory(market)
        # worst case: our resting orders on this side fill as well (also those being canceled)
        worst = exposure + sg * self._resting_exposure(market, side)
        reduce_only = False
        clip_reason = ""
        if self.state == "reducing":
            if exposure * sg >= 0:
                lots, clip_reason = 0, f"reducing ({self.state_reason}): only orders that shrink the position"
            else:
                cap = self._lots(m, abs(exposure))
                if lots > cap:
                    lots, clip_reason = cap, f"reducing ({self.state_reason}): order limited to the position"
                reduce_only = True
        cap_units = self.cfg.position_limit(market)
        cap_why = f"max_position {cap_units:g} {market}"
        notional_cap = self.cfg.notional_limit(market) / touch if touch > 0 else 0.0
        if notional_cap < cap_units:
            cap_units, cap_why = notional_cap, f"max_notional_usd {self.cfg.notional_limit(market):g} USD"
        resulting = worst + sg * m.int_to_size(lots)
        if not reduce_only and abs(resulting) > cap_units + EPS and abs(resulting) > abs(exposure):
            room = cap_units - sg * worst  # base units we may still add in this direction
            allowed = max(0, self._lots(m, room)) if room > 0 else 0
            if allowed < lots:
                with_resting = f" (with our resting {side} orders {worst - exposure:+g})" if worst != exposure else ""
                clip_reason = (f"clipped by {cap_why}: account position {exposure:g} {market}{with_resting} "
                               f"+ {sg * m.int_to_size(lots):g} would exceed it")
                lots = allowed
        return lots, reduce_only, clip_reason, exposure

    def _send_net(self, m: MarketInfo, remaining: list[tuple[str, _Strat, int]], bid: float, ask: float,
                  out: _Out, report_clips: bool) -> None:
        """One venue order for the net remainder ``remaining`` (deltas of one direction): risk
        gate (:meth:`_clip_net`), FIFO allocation (clipped parts refused when ``report_clips``),
        limit at the touch +/- the slippage, self-trade guard (held while our crossing resting
        orders are canceled), market minimums (a dust close is sent reduce-only at the minimum),
        then the IOC."""
        market = m.symbol
        net = sum(d for _, _, d in remaining)
        side: Side = "buy" if net > 0 else "sell"
        sg = 1 if net > 0 else -1
        touch = ask if side == "buy" else bid
        lots, reduce_only, clip_reason, exposure = self._clip_net(m, side, abs(net), touch)
        # allocate the (possibly clipped) order FIFO; report the clipped parts
        alloc: list[list[Any]] = []
        budget = lots
        for s, _st, d in remaining:
            take = min(abs(d), budget)
            budget -= take
            if take:
                alloc.append([s, m.int_to_size(take)])
            if abs(d) - take and clip_reason and report_clips:
                self._reject(out, s, m, sg * (abs(d) - take), touch, clip_reason)
        if lots <= 0:
            self._held.pop(market, None)
            return
        slip = min((st.slippage_bps for s, st, _ in remaining if s in {a[0] for a in alloc}),
                   default=self.cfg.default_slippage_bps)
        if side == "buy":
            price = m.price_to_int(ask * (1 + slip / 1e4), "down")
        else:
            price = m.price_to_int(bid * (1 - slip / 1e4), "up")
        # self-trade guard: an IOC is only sent when none of our resting orders (any strategy's,
        # pending, open or being canceled) lies within its limit; crossing ones are canceled
        # first and the IOC waits for the venue's confirmations (re-run from _flush)
        crossing = self._crossing(market, side, price, "quote")
        if crossing:
            for r in crossing:
                if not r.cancel_requested:
                    self._cancel(r, out)
            owners = ",".join(dict.fromkeys(self._owner(r) for r in crossing))
            levels = ",".join(m.price_str(r.price) for r in crossing)
            self._held[market] = (side, price, (
                f"taker {side} IOC of {','.join(a[0] for a in alloc)} at {m.price_str(price)} would cross our "
                f"resting {'sell' if side == 'buy' else 'buy'} order(s) at {levels} ({owners}): canceled first, "
                f"the IOC waits for the confirmations"))
            return
        self._held.pop(market, None)
        why = m.check_amount(m.int_to_size(lots), m.int_to_price(price)) if price > 0 else "no valid price"
        send_lots = lots
        if why and price > 0 and sg * exposure < 0 and lots == abs(self._lots(m, exposure)):
            # Closing the whole account position, which is below the market minimum (dust left by a
            # partial fill). Such an order can never pass the minimum, so send it reduce-only at the
            # minimum size: the venue clamps a reduce-only order to the position, so exactly the
            # dust trades. Only a full close qualifies: a larger reduce-only order would otherwise
            # also close other strategies' share of the position.
            send_lots, reduce_only, why = self._min_lots(m, price), True, None
        if why:
            for s, q in alloc:
                # code 1 (unreachable) when retrying cannot help: the amount, not the price, failed;
                # the order was not clipped by a limit or the reducing state; and nothing of the
                # strategy is in flight here (an IOC ending unfilled would enlarge its remainder).
                # The target stays recorded: a later rebalance (another strategy's delta) may still
                # net it internally.
                unreachable = price > 0 and not clip_reason and abs(self.in_flight(s, market)) < EPS
                self._reject(out, s, m, sg * self._lots(m, q), m.int_to_price(price),
                             f"refused locally (unreachable: below the market minimum): {why}" if unreachable
                             else f"refused locally: {why}", code=1 if unreachable else 0)
            return
        owners = {a[0] for a in alloc}
        self._create(out, m, side, price, lots, "ioc", 0, reduce_only, "taker", alloc, send_lots=send_lots,
                     reasons={s: st.reason for s, st, _ in remaining if s in owners})
