"""Leases in Redis: one process at a time acts for a name (a strategy instance, an account).

A lease is a Redis key ``{ns}:lock:<kind>:<name>`` (:func:`lease_key`) set with ``SET NX PX``
(redis-py's :class:`redis.asyncio.lock.Lock`): its value names the holder
(``<host>:<pid>:<4 random hex>``, :func:`holder_id`; the random part keeps two containers with
the same host name and pid 1 apart), its TTL is ``ttl_s`` and the holder renews it every
``ttl_s / 3`` (:meth:`Lease.keep`, the Lock's ``reacquire``: only while the value is still its
own). A holder that dies (kill -9, lost host) stops renewing: the key expires after at most
``ttl_s`` and the next process may take it. A holder that stops cleanly deletes it
(:meth:`Lease.release`): the next one starts at once.

Redis outages (:mod:`shared.outage`): while Redis is unreachable nothing can be renewed, and
nothing the services do reaches the bus either. The holder retries every ``retry_s`` (faster
than a standby polls, so after a short outage the holder normally re-confirms first); when
Redis answers again it renews, or, when the key is gone (expired during a long outage, or Redis
lost its data), takes it again with ``SET NX``. Only when another process holds the key by then
is the lease lost: :meth:`Lease.keep` returns the new holder and the caller must stop acting
at once (strategy: exit without its shutdown intents; executor: stop signing, without its
shutdown cancels). :attr:`Lease.confirmed` says whether the last renewal is younger than the
TTL (``False`` = the lease may have expired: do not act).

Users: strategy instances (:mod:`shared.strategy_runner`: a second replica of an instance
waits as standby and takes over when the holder's key expires) and the executor's per-account
lock (``services/executor/account_lock.py``: a second executor for an account refuses to sign).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from typing import Any

from redis.asyncio.lock import Lock
from redis.exceptions import LockError

from shared.outage import BUS_DOWN_ERRORS

log = logging.getLogger(__name__)

#: Seconds between two attempts of a holder whose renewal failed (Redis unreachable).
RETRY_S = 0.25

#: Exit code of a process that could not take its lease in time or lost it (executor, strategy).
EXIT_LEASE_LOST = 3


def lease_key(ns: str, kind: str, name: str | int) -> str:
    """The Redis key of a lease: ``{ns}:lock:{kind}:{name}`` (e.g. ``paper:lock:instance:trend-eth``,
    ``paper:lock:executor:1001``)."""
    return f"{ns}:lock:{kind}:{name}"


def holder_id() -> str:
    """This process as a lease holder: ``<host>:<pid>:<4 random hex>``."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(2)}"


def _text(v: Any) -> str | None:
    if v is None:
        return None
    return v.decode() if isinstance(v, bytes) else str(v)


class Lease:
    """One lease (see the module docstring).

    Args:
        redis: an asyncio Redis client.
        key: the lease key (:func:`lease_key`).
        ttl_s: lifetime of the key without renewal (seconds); renewed every ``ttl_s / 3``.
        holder: this holder's value (default :func:`holder_id`).
        retry_s: seconds between attempts while a renewal fails.
    """

    def __init__(self, redis: Any, key: str, ttl_s: float, holder: str | None = None,
                 retry_s: float = RETRY_S) -> None:
        if ttl_s <= 0:
            raise ValueError(f"lease ttl_s must be > 0, got {ttl_s}")
        self.redis = redis
        self.key = key
        self.ttl_s = float(ttl_s)
        self.holder = holder or holder_id()
        self.retry_s = retry_s
        self._lock_obj: Lock | None = None  # made at first use (a client may be attached later)
        self.held = False
        self.lost_to: str | None = None  # who took it from us (set when keep() returns)
        self.confirmed_at = 0.0  # time.monotonic() of the last successful take or renewal

    @property
    def _lock(self) -> Lock:
        if self._lock_obj is None:
            self._lock_obj = Lock(self.redis, self.key, timeout=self.ttl_s, thread_local=False)
        return self._lock_obj

    @property
    def confirmed(self) -> bool:
        """True while the lease is held and its last confirmation is younger than ``ttl_s``."""
        return self.held and time.monotonic() - self.confirmed_at < self.ttl_s

    async def current_holder(self) -> str | None:
        """The value of the key now (who holds the lease), ``None`` when nobody does.

        Raises:
            redis.exceptions.ConnectionError, TimeoutError: Redis unreachable."""
        return _text(await self.redis.get(self.key))

    async def try_acquire(self) -> bool:
        """Take the lease if nobody holds it (``SET NX PX``); True when this process holds it
        now (also when it already did and the key still says so).

        Raises:
            redis.exceptions.ConnectionError, TimeoutError: Redis unreachable."""
        if await self._lock.acquire(blocking=False, token=self.holder):
            self.held = True
            self.confirmed_at = time.monotonic()
            return True
        if await self.current_holder() == self.holder:  # ours already (a renewal after a retry)
            self._lock.local.token = self.holder.encode()  # so that reacquire/release know it
            self.held = True
            self.confirmed_at = time.monotonic()
            return True
        return False

    async def renew(self) -> bool:
        """Reset the TTL of a held lease; when the key is gone, take it again. False when another
        process holds it now.

        Raises:
            redis.exceptions.ConnectionError, TimeoutError: Redis unreachable."""
        try:
            await self._lock.reacquire()
        except LockError:  # not ours any more (or gone): take it again if nobody else has it
            return await self.try_acquire()
        self.confirmed_at = time.monotonic()
        return True

    async def wait(self, stop: asyncio.Event, timeout_s: float | None = None,
                   on_held_by: Callable[[str], None] | None = None) -> bool:
        """Try to take the lease every ``ttl_s / 3`` (Redis outages waited out) until taken,
        ``stop`` is set, or ``timeout_s`` seconds passed; ``on_held_by(holder)`` is called when
        another process holds it (at the first attempt, and when the holder changes).
        Returns True when taken."""
        end = None if timeout_s is None else time.monotonic() + timeout_s
        seen: str | None = None
        while not stop.is_set():
            delay = self.ttl_s / 3
            try:
                if await self.try_acquire():
                    return True
                who = await self.current_holder()
                if who is not None and who != seen and on_held_by is not None:
                    on_held_by(who)
                seen = who or seen
            except BUS_DOWN_ERRORS as exc:
                log.debug("lease %s: Redis unreachable: %s", self.key, exc)
                delay = min(delay, 1.0)
            if end is not None:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                delay = min(delay, left)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
        return False

    async def keep(self, stop: asyncio.Event) -> str | None:
        """Renew the held lease every ``ttl_s / 3`` until ``stop`` is set (returns ``None``) or
        another process holds it (returns its value, also in :attr:`lost_to`; :attr:`held` is
        False then). While Redis is unreachable it retries every ``retry_s`` and logs once when
        the lease may have expired (:attr:`confirmed` is False then)."""
        delay = self.ttl_s / 3
        warned = False
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            if stop.is_set():
                return None
            try:
                ok = await self.renew()
            except BUS_DOWN_ERRORS:
                delay = self.retry_s
                if not warned and not self.confirmed:
                    warned = True
                    log.warning("lease %s: not renewed for %.1fs (Redis unreachable): it may have expired; "
                                "it is taken again, or given up, when Redis answers", self.key,
                                time.monotonic() - self.confirmed_at)
                continue
            if not ok:
                self.held = False
                with contextlib.suppress(*BUS_DOWN_ERRORS):
                    self.lost_to = await self.current_holder()
                self.lost_to = self.lost_to or "another process"
                log.error("lease %s lost to %s (%s): this process must stop acting", self.key, self.lost_to,
                          self.holder)
                return self.lost_to
            if warned:
                log.warning("lease %s: confirmed again after the Redis outage", self.key)
            warned = False
            delay = self.ttl_s / 3

    async def release(self) -> None:
        """Delete the key if this process still holds it (a clean stop: the next process starts
        at once). Errors (Redis unreachable, not held) are logged, never raised."""
        if not self.held:
            return
        self.held = False
        try:
            await self._lock.release()
        except LockError:
            pass
        except BUS_DOWN_ERRORS as exc:
            log.warning("lease %s not released (Redis unreachable: %s): it expires in at most %.0fs",
                        self.key, exc, self.ttl_s)
