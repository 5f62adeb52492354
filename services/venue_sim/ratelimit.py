"""venue-sim's request accounting and Lighter's REST rate limit on the tx path.

Lighter (reference notes ``lighter-api.md`` §6.8, docs "rate limits") counts requests over a
rolling minute: Standard accounts get 60 requests per minute, unweighted; Premium accounts
24,000 weighted requests per minute, where ``sendTx`` and ``sendTxBatch`` weigh 6. Txs sent
over the WebSocket (``jsonapi/sendtx``, ``jsonapi/sendtxbatch``) share the REST tx bucket. A
request over the limit is refused with ``{"code": 23000, "message": "too many requests"}``.
A ``sendTxBatch`` carries at most 15 txs.

:class:`RequestMeter` keeps, per account, the sim times (ns, the recording's clock) of the tx
requests it admitted. The window of a request at time ``t`` is ``(t - 60 s, t]`` -- the same
half-open window as the executor's budget (``services/executor/engine.py``), so a stack that
keeps its own budget is never refused. Only ``sendTx``/``sendTxBatch`` (REST or WS) are
metered; venue-sim does not charge the read endpoints (``nextNonce``, ``account``, ...), which
Lighter also counts.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from shared.venue.errors import VenueError

TOO_MANY_REQUESTS = 23000
"""Lighter's error code for a request over the rate limit."""
WINDOW_NS = 60 * 1_000_000_000
"""Length of the rolling window: one minute (ns)."""
BATCH_MAX_TXS = 15
"""Most txs one ``sendTxBatch`` may carry (Lighter asyncapi/ccxt sources)."""
TIER_LIMIT = {"standard": 60, "premium": 24_000}
"""Weight units per rolling minute by account tier (Lighter docs)."""
TIER_TX_WEIGHT = {"standard": 1, "premium": 6}
"""Weight of one ``sendTx``/``sendTxBatch`` request by tier (Standard is unweighted)."""


class RateLimited(VenueError):
    """A request refused for the rate limit: code 23000, message ``too many requests``."""

    def __init__(self, detail: str = "") -> None:
        super().__init__(TOO_MANY_REQUESTS, detail)
        self.message = "too many requests"

    def __str__(self) -> str:
        return f"{self.code} {self.message}"


@dataclass
class AccountRequests:
    """Request counts of one account.

    Attributes:
        requests: tx requests received (``sendTx`` and ``sendTxBatch``, REST and WS), refused
            ones included.
        txs: txs carried by the admitted requests.
        weight_total: weight units of the admitted requests.
        max_window: the most weight units admitted in any rolling 60 s of sim time (Standard:
            requests, as they weigh 1).
        rate_limited: requests refused with 23000.
        window: ``(ts_ns, weight)`` of the admitted requests of the current window.
        window_weight: the weight in ``window``.
    """

    requests: int = 0
    txs: int = 0
    weight_total: int = 0
    max_window: int = 0
    rate_limited: int = 0
    window: deque[tuple[int, int]] = field(default_factory=deque)
    window_weight: int = 0

    def used(self, now_ns: int) -> int:
        """Weight units admitted in ``(now_ns - 60 s, now_ns]`` (drops older entries)."""
        lo = now_ns - WINDOW_NS
        w = self.window
        while w and w[0][0] <= lo:
            self.window_weight -= w.popleft()[1]
        return self.window_weight


class RequestMeter:
    """Counts tx requests per account over a rolling minute of sim time and, when
    ``enabled``, refuses those over the limit.

    Args:
        limit: weight units per rolling minute (Standard 60, Premium 24,000); ``0`` = no limit
            (counting only).
        weight: weight of one tx request (Standard 1, Premium 6).
        enabled: refuse requests over ``limit``; when false the meter only counts.
    """

    def __init__(self, limit: int = TIER_LIMIT["standard"], weight: int = TIER_TX_WEIGHT["standard"],
                 enabled: bool = True) -> None:
        if limit < 0 or weight < 1:
            raise ValueError(f"rate limit {limit} must be >= 0 and request weight {weight} >= 1")
        self.limit = limit
        self.weight = weight
        self.enabled = enabled
        self.accounts: dict[int, AccountRequests] = {}

    def admit(self, account: int, now_ns: int, txs: int = 1) -> None:
        """Charge one request of ``txs`` txs to ``account`` at sim time ``now_ns``.

        Raises:
            RateLimited: ``enabled`` and the request would take the account's rolling-minute
                weight over ``limit`` (the request is counted in ``requests`` and
                ``rate_limited``, not in the window).
        """
        a = self.accounts.get(account)
        if a is None:
            a = self.accounts[account] = AccountRequests()
        a.requests += 1
        used = a.used(now_ns)
        if self.enabled and self.limit and used + self.weight > self.limit:
            a.rate_limited += 1
            raise RateLimited(f"account {account}: {used} of {self.limit} request weight used in the last 60 s")
        a.window.append((now_ns, self.weight))
        a.window_weight += self.weight
        a.weight_total += self.weight
        a.txs += txs
        a.max_window = max(a.max_window, a.window_weight)

    def status(self) -> dict[str, dict[str, int]]:
        """Per account (key: the account index as a string): ``requests``, ``txs``,
        ``weight_total``, ``max_requests_per_min`` (weight units in the busiest rolling
        minute) and ``rate_limited``."""
        return {str(acct): {"requests": a.requests, "txs": a.txs, "weight_total": a.weight_total,
                            "max_requests_per_min": a.max_window, "rate_limited": a.rate_limited}
                for acct, a in sorted(self.accounts.items())}
