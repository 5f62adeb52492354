"""Redis outages: what counts as one, how long to wait before trying again, and what a service
says about it meanwhile.

The asyncio Redis client (:func:`shared.redis_util.async_client`) does not retry by itself: a
command that fails because Redis is unreachable raises at once, and the next command opens a new
connection. Each service's loop catches the error (:func:`bus_down`), waits with a capped
exponential backoff (redis-py's :class:`~redis.backoff.ExponentialBackoff`: 0.1 s, 0.2 s, ... 5 s)
and tries again; meanwhile its :class:`BusLink` makes ``/health`` say ``degraded`` with the
reason. When Redis comes back without the service's consumer groups (it restarted without
persistence: ``NOGROUP``, :func:`data_lost`), the consumer re-creates them (see
:class:`shared.service.ConsumerLoop`).

Metrics (label ``service``): ``lighter_stack_bus_up`` (1 reachable, 0 not),
``lighter_stack_bus_outages_total``, ``lighter_stack_bus_outage_seconds_total`` (ended outages),
``lighter_stack_bus_resets_total`` (Redis came back without our consumer groups: its data was
lost).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from prometheus_client import Counter, Gauge
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from shared.metrics import PREFIX

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Errors that mean "Redis is not reachable (or still loading its data) right now": the
#: connection was refused or lost, a command timed out, ``LOADING`` (``BusyLoadingError`` is a
#: ``ConnectionError``) while Redis reads its append-only file.
BUS_DOWN_ERRORS: tuple[type[Exception], ...] = (RedisConnectionError, RedisTimeoutError)

BUS_UP = Gauge(f"{PREFIX}bus_up", "1 while Redis answers this service, 0 during an outage.", ["service"])
BUS_OUTAGES = Counter(f"{PREFIX}bus_outages_total", "Redis outages seen by this service (each retried until it ended).",
                      ["service"])
BUS_OUTAGE_SECONDS = Counter(f"{PREFIX}bus_outage_seconds_total", "Wall seconds of the ended Redis outages.",
                             ["service"])
BUS_RESETS = Counter(f"{PREFIX}bus_resets_total", "Times Redis came back without this service's consumer groups "
                     "(restarted without persistence: streams and groups lost; groups re-created).", ["service"])


def bus_down(exc: BaseException) -> bool:
    """True when ``exc`` means Redis is unreachable or loading (:data:`BUS_DOWN_ERRORS`)."""
    return isinstance(exc, BUS_DOWN_ERRORS)


def data_lost(exc: BaseException) -> bool:
    """True when ``exc`` is Redis's ``NOGROUP`` answer (the consumer group or the stream does not
    exist): after a restart without persistence every stream and group is gone."""
    return isinstance(exc, ResponseError) and str(exc).startswith("NOGROUP")


class BusLink:
    """What one service knows about its connection to Redis: up, or down since when and why.

    Loops call :meth:`failed` (or :meth:`pause`) when a Redis command failed with a
    :func:`bus_down` error and :meth:`recovered` after one succeeded; ``/health`` bodies go
    through :meth:`health`.

    Args:
        service: the ``service`` label of the metrics and the log lines.
        base_s: first backoff delay (seconds); it doubles after each failure ...
        cap_s: ... up to this (seconds).
    """

    def __init__(self, service: str, base_s: float = 0.1, cap_s: float = 5.0) -> None:
        self.service = service
        self.backoff = ExponentialBackoff(cap=cap_s, base=base_s)
        self.down_since: float | None = None  # time.monotonic() of the first failure of this outage
        self.down_wall: float | None = None  # the same as unix time (for /health)
        self.reason = ""
        self.failures = 0  # failed attempts in this outage
        self.outages = 0
        self.resets = 0
        BUS_UP.labels(service).set(1)

    @property
    def up(self) -> bool:
        """False between a failure and the next success."""
        return self.down_since is None

    def failed(self, exc: BaseException, what: str = "") -> float:
        """Note a failed Redis command (``what`` it was doing) and return how long to wait before
        trying again (seconds). The first failure of an outage is logged at WARNING and counted."""
        self.reason = f"{what + ': ' if what else ''}{type(exc).__name__}: {exc}"
        if self.down_since is None:
            self.down_since = time.monotonic()
            self.down_wall = time.time()
            self.failures = 0
            self.outages += 1
            BUS_OUTAGES.labels(self.service).inc()
            BUS_UP.labels(self.service).set(0)
            log.warning("%s: Redis unreachable (%s); retrying with backoff, health is degraded meanwhile",
                        self.service, self.reason)
        delay = self.backoff.compute(self.failures)
        self.failures += 1
        return delay

    def recovered(self) -> None:
        """Note a successful Redis command: ends the outage (logged with its length) if there was one."""
        if self.down_since is None:
            return
        took = time.monotonic() - self.down_since
        self.down_since = self.down_wall = None
        self.failures = 0
        BUS_UP.labels(self.service).set(1)
        BUS_OUTAGE_SECONDS.labels(self.service).inc(took)
        log.warning("%s: Redis reachable again after %.1fs", self.service, took)

    def reset_seen(self, what: str) -> None:
        """Note that Redis came back without our consumer groups (``what``: where it was seen)."""
        self.resets += 1
        BUS_RESETS.labels(self.service).inc()
        log.warning("%s: Redis lost its data (%s): consumer groups are re-created at the start of the streams",
                    self.service, what)

    async def pause(self, exc: BaseException, what: str = "", stop: asyncio.Event | None = None) -> bool:
        """:meth:`failed`, then sleep the backoff delay (cut short when ``stop`` is set).
        Returns True when ``stop`` is set."""
        delay = self.failed(exc, what)
        if stop is None:
            await asyncio.sleep(delay)
            return False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)
        return stop.is_set()

    async def retry(self, op: Callable[[], Awaitable[T]], what: str, stop: asyncio.Event | None = None,
                    deadline_s: float | None = None) -> T:
        """``await op()`` until it does not fail with a :func:`bus_down` error, backing off in
        between (for operations that are safe to repeat: reads, group creation, publishing
        events consumers drop by id). Other errors propagate.

        Raises:
            redis.exceptions.ConnectionError, redis.exceptions.TimeoutError: the last failure,
                when ``stop`` was set or ``deadline_s`` seconds passed before ``op`` succeeded.
        """
        end = None if deadline_s is None else time.monotonic() + deadline_s
        while True:
            try:
                got = await op()
            except BUS_DOWN_ERRORS as exc:
                if (end is not None and time.monotonic() >= end) or (stop is not None and stop.is_set()):
                    raise
                if await self.pause(exc, what, stop):
                    raise
                continue
            self.recovered()
            return got

    def status(self) -> dict[str, Any]:
        """``{"up", "outages", "resets"}`` plus, during an outage, ``down_since`` (unix s),
        ``down_s`` and ``reason``."""
        out: dict[str, Any] = {"up": self.up, "outages": self.outages, "resets": self.resets}
        if self.down_since is not None:
            out.update(down_since=round(self.down_wall or 0.0, 3), down_s=round(time.monotonic() - self.down_since, 1),
                       reason=self.reason)
        return out

    def health(self, body: dict[str, Any], extra_reason: str = "") -> dict[str, Any]:
        """``body`` (a ``/health`` body) with ``bus`` (:meth:`status`); during an outage, or when
        ``extra_reason`` is given (e.g. events still unpublished), a ``status`` of ``ok`` becomes
        ``degraded`` (HTTP 503) and ``degraded`` says why. Another non-ok status is kept."""
        body = {**body, "bus": self.status()}
        why = [] if self.up else [f"Redis unreachable for {body['bus']['down_s']}s ({self.reason})"]
        if extra_reason:
            why.append(extra_reason)
        if why:
            body["degraded"] = "; ".join(why)
            if body.get("status") == "ok":
                body["status"] = "degraded"
        return body
