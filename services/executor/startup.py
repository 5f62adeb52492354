"""Start-up pieces of the executor runner: the summary of what it will trade with (logged and
served on ``/health``), the strict check of the active orders reconciliation lists, the
adoption of the protective stops a previous run left on the venue, and the backwards read of the
intent stream for the standing wishes."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from shared.bus import EVENT_FIELD
from shared.config import StackConfig
from shared.events import (
    CancelIntent,
    DecodeError,
    Event,
    QuoteIntent,
    RestingOrders,
    StopLossIntent,
    TargetPosition,
    decode,
)
from shared.lighter_rest import RestError

from .config import NO_POSITION_LIMIT, ExecutorConfig
from .engine import Engine
from .venue import parse_stop_order

log = logging.getLogger("executor")


def startup_summary(cfg: StackConfig, ecfg: ExecutorConfig, engine: Engine | None) -> dict[str, Any]:
    """What the executor will trade with: mode, account index, API key index, venue URL,
    markets (symbol -> Lighter market index once loaded, else None), limits per market
    (``max_position`` in base units, None = no unit cap; ``max_notional_usd`` in USD), the
    request budget (tier, weight units per rolling minute, weight of one send, reserve share,
    transactions per batch), the start/shutdown cancels, protective stops and the dead-man
    switch (s). Never the key."""
    symbols = sorted(engine.markets) if engine is not None else list(cfg.markets)
    return {
        "mode": cfg.mode, "account_index": cfg.account_index, "api_key_index": cfg.api_key_index,
        "venue": cfg.venue.rest_url,
        "markets": {s: engine.markets[s].market_id if engine is not None else None for s in symbols},
        "limits": {s: {"max_position": None if ecfg.position_limit(s) >= NO_POSITION_LIMIT else ecfg.position_limit(s),
                       "max_notional_usd": ecfg.notional_limit(s)} for s in symbols},
        "rate_budget": {"tier": ecfg.tier, "per_minute": ecfg.budget_per_minute(), "send_weight": ecfg.send_weight(),
                        "reserve": ecfg.budget_reserve, "batch_max_txs": ecfg.batch_max_txs},
        "cancel_on_start": ecfg.cancel_on_start, "cancel_on_shutdown": ecfg.cancel_on_shutdown,
        "cancel_scope": ecfg.cancel_scope,
        "protective_stop": ecfg.protective_stop.model_dump() if ecfg.protective_stop.enabled else {"enabled": False},
        "dead_man_switch_s": ecfg.dead_man_switch_s,
    }


def check_active_orders(listed: dict[int, list[dict[str, Any]]]) -> None:
    """The active orders reconciliation listed (market id -> Lighter Order objects) must each
    carry a readable ``order_index`` (Lighter always sends one): a malformed list is never
    read as fewer orders.

    Raises:
        RestError: an entry without a readable non-negative ``order_index``.
    """
    for mid, orders in listed.items():
        for o in orders:
            try:
                ok = int(o["order_index"]) >= 0
            except (KeyError, TypeError, ValueError):
                ok = False
            if not ok:
                raise RestError(f"accountActiveOrders (market {mid}): malformed order {str(o)[:200]}")


def adopt_protective_stops(engine: Engine, ecfg: ExecutorConfig, listed: dict[int, list[dict[str, Any]]]) -> set[int]:
    """With ``protective_stop`` on: hand the venue's active stop orders (``listed``: market id ->
    Lighter Order objects) that are protective stops of ours (known from the exec stream) to
    ``Engine.adopt_protective_stop``, so they are kept (not canceled by ``cancel_scope: own``, no
    duplicate placed). Nothing is adopted when the start-up cancel is an account-wide cancel-all
    (``cancel_on_start`` with ``cancel_scope: all``): it cancels them. Returns the adopted client
    order indices."""
    if not ecfg.protective_stop.enabled or (ecfg.cancel_on_start and ecfg.cancel_scope == "all"):
        return set()
    adopted: set[int] = set()
    for mid, orders in listed.items():
        for o in orders:
            stop = parse_stop_order(mid, o)
            if stop is None:
                continue
            owner = engine.protective_coi(stop.client_order_index)
            if owner is None:
                continue
            side = "sell" if stop.side == "sell" else "buy"
            if engine.adopt_protective_stop(mid, stop.client_order_index, stop.order_index, side, stop.remaining,
                                            stop.trigger_price):
                adopted.add(stop.client_order_index)
                log.info("reconcile: protective stop %d of %s (%s %g, trigger %g) kept", stop.client_order_index,
                         owner, side, stop.remaining, stop.trigger_price)
    return adopted


async def latest_intent_entries(redis: Any, stream: str, max_intent_age_ms: int, chunk: int = 1000,
                                max_entries: int = 200_000, accept: Callable[[Event], bool] | None = None
                                ) -> list[tuple[tuple[int, int], Event]]:
    """The intent stream's wishes that may still stand, oldest first, as ``((ms, seq) of the
    entry id, event)``: read backwards (XREVRANGE, ``chunk`` entries per call) back to
    ``max_intent_age_ms`` before the newest intent's ``ts_event`` (the whole stream when it is
    0), at most ``max_entries`` entries. Only ``TargetPosition``, ``QuoteIntent``,
    ``RestingOrders``, ``StopLossIntent`` and ``CancelIntent``; undecodable entries and those
    ``accept`` refuses (the executor's input screening) are skipped (the consumer dead-letters
    them), so a hostile entry neither comes back nor moves the window."""
    age_ns = max_intent_age_ms * 1_000_000
    newest: int | None = None
    out: list[tuple[tuple[int, int], Event]] = []
    top, read = "+", 0
    while read < max_entries:
        batch = await redis.xrevrange(stream, max=top, min="-", count=chunk)
        if not batch:
            break
        read += len(batch)
        done = False
        for eid, fields in batch:
            raw = fields.get(EVENT_FIELD)
            try:
                ev = decode(raw) if raw is not None else None
            except DecodeError:
                ev = None
            if not isinstance(ev, TargetPosition | QuoteIntent | RestingOrders | StopLossIntent | CancelIntent):
                continue
            if accept is not None and not accept(ev):
                continue
            if newest is None:
                newest = ev.ts_event
            if age_ns and ev.ts_event < newest - age_ns:
                done = True
                break
            key = eid.decode() if isinstance(eid, bytes) else str(eid)
            ms, seq = (int(x) for x in key.split("-"))
            out.append(((ms, seq), ev))
        if done or len(batch) < chunk:
            break
        last = batch[-1][0].decode() if isinstance(batch[-1][0], bytes) else batch[-1][0]
        ms, seq = (int(x) for x in last.split("-"))
        if ms == 0 and seq == 0:
            break
        top = f"{ms}-{seq - 1}" if seq > 0 else f"{ms - 1}-18446744073709551615"
    out.reverse()
    return out
