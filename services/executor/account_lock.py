"""The executor's per-account lock: one executor signs for an account at a time.

At start (before the signer exists) the executor takes the lease ``{ns}:lock:executor:<account>``
(:mod:`shared.leases`, TTL ``lease_ttl_s`` of the stack config, renewed every third of it, value
``<host>:<pid>:<hex>``). While another executor holds it, it waits up to
``services.executor.lock_wait_s`` (a killed executor's lock expires ``lease_ttl_s`` after its
last renewal, so a restart after a crash waits at most that long), logging who holds it; then
it refuses to sign: logs ``executor for account N refuses to sign: ... held by <holder>`` and
exits with code 3. A clean stop deletes the lock (the next executor starts at once).

While running, the lock is renewed (:meth:`AccountLock.keep`); Redis outages are waited out and
the lock is taken again when Redis answers. If another executor holds it by then (Redis was
down longer than the TTL and a second executor started meanwhile), this one has lost it:
:attr:`AccountLock.lost` is set, the executor stops without its shutdown cancels (the orders
now belong to the other executor) and exits with code 3.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from shared.config import StackConfig
from shared.leases import EXIT_LEASE_LOST, Lease, lease_key

from .config import ExecutorConfig

log = logging.getLogger(__name__)

#: Exit code of an executor that refused to sign (lock held) or lost its lock.
EXIT_LOCKED = EXIT_LEASE_LOST


class AccountLock:
    """The account lock of one executor.

    Args:
        redis: the executor's asyncio Redis client.
        cfg: the stack config (``ns``, ``account_index``, ``lease_ttl_s``).
        ecfg: the executor's section (``lock_wait_s``).
        holder: this executor's value in the lock (default :func:`shared.leases.holder_id`).
    """

    def __init__(self, redis: Any, cfg: StackConfig, ecfg: ExecutorConfig, holder: str | None = None) -> None:
        self.account = cfg.account_index
        self.wait_s = ecfg.lock_wait_s
        self.lease = Lease(redis, lease_key(cfg.ns, "executor", cfg.account_index), cfg.lease_ttl_s, holder)
        self.waiting_for: str | None = None  # holder we wait for (served on /health)

    @property
    def lost(self) -> bool:
        """True once another executor took the lock from this one."""
        return self.lease.lost_to is not None

    def status(self) -> dict[str, Any]:
        """``{"key", "holder", "held", "waiting_for"}`` for ``/health``."""
        return {"key": self.lease.key, "holder": self.lease.holder, "held": self.lease.held,
                "waiting_for": self.waiting_for, "lost_to": self.lease.lost_to}

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Take the lock, waiting up to ``lock_wait_s`` while another executor holds it (as long
        as it takes while Redis does not answer at all: a start during an outage waits for it).
        False (after logging at ERROR who holds it) when it could not be taken in time or
        ``stop`` was set; the executor must then exit without signing anything."""

        def held_by(who: str) -> None:
            self.waiting_for = who
            log.warning("executor for account %s: account lock %s is held by %s; waiting up to %.0fs "
                        "(a killed executor's lock expires %.0fs after its last renewal)",
                        self.account, self.lease.key, who, self.wait_s, self.lease.ttl_s)

        while True:
            got = await self.lease.wait(stop, timeout_s=self.wait_s, on_held_by=held_by)
            if got or stop.is_set() or self.waiting_for is not None:
                break
            log.warning("executor for account %s: Redis has not answered for %.0fs; still waiting for it to take "
                        "the account lock", self.account, self.wait_s)  # nobody seen holding it: keep waiting
        if got:
            if self.waiting_for:
                log.warning("executor for account %s: took the account lock (was held by %s)",
                            self.account, self.waiting_for)
            self.waiting_for = None
            return True
        if not stop.is_set():
            who = self.waiting_for or "another executor"
            log.error("executor for account %s refuses to sign: account lock %s is held by %s (another "
                      "executor runs for this account: stop it, or wait %.0fs after it died)",
                      self.account, self.lease.key, who, self.lease.ttl_s)
        return False

    async def keep(self, stop: asyncio.Event) -> str | None:
        """Renew the lock until ``stop`` (``None``) or it is lost (returns the new holder)."""
        return await self.lease.keep(stop)

    async def release(self) -> None:
        """Delete the lock at a clean stop (never raises)."""
        await self.lease.release()
