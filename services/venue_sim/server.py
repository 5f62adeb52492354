"""venue-sim's HTTP/WS server: Lighter's REST (``/api/v1/...``) and WebSocket (``/stream``) on one
aiohttp app, around :class:`shared.venue.matching.MatchingEngine`.

REST (form-urlencoded POST bodies as the SDK sends; errors are HTTP 400 ``{"code","message"}``):
``orderBooks``, ``orderBookDetails``, ``orderBookOrders``, ``nextNonce``, ``sendTx``,
``sendTxBatch``, ``account``, ``accountActiveOrders``, ``accountInactiveOrders``,
``recentTrades``, ``currentHeight``, ``apikeys``, ``candles``, ``fundings``, ``funding-rates``,
``accountOrders``, ``accountsByL1Address``, ``trades`` (:mod:`~services.venue_sim.accounts`: configured
accounts, ChangePubKey), ``GET /``. Sim control: ``GET /sim/status``,
``POST /sim/start``, ``GET /sim/fills``, ``/sim/fault`` (:mod:`~services.venue_sim.fault_hooks`);
plus ``/health`` and ``/metrics``.

The tx hash is the signer's (:mod:`services.venue_sim.crypto`); signatures and auth tokens are
verified when ``verify_signatures``/``verify_auth`` are set (:mod:`~services.venue_sim.auth`;
both on by default, as on Lighter). The nonce must equal the next expected nonce of the (account, api key) pair
(21104 otherwise) and advances only on accepted txs. ``ExpiredAt`` is
checked against the wall clock (the SDK sets it from the wall clock). Every timestamp the venue
emits (orders, trades, books) is venue time: the wall clock, or in lockstep the recording's time
(see :mod:`~services.venue_sim.replay`). Reads are rate-limited per client IP
(:mod:`~services.venue_sim.readmeter`).

The server is assembled from parts with one job each: :mod:`~services.venue_sim.feed` (engine
updates -> WS messages), :mod:`~services.venue_sim.ws` (connections, channels, snapshots),
:mod:`~services.venue_sim.txs` (the tx path), :mod:`~services.venue_sim.rest` (read endpoints),
:mod:`~services.venue_sim.control` (sim control, health, metrics),
:mod:`~services.venue_sim.rest_market` (candles, fundings, accountOrders),
:mod:`~services.venue_sim.ws_more` (ticker, account_tx, account_all_assets),
:mod:`~services.venue_sim.fault_hooks` (injected faults, :mod:`~services.venue_sim.faults`); the state
file of a restart is :mod:`~services.venue_sim.state`; shared state and constants in
:mod:`~services.venue_sim.base`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import web

from services.venue_sim.accounts import AccountBook
from services.venue_sim.base import ACCOUNT_CHANNELS, TX_CANCEL, TX_CANCEL_ALL, TX_CREATE, tx_hash_of
from services.venue_sim.config import AccountSpec
from services.venue_sim.control import SimControl
from services.venue_sim.fault_hooks import FaultHooks, fault_middleware
from services.venue_sim.faults import FaultPlan
from services.venue_sim.feed import FeedMessages
from services.venue_sim.margin import MarginBook
from services.venue_sim.margin_txs import MarginHandling
from services.venue_sim.orderrules import OrderTxs
from services.venue_sim.ratelimit import RequestMeter
from services.venue_sim.readmeter import read_meter_middleware
from services.venue_sim.rest import RestReads
from services.venue_sim.rest_market import MarketReads
from services.venue_sim.state import state_middleware
from services.venue_sim.txs import TxHandling
from services.venue_sim.ws import Client, WsChannels
from services.venue_sim.ws_more import MoreChannels
from shared.markets import MarketInfo
from shared.venue.matching import Fill, MatchingEngine

__all__ = ["ACCOUNT_CHANNELS", "TX_CANCEL", "TX_CANCEL_ALL", "TX_CREATE", "Client", "VenueServer", "tx_hash_of"]


class VenueServer(AccountBook, MarginHandling, MarketReads, MoreChannels, FeedMessages, FaultHooks, WsChannels,
                  OrderTxs, TxHandling, RestReads, SimControl):
    """Lighter's protocol around a :class:`MatchingEngine`.

    Args:
        engine: the venue model.
        markets: markets of the recording.
        clock: returns the venue time in ns: the wall clock, or in lockstep the recording's (the replay's :meth:`sim_now`).
        fills_file: JSON-lines file to append fills to (None = in memory only).
        status_extra: returns replay fields for ``/sim/status`` (state, events replayed, total).
        on_start: called by ``POST /sim/start`` (and when ``start_when_subscribed`` is met).
        on_tx: called after every accepted tx (wakes the replay loop).
        start_when_subscribed_account: if set, call ``on_start`` once every market's order_book
            channel and an account channel of this account have a subscriber.
        market_stats_interval_s: minimum sim seconds between market_stats messages per market.
        recent_trades: trades kept per market for ``recentTrades``.
        public_book: ``venue`` (the default): the public ``order_book`` channel shows the
            recorded level minus what our takers consumed, plus the resting orders of simulated
            accounts, as Lighter would, and our fills appear on the public ``trade`` channel;
            ``recorded``: the public channels show the recorded top of book and recorded trades
            only (lockstep/parity mode: market data then equals the recording, as in a
            backtest).
        meter: counts tx requests per account over a rolling minute of venue time (reads per client IP) and refuses
            those over the rate limit (23000); default: Standard tier, 60 per minute, enforced.
        accounts: the venue's accounts (:class:`~services.venue_sim.config.AccountSpec`); any
            other index is refused with 21100 (default: account 1001, paper L1 address, 100,000
            USDC).
        margin_checks: refuse create orders the account's margin does not cover (21739; see
            :mod:`services.venue_sim.margin_txs`); leverage and margin txs work either way.
        faults: the faults to inject (:mod:`services.venue_sim.faults`; default none).
    """

    def __init__(self, engine: MatchingEngine, markets: Iterable[MarketInfo], clock: Callable[[], int],
                 fills_file: Path | None = None, status_extra: Callable[[], dict[str, Any]] | None = None,
                 on_start: Callable[[], None] | None = None, on_tx: Callable[[], None] | None = None,
                 start_when_subscribed_account: int | None = None, market_stats_interval_s: float = 1.0,
                 recent_trades: int = 200, public_book: str = "venue", meter: RequestMeter | None = None,
                 accounts: list[AccountSpec] | None = None, margin_checks: bool = True,
                 faults: FaultPlan | None = None) -> None:
        if public_book not in ("venue", "recorded"):
            raise ValueError(f"public_book must be 'venue' or 'recorded', not {public_book!r}")
        self.engine = engine
        self.public_book = public_book
        self.tx_requests = 0  # txs received (accepted or refused) plus requests refused for the rate limit
        self.meter = meter if meter is not None else RequestMeter()
        self.markets = {m.market_id: m for m in markets}
        self.margin_book = MarginBook(self.markets)
        self.margin_checks = margin_checks
        self.clock = clock
        self.status_extra = status_extra or (lambda: {})
        self.on_start = on_start or (lambda: None)
        self.on_tx = on_tx or (lambda: None)
        self.start_account = start_when_subscribed_account
        self.stats_interval_ns = int(market_stats_interval_s * 1e9)
        self.nonces: dict[tuple[int, int], int] = {}
        self.api_keys: dict[tuple[int, int], str] = {}  # (account, api key index) -> registered public key (hex)
        self.clients: set[Client] = set()
        self.subs: dict[str, set[Client]] = {}
        self.book_nonce = {mid: 0 for mid in self.markets}
        self.book_ts = {mid: 0 for mid in self.markets}
        self.book_levels: dict[int, tuple[dict[int, int], dict[int, int]]] = {mid: ({}, {}) for mid in self.markets}
        self.stats_sent_ns: dict[int, int] = {}
        self.trades: dict[int, deque[dict[str, Any]]] = {mid: deque(maxlen=recent_trades) for mid in self.markets}
        self.account_fills: dict[int, deque[Fill]] = {}
        self.height = 1
        self.trade_nonce = 0
        self.started_wall = time.time()
        self._fills_fh = None
        if fills_file is not None:
            fills_file.parent.mkdir(parents=True, exist_ok=True)
            self._fills_fh = open(fills_file, "ab")  # noqa: SIM115 - kept open for the server's life
        self._enc = msgspec.json.Encoder()
        self.init_market_reads()
        self.init_more_channels()
        self.init_faults(faults)
        self.setup_accounts(accounts if accounts is not None else [AccountSpec(index=1001)])

    async def close_clients(self) -> None:
        """Close every WebSocket connection (going away, 1001), so a shutdown does not wait
        for clients to leave."""
        for c in list(self.clients):
            c.closed = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(c.ws.close(code=1001, message=b"venue-sim shutting down"), 2)

    def close(self) -> None:
        """Close the fills file and the audit log."""
        if self._fills_fh is not None:
            self._fills_fh.close()
            self._fills_fh = None
        if self.audit is not None:
            self.audit.close()

    # ================================================================ app

    def app(self) -> web.Application:
        """The aiohttp application."""
        app = web.Application(middlewares=[fault_middleware(self), state_middleware(self),
                                           read_meter_middleware(self)])
        r = app.router
        r.add_get("/", self.h_root)
        r.add_get("/health", self.h_health)
        r.add_get("/metrics", self.h_metrics)
        r.add_get("/stream", self.h_ws)
        r.add_get("/sim/status", self.h_status)
        r.add_post("/sim/start", self.h_start)
        r.add_get("/sim/fills", self.h_fills)
        self.fault_routes(app)
        api = {
            "orderBooks": self.h_order_books, "orderBookDetails": self.h_order_book_details,
            "orderBookOrders": self.h_order_book_orders, "nextNonce": self.h_next_nonce,
            "account": self.h_account, "accountActiveOrders": self.h_active_orders,
            "accountInactiveOrders": self.h_inactive_orders, "recentTrades": self.h_recent_trades,
            "currentHeight": self.h_height, "apikeys": self.h_apikeys,
            "accountsByL1Address": self.h_accounts_by_l1_address, "trades": self.h_trades,
        }
        for name, h in {**api, **self.market_routes()}.items():
            r.add_get(f"/api/v1/{name}", h)
        r.add_post("/api/v1/sendTx", self.h_send_tx)
        r.add_post("/api/v1/sendTxBatch", self.h_send_tx_batch)
        return app
