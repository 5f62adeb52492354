"""The hedger of seed 001 as a pure engine: ``HedgerEngine.on_event(ev) -> [ev]``.

Inputs:

- :class:`~shared.events.Bbo` of the hedged markets: the touch, the mid and the **clock** (every
  wait below is measured in ``ts_event``; nothing reads a wall clock);
- from the account's exec stream, events of every strategy: :class:`~shared.events.Fill` and
  :class:`~shared.events.PositionSnapshot` of the maker (``cfg.maker_strategy``) and of the
  hedger itself (``cfg.strategy``) give the **maker inventory** ``I`` and the **hedge position**
  ``H`` (signed base units; fills are deduplicated by ``fill_id``, a snapshot sets the
  position); the hedger's ``OrderAccepted``/``OrderRejected``/``OrderCanceled`` follow its
  passive order; :class:`~shared.events.GuardState` of the executor feeds the guard emergency.

Outputs (to ``{ns}:intent:{account}``): a one-sided post-only
:class:`~shared.events.QuoteIntent` at the touch (passive hedge), a
:class:`~shared.events.CancelIntent` (pull it) and a :class:`~shared.events.TargetPosition` for
the hedger's own virtual position (cross: the executor sends a marketable IOC limit at most
``max_slippage_bps`` beyond the touch, see ``services/executor/engine.py`` ``_rebalance``).

Rules per market (defaults of :class:`HedgerConfig` in brackets; docs/hedger.md has the seed
comparison):

1. **Exposure** ``E = I + H``. While ``|E| <= trigger_units`` [SOL 0.05], or
   ``|E| · mid <= trigger_notional_usd`` [7 USD], nothing is done and the exposure clock resets.
   The first event with ``|E|`` above the trigger starts it (``over_since``).
2. **Goal** (never past flat, a reduce-only intent): the hedge position the hedger wants is
   ``H* = clamp(sign(I) · target_units − I, between 0 and −I)`` [target 0.02], i.e. the exposure
   goes toward ``sign(I) · target_units`` and the hedge never exceeds the maker inventory nor
   takes its side. ``units = min(|H* − H|, clip)``, ``clip = max_clip_units`` [0.10]
   (× ``emergency_clip_multiplier`` [1.4] in an emergency). A clip below ``min_clip_units`` is
   raised to it when that stays within the goal's bounds, else the hedge is skipped.
3. **Emergency** when the exposure has been over the trigger for ``emergency_after_s`` [10 s]
   or an executor guard (:class:`~shared.events.GuardState` engaged) of the market has been
   engaged that long (since it first engaged, not since its last report). An emergency
   crosses at once with offset ``price_offset_bps + emergency_extra_bps`` [10 + 2 = 12 bps],
   which configuration validation keeps within ``max_slippage_bps`` [12], and cools down only
   ``emergency_cooldown_s`` [0.75 s].
4. **Passive first** (``prefer_passive``) unless in an emergency or the exposure has been over
   the trigger for ``max_exposure_s`` [8 s] (*forced cross*): a post-only quote of ``units`` at
   the touch (a sell at the best ask, a buy at the best bid). After ``passive_wait_s``
   [0.25 s] of event time it is judged: success if ``|E| <= trigger_units`` or ``|E|`` fell by
   ``passive_success_fraction`` [60 %] of the clip since it was placed; otherwise it is
   canceled and, once the executor confirms the cancel (or after ``passive_cancel_timeout_s``
   [2 s] without an answer), the hedger crosses in the same attempt. A passive order the
   executor refused, or the venue canceled, is judged at once.
5. **Cross**: ``TargetPosition(target = H ± units, max_slippage_bps = price_offset_bps)``
   [10 bps, from the touch], ``reference_price`` = mid. It is always within the cap
   ``max_slippage_bps``.
6. **Cooldown**: after every attempt, successful or not, ``cooldown_s`` [6 s] (emergency:
   ``emergency_cooldown_s``) of event time before the next one.
7. **Nothing left standing**: the executor keeps a target standing, so once an attempt ended
   (the cross's IOC and every fill of it the hedger is owed, a pulled quote) and nothing of the
   hedger's is in flight, the target is re-stated as the position
   (``TargetPosition(target = H, reason="hedge:reset")``, a delta of 0 lots: never a trade).
   No attempt starts while an IOC or a pulled quote is in flight; the reset is not an attempt
   (the cooldown runs from the cross). A cross the executor never answers ends after
   ``passive_cancel_timeout_s`` without a reset (its IOC may be held back and sent later; an
   IOC accepted later is followed again). After a restart (:meth:`HedgerEngine.fold` saw the
   hedger's own events) the held target is re-stated once settled. See :meth:`_restate`.
8. **Dry run**: every decision is made, counted and visible in :meth:`HedgerEngine.state`,
   nothing is emitted.

Output ids come from :func:`shared.events.child`; the same inputs give identical outputs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from shared.config import StackConfig
from shared.events import (
    Bbo,
    CancelIntent,
    Event,
    Fill,
    GuardState,
    OrderAccepted,
    OrderCanceled,
    OrderRejected,
    PositionSnapshot,
    QuoteIntent,
    Side,
    TargetPosition,
    child,
)
from shared.markets import MarketInfo
from shared.strategy_base import StrategyEngineBase, TopOfBook, addressed_to, unlisted_info

from .config import SECTION, HedgerConfig, HedgerMarket, load_section

SOURCE = "hedger"
#: an accepted IOC whose end is never reported is given up after this many answer timeouts
ACCEPTED_PATIENCE = 5
EPS = 1e-9
NS = 1_000_000_000

Mode = Literal["passive", "aggressive", "emergency"]

__all__ = ["SOURCE", "HedgerConfig", "HedgerEngine", "MarketState", "make_engine"]


@dataclass(slots=True)
class Passive:
    """The hedger's passive order of one market: ``side``, ``size`` base units, placed at
    ``placed`` ns with the exposure ``start_abs`` base units; ``cancel_sent`` ns once pulled."""

    side: Side
    size: float
    price: float
    placed: int
    start_abs: float
    clip: float
    filled: float = 0.0
    accepted: bool = False
    coi: int = 0
    cancel_sent: int | None = None
    done: bool = False
    deadline: int = 0


@dataclass(slots=True)
class Cross:
    """The hedger's cross in flight in one market: the ``TargetPosition`` sent at ``sent`` ns
    (``target`` signed base units, ``units`` of it to trade on ``side`` from ``start``, the hedge
    position then) and what the executor reported of the IOC it sent for it: ``coi`` (0 until
    known), ``size`` (base units of the whole IOC, possibly shared with other strategies),
    ``owners`` (strategy names, FIFO order of the allocation), the hedger's fills of it
    (``filled``), the unfilled ``remaining`` of its ``OrderCanceled`` (None before), the parts
    refused locally (``rejected``, ``OrderRejected`` with index 0) and ``refused`` (the IOC
    itself refused)."""

    side: Side
    units: float
    target: float
    start: float
    sent: int
    coi: int = 0
    size: float = 0.0
    owners: tuple[str, ...] = ()
    filled: float = 0.0
    remaining: float | None = None
    rejected: float = 0.0
    refused: bool = False


@dataclass(slots=True)
class MarketState(TopOfBook):
    """Everything the hedger knows about one market (positions in signed base units, times ns)."""

    market: str
    limits: HedgerMarket | None  # None: not in the config, derived at the first mid
    bid: float | None = None
    ask: float | None = None
    maker: float = 0.0
    hedge: float = 0.0
    now: int = 0
    over_since: int | None = None
    last_attempt: int | None = None
    last_attempt_emergency: bool = False
    guards: dict[tuple[str, str], int] = field(default_factory=dict)
    passive: Passive | None = None
    pulling: Passive | None = None
    cross: Cross | None = None
    orphan: Cross | None = None
    stated: float | None = None
    attempt_open: bool = False
    restate_after: int | None = None
    resets: int = 0
    reference_mid: float | None = None
    last_side: Side | None = None
    last_slippage_bps: float | None = None
    force_aggressive: bool = False
    emergency: bool = False
    hedges: dict[str, int] = field(default_factory=lambda: {"passive": 0, "aggressive": 0, "emergency": 0})
    skipped_min_clip: int = 0
    fills: int = 0

    @property
    def exposure(self) -> float:
        return _clean(self.maker + self.hedge)


def _clean(x: float) -> float:
    x = round(x, 10)
    return 0.0 if abs(x) < EPS else x


def _sign(x: float) -> float:
    return 0.0 if abs(x) < EPS else math.copysign(1.0, x)


class HedgerEngine(StrategyEngineBase):
    """The hedger (see the module docstring).

    Args:
        cfg: the hedger's configuration (validated: emergency offset within the cap).
        markets: markets hedged; one missing from ``cfg.markets`` gets
            :meth:`HedgerConfig.derived_limits` at its first mid.
        source: ``source`` of the output events.
        seen_fills: how many fill ids to remember for deduplication.
        market_info: metadata (lot, minimums) for those derived limits; a market not in it:
            ``KNOWN_MARKETS``, else guessed from its mid.
    """

    cfg: HedgerConfig

    def __init__(self, cfg: HedgerConfig, markets: list[str], source: str = SOURCE,
                 seen_fills: int = 100_000, market_info: Mapping[str, MarketInfo] | None = None) -> None:
        super().__init__(cfg, markets, source, seen_fills, market_info)
        self._m = {m: MarketState(market=m, limits=cfg.markets.get(m)) for m in self.markets}

    # ------------------------------------------------------------------------------ public API

    def on_event(self, event: Event) -> list[Event]:
        """Consume one event; return the intents it causes (none in dry run)."""
        st = self._m.get(getattr(event, "market", None) or "")
        if st is None:
            return []
        if isinstance(event, Bbo):
            if not (event.bid_px > 0 and event.ask_px > event.bid_px):
                return []
            st.bid, st.ask = event.bid_px, event.ask_px
            if st.limits is None:
                mid = event.mid
                st.limits = self.cfg.derived_limits(mid, unlisted_info(st.market, mid, self.market_info))
        elif isinstance(event, Fill | PositionSnapshot | GuardState):
            if not self._fold(event, st):
                return []
        elif isinstance(event, OrderAccepted | OrderRejected | OrderCanceled):
            if not addressed_to(event, self.name) or not self._order_event(event, st):
                return []
        else:
            return []
        st.now = max(st.now, event.ts_event)
        return self._step(event, st)

    def fold(self, event: Event) -> None:
        """Apply a past exec-stream event without deciding anything: used to restore the
        positions at start. ``Fill``, ``PositionSnapshot`` and ``GuardState`` update positions
        and guards; any event of the hedger's own (its fills, snapshots and order events) also
        marks the target the executor holds for it as unknown, so that it is re-stated as the
        position once nothing of the hedger's is in flight (see :meth:`_restate`)."""
        st = self._m.get(getattr(event, "market", None) or "")
        if st is None:
            return
        if isinstance(event, Fill | PositionSnapshot | GuardState):
            self._fold(event, st)
        if not self.cfg.dry_run and addressed_to(event, self.name):
            st.stated = math.nan

    def position(self, market: str) -> float:
        """The hedger's own position in ``market`` (signed base units)."""
        return self._m[market].hedge

    def adopt_position(self, market: str, position: float, avg_entry_price: float, ts_event: int) -> None:
        """Set the hedger's own position in ``market`` (it follows every snapshot of its own
        anyway; this is the runner's explicit adoption when the fill history is gone)."""
        self._m[market].hedge = _clean(position)

    def maker_inventory(self, market: str) -> float:
        """The maker's inventory in ``market`` (signed base units) as the hedger knows it."""
        return self._m[market].maker

    def exposure(self, market: str) -> float:
        """Maker inventory + hedge position in ``market`` (signed base units)."""
        return self._m[market].exposure

    def state(self, market: str) -> dict[str, Any]:
        """A snapshot of one market (for metrics, logs and tests)."""
        st = self._m[market]
        p = st.passive
        return {
            "maker_inventory": st.maker, "hedge_position": st.hedge, "exposure": st.exposure,
            "mid": st.mid, "over_since": st.over_since, "force_aggressive": st.force_aggressive,
            "emergency": st.emergency, "hedges": dict(st.hedges), "last_slippage_bps": st.last_slippage_bps,
            "passive": None if p is None else {"side": p.side, "size": p.size, "price": p.price,
                                               "placed": p.placed, "canceling": p.cancel_sent is not None},
            "last_attempt": st.last_attempt, "skipped_min_clip": st.skipped_min_clip, "fills": st.fills,
            "cross": None if st.cross is None else {"target": st.cross.target, "sent": st.cross.sent,
                                                    "client_order_index": st.cross.coi},
            "pulling": st.pulling is not None, "stated_target": st.stated, "resets": st.resets,
            "ts": st.now, "dry_run": self.cfg.dry_run,
        }

    # ------------------------------------------------------------------------------ inputs

    def _fold(self, ev: Fill | PositionSnapshot | GuardState, st: MarketState) -> bool:
        """Update positions/guards; True when the event changed what the hedger knows."""
        if isinstance(ev, GuardState):
            key = (ev.guard, ev.side)
            if ev.engaged:
                st.guards.setdefault(key, ev.ts_event)  # since it FIRST engaged (seed overwrote it)
            else:
                st.guards.pop(key, None)
            return True
        who = ev.strategy
        if who not in (self.name, self.cfg.maker_strategy):
            return False
        if isinstance(ev, PositionSnapshot):
            if who == self.name:
                st.hedge = _clean(ev.position)
            else:
                st.maker = _clean(ev.position)
            return True
        if not self._fills.first(ev.fill_id) or ev.size <= 0:
            return False
        signed = ev.size if ev.side == "buy" else -ev.size
        if who == self.name:
            st.hedge = _clean(st.hedge + signed)
            st.fills += 1
            if st.reference_mid:
                # cost of the hedge vs the decision's mid, bps (positive = paid)
                sg = 1.0 if ev.side == "buy" else -1.0
                st.last_slippage_bps = round(sg * (ev.price - st.reference_mid) / st.reference_mid * 1e4, 6)
            for p in (st.passive, st.pulling):
                if p is not None and ev.liquidity == "maker" and ev.side == p.side:
                    p.filled = _clean(p.filled + ev.size)
                    if p.filled + EPS >= p.size:
                        p.done = True
            c = st.cross
            if c is not None and ev.side == c.side and ev.liquidity == "taker" and ev.client_order_index:
                if not c.coi:  # the venue's fill may be reported before the send result
                    c.coi = ev.client_order_index
                if ev.client_order_index == c.coi:
                    c.filled = _clean(c.filled + ev.size)
        else:
            st.maker = _clean(st.maker + signed)
        return True

    def _order_event(self, ev: OrderAccepted | OrderRejected | OrderCanceled, st: MarketState) -> bool:
        """Follow the hedger's orders: the passive quote (being judged, or pulled), the IOC of
        its cross; True when the event says something about them (decide again now)."""
        q = st.pulling
        if q is not None and isinstance(ev, OrderRejected) and ev.client_order_index and not q.accepted:
            # a send failure of the pulled quote, which was never accepted (not the cross's IOC)
            if self._passive_event(ev, q):
                return True
        c = st.cross
        if c is None and isinstance(ev, OrderAccepted) and ev.time_in_force == "ioc":
            # an IOC for the hedger while no cross is followed: the IOC of a cross that ended
            # unanswered (held by the executor's self-trade guard, sent later), or one the executor
            # sent on its own (flatten, a retried rebalance). Follow it: no re-statement while it
            # lives (that would trade against it), one after it ended.
            o = st.orphan
            c = st.cross = o if o is not None and o.side == ev.side else Cross(
                side=ev.side, units=ev.size, target=math.nan, start=st.hedge, sent=st.now)
            st.orphan, st.attempt_open = None, st.stated is not None
        if c is not None and self._cross_event(ev, c):
            return True
        if q is not None and self._passive_event(ev, q):
            return True
        p = st.passive
        return p is not None and self._passive_event(ev, p)

    @staticmethod
    def _cross_event(ev: OrderAccepted | OrderRejected | OrderCanceled, c: Cross) -> bool:
        """Follow the IOC the executor sent for the cross ``c``; True when ``ev`` concerns it."""
        coi = ev.client_order_index
        if isinstance(ev, OrderAccepted):
            if ev.time_in_force != "ioc" or ev.side != c.side or c.size or (c.coi and coi != c.coi):
                return False
            c.coi, c.size, c.owners = coi, ev.size, tuple(ev.strategy.split(","))
            return True
        if isinstance(ev, OrderRejected):
            if ev.side != c.side:
                return False
            if coi == 0:  # refused or clipped locally, in the step that netted the target
                if c.coi:
                    return False
                c.rejected = _clean(c.rejected + ev.size)
                return True
            if c.coi and coi != c.coi:
                return False
            c.coi, c.refused = coi, True  # the IOC itself was refused by the venue
            return True
        if c.coi and coi == c.coi:
            c.remaining = ev.remaining  # OrderCanceled: the IOC ended with this much unfilled
            return True
        return False

    @staticmethod
    def _passive_event(ev: OrderAccepted | OrderRejected | OrderCanceled, p: Passive) -> bool:
        """Follow a passive quote; True when it ended (judge it now)."""
        if isinstance(ev, OrderAccepted):
            if ev.time_in_force == "post_only" and ev.side == p.side and not p.accepted:
                p.accepted, p.coi = True, ev.client_order_index
            return False
        if isinstance(ev, OrderRejected):
            # refused at placement (locally: index 0) before it was accepted
            if ev.side != p.side or p.accepted:
                return False
        elif not p.accepted or ev.client_order_index != p.coi:
            return False  # e.g. the end of an earlier IOC cross
        p.done = True
        return True

    # ------------------------------------------------------------------------------ decisions

    def _step(self, cause: Event, st: MarketState) -> list[Event]:
        cfg, lim, now = self.cfg, st.limits, st.now
        if lim is None:
            return []  # a market not in the config before its first mid: nothing to decide on
        e = st.exposure
        mid = st.mid
        over = abs(e) > lim.trigger_units + EPS and (
            mid is None or cfg.trigger_notional_usd <= 0 or abs(e) * mid > cfg.trigger_notional_usd)
        if over and st.over_since is None:
            st.over_since = now
        elif not over:
            st.over_since = None
        age = now - st.over_since if st.over_since is not None else -1
        guard_age = now - min(st.guards.values()) if st.guards else -1
        emergency_ns = int(round(cfg.emergency_after_s * NS))
        st.emergency = over and (age >= emergency_ns or guard_age >= emergency_ns)
        st.force_aggressive = over and (st.emergency or age >= int(round(cfg.max_exposure_s * NS)))

        if st.stated is not None and math.isnan(st.stated) and st.restate_after is None:
            # after a restart: settle for one answer timeout before re-stating (see _restate)
            st.restate_after = now + int(round(cfg.passive_cancel_timeout_s * NS))
        out: list[Event] = []
        p = st.passive
        if p is not None:
            out = self._judge_passive(cause, st, p, over)
            if st.passive is None and st.cross is None:
                out += self._settle(cause, st, len(out))[1]
            return out
        idle, out = self._settle(cause, st, 0)
        if not idle or out:
            return out  # an order in flight, or the target was just re-stated: decide later
        if not over or mid is None or st.bid is None or st.ask is None:
            return out
        cool = cfg.emergency_cooldown_s if (st.emergency or st.last_attempt_emergency) else cfg.cooldown_s
        if st.last_attempt is not None and now - st.last_attempt < int(round(cool * NS)):
            return out
        units, side = self._units(st)
        if units <= 0:
            return out
        if cfg.prefer_passive and not st.force_aggressive:
            return self._place_passive(cause, st, side, units)
        return self._cross(cause, st, side, units, 0)

    def _units(self, st: MarketState) -> tuple[float, Side]:
        """The next hedge: ``(units, side)``; units 0 when nothing tradable moves toward the goal."""
        lim = st.limits
        inv = st.maker
        s = _sign(inv)
        lo, hi = min(0.0, -inv), max(0.0, -inv)
        goal = min(max(s * lim.target_units - inv, lo), hi)
        delta = _clean(goal - st.hedge)
        side: Side = "buy" if delta > 0 else "sell"
        if delta == 0.0:
            return 0.0, side
        clip = lim.max_clip_units * (self.cfg.emergency_clip_multiplier if st.emergency else 1.0)
        units = min(abs(delta), clip)
        if units + EPS < lim.min_clip_units:
            # room toward the far bound of the goal interval, in the trade's direction
            room = (hi - st.hedge) if delta > 0 else (st.hedge - lo)
            if lim.min_clip_units <= room + EPS:
                units = lim.min_clip_units
            else:
                st.skipped_min_clip += 1
                return 0.0, side
        return _clean(units), side

    def _place_passive(self, cause: Event, st: MarketState, side: Side, units: float) -> list[Event]:
        assert st.bid is not None and st.ask is not None
        price = st.ask if side == "sell" else st.bid
        st.passive = Passive(side=side, size=units, price=price, placed=st.now, start_abs=abs(st.exposure),
                             clip=units)
        st.reference_mid = st.mid
        st.hedges["passive"] += 1
        st.attempt_open = True
        if self.cfg.dry_run:
            st.passive = None
            self._attempted(st, False)
            return []
        q = QuoteIntent(**child(cause, self.source, 0), strategy=self.name, market=st.market,
                        bid_px=price if side == "buy" else None, bid_sz=units if side == "buy" else 0.0,
                        ask_px=price if side == "sell" else None, ask_sz=units if side == "sell" else 0.0,
                        post_only=True)
        return [q]

    def _judge_passive(self, cause: Event, st: MarketState, p: Passive, over: bool) -> list[Event]:
        cfg, now = self.cfg, st.now
        success = (not over) or (p.start_abs - abs(st.exposure) + EPS >= cfg.passive_success_fraction * p.clip)
        waited = now - p.placed >= int(round(cfg.passive_wait_s * NS))
        if p.cancel_sent is None and not p.done:
            if not (success or waited or st.emergency):
                return []
            p.cancel_sent = now
            pull = CancelIntent(**child(cause, self.source, 0), strategy=self.name, market=st.market,
                                reason="hedge: passive " + ("done" if success else "timed out"))
            if success:  # pull the rest: a resting hedge must not over-hedge later
                st.passive = None
                self._pull(st, p)
                self._attempted(st, False)
            # else wait for the executor to confirm the cancel before crossing (no double hedge)
            return [pull]
        if not p.done and now - (p.cancel_sent or now) < int(round(cfg.passive_cancel_timeout_s * NS)):
            return []
        st.passive = None  # ended (filled, refused, canceled) or the cancel went unanswered
        if not p.done:
            self._pull(st, p)
        if success:
            self._attempted(st, False)
            return []
        units, side = self._units(st)
        if units <= 0 or st.mid is None:
            self._attempted(st, False)
            return []
        return self._cross(cause, st, side, units, 0)

    def _cross(self, cause: Event, st: MarketState, side: Side, units: float, k: int) -> list[Event]:
        cfg = self.cfg
        mode: Mode = "emergency" if st.emergency else "aggressive"
        offset = cfg.emergency_offset_bps if st.emergency else cfg.price_offset_bps
        # validation guarantees it; kept as an invariant so a cross is never sent beyond the cap
        assert offset <= cfg.max_slippage_bps + EPS
        st.hedges[mode] += 1
        st.reference_mid = st.mid
        st.last_side = side
        self._attempted(st, st.emergency)
        if cfg.dry_run:
            return []
        target = _clean(st.hedge + (units if side == "buy" else -units))
        st.cross = Cross(side=side, units=units, target=target, start=st.hedge, sent=st.now)
        st.orphan = None
        st.stated, st.restate_after, st.attempt_open = target, None, True
        return [TargetPosition(**child(cause, self.source, k), strategy=self.name, market=st.market,
                               target=target, max_slippage_bps=offset, reference_price=st.mid or 0.0,
                               reason=f"hedge:{mode}")]

    def _pull(self, st: MarketState, p: Passive) -> None:
        """Keep following a passive quote that was pulled but has not ended yet (it may still
        fill) until its cancel is confirmed, it fills, or ``passive_cancel_timeout_s`` passes."""
        p.deadline = st.now + int(round(self.cfg.passive_cancel_timeout_s * NS))
        st.pulling = p

    def _cross_ended(self, st: MarketState, c: Cross) -> bool:
        """Whether the executor is done with the cross ``c``: nothing of it is in flight and
        every fill of its IOC that is the hedger's has been seen.

        Ended when the hedge position reached the target (IOC and internal fills); the IOC was
        refused; the IOC's fills attributed to the hedger add up to its share of the IOC (whole
        fill: no ``OrderCanceled``) or to its share of the filled part ``size - remaining`` after
        the ``OrderCanceled`` (fills can be reported after the cancel); nothing reached the
        venue (the parts refused locally plus the position moved cover ``units``). The share of
        an IOC the executor sent for the hedger alone is the whole IOC; in an IOC shared with
        other strategies (``owners`` in FIFO order, executor ``_attribute``) it is estimated
        from ``units`` (exact when the hedger is first). Without any such report the cross ends
        after ``passive_cancel_timeout_s``, or ``ACCEPTED_PATIENCE`` times that once the IOC was
        accepted (a lost report: re-stating while the IOC lives would trade against it).
        """
        if c.refused or _clean(c.target - st.hedge) == 0.0:
            return True
        sg = 1.0 if c.side == "buy" else -1.0
        moved = _clean(sg * (st.hedge - c.start))  # traded toward the target since the cross
        timeout = int(round(self.cfg.passive_cancel_timeout_s * NS))
        if c.coi and c.size > 0:
            internal = max(0.0, moved - c.filled)  # crossed internally at the mid
            share = c.size if c.owners == (self.name,) else min(c.size, max(0.0, c.units - c.rejected - internal))
            if c.remaining is None:
                expected = share
            else:
                done = max(0.0, c.size - c.remaining)
                if c.owners and c.owners[0] == self.name:
                    expected = min(share, done)
                else:  # the others' allocations come first: the hedger's part is what is left
                    expected = max(0.0, done - (c.size - share))
            if c.filled + EPS >= expected:
                return True
            timeout *= ACCEPTED_PATIENCE
        elif not c.coi and c.rejected > 0 and c.rejected + moved + EPS >= c.units:
            return True
        if st.now - c.sent < timeout:
            return False
        if not c.coi:
            # unanswered: nothing may have been sent yet (e.g. an IOC the executor holds back until
            # our crossing quotes are canceled) -- re-stating now could meet that IOC in flight.
            # The attempt ends without a re-statement; an IOC accepted later is followed again.
            st.orphan, st.attempt_open = c, False
        return True

    def _settle(self, cause: Event, st: MarketState, k: int) -> tuple[bool, list[Event]]:
        """End the cross and the pulled quote the executor is done with; once nothing of the
        hedger's is in flight (idle), re-state its target if needed. Returns ``(idle, events)``;
        output ids start at ``k``."""
        c = st.cross
        if c is not None:
            if not self._cross_ended(st, c):
                return False, []
            st.cross = None
        q = st.pulling
        if q is not None:
            if not (q.done or st.now >= q.deadline):
                return False, []
            st.pulling = None
        return True, self._restate(cause, st, k)

    def _restate(self, cause: Event, st: MarketState, k: int) -> list[Event]:
        """``TargetPosition(target = hedge position)`` when the target the executor holds for
        the hedger differs from its position (called only when nothing of the hedger's is in
        flight).

        The executor keeps a strategy's last target standing: the part of a cross its IOC did not
        fill, or a passive fill since the last cross, would otherwise be traded by the next
        rebalance of the market that any other strategy's target triggers, at that moment's
        price. With the position as target the executor's delta ``target - position - in
        flight`` is 0 lots (the position is exactly the fills the executor reported, and no IOC
        of the hedger lives), so this intent never trades itself. After a restart the held
        target is unknown (:meth:`fold`): it is re-stated once ``passive_cancel_timeout_s``
        after the first event, when idle. Not in dry run; not when no target was ever sent.
        """
        if self.cfg.dry_run or st.stated is None:
            return []
        if math.isnan(st.stated):
            if st.restate_after is None or st.now < st.restate_after:
                return []
        elif not st.attempt_open:
            return []  # only at the end of the hedger's own attempt: not on others' fills (flatten)
        else:
            st.attempt_open = False
            if _clean(st.stated - st.hedge) == 0.0:
                return []
        st.stated, st.restate_after, st.attempt_open = st.hedge, None, False
        st.resets += 1
        return [TargetPosition(**child(cause, self.source, k), strategy=self.name, market=st.market,
                               target=st.hedge, max_slippage_bps=self.cfg.price_offset_bps,
                               reference_price=st.mid or 0.0, reason="hedge:reset")]

    def _attempted(self, st: MarketState, emergency: bool) -> None:
        st.last_attempt = st.now
        st.last_attempt_emergency = emergency


def make_engine(cfg: StackConfig, source: str = SOURCE,
                market_info: Mapping[str, MarketInfo] | None = None) -> HedgerEngine:
    """The engine as the service builds it from the stack config (used by backtests):
    section ``services.hedger``.

    Raises:
        ConfigError: an invalid field (e.g. ``services.hedger.emergency_extra_bps`` when the
            emergency cross would exceed ``max_slippage_bps``) or no market.
    """
    hcfg = load_section(cfg)
    return HedgerEngine(hcfg, hcfg.resolve_markets(cfg.markets), source=source, market_info=market_info)


__all__ += ["SECTION"]
