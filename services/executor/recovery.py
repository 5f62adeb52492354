"""The runner's side of fill recovery and of the position check (the engine's are
:mod:`services.executor.fill_recovery` and :mod:`services.executor.position_check`).

- :func:`read_trade_history`: at reconciliation, the account's trades from the venue's REST trade
  history (``GET trades``, auth), newest first, page by page back to the engine's
  :meth:`~services.executor.fill_recovery.FillRecovery.recovery_since_ns` (the newest venue fill
  on the exec stream, else its first order): every trade made while the executor was down,
  also those too old for the account feed's snapshot. At most :data:`MAX_PAGES` pages (Lighter
  counts each read against the account's request budget: 60 a minute on Standard).
- :func:`recover_trades`: hands such trades to ``Engine.on_missed_trade`` (exactly one ``Fill``
  per trade side not seen yet), counts them in ``lighter_stack_executor_recovered_fills_total``
  and logs what was recovered.
- :func:`observe_mismatch`: a published ``PositionMismatch`` -> the gauge
  ``lighter_stack_executor_position_mismatch{market}``, the counter
  ``..._position_mismatches_total{market}`` and a log line (error while it stands)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from shared.events import Event, PositionMismatch
from shared.venue.reports import VenueTrade

from .metrics import POSITION_MISMATCH, POSITION_MISMATCHES, RECOVERED_FILLS
from .venue import parse_trade

log = logging.getLogger("executor")

PAGE = 100
"""Trades per ``GET trades`` page (Lighter's maximum)."""
MAX_PAGES = 10
"""Pages read back at most (1,000 trades); a longer history since the last known fill is logged
and the position check shows what may be missing."""


async def read_trade_history(rest: Any, account: int, auth: str, since_ns: int,
                             max_pages: int = MAX_PAGES) -> list[VenueTrade]:
    """The account's trades from ``since_ns`` (venue time, ns) on, oldest first, as typed
    reports: pages of :data:`PAGE` newest first until a page reaches back before ``since_ns``,
    the last page, or ``max_pages`` (then a warning: older trades are not read). The last page
    may hold older trades too (the engine marks what it has seen). Malformed entries are logged
    and skipped.

    Args:
        rest: the venue client (:meth:`~services.executor.venue.LighterRest.account_trades`).
        account: the account index.
        auth: an auth token of the account.
        since_ns: how far back to read (``Engine.recovery_since_ns()``).
        max_pages: at most this many requests.

    Raises:
        RestError: a page could not be read or was malformed (reconciliation fails and is retried).
    """
    trades: list[VenueTrade] = []
    cursor = ""
    for page in range(max_pages):
        rows, cursor = await rest.account_trades(account, auth, PAGE, cursor)
        oldest: int | None = None
        for row in rows:
            t = parse_trade(row.get("market_id", row.get("market_index", -1)), row)
            if t is None:
                log.warning("trade history: skipping malformed trade: %s", str(row)[:200])
                continue
            trades.append(t)
            oldest = t.ts_ns if oldest is None else min(oldest, t.ts_ns)
        if not cursor or not rows or (oldest is not None and oldest < since_ns):
            break
        if page == max_pages - 1:
            log.warning("trade history: %d pages read without reaching the last known fill; older missed trades "
                        "are not recovered (the position check shows a difference if any was ours)", max_pages)
    trades.reverse()  # the venue's newest-first order, reversed
    trades.sort(key=lambda t: t.ts_ns)  # stable: trades of one time keep that order
    return trades


def recover_trades(engine: Any, trades: Sequence[VenueTrade], where: str) -> list[Event]:
    """Feed ``trades`` (oldest first) to ``engine.on_missed_trade``; count and log what was
    recovered (``where``: ``trade history``, ``feed snapshot``). Returns the engine's events.
    Call with the runner's I/O lock held."""
    before = dict(engine.recovered_fills)
    outs: list[Event] = []
    for t in trades:
        outs += engine.on_missed_trade(t)
    got = {k: v - before.get(k, 0) for k, v in engine.recovered_fills.items()}
    for how, n in got.items():
        if n:
            RECOVERED_FILLS.labels(how).inc(n)
    if got["attributed"] or got["unattributed"]:
        log.warning("%s: recovered %d missed fill(s) of our orders and %d of unknown orders (unattributed); "
                    "%d older trade side(s) only marked seen", where, got["attributed"], got["unattributed"],
                    got["seen"])
    return outs


def observe_mismatch(ev: PositionMismatch) -> None:
    """Metrics and log line of a published ``PositionMismatch``."""
    POSITION_MISMATCH.labels(ev.market).set(ev.difference if ev.mismatch else 0.0)
    if ev.mismatch:
        POSITION_MISMATCHES.labels(ev.market).inc()
        log.error("position mismatch: %s", ev.reason)
    else:
        log.warning("position mismatch resolved: %s", ev.reason)
