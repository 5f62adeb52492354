"""The dead-man switch (``services.executor.dead_man_switch_s``, off by default): while the
executor is alive and reconciled it keeps a **scheduled cancel-all** on the venue (Lighter
CancelAllOrders, tx 16, TimeInForce SCHEDULED = 1, Time = now + ``dead_man_switch_s`` in ms; a
newer one replaces the older), refreshed every quarter of that time, and aborts it on a clean
shutdown (TimeInForce ABORT = 2). If the executor dies, the venue cancels every order of the
account at that time -- resting quotes, strategies' stop-losses **and the protective stops**
(``docs/runbook.md``, dead-man switch). Lighter accepts times now + 5 min .. 15 days
(``lighter-api.md`` 6.3; the config refuses others)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from .common import OrderCommand
from .config import DEAD_MAN_MAX_S, DEAD_MAN_MIN_S
from .metrics import DEAD_MAN_FAILURES, DEAD_MAN_UNTIL
from .venue import SendResult

log = logging.getLogger("executor")

TRANSIT_MARGIN_MS = 30_000
"""Lighter checks ``Time`` against its own clock when the tx arrives (now + 5 min .. 15 days):
the time sent is kept this far inside that window, so that signing, sending and a clock skew of
up to 30 s do not push a ``dead_man_switch_s`` at either bound out of it (21714)."""


class DeadManSwitch:
    """Keeps the scheduled cancel-all armed (wall time).

    Args:
        seconds: ``dead_man_switch_s`` (> 0 to run).
        send: ``await send(cmd)`` signs and sends one command, never raises (the runner's
            ``_send_direct``: charged to the engine's budget).
        ready: whether the executor is reconciled (nothing is armed before).
        retry_s: wait after a failed refresh (s; at most the refresh period).
    """

    def __init__(self, seconds: float, send: Callable[[OrderCommand], Awaitable[SendResult]],
                 ready: Callable[[], bool], retry_s: float = 5.0) -> None:
        self.seconds = seconds
        self.send = send
        self.ready = ready
        self.retry_s = retry_s
        self.armed_until_ms = 0
        self.refreshes = 0
        self.failures = 0
        self.last_error = ""

    def status(self) -> dict[str, Any]:
        """For ``/health``: enabled, seconds, ``armed_until_ms`` (0 = none armed), refreshes,
        failures, last error."""
        return {"enabled": self.seconds > 0, "seconds": self.seconds, "armed_until_ms": self.armed_until_ms,
                "refreshes": self.refreshes, "failures": self.failures, "last_error": self.last_error}

    async def run(self, stop: asyncio.Event) -> None:
        """Until ``stop``: once :attr:`ready`, :meth:`arm` every ``seconds / 4`` (after a
        failure every ``min(seconds / 4, retry_s)``)."""
        period = self.seconds / 4.0
        while not stop.is_set():
            wait = min(1.0, period)
            if self.ready():
                wait = period if await self.arm() else min(period, self.retry_s)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)

    async def arm(self) -> bool:
        """Send one scheduled cancel-all ``seconds`` ahead of the wall clock. Returns whether
        the venue took it (a failure is logged and counted; the previous one stays armed).
        The delay is kept :data:`TRANSIT_MARGIN_MS` inside Lighter's window."""
        delay_ms = min(max(int(self.seconds * 1000), DEAD_MAN_MIN_S * 1000 + TRANSIT_MARGIN_MS),
                       DEAD_MAN_MAX_S * 1000 - TRANSIT_MARGIN_MS)
        until = int(time.time() * 1000) + delay_ms
        res = await self.send(OrderCommand(kind="cancel_all", cancel_all_tif="scheduled", cancel_all_time_ms=until,
                                           cause_id="dead-man-switch", ts_event=time.time_ns()))
        if res.ok:
            self.armed_until_ms, self.last_error = until, ""
            self.refreshes += 1
            DEAD_MAN_UNTIL.set(until / 1000)
            return True
        self.failures += 1
        self.last_error = f"{res.code} {res.message}"[:200]
        DEAD_MAN_FAILURES.inc()
        log.warning("dead-man switch refresh failed: %s %s (the previous one, if any, stays armed until %d ms)",
                    res.code, res.message, self.armed_until_ms)
        return False

    async def abort(self) -> bool:
        """Abort the scheduled cancel-all (clean shutdown). Returns whether the venue took it
        (on a failure the venue cancels every order of the account at :attr:`armed_until_ms`)."""
        res = await self.send(OrderCommand(kind="cancel_all", cancel_all_tif="abort", cause_id="dead-man-switch",
                                           ts_event=time.time_ns()))
        if res.ok:
            self.armed_until_ms = 0
            DEAD_MAN_UNTIL.set(0)
            log.info("dead-man switch aborted")
            return True
        self.failures += 1
        self.last_error = f"{res.code} {res.message}"[:200]
        DEAD_MAN_FAILURES.inc()
        log.warning("aborting the dead-man switch failed: %s %s; the venue cancels every order of the account at "
                    "%d ms", res.code, res.message, self.armed_until_ms)
        return False
