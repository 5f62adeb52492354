"""venue-sim's request accounting and Lighter's REST rate limit (txs and reads).

Lighter (reference notes ``lighter-api.md`` §6.8, docs "rate limits") counts requests over a
rolling minute, per IP and per L1 address: Standard accounts get 60 requests per minute,
unweighted; Premium accounts 24,000 weighted requests per minute (``sendTx``, ``sendTxBatch``,
``nextNonce`` 6; ``accountInactiveOrders`` 100; ``apikeys`` 150; ``trades``/``recentTrades``
600; everything else 300). Txs sent over the WebSocket (``jsonapi/sendtx``,
``jsonapi/sendtxbatch``) share the REST tx bucket. A request over the limit is refused with
``{"code": 23000, "message": "too many requests"}``, HTTP 429 (assumption: Lighter's own code
is 23000; third-party Lighter clients treat HTTP 429 as its rate-limit answer). A
``sendTxBatch`` carries at most 15 txs.

Keying (docs/venue-sim.md "Request accounting"): a tx request is charged to its account (the
``AccountIndex`` of its first tx: the L1 address's account); a read (``GET /api/v1/...``) is
charged to the client's IP. Loopback is one IP like any other: every service of our stack on one
host shares it, as the host's one public IP would be shared on Lighter.

:class:`RequestMeter` keeps, per bucket, the venue times (ns) of the requests it admitted: the
wall clock outside lockstep, the recording's in lockstep (the time the client sees either way).
The window of a request at time ``t`` is ``(t - 60 s, t]`` -- the same half-open window as the
executor's budget (``services/executor/budget.py``), so a stack that keeps its own budget is
never refused.
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
ENDPOINT_WEIGHT = {"sendTx": 6, "sendTxBatch": 6, "nextNonce": 6, "publicPools": 50, "txFromL1TxHash": 50,
                   "accountInactiveOrders": 100, "apikeys": 150, "transferFeeInfo": 500, "trades": 600,
                   "recentTrades": 600}
"""Premium weights of Lighter's REST endpoints (reference notes §6.8); others weigh
:data:`DEFAULT_ENDPOINT_WEIGHT`."""
DEFAULT_ENDPOINT_WEIGHT = 300


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
        max_window: the most weight units admitted in any rolling 60 s of venue time (Standard:
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
    """Counts requests over a rolling minute of venue time -- tx requests per account, reads per
    client IP -- and, when ``enabled``, refuses those over the limit.

    Args:
        limit: weight units per rolling minute (Standard 60, Premium 24,000); ``0`` = no limit
            (counting only).
        weight: weight of one tx request (Standard 1, Premium 6).
        enabled: refuse requests over ``limit``; when false the meter only counts.
        weighted_reads: reads weigh :data:`ENDPOINT_WEIGHT` (Premium); false: every read weighs
            1 (Standard, unweighted).
    """

    def __init__(self, limit: int = TIER_LIMIT["standard"], weight: int = TIER_TX_WEIGHT["standard"],
                 enabled: bool = True, weighted_reads: bool = False) -> None:
        if limit < 0 or weight < 1:
            raise ValueError(f"rate limit {limit} must be >= 0 and request weight {weight} >= 1")
        self.limit = limit
        self.weight = weight
        self.enabled = enabled
        self.weighted_reads = weighted_reads
        self.accounts: dict[int, AccountRequests] = {}
        self.ips: dict[str, AccountRequests] = {}

    def read_weight(self, endpoint: str) -> int:
        """Weight of one read of ``endpoint`` (the name after ``/api/v1/``): 1 unweighted, else
        Lighter's Premium weight."""
        if not self.weighted_reads:
            return 1
        return ENDPOINT_WEIGHT.get(endpoint, DEFAULT_ENDPOINT_WEIGHT)

    def admit_read(self, ip: str, endpoint: str, now_ns: int) -> None:
        """Charge one read of ``endpoint`` to the client IP ``ip`` at venue time ``now_ns``.

        Raises:
            RateLimited: ``enabled`` and the read would take the IP's rolling-minute weight over
                ``limit`` (counted in ``requests`` and ``rate_limited`` only).
        """
        b = self.ips.get(ip)
        if b is None:
            b = self.ips[ip] = AccountRequests()
        self._charge(b, now_ns, self.read_weight(endpoint), 0, f"ip {ip}")

    def admit(self, account: int, now_ns: int, txs: int = 1) -> None:
        """Charge one request of ``txs`` txs to ``account`` at venue time ``now_ns``.

        Raises:
            RateLimited: ``enabled`` and the request would take the account's rolling-minute
                weight over ``limit`` (the request is counted in ``requests`` and
                ``rate_limited``, not in the window).
        """
        a = self.accounts.get(account)
        if a is None:
            a = self.accounts[account] = AccountRequests()
        self._charge(a, now_ns, self.weight, txs, f"account {account}")

    def _charge(self, a: AccountRequests, now_ns: int, weight: int, txs: int, who: str) -> None:
        a.requests += 1
        used = a.used(now_ns)
        if self.enabled and self.limit and used + weight > self.limit:
            a.rate_limited += 1
            raise RateLimited(f"{who}: {used} of {self.limit} request weight used in the last 60 s")
        a.window.append((now_ns, weight))
        a.window_weight += weight
        a.weight_total += weight
        a.txs += txs
        a.max_window = max(a.max_window, a.window_weight)

    def status(self) -> dict[str, dict[str, int]]:
        """Per account (key: the account index as a string): ``requests``, ``txs``,
        ``weight_total``, ``max_requests_per_min`` (weight units in the busiest rolling
        minute) and ``rate_limited``."""
        return {str(acct): {"requests": a.requests, "txs": a.txs, "weight_total": a.weight_total,
                            "max_requests_per_min": a.max_window, "rate_limited": a.rate_limited}
                for acct, a in sorted(self.accounts.items())}

    def read_status(self) -> dict[str, dict[str, int]]:
        """Per client IP: ``requests`` (reads received, refused ones included),
        ``weight_total``, ``max_requests_per_min`` (weight units in the busiest rolling minute)
        and ``rate_limited``."""
        return {ip: {"requests": a.requests, "weight_total": a.weight_total, "max_requests_per_min": a.max_window,
                     "rate_limited": a.rate_limited} for ip, a in sorted(self.ips.items())}
