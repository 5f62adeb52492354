"""The executor runner's reads of its orders on the venue (a part of
:class:`~services.executor.runner.ExecutorService`): the cancels of our resting orders at start
and shutdown, and the stale-order check.

Stale orders: every ``order_check_s`` (wall time) the runner takes ``Engine.stale_orders()``
(IOCs in flight and unconfirmed cancels older than ``order_stale_s`` of event time), asks the
venue about them per market (``accountActiveOrders``, then ``accountInactiveOrders`` for the ones
not active; auth) and reports back: a listed order through ``Engine.on_venue_order`` (the WS
path), an active order with a lost cancel through ``Engine.on_order_still_open`` (cancel sent
again), an order the venue does not know through ``Engine.on_order_unknown`` (finished unfilled).
Counted in ``..._stale_orders_resolved_total{how}``. The same loop runs the engine's position
check (``Engine.check_positions``) for markets it skipped while an IOC was in flight.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from shared.config import StackConfig
from shared.events import Event
from shared.lighter_rest import RestError
from shared.venue.errors import VenueError

from .config import ExecutorConfig
from .engine import Engine, OrderCommand, StaleOrder
from .metrics import STALE_RESOLVED
from .nonces import NonceError
from .signer import SignError
from .venue import LighterRest, SendResult, parse_order

log = logging.getLogger("executor")


class VenueOrderChecks:
    """Start-up/shutdown cancels and the stale-order check of the executor runner (state and
    I/O owned by ``ExecutorService``)."""

    # provided by ExecutorService
    cfg: StackConfig
    ecfg: ExecutorConfig
    engine: Engine | None
    rest: LighterRest
    io_lock: asyncio.Lock
    own_cois: set[int]

    _sleep: Callable[[float], Awaitable[bool]]
    _auth_token: Callable[[], str]
    _execute: Callable[[Sequence[OrderCommand]], Awaitable[list[SendResult]]]
    _publish: Callable[[Sequence[Event]], Awaitable[None]]

    async def _cancel_all_resting(self, scope: str | None = None,
                                  listed: dict[int, list[dict[str, Any]]] | None = None) -> None:
        """Cancel the resting orders of ``scope`` (default ``cancel_scope``; start and shutdown):
        ``all`` -> one account-wide cancel-all (tx 16), as a live ``kill`` sends, and so a kill in
        force at start; ``own`` and ``none`` -> the account's active orders whose client order
        index is ours (:meth:`_own_order_cancels`), one cancel tx (15) each; other bots' orders
        on the account stay. ``listed``: the active orders per market id just read (start-up),
        else they are read now.

        Raises:
            VenueError: the venue refused a cancel, or listing the active orders failed.
        """
        engine = self.engine
        assert engine is not None
        if (scope or self.ecfg.cancel_scope) == "all":
            res = await self._execute([engine.cancel_all_command(time.time_ns())])
            if not res[0].ok:
                raise RestError(f"cancel-all failed: {res[0].code} {res[0].message}")
            return
        cmds, others = await self._own_order_cancels(listed)
        log.info("canceling %d resting order(s) of ours; %d other order(s) on the account are left alone",
                 len(cmds), others)
        failed = [r for r in await self._execute(cmds) if not r.ok]
        if failed:
            raise RestError(f"{len(failed)} of {len(cmds)} cancel(s) failed: {failed[0].code} {failed[0].message}")

    async def _own_order_cancels(self, listed: dict[int, list[dict[str, Any]]] | None = None
                                 ) -> tuple[list[OrderCommand], int]:
        """Cancel commands for the account's active orders (``accountActiveOrders`` per market,
        auth) whose client order index is ours: one of an ``OrderAccepted`` on our exec stream
        (folded at start, :attr:`own_cois`) or of a live order of the engine. Returns the
        commands and the number of other active orders (not ours: left alone). ``listed``: the
        active orders per market id when already read."""
        engine = self.engine
        assert engine is not None
        own = self.own_cois | set(engine.orders)
        # protective stops protect the positions, which are kept: they stay (adopted at the next start)
        keep = ({coi for coi, r in engine.orders.items() if r.live and r.protective}
                if self.ecfg.protective_stop.enabled else set())
        now = time.time_ns()
        cmds: list[OrderCommand] = []
        others = 0
        if listed is None:
            token = self._auth_token()
            listed = {m.market_id: await self.rest.active_orders(self.cfg.account_index, m.market_id, token)
                      for m in engine.markets.values()}
        for m in engine.markets.values():
            for o in listed.get(m.market_id, ()):
                rep = parse_order(m.market_id, o)
                if rep is not None and rep.client_order_index in keep:
                    continue
                if rep is not None and rep.client_order_index in own:
                    coi = rep.client_order_index
                    cmds.append(OrderCommand(kind="cancel", market=m.symbol, market_id=m.market_id,
                                             client_order_index=coi, order_index=rep.order_index or coi,
                                             cause_id="cancel_own", ts_event=now))
                else:
                    others += 1
        return cmds, others

    # ------------------------------------------------------------------ stale orders

    async def _check_orders_loop(self) -> None:
        """Every ``order_check_s``: :meth:`_check_stale_orders` (errors are logged, never fatal)."""
        while not await self._sleep(self.ecfg.order_check_s):
            engine = self.engine
            if engine is None or not engine.reconciled:
                continue
            try:
                await self._check_stale_orders()
                async with self.io_lock:  # a market skipped while an IOC was in flight is checked again
                    await self._publish(engine.check_positions())
            except (VenueError, NonceError, SignError, TimeoutError, ConnectionError) as exc:
                log.warning("stale-order check failed: %s", exc)
            except Exception:  # never let the check kill the service
                log.exception("stale-order check error")

    async def _check_stale_orders(self) -> dict[int, str]:
        """Ask the venue about the engine's stale orders and report the answers back (see the
        module docstring); returns ``{client_order_index: how}`` for the resolved ones."""
        engine = self.engine
        assert engine is not None
        async with self.io_lock:
            stale = engine.stale_orders()
        if not stale:
            return {}
        token = self._auth_token()
        acct = self.cfg.account_index
        by_market: dict[int, list[StaleOrder]] = {}
        for s in stale:
            by_market.setdefault(s.market_id, []).append(s)
        found: dict[int, tuple[int, dict[str, Any]]] = {}

        def index(mid: int, orders: list[dict[str, Any]], wanted: list[StaleOrder]) -> None:
            by_oi = {s.order_index: s.client_order_index for s in wanted if s.order_index}
            for o in orders:
                try:
                    coi = int(o.get("client_order_index") or 0) or by_oi.get(int(o.get("order_index") or 0), 0)
                except (TypeError, ValueError):
                    continue
                if coi and coi not in found:
                    found[coi] = (mid, o)

        for mid, items in by_market.items():
            index(mid, await self.rest.active_orders(acct, mid, token), items)
            if any(s.client_order_index not in found for s in items):
                index(mid, await self.rest.inactive_orders(acct, mid, token), items)
        resolved: dict[int, str] = {}
        async with self.io_lock:
            outs: list[Event] = []
            for s in stale:
                coi = s.client_order_index
                hit = found.get(coi)
                if hit is None:
                    got = engine.on_order_unknown(coi, f"not among the account's active or last 100 inactive "
                                                       f"orders in {s.market}")
                    how = "unknown" if got else ""
                else:
                    mid, o = hit
                    rep = parse_order(mid, {**o, "client_order_index": coi})
                    status = rep.status if rep is not None else ""
                    if rep is not None and (status == "filled" or status.startswith(("canceled", "expired"))):
                        live = coi in engine.orders
                        got = engine.on_venue_order(rep)
                        how = ("filled" if status == "filled" else "canceled") if live else ""
                    else:
                        got = []
                        how = "cancel_resent" if engine.on_order_still_open(coi) else ""
                outs += got
                if how:
                    resolved[coi] = how
                    STALE_RESOLVED.labels(how).inc()
                    log.warning("stale %s order %d in %s (%.1fs without a final update): %s", s.why, coi, s.market,
                                s.age_ns / 1e9, how)
            await self._publish(outs)
            cmds = engine.take_commands()
        if cmds:
            await self._execute(cmds)
        return resolved
