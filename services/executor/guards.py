"""Guards: ``max_position``/``max_notional`` block the side that would grow the inventory
(account position plus our IOC orders in flight), the self-trade guard reports a side held for
our own crossing orders; a ``GuardState`` on every change. Also the fast path's mid range within
which no guard state can change (:meth:`Guards._guard_band`).

State: ``guards`` ((guard, market, side) -> engaged), ``guard_engagements``, ``_held``
(market -> taker IOC held by the self-trade guard), ``_limits`` (per-market limits cache),
``_gstate`` (last evaluated states), ``_bands`` (fast-path mid ranges)."""

from __future__ import annotations

from shared.events import Event, GuardState, Side

from .common import EPS, Guard, _Out


class Guards:
    """Guards: a part of :class:`~services.executor.engine.Engine` (a mixin
    working on the engine's state; see the module docstring)."""

    def _init_guards(self) -> None:
        """Set up this part's state (called by the engine's constructor)."""
        self.guards: dict[tuple[str, str, str], bool] = {}  # (guard, market, side) -> engaged
        self.guard_engagements = 0
        self._held: dict[str, tuple[Side, int, str]] = {}  # market -> (IOC side, limit ticks, reason)
        self._limits: dict[str, tuple[float, float, float]] = {}  # market -> (max units, max USD, min base)
        self._gstate: dict[str, tuple[bool, ...]] = {}  # market -> last evaluated guard states
        self._bands: dict[str, tuple[float, float]] = {}  # market -> open mid range of unchanged guard states

    def guard_engaged(self, guard: Guard, market: str, side: Side) -> bool:
        """Whether ``guard`` currently blocks ``side`` in ``market``."""
        return self.guards.get((guard, market, side), False)

    def _set_guard(self, out: _Out, guard: Guard, market: str, side: Side, engaged: bool, position: float,
                   limit: float, reason: str) -> bool:
        """Record a guard's state; emit ``GuardState`` and return True when it changed."""
        key = (guard, market, side)
        if self.guards.get(key, False) == engaged:
            return False
        self.guards[key] = engaged
        if engaged:
            self.guard_engagements += 1
        out.add(GuardState, guard=guard, market=market, side=side, engaged=engaged, position=round(position, 10),
                limit=limit, reason=reason)
        return True

    def _eval_guards(self, market: str, out: _Out | Event, band: bool = False) -> _Out | None:
        """Re-evaluate the guards of ``market`` and publish their changes into ``out`` (an
        event given instead is the cause of a new ``_Out``, made only when something changed;
        returned when made). ``band``: also record the mid range in which the states hold
        (:meth:`_guard_band`, for the fast path of :meth:`on_market_data`).

        ``max_position`` blocks a side when the inventory (account position plus our IOC orders
        in flight) leaves less than the market's minimum order on that side of the limit
        (``max_position - sign * inventory < minimum``, sign +1 for buy); ``max_notional``
        likewise with ``max_notional_usd / mid`` (only once a BBO is known). When a side becomes
        blocked, our resting orders on it in that market are canceled (they could only grow the
        exposure); orders on that side are refused by the risk gate while it lasts.
        ``self_trade`` is engaged on a side while a taker order of that side is held for the
        cancels of our crossing resting orders, or resting orders of that side are held back.
        """
        m = self.markets[market]
        inv = self._inventory(market)
        bbo = self.bbo.get(market)
        mid = (bbo[0] + bbo[1]) / 2.0 if bbo else 0.0
        lim = self._limits.get(market)
        if lim is None:
            lim = self._limits[market] = (self.cfg.position_limit(market), self.cfg.notional_limit(market),
                                          max(m.min_base_amount, 10.0 ** -m.size_decimals))
        cap, nlim, min_base = lim
        min_sz = max(min_base, m.min_quote_amount / mid) if mid > 0 else min_base
        held = self._held.get(market)
        blocked_st = self._blocked
        # fast path: compute the six states; build reasons and events only for those that changed
        now = (cap - inv < min_sz - EPS, cap + inv < min_sz - EPS,
               mid > 0 and nlim / mid - inv < min_sz - EPS, mid > 0 and nlim / mid + inv < min_sz - EPS,
               (held is not None and held[0] == "buy") or (bool(blocked_st) and any(
                   k[1] == market and "buy" in b for k, b in blocked_st.items())),
               (held is not None and held[0] == "sell") or (bool(blocked_st) and any(
                   k[1] == market and "sell" in b for k, b in blocked_st.items())))
        if band:
            rng = self._guard_band(mid, inv, cap, nlim, min_base, m.min_quote_amount)
            if rng is None:
                self._bands.pop(market, None)
            else:
                self._bands[market] = rng
        before = self._gstate.get(market)
        if before == now:
            return None
        self._gstate[market] = now
        if not isinstance(out, _Out):
            out = _Out(out)
        guards = self.guards
        for i, (side, sg) in enumerate((("buy", 1), ("sell", -1))):
            engaged = False
            room = cap - sg * inv
            blocked = now[i]
            if guards.get(("max_position", market, side), False) != blocked:
                engaged = self._set_guard(out, "max_position", market, side, blocked, inv, cap, (
                    f"account position {inv:g} {market} (with IOC orders in flight) leaves {max(room, 0.0):g} "
                    f"below max_position {cap:g}: {side} orders blocked" if blocked
                    else f"account position {inv:g} {market}: {side} room {room:g} under max_position {cap:g}"
                )) and blocked
            if mid > 0:
                room_n = nlim / mid - sg * inv
                blocked_n = now[2 + i]
                if guards.get(("max_notional", market, side), False) != blocked_n:
                    engaged = self._set_guard(out, "max_notional", market, side, blocked_n, inv, nlim, (
                        f"account notional {inv * mid:g} USD in {market} at mid {mid:g} leaves "
                        f"{max(room_n, 0.0):g} {market} below max_notional_usd {nlim:g}: {side} orders blocked"
                        if blocked_n else f"account notional {inv * mid:g} USD in {market}: {side} room "
                                          f"{room_n:g} under max_notional_usd {nlim:g}")) and blocked_n or engaged
            if engaged:
                for r in list(self.orders.values()):
                    if (r.live and r.kind == "quote" and r.market == market and r.side == side
                            and not r.cancel_requested and m.int_to_size(r.size) - r.filled > EPS):
                        self._cancel(r, out)
            st = now[4 + i]
            if guards.get(("self_trade", market, side), False) != st:
                why = "" if not st else held[2] if held is not None and held[0] == side else next(
                    (b[side] for k, b in blocked_st.items() if k[1] == market and side in b), "")
                self._set_guard(out, "self_trade", market, side, st, inv, 0.0,  # type: ignore[arg-type]
                                why or f"no {side} order of ours in {market} waits for the self-trade guard")
        return out

    @staticmethod
    def _guard_band(mid: float, inv: float, cap: float, nlim: float, min_base: float,
                    min_quote: float) -> tuple[float, float] | None:
        """An open range ``(lo, hi)`` of mids (USD) around ``mid`` within which none of the
        ``max_position``/``max_notional`` states of :meth:`_eval_guards` can differ from their
        states at ``mid`` (inventory ``inv`` base units, limits ``cap`` base units and ``nlim``
        USD, minimums ``min_base`` base units and ``min_quote`` USD all unchanged); None when
        ``mid`` is too close to a switch point.

        In ``x = 1/mid`` each state is the sign of a slack that is Lipschitz in ``x``: with
        ``S(x) = max(min_base, min_quote * x)`` (the minimum order), the position slack
        ``S(x) - EPS - (cap -/+ inv)`` with constant ``min_quote``, the notional slack
        ``S(x) - EPS - (nlim * x -/+ inv)`` with ``min_quote + nlim``. A slack of magnitude
        ``|s|`` at ``x0`` keeps its sign for ``|x - x0| < (|s| - margin) / constant``; the
        margin, 1e-9 of the magnitudes involved (floating-point rounding is ~1e-16 of them),
        keeps the float comparisons of :meth:`_eval_guards` equal to the exact ones. The range
        is kept within ``x0 / 2`` of ``x0`` (mids in ``(2/3 mid, 2 mid)``) and narrowed by 0.1%
        for the rounding of ``lo``/``hi``."""
        x0 = 1.0 / mid
        s0 = max(min_base, min_quote * x0)
        s_max = max(min_base, min_quote * 2.0 * x0)  # bound of S over the range
        ainv = abs(inv)
        nx = nlim * x0
        r = 0.5 * x0
        m_pos = 1e-9 * (cap + ainv + s_max + EPS)
        m_not = 1e-9 * (2.0 * nx + ainv + s_max + EPS)
        lip_not = min_quote + nlim
        for sinv in (inv, -inv):
            slack = abs(s0 - EPS - (cap - sinv))
            if not slack > m_pos:
                return None
            if min_quote > 0:
                r = min(r, (slack - m_pos) / min_quote)
            slack = abs(s0 - EPS - (nx - sinv))
            if not slack > m_not:
                return None
            if lip_not > 0:
                r = min(r, (slack - m_not) / lip_not)
        if not r > 1e-9 * x0:
            return None
        r *= 0.999
        return 1.0 / (x0 + r), 1.0 / (x0 - r)
