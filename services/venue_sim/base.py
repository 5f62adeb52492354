"""venue-sim server constants and the state its parts share.

:class:`services.venue_sim.server.VenueServer` is assembled from parts with one job each
(:mod:`~services.venue_sim.feed`, :mod:`~services.venue_sim.ws`, :mod:`~services.venue_sim.txs`,
:mod:`~services.venue_sim.rest`, :mod:`~services.venue_sim.control`); :class:`ServerBase` declares
the state they share (set by ``VenueServer.__init__``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from services.venue_sim.ratelimit import RequestMeter
from shared.markets import MarketInfo
from shared.venue import lighter_json as LJ
from shared.venue.matching import Fill, MatchingEngine

if TYPE_CHECKING:
    from services.venue_sim.audit import AuditLog
    from services.venue_sim.faults import FaultInjector
    from services.venue_sim.state import StateStore
    from services.venue_sim.ws import Client

TX_CREATE, TX_CANCEL, TX_CANCEL_ALL = 14, 15, 16
TIF_NAMES = LJ.TIF_NAMES
TIF_CODES = {0: "ioc", 1: "gtt", 2: "post_only"}
ORDER_TYPES = {0: "limit", 1: "market", 2: "stop-loss", 3: "stop-loss-limit"}
ACCOUNT_CHANNELS = ("account_all", "account_all_orders", "account_all_trades", "account_all_positions",
                    "user_stats", "account_orders")
CLIENT_QUEUE_MAX = 50_000


_ms, _us, _num = LJ.ms, LJ.us, LJ.num
tx_hash_of = LJ.tx_hash_of


class ServerBase:
    """The state shared by the server's parts (see ``VenueServer`` for its meaning)."""

    engine: MatchingEngine
    public_book: str
    tx_requests: int
    meter: RequestMeter
    markets: dict[int, MarketInfo]
    clock: Callable[[], int]
    clock_is_wall: bool = False  # the venue clock is the wall clock (not lockstep): ExpiredAt is checked on it
    status_extra: Callable[[], dict[str, Any]]
    on_start: Callable[[], None]
    on_tx: Callable[[], None]
    start_account: int | None
    stats_interval_ns: int
    nonces: dict[tuple[int, int], int]
    api_keys: dict[tuple[int, int], str]
    require_account: Callable[[int], Any]  # AccountBook: raises 21100 for an unknown account
    clients: set[Client]
    subs: dict[str, set[Client]]
    book_nonce: dict[int, int]
    book_ts: dict[int, int]
    book_levels: dict[int, tuple[dict[int, int], dict[int, int]]]
    stats_sent_ns: dict[int, int]
    trades: dict[int, deque[dict[str, Any]]]
    account_fills: dict[int, deque[Fill]]
    height: int
    trade_nonce: int
    started_wall: float
    audit: AuditLog | None = None  # the audit log (services.venue_sim.audit), set by the runner when configured
    faults: FaultInjector
    state_store: StateStore | None = None  # the state file's writer (``state_path``), or None

    def persist_urgent(self) -> None:
        """Write the state file now if an accepted tx or an account change is not in it yet
        (write-through before the venue answers; :mod:`services.venue_sim.state`)."""
        if self.state_store is not None:
            self.state_store.save_if_urgent()
