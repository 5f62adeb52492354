"""The executor's own nonce manager for one (account, API key) pair.

Lighter requires strictly increasing nonces per (account_index, api_key_index), starting at the
value ``GET /api/v1/nextNonce`` returns (the next nonce to **use**). The executor allocates
locally and signs with explicit nonces, so the SDK's own nonce manager (and its network path)
is never used.

Rules:

- :meth:`NonceManager.sync` fetches ``nextNonce`` (at start and after a nonce error).
- :meth:`NonceManager.allocate` hands out the next nonce.
- :meth:`NonceManager.release` after a send that the venue **definitely** did not take (a
  rejection other than a nonce error, or a local signing failure): the nonce is reused if it was
  the last one allocated; otherwise there is now a gap and the next send will fail with 21104,
  which :meth:`NonceManager.report_error` repairs.
- :meth:`NonceManager.report_error` with Lighter code 21104 (invalid nonce), or with an unknown
  outcome (transport error: the tx may or may not have been taken), marks the manager as needing
  a resync; the next :meth:`ensure_synced` refetches.

The caller serialises allocate -> sign -> send under one lock so transactions reach the venue in
nonce order.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

INVALID_NONCE = 21104


class NonceError(RuntimeError):
    """The nonce could not be fetched from the venue (message says why)."""


class NonceManager:
    """Allocates nonces locally, resyncing from the venue when needed.

    Args:
        fetch: coroutine function returning the venue's next nonce (``nextNonce``).

    Attributes:
        resyncs: how many times the nonce was refetched after an error (metrics).
    """

    def __init__(self, fetch: Callable[[], Awaitable[int]]) -> None:
        self._fetch = fetch
        self._next: int | None = None
        self._last_allocated: int | None = None
        self.needs_sync = True
        self.resyncs = 0
        self.lock = asyncio.Lock()

    @property
    def next_nonce(self) -> int | None:
        """The nonce :meth:`allocate` will return next (``None`` before the first sync)."""
        return self._next

    async def sync(self) -> int:
        """Fetch ``nextNonce`` and restart allocation there.

        Raises:
            NonceError: the fetch failed or returned a negative value.
        """
        try:
            n = int(await self._fetch())
        except Exception as exc:  # transport, HTTP or parse error
            raise NonceError(f"nextNonce failed: {type(exc).__name__}: {exc}") from None
        if n < 0:
            raise NonceError(f"nextNonce returned {n}")
        self._next = n
        self._last_allocated = None
        self.needs_sync = False
        return n

    async def ensure_synced(self) -> None:
        """Sync if never synced or if an error asked for it."""
        if self.needs_sync or self._next is None:
            await self.sync()

    def allocate(self) -> int:
        """The next nonce to sign with.

        Raises:
            NonceError: never synced.
        """
        if self._next is None:
            raise NonceError("nonce manager not synced (call sync() first)")
        n = self._next
        self._next = n + 1
        self._last_allocated = n
        return n

    def release(self, nonce: int) -> bool:
        """Give back ``nonce`` after a send the venue did not take; returns True if rolled back
        (it was the last allocated), False if it leaves a gap."""
        if self._last_allocated is not None and nonce == self._last_allocated and self._next == nonce + 1:
            self._next = nonce
            self._last_allocated = None
            return True
        return False

    def report_error(self, code: int | None, nonce: int) -> None:
        """Record a failed send of ``nonce``: Lighter ``code`` (``None`` = unknown outcome,
        e.g. a timeout). 21104 or unknown -> resync before the next send; any other code ->
        :meth:`release`."""
        if code == INVALID_NONCE or code is None:
            self.needs_sync = True
            self.resyncs += 1
            log.warning("nonce %d: %s; will resync from nextNonce", nonce,
                        "invalid nonce (21104)" if code == INVALID_NONCE else "unknown send outcome")
        else:
            self.release(nonce)
