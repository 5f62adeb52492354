"""venue-sim's HTTP/WS server: Lighter's REST (``/api/v1/...``) and WebSocket (``/stream``) on one
aiohttp app, around :class:`shared.venue.matching.MatchingEngine`.

REST (form-urlencoded POST bodies as the SDK sends; errors are HTTP 400 ``{"code","message"}``):
``orderBooks``, ``orderBookDetails``, ``orderBookOrders``, ``nextNonce``, ``sendTx``,
``sendTxBatch``, ``account``, ``accountActiveOrders``, ``accountInactiveOrders``,
``recentTrades``, ``currentHeight``, ``apikeys``, ``GET /``. Sim control: ``GET /sim/status``,
``POST /sim/start``, ``GET /sim/fills``; plus ``/health`` and ``/metrics``.

Signatures are not verified (the SDK's signer exports no verify function): ``AccountIndex``,
``ApiKeyIndex`` and ``Nonce`` are trusted; the nonce must equal the next expected nonce of the
(account, api key) pair (21104 otherwise) and advances only on accepted txs. ``ExpiredAt`` is
checked against the wall clock (the SDK sets it from the wall clock). Every timestamp the venue
emits (orders, trades, books) is *sim* time, i.e. the recording's time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import WSMsgType, web
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, generate_latest

from services.venue_sim.ratelimit import BATCH_MAX_TXS, RequestMeter
from shared.markets import MarketInfo
from shared.metrics import PREFIX
from shared.venue import errors as E
from shared.venue import lighter_json as LJ
from shared.venue.errors import VenueError
from shared.venue.matching import (
    BOOK_ACCOUNT,
    DEPTH_ASSUMPTION,
    BookChanged,
    CancelAll,
    CancelOrder,
    CreateOrder,
    Fill,
    FillUpdate,
    MatchingEngine,
    Order,
    OrderUpdate,
    Position,
    PositionUpdate,
    PublicTrade,
    StatsChanged,
    Update,
)

log = logging.getLogger(__name__)

ORDERS = Counter(f"{PREFIX}venue_orders_total", "Create-order txs accepted by venue-sim.", ["market", "type", "tif"])
FILLS = Counter(f"{PREFIX}venue_fills_total", "Fills executed by venue-sim.", ["market", "liquidity"])
REJECTS = Counter(f"{PREFIX}venue_rejects_total", "Txs refused by venue-sim, by Lighter error code.", ["code"])
TXS = Counter(f"{PREFIX}venue_txs_total", "Txs accepted by venue-sim, by tx type.", ["tx_type"])
ORDER_STATUS = Counter(f"{PREFIX}venue_order_final_total", "Orders that left the book, by final status.",
                       ["status"])
REPLAYED = Gauge(f"{PREFIX}venue_replayed_events", "Recorded events replayed so far.")
SIM_TIME = Gauge(f"{PREFIX}venue_sim_time_seconds", "Sim clock (recording time), Unix seconds.")
WS_CLIENTS = Gauge(f"{PREFIX}venue_ws_clients", "Connected WebSocket clients.")
SELF_TRADES = Counter(f"{PREFIX}venue_self_trade_cancels_total", "Resting orders canceled to prevent a self-trade.")

TX_CREATE, TX_CANCEL, TX_CANCEL_ALL = 14, 15, 16
TIF_NAMES = LJ.TIF_NAMES
TIF_CODES = {0: "ioc", 1: "gtt", 2: "post_only"}
ORDER_TYPES = {0: "limit", 1: "market"}
ACCOUNT_CHANNELS = ("account_all", "account_all_orders", "account_all_trades", "account_all_positions",
                    "user_stats", "account_orders")
CLIENT_QUEUE_MAX = 50_000


_ms, _us, _num = LJ.ms, LJ.us, LJ.num
tx_hash_of = LJ.tx_hash_of


class Client:
    """One WebSocket connection: its subscriptions and an ordered send queue."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.session_id = str(uuid.uuid4())
        self.channels: set[str] = set()
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()
        self.closed = False

    def send(self, msg: dict[str, Any] | str) -> None:
        """Queue a message (dropped, and the client closed, if it lags too far behind)."""
        if self.closed:
            return
        if self.queue.qsize() >= CLIENT_QUEUE_MAX:
            log.warning("ws client %s is %d messages behind; closing it", self.session_id, CLIENT_QUEUE_MAX)
            self.closed = True
            self.queue.put_nowait(None)
            return
        self.queue.put_nowait(msg if isinstance(msg, str) else json.dumps(msg, separators=(",", ":")))

    async def writer(self) -> None:
        while True:
            msg = await self.queue.get()
            if msg is None or self.ws.closed:
                break
            try:
                await self.ws.send_str(msg)
            except (ConnectionResetError, RuntimeError):
                break
        self.closed = True
        with contextlib.suppress(Exception):
            await self.ws.close()


class VenueServer:
    """Lighter's protocol around a :class:`MatchingEngine`.

    Args:
        engine: the venue model.
        markets: markets of the recording.
        clock: returns the current sim time in ns (the replay's :meth:`sim_now`).
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
        meter: counts tx requests per account over a rolling minute of sim time and refuses
            those over the rate limit (23000); default: Standard tier, 60 per minute, enforced.
    """

    def __init__(self, engine: MatchingEngine, markets: Iterable[MarketInfo], clock: Callable[[], int],
                 fills_file: Path | None = None, status_extra: Callable[[], dict[str, Any]] | None = None,
                 on_start: Callable[[], None] | None = None, on_tx: Callable[[], None] | None = None,
                 start_when_subscribed_account: int | None = None, market_stats_interval_s: float = 1.0,
                 recent_trades: int = 200, public_book: str = "venue", meter: RequestMeter | None = None) -> None:
        if public_book not in ("venue", "recorded"):
            raise ValueError(f"public_book must be 'venue' or 'recorded', not {public_book!r}")
        self.engine = engine
        self.public_book = public_book
        self.tx_requests = 0  # txs received (accepted or refused) plus requests refused for the rate limit
        self.meter = meter if meter is not None else RequestMeter()
        self.markets = {m.market_id: m for m in markets}
        self.clock = clock
        self.status_extra = status_extra or (lambda: {})
        self.on_start = on_start or (lambda: None)
        self.on_tx = on_tx or (lambda: None)
        self.start_account = start_when_subscribed_account
        self.stats_interval_ns = int(market_stats_interval_s * 1e9)
        self.nonces: dict[tuple[int, int], int] = {}
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

    async def close_clients(self) -> None:
        """Close every WebSocket connection (going away, 1001), so a shutdown does not wait
        for clients to leave."""
        for c in list(self.clients):
            c.closed = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(c.ws.close(code=1001, message=b"venue-sim shutting down"), 2)

    def close(self) -> None:
        """Close the fills file."""
        if self._fills_fh is not None:
            self._fills_fh.close()
            self._fills_fh = None

    # ================================================================ app

    def app(self) -> web.Application:
        """The aiohttp application."""
        app = web.Application()
        r = app.router
        r.add_get("/", self.h_root)
        r.add_get("/health", self.h_health)
        r.add_get("/metrics", self.h_metrics)
        r.add_get("/stream", self.h_ws)
        r.add_get("/sim/status", self.h_status)
        r.add_post("/sim/start", self.h_start)
        r.add_get("/sim/fills", self.h_fills)
        api = {
            "orderBooks": self.h_order_books, "orderBookDetails": self.h_order_book_details,
            "orderBookOrders": self.h_order_book_orders, "nextNonce": self.h_next_nonce,
            "account": self.h_account, "accountActiveOrders": self.h_active_orders,
            "accountInactiveOrders": self.h_inactive_orders, "recentTrades": self.h_recent_trades,
            "currentHeight": self.h_height, "apikeys": self.h_apikeys,
        }
        for name, h in api.items():
            r.add_get(f"/api/v1/{name}", h)
        r.add_post("/api/v1/sendTx", self.h_send_tx)
        r.add_post("/api/v1/sendTxBatch", self.h_send_tx_batch)
        return app

    # ================================================================ engine output -> WS

    def publish(self, updates: list[Update]) -> None:
        """Turn engine updates into WS messages (called by the replay with every batch)."""
        if not updates:
            return
        height0 = self.height
        books: dict[int, int] = {}
        for u in updates:
            if isinstance(u, BookChanged):
                books[u.market_id] = u.ts_ns
            elif isinstance(u, FillUpdate):
                self._on_fill(u.fill)
            elif isinstance(u, PositionUpdate):
                self._on_position(u.position, u.ts_ns)
            elif isinstance(u, OrderUpdate):
                self._on_order(u.order, u.ts_ns)
            elif isinstance(u, PublicTrade):
                self._on_public_trade(u)
            elif isinstance(u, StatsChanged):
                books.setdefault(u.market_id, u.ts_ns)
        for mid, ts in books.items():
            self._publish_book(mid, ts)
            self._maybe_stats(mid, ts)
        if self.height != height0 and self.subs.get("height"):
            self._send("height", {"channel": "height", "height": self.height, "timestamp": _ms(self.clock()),
                                  "type": "update/height"})

    def _send(self, channel: str, msg: dict[str, Any]) -> None:
        clients = self.subs.get(channel)
        if not clients:
            return
        data = json.dumps(msg, separators=(",", ":"))
        for c in clients:
            c.send(data)

    # ---------------------------------------------------------------- order book

    def public_levels(self, mid: int) -> tuple[dict[int, int], dict[int, int]]:
        """The book the ``order_book`` channel shows (see ``public_book``): ``(bids, asks)`` as
        ``{price_ticks: size_lots}``."""
        if self.public_book == "venue":
            return self.engine.public_book(mid)
        st = self.engine.state[mid]
        bids = {st.bid_px: st.bid_sz} if st.bid_px is not None and st.bid_sz > 0 else {}
        asks = {st.ask_px: st.ask_sz} if st.ask_px is not None and st.ask_sz > 0 else {}
        return bids, asks

    def queued_messages(self) -> int:
        """WebSocket messages queued and not yet written, over all clients."""
        return sum(c.queue.qsize() for c in self.clients if not c.closed)

    def _publish_book(self, mid: int, ts_ns: int) -> None:
        bids, asks = self.public_levels(mid)
        old_bids, old_asks = self.book_levels[mid]
        d_bids = _diff(old_bids, bids)
        d_asks = _diff(old_asks, asks)
        if not d_bids and not d_asks:
            return
        self.book_levels[mid] = (bids, asks)
        begin = self.book_nonce[mid]
        self.book_nonce[mid] = begin + 1
        self.book_ts[mid] = ts_ns
        m = self.markets[mid]
        ch = f"order_book:{mid}"
        if not self.subs.get(ch):
            return
        nonce = self.book_nonce[mid]
        ob = {"code": 0, "asks": _levels(m, d_asks, False), "bids": _levels(m, d_bids, True), "offset": nonce,
              "nonce": nonce, "begin_nonce": begin, "last_updated_at": _us(ts_ns)}
        self._send(ch, {"channel": ch, "offset": nonce, "order_book": ob, "last_updated_at": _us(ts_ns),
                        "timestamp": _ms(ts_ns), "type": "update/order_book"})

    def book_snapshot(self, mid: int) -> dict[str, Any]:
        """The ``subscribed/order_book`` message of market ``mid`` (the last published book)."""
        m = self.markets[mid]
        bids, asks = self.book_levels[mid]
        nonce, ts = self.book_nonce[mid], self.book_ts[mid] or self.clock()
        ob = {"code": 0, "asks": _levels(m, asks, False), "bids": _levels(m, bids, True), "offset": nonce,
              "nonce": nonce, "begin_nonce": 0, "last_updated_at": _us(ts)}
        return {"channel": f"order_book:{mid}", "offset": nonce, "order_book": ob, "last_updated_at": _us(ts),
                "timestamp": _ms(self.clock()), "type": "subscribed/order_book"}

    # ---------------------------------------------------------------- market stats

    def stats_json(self, mid: int) -> dict[str, Any]:
        """Lighter's ``market_stats`` object for market ``mid`` (mark/index = recorded, else mid)."""
        m = self.markets[mid]
        st = self.engine.state[mid]
        mid_t = st.mid_ticks
        mid_px = m.int_to_price(round(mid_t)) if mid_t is not None else st.last_trade_price
        mark = st.mark_price or mid_px
        index = st.index_price or mid_px
        pd = m.price_decimals
        return {"symbol": m.symbol, "market_id": mid, "index_price": _num(index, pd), "mark_price": _num(mark, pd),
                "mid_price": _num(mid_px, pd), "open_interest": _num(st.open_interest, m.size_decimals),
                "last_trade_price": _num(st.last_trade_price or mid_px, pd),
                "current_funding_rate": _num(st.funding_rate, 6), "funding_rate": _num(st.funding_rate, 6),
                "funding_timestamp": 0, "daily_base_token_volume": 0.0, "daily_quote_token_volume": 0.0,
                "daily_price_low": 0.0, "daily_price_high": 0.0, "daily_price_change": 0.0}

    def _maybe_stats(self, mid: int, ts_ns: int) -> None:
        last = self.stats_sent_ns.get(mid)
        if last is not None and ts_ns - last < self.stats_interval_ns:
            return
        if self.engine.state[mid].mid_ticks is None and not self.engine.state[mid].mark_price:
            return
        self.stats_sent_ns[mid] = ts_ns
        stats = self.stats_json(mid)
        ch = f"market_stats:{mid}"
        self._send(ch, {"channel": ch, "market_stats": stats, "timestamp": _ms(ts_ns), "type": "update/market_stats"})
        self._send("market_stats:all", {"channel": "market_stats:all", "market_stats": {str(mid): stats},
                                        "timestamp": _ms(ts_ns), "type": "update/market_stats"})

    # ---------------------------------------------------------------- trades

    def _trade_json(self, m: MarketInfo, trade_id: int, px: int, lots: int, is_maker_ask: bool, ts_ns: int,
                    **kw: Any) -> dict[str, Any]:
        return LJ.trade_json(m, trade_id, px, lots, is_maker_ask, ts_ns, height=self.height,
                             taker_fee=self.engine.taker_fee, maker_fee=self.engine.maker_fee, **kw)

    def fill_trade_json(self, f: Fill) -> dict[str, Any]:
        """A sim fill as Lighter's Trade object."""
        return LJ.fill_trade_json(self.markets[f.market_id], f, height=self.height,
                                  taker_fee=self.engine.taker_fee, maker_fee=self.engine.maker_fee)

    def _public_trade_msg(self, mid: int, trade: dict[str, Any], ts_ns: int) -> None:
        self.trades[mid].append(trade)
        self.trade_nonce += 1
        ch = f"trade:{mid}"
        self._send(ch, {"channel": ch, "liquidation_trades": [], "nonce": self.trade_nonce, "trades": [trade],
                        "timestamp": _ms(ts_ns), "type": "update/trade"})

    def _on_public_trade(self, u: PublicTrade) -> None:
        m = self.markets[u.market_id]
        t = self._trade_json(m, u.trade_id, u.price_ticks, u.size_lots, u.taker_side == "buy", u.ts_ns)
        self._public_trade_msg(u.market_id, t, u.ts_ns)

    def _on_fill(self, f: Fill) -> None:
        FILLS.labels(f.market, "taker" if f.taker_account != BOOK_ACCOUNT else "maker").inc()
        if self._fills_fh is not None:
            self._fills_fh.write(self._enc.encode(f) + b"\n")
            self._fills_fh.flush()
        self.height += 1
        t = self.fill_trade_json(f)
        if self.public_book == "venue":
            # as Lighter: our trades are public too. ``recorded`` (lockstep/parity): the public
            # channels carry the recording only, as the backtest's strategies see it
            self._public_trade_msg(f.market_id, t, f.ts_ns)
        for acct in {f.taker_account, f.maker_account} - {BOOK_ACCOUNT}:
            self.account_fills.setdefault(acct, deque(maxlen=500)).append(f)
            trades = {str(f.market_id): [t]}
            ch = f"account_all_trades:{acct}"
            self._send(ch, {"channel": ch, "trades": trades, "total_volume": 0, "monthly_volume": 0,
                            "daily_volume": 0, "timestamp": _ms(f.ts_ns), "type": "update/account_all_trades"})
            self._send_account_all(acct, f.ts_ns, trades=trades)

    # ---------------------------------------------------------------- orders and positions

    def order_json(self, o: Order) -> dict[str, Any]:
        """Lighter's Order object (amount strings with size decimals, sim-time timestamps)."""
        return LJ.order_json(self.markets[o.market_id], o, height=self.height)

    def position_json(self, p: Position) -> dict[str, Any]:
        """Lighter's Position object (size as an absolute string plus ``sign``)."""
        m = self.markets[p.market_id]
        mark = LJ.mark_price(m, self.engine.state[p.market_id], p.avg_entry_price)
        n_open = sum(1 for o in self.engine.resting[p.market_id].values() if o.account == p.account)
        return LJ.position_json(m, p, mark=mark, open_orders=n_open)

    def _on_order(self, o: Order, ts_ns: int) -> None:
        if o.status != "open":
            ORDER_STATUS.labels(o.status).inc()
            if o.status == "canceled-self-trade":
                SELF_TRADES.inc()
        self.height += 1
        oj = self.order_json(o)
        orders = {str(o.market_id): [oj]}
        ch = f"account_all_orders:{o.account}"
        self._send(ch, {"channel": ch, "orders": orders, "timestamp": _ms(ts_ns), "type": "update/account_all_orders"})
        ch = f"account_orders:{o.market_id}:{o.account}"
        self._send(ch, {"account": o.account, "channel": ch, "nonce": self.height, "orders": orders,
                        "timestamp": _ms(ts_ns), "type": "update/account_orders"})
        self._send_account_all(o.account, ts_ns, orders=orders)

    def _on_position(self, p: Position, ts_ns: int) -> None:
        positions = {str(p.market_id): self.position_json(p)}
        ch = f"account_all_positions:{p.account}"
        self._send(ch, {"channel": ch, "positions": positions, "shares": [], "timestamp": _ms(ts_ns),
                        "type": "update/account_all_positions"})
        self._send_account_all(p.account, ts_ns, positions=positions)
        ch = f"user_stats:{p.account}"
        if self.subs.get(ch):
            self._send(ch, {"channel": ch, "stats": self.user_stats(p.account), "timestamp": _ms(ts_ns),
                            "type": "update/user_stats"})

    def _send_account_all(self, acct: int, ts_ns: int, *, orders: dict | None = None,
                          positions: dict | None = None, trades: dict | None = None) -> None:
        ch = f"account_all:{acct}"
        if not self.subs.get(ch):
            return
        self._send(ch, {"account": acct, "channel": ch, "orders": orders or {}, "positions": positions or {},
                        "trades": trades or {}, "funding_histories": {}, "shares": [], "timestamp": _ms(ts_ns),
                        "type": "update/account_all"})

    def user_stats(self, acct: int) -> dict[str, Any]:
        """``user_stats`` of an account: collateral and portfolio value in USD strings."""
        a = self.engine.account(acct)
        upnl = sum(float(self.position_json(p)["unrealized_pnl"]) for p in a.positions.values())
        value = a.collateral + upnl
        s = {"collateral": _num(a.collateral, 6), "portfolio_value": _num(value, 6), "leverage": "0.00",
             "available_balance": _num(value, 6), "margin_usage": "0.00", "buying_power": _num(value, 6)}
        return {"account_trading_mode": 0, **s, "cross_stats": dict(s), "total_stats": dict(s)}

    # ---------------------------------------------------------------- subscription snapshots

    def _account_orders(self, acct: int, market_id: int | None = None) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for o in self.engine.active_orders(acct, market_id):
            out.setdefault(str(o.market_id), []).append(self.order_json(o))
        if market_id is not None:
            out.setdefault(str(market_id), [])
        return out

    def _account_positions(self, acct: int) -> dict[str, dict[str, Any]]:
        a = self.engine.account(acct)
        return {str(mid): self.position_json(p) for mid, p in sorted(a.positions.items())}

    def _account_trades(self, acct: int) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for f in self.account_fills.get(acct, ()):
            out.setdefault(str(f.market_id), []).append(self.fill_trade_json(f))
        return out

    def snapshot(self, channel: str) -> dict[str, Any]:
        """The ``subscribed/...`` message for a (``:``-separated, validated) channel."""
        parts = channel.split(":")
        kind, now = parts[0], self.clock()
        base = {"channel": channel, "type": f"subscribed/{kind}", "timestamp": _ms(now)}
        if kind == "order_book":
            return self.book_snapshot(int(parts[1]))
        if kind == "trade":
            return {**base, "trades": list(self.trades[int(parts[1])])[-50:], "liquidation_trades": [],
                    "nonce": self.trade_nonce}
        if kind == "market_stats":
            mids = list(self.markets) if parts[1] == "all" else [int(parts[1])]
            stats = {str(mid): self.stats_json(mid) for mid in mids}
            return {**base, "market_stats": stats if parts[1] == "all" else stats[parts[1]]}
        if kind == "height":
            return {**base, "height": self.height}
        if kind == "account_orders":
            mid, acct = int(parts[1]), int(parts[2])
            return {**base, "account": acct, "nonce": self.height, "orders": self._account_orders(acct, mid)}
        acct = int(parts[1])
        if kind == "account_all_orders":
            return {**base, "orders": self._account_orders(acct)}
        if kind == "account_all_trades":
            return {**base, "trades": self._account_trades(acct), "total_volume": 0, "monthly_volume": 0,
                    "daily_volume": 0}
        if kind == "account_all_positions":
            return {**base, "positions": self._account_positions(acct), "shares": []}
        if kind == "user_stats":
            return {**base, "stats": self.user_stats(acct)}
        # account_all
        return {**base, "account": acct, "orders": self._account_orders(acct),
                "positions": self._account_positions(acct), "trades": self._account_trades(acct),
                "funding_histories": {}, "shares": []}

    def parse_channel(self, channel: str) -> str | None:
        """Validate a subscribe channel (``/``-separated) and return its ``:`` form, or None."""
        parts = str(channel).split("/")
        kind, args = parts[0], parts[1:]
        try:
            if kind in ("order_book", "trade", "ticker") and len(args) == 1 and int(args[0]) in self.markets:
                return f"{kind}:{int(args[0])}" if kind != "ticker" else None
            if kind == "market_stats" and len(args) == 1 and (args[0] == "all" or int(args[0]) in self.markets):
                return f"market_stats:{args[0] if args[0] == 'all' else int(args[0])}"
            if kind == "height" and not args:
                return "height"
            if kind == "account_orders" and len(args) == 2 and int(args[0]) in self.markets:
                return f"account_orders:{int(args[0])}:{int(args[1])}"
            if kind in ACCOUNT_CHANNELS and kind != "account_orders" and len(args) == 1 and int(args[0]) >= 0:
                return f"{kind}:{int(args[0])}"
        except ValueError:
            return None
        return None

    def subscribers(self) -> dict[str, int]:
        """Subscriber count per channel."""
        return {ch: len(cs) for ch, cs in sorted(self.subs.items()) if cs}

    def _check_start(self) -> None:
        if self.start_account is None:
            return
        if not all(self.subs.get(f"order_book:{mid}") for mid in self.markets):
            return
        acct = str(self.start_account)
        if any(cs and ch.split(":")[0] in ACCOUNT_CHANNELS and ch.split(":")[-1] == acct
               for ch, cs in self.subs.items()):
            log.info("all order books and account %s subscribed: starting the replay", acct)
            self.start_account = None
            self.on_start()

    # ================================================================ WS handler

    async def h_ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=4 * 1024 * 1024)
        await ws.prepare(request)
        client = Client(ws)
        self.clients.add(client)
        WS_CLIENTS.set(len(self.clients))
        writer = asyncio.create_task(client.writer())
        client.send({"session_id": client.session_id, "type": "connected"})
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self._on_ws_message(client, msg.data)
                elif msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                    break
        finally:
            for ch in client.channels:
                self.subs.get(ch, set()).discard(client)
            self.clients.discard(client)
            WS_CLIENTS.set(len(self.clients))
            client.queue.put_nowait(None)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer, 2)
        return ws

    def _on_ws_message(self, client: Client, data: str) -> None:
        try:
            msg = json.loads(data)
            kind = msg.get("type")
        except (ValueError, AttributeError):
            client.send({"type": "error", "code": 30000, "message": "invalid message"})
            return
        if kind == "ping":
            client.send({"type": "pong"})
        elif kind == "pong":
            pass
        elif kind in ("subscribe", "unsubscribe"):
            raw = msg.get("channel", "")
            ch = self.parse_channel(raw)
            if ch is None:
                client.send({"type": "error", "code": 30005, "message": f"Invalid Channel: {raw}"})
                return
            if kind == "subscribe":
                if ch in client.channels:
                    client.send({"type": "error", "code": 30003, "channel": ch, "message": "Already Subscribed"})
                    return
                client.channels.add(ch)
                self.subs.setdefault(ch, set()).add(client)
                client.send(self.snapshot(ch))
                self._check_start()
            else:
                client.channels.discard(ch)
                self.subs.get(ch, set()).discard(client)
                client.send({"type": "unsubscribed", "channel": ch})
        elif kind in ("jsonapi/sendtx", "jsonapi/sendtxbatch"):
            self._ws_tx(client, kind, msg.get("data") or {})
        else:
            client.send({"type": "error", "code": 30000, "message": f"unknown message type {kind!r}"})

    def _ws_tx(self, client: Client, kind: str, data: dict[str, Any]) -> None:
        rid = data.get("id", "")
        try:
            if kind == "jsonapi/sendtx":
                info = data.get("tx_info")
                info_s = info if isinstance(info, str) else json.dumps(info)
                body = self.send_tx(int(data.get("tx_type", 0)), info_s)
            else:
                body = self.send_tx_batch(str(data.get("tx_types", "[]")), str(data.get("tx_infos", "[]")))
        except VenueError as exc:
            client.send({"type": kind, "id": rid, **exc.to_json()})
            return
        client.send({"type": kind, "id": rid, **body})

    # ================================================================ tx path

    def _parse_tx(self, tx_type: int, info: dict[str, Any], tx_hash: str) -> CreateOrder | CancelOrder | CancelAll:
        acct = int(info["AccountIndex"])
        if tx_type == TX_CREATE:
            otype = ORDER_TYPES.get(int(info["Type"]))
            if otype is None:
                raise VenueError(E.INVALID_ORDER_TYPE, f"order type {info['Type']} (venue-sim: limit 0, market 1)")
            tif = TIF_CODES.get(int(info["TimeInForce"]))
            if tif is None or (otype == "market" and tif != "ioc"):
                raise VenueError(E.INVALID_TIF, f"time in force {info['TimeInForce']} for {otype}")
            return CreateOrder(account=acct, market_id=int(info["MarketIndex"]),
                               client_order_index=int(info["ClientOrderIndex"]), base_amount=int(info["BaseAmount"]),
                               price=int(info["Price"]), is_ask=bool(int(info["IsAsk"])), order_type=otype,
                               time_in_force=tif, reduce_only=bool(int(info.get("ReduceOnly") or 0)),
                               order_expiry_ms=int(info.get("OrderExpiry") or 0), nonce=int(info["Nonce"]),
                               tx_hash=tx_hash)
        if tx_type == TX_CANCEL:
            return CancelOrder(account=acct, market_id=int(info["MarketIndex"]), index=int(info["Index"]),
                               tx_hash=tx_hash)
        attrs = info.get("L2TxAttributes") or {}
        market = attrs.get("5", info.get("MarketIndex"))
        market = None if market is None or int(market) == 255 else int(market)
        return CancelAll(account=acct, market_id=market, scheduled=int(info.get("TimeInForce") or 0) != 0,
                         tx_hash=tx_hash)

    def _admit(self, tx_info: str, txs: int) -> None:
        """Charge one tx request of ``txs`` txs to the account of ``tx_info`` (its
        ``AccountIndex``) at the current sim time, before any tx of it is processed.
        ``tx_info`` without a readable account is not charged (the tx path refuses it).

        Raises:
            ratelimit.RateLimited: 23000, the account is over the rate limit.
        """
        try:
            acct = int(json.loads(tx_info)["AccountIndex"])
        except (ValueError, KeyError, TypeError):
            return
        try:
            self.meter.admit(acct, self.clock(), txs)
        except VenueError as exc:
            self.tx_requests += 1
            REJECTS.labels(str(exc.code)).inc()
            log.info("refused a request of account %s: %s", acct, exc)
            raise

    def send_tx(self, tx_type: int, tx_info: str) -> dict[str, Any]:
        """One ``sendTx`` request: charge the account's rate limit, then validate, schedule and
        acknowledge the tx; returns Lighter's sendTx body.

        Raises:
            VenueError: with Lighter's code (23000 too many requests -- nothing processed,
                21104 nonce, 21706 amount, 21728 duplicate client order index, 21732
                reduce-only, 21602 market, 21505 tx type, 21501 bad tx_info).
        """
        self._admit(tx_info, 1)
        return self._one_tx(tx_type, tx_info)

    def _one_tx(self, tx_type: int, tx_info: str) -> dict[str, Any]:
        """Validate, schedule and acknowledge one tx (no rate-limit charge)."""
        self.tx_requests += 1
        try:
            return self._send_tx(tx_type, tx_info)
        except VenueError as exc:
            REJECTS.labels(str(exc.code)).inc()
            log.info("rejected tx type %s: %s", tx_type, exc)
            raise

    def _send_tx(self, tx_type: int, tx_info: str) -> dict[str, Any]:
        if tx_type not in (TX_CREATE, TX_CANCEL, TX_CANCEL_ALL):
            raise VenueError(E.UNSUPPORTED_TX_TYPE, f"tx type {tx_type} (venue-sim supports 14, 15, 16)")
        try:
            info = json.loads(tx_info)
            acct, key, nonce = int(info["AccountIndex"]), int(info["ApiKeyIndex"]), int(info["Nonce"])
            expired_at = int(info.get("ExpiredAt") or 0)
        except (ValueError, KeyError, TypeError) as exc:
            raise VenueError(E.INVALID_TX_INFO, f"{type(exc).__name__}: {exc}") from None
        if expired_at and expired_at < time.time() * 1000:
            raise VenueError(E.TX_EXPIRED, f"ExpiredAt {expired_at} is in the past")
        expected = self.nonces.get((acct, key), 0)
        if nonce != expected:
            raise VenueError(E.INVALID_NONCE, f"nonce {nonce}, expected {expected} for account {acct} key {key}")
        h = tx_hash_of(tx_info)
        try:
            tx = self._parse_tx(tx_type, info, h)
        except (ValueError, KeyError, TypeError) as exc:
            raise VenueError(E.INVALID_TX_INFO, f"{type(exc).__name__}: {exc}") from None
        acc = self.engine.submit(tx, self.clock())
        self.nonces[(acct, key)] = expected + 1
        TXS.labels(str(tx_type)).inc()
        if isinstance(tx, CreateOrder):
            ORDERS.labels(self.markets[tx.market_id].symbol, tx.order_type, tx.time_in_force).inc()
        self.on_tx()
        return {"code": 200, "message": json.dumps({"ratelimit": "didn't use volume quota"}), "tx_hash": h,
                "predicted_execution_time_ms": _ms(acc.exec_ns), "volume_quota_remaining": 100_000}

    def send_tx_batch(self, tx_types: str, tx_infos: str) -> dict[str, Any]:
        """One ``sendTxBatch`` request (one request of the rate limit, charged to the first
        tx's account): process the txs in order; the first refused tx stops it (earlier ones
        stay accepted).

        Raises:
            VenueError: 21501 for malformed lists or more than 15 txs, 23000 over the rate limit
                (both before any tx is processed), else the first refused tx's error.
        """
        try:
            types = [int(t) for t in json.loads(tx_types)]
            infos = [i if isinstance(i, str) else json.dumps(i) for i in json.loads(tx_infos)]
            if len(types) != len(infos) or not types:
                raise ValueError("tx_types and tx_infos must be non-empty lists of one length")
            if len(types) > BATCH_MAX_TXS:
                raise ValueError(f"{len(types)} txs in one batch; at most {BATCH_MAX_TXS}")
        except (ValueError, TypeError) as exc:
            REJECTS.labels(str(E.INVALID_TX_INFO)).inc()
            raise VenueError(E.INVALID_TX_INFO, str(exc)) from None
        self._admit(infos[0], len(infos))
        hashes, predicted = [], 0
        for t, i in zip(types, infos, strict=True):
            body = self._one_tx(t, i)
            hashes.append(body["tx_hash"])
            predicted = max(predicted, body["predicted_execution_time_ms"])
        return {"code": 200, "message": "", "tx_hash": hashes, "predicted_execution_time_ms": predicted,
                "volume_quota_remaining": 100_000}

    # ================================================================ REST handlers

    @staticmethod
    def _err(exc: VenueError) -> web.Response:
        return web.json_response(exc.to_json(), status=400)

    @staticmethod
    def _int(request: web.Request, name: str, default: int | None = None) -> int:
        raw = request.query.get(name)
        if raw is None or raw == "":
            if default is None:
                raise VenueError(E.INVALID_TX_INFO, f"missing query parameter {name}")
            return default
        try:
            return int(raw)
        except ValueError:
            raise VenueError(E.INVALID_TX_INFO, f"{name} must be an integer") from None

    async def h_send_tx(self, request: web.Request) -> web.Response:
        form = await request.post()
        try:
            tx_type = int(str(form.get("tx_type", "")))
        except ValueError:
            return self._err(VenueError(E.INVALID_TX_INFO, "tx_type must be an integer"))
        try:
            return web.json_response(self.send_tx(tx_type, str(form.get("tx_info", ""))))
        except VenueError as exc:
            return self._err(exc)

    async def h_send_tx_batch(self, request: web.Request) -> web.Response:
        form = await request.post()
        try:
            return web.json_response(self.send_tx_batch(str(form.get("tx_types", "[]")),
                                                        str(form.get("tx_infos", "[]"))))
        except VenueError as exc:
            return self._err(exc)

    async def h_next_nonce(self, request: web.Request) -> web.Response:
        try:
            acct, key = self._int(request, "account_index"), self._int(request, "api_key_index")
        except VenueError as exc:
            return self._err(exc)
        return web.json_response({"code": 200, "nonce": self.nonces.get((acct, key), 0)})

    async def h_apikeys(self, request: web.Request) -> web.Response:
        try:
            acct = self._int(request, "account_index")
        except VenueError as exc:
            return self._err(exc)
        keys = [{"account_index": a, "api_key_index": k, "nonce": n, "public_key": ""}
                for (a, k), n in sorted(self.nonces.items()) if a == acct]
        return web.json_response({"code": 200, "api_keys": keys})

    def _market_and_limit(self, request: web.Request, max_limit: int) -> tuple[MarketInfo, int]:
        """The required ``market_id`` and ``limit`` (default 100, clamped to 1..``max_limit``).

        Raises:
            VenueError: 21602 when ``market_id`` is missing or unknown; 21501 when ``limit`` is
                not an integer.
        """
        if not request.query.get("market_id"):
            raise VenueError(E.INVALID_MARKET, "market_id is required")
        return self._selected(request)[0], max(1, min(max_limit, self._int(request, "limit", 100)))

    def _selected(self, request: web.Request) -> list[MarketInfo]:
        mid = request.query.get("market_id")
        if mid in (None, "", "255"):
            return list(self.markets.values())
        try:
            return [self.markets[int(mid)]]
        except (KeyError, ValueError):
            raise VenueError(E.INVALID_MARKET, f"market {mid}") from None

    def _order_book_light(self, m: MarketInfo) -> dict[str, Any]:
        d = m.to_lighter()
        keep = ("symbol", "market_id", "market_type", "status", "taker_fee", "maker_fee", "min_base_amount",
                "min_quote_amount", "supported_size_decimals", "supported_price_decimals", "supported_quote_decimals")
        out = {k: d[k] for k in keep}
        out.update(self._fee_fields())
        out.update({"base_asset_id": 0, "quote_asset_id": 3, "liquidation_fee": "1.0000",
                    "order_quote_limit": "281474976.710655", "is_maker_fee_enabled": True,
                    "is_taker_fee_enabled": True, "created_at": "0", "multiplier": "1", "start_timestamp": 0,
                    "end_timestamp": 0, "settlement_type": 0, "settlement_price": 0, "settlement_cap": 0,
                    "outcome": 0, "default_price": 0, "operator_account_index": 0, "is_frozen": False,
                    "open_interest": _num(self.engine.state[m.market_id].open_interest, m.size_decimals)})
        return out

    def _fee_fields(self) -> dict[str, str]:
        return {"taker_fee": f"{self.engine.taker_fee * 100:.4f}", "maker_fee": f"{self.engine.maker_fee * 100:.4f}"}

    async def h_order_books(self, request: web.Request) -> web.Response:
        try:
            ms = self._selected(request)
        except VenueError as exc:
            return self._err(exc)
        return web.json_response({"code": 200, "order_books": [self._order_book_light(m) for m in ms]})

    async def h_order_book_details(self, request: web.Request) -> web.Response:
        try:
            ms = self._selected(request)
        except VenueError as exc:
            return self._err(exc)
        out = []
        for m in ms:
            d = {**self._order_book_light(m), **m.to_lighter(), **self._fee_fields()}
            stats = self.stats_json(m.market_id)
            st = self.engine.state[m.market_id]
            d.update({"last_trade_price": st.last_trade_price or float(stats["mid_price"]),
                      "mark_price": stats["mark_price"], "index_price": stats["index_price"],
                      "daily_trades_count": 0, "daily_base_token_volume": 0.0, "daily_quote_token_volume": 0.0,
                      "daily_price_low": 0.0, "daily_price_high": 0.0, "daily_price_change": 0.0,
                      "open_interest": st.open_interest, "daily_chart": {},
                      "market_config": {"market_margin_mode": 0, "insurance_fund_account_index": 281474976710655,
                                        "liquidation_mode": 0, "force_reduce_only": False, "trading_hours": "",
                                        "funding_fee_discounts_enabled": False, "hidden": False,
                                        "rfq_enabled": False},
                      "strategy_index": 0, "funding_clamp_small": "0.0500", "funding_clamp_big": "4.0000",
                      "base_interest_rate": "0.0000", "market_flags": 0, "funding_premium_multiplier": 0})
            out.append(d)
        return web.json_response({"code": 200, "order_book_details": out, "spot_order_book_details": []})

    async def h_order_book_orders(self, request: web.Request) -> web.Response:
        try:
            m, limit = self._market_and_limit(request, max_limit=250)
        except VenueError as exc:
            return self._err(exc)
        bids, asks = self.engine.public_book(m.market_id)
        st = self.engine.state[m.market_id]
        own = {o.price: o for o in self.engine.resting[m.market_id].values()}
        expiry = _ms(self.clock()) + 28 * 86_400_000

        def rows(levels: dict[int, int], is_bid: bool) -> list[dict[str, Any]]:
            out = []
            for n, (px, lots) in enumerate(sorted(levels.items(), reverse=is_bid)[:limit]):
                touch = st.bid_px if is_bid else st.ask_px
                base = (2**49 - 2**40 if is_bid else 2**48) + 2**39 + (px % 2**30)
                oi = own[px].order_index if px in own and px != touch else base + n
                acct = own[px].account if px in own and px != touch else BOOK_ACCOUNT
                out.append({"order_index": oi, "order_id": str(oi), "owner_account_index": acct,
                            "initial_base_amount": m.size_str(lots), "remaining_base_amount": m.size_str(lots),
                            "price": m.price_str(px), "order_expiry": expiry, "transaction_time": 0})
            return out

        a, b = rows(asks, False), rows(bids, True)
        return web.json_response({"code": 200, "total_asks": len(a), "asks": a, "total_bids": len(b), "bids": b})

    def _account_json(self, acct: int) -> dict[str, Any]:
        a = self.engine.account(acct)
        stats = self.user_stats(acct)
        positions = [self.position_json(p) for _, p in sorted(a.positions.items())]
        n_orders = len(self.engine.active_orders(acct))
        return {
            "code": 0, "account_type": 0, "account_trading_mode": 0, "index": acct, "l1_address": "0x" + "0" * 40,
            "cancel_all_time": 0, "total_order_count": n_orders, "total_isolated_order_count": 0,
            "pending_order_count": 0, "available_balance": stats["available_balance"], "status": 1,
            "collateral": stats["collateral"], "account_index": acct, "name": "", "description": "",
            "can_invite": False, "referral_points_percentage": "", "positions": positions,
            "assets": [{"symbol": "USDC", "asset_id": 3, "balance": stats["collateral"], "locked_balance": "0.000000",
                        "margin_balance": stats["collateral"], "margin_mode": "enabled", "multiplier": "1"}],
            "total_asset_value": stats["portfolio_value"], "cross_asset_value": stats["portfolio_value"],
            "pool_info": {"status": 0, "operator_fee": "0", "min_operator_share_rate": "0", "total_shares": 0,
                          "operator_shares": 0, "annual_percentage_yield": 0, "daily_returns": [],
                          "share_prices": [], "sharpe_ratio": 0, "strategies": []},
            "shares": [], "created_at": 0, "transaction_time": _us(self.clock()), "pending_unlocks": [],
            "approved_integrators": [], "can_rfq": False, "cross_initial_margin_requirement": "0.000000",
            "cross_maintenance_margin_requirement": "0.000000", "can_rfq_market_ids": [],
            "metadata": {"color": ""}, "agent_enabled": False,
        }

    async def h_account(self, request: web.Request) -> web.Response:
        by = request.query.get("by", "index")
        if by != "index":
            return self._err(VenueError(E.INVALID_TX_INFO, "venue-sim looks accounts up by=index only"))
        try:
            acct = self._int(request, "value")
        except VenueError as exc:
            return self._err(exc)
        return web.json_response({"code": 200, "total": 1, "accounts": [self._account_json(acct)], "next_cursor": ""})

    async def h_active_orders(self, request: web.Request) -> web.Response:
        try:
            acct = self._int(request, "account_index")
            mid = request.query.get("market_id")
            market = None if mid in (None, "", "255") else self._selected(request)[0].market_id
        except VenueError as exc:
            return self._err(exc)
        orders = [self.order_json(o) for o in self.engine.active_orders(acct, market)]
        return web.json_response({"code": 200, "orders": orders})

    async def h_inactive_orders(self, request: web.Request) -> web.Response:
        try:
            acct = self._int(request, "account_index")
            limit = max(1, min(100, self._int(request, "limit", 100)))
            mid = request.query.get("market_id")
            market = None if mid in (None, "", "255") else self._selected(request)[0].market_id
        except VenueError as exc:
            return self._err(exc)
        orders = [self.order_json(o) for o in self.engine.inactive_orders(acct, market)[:limit]]
        return web.json_response({"code": 200, "orders": orders, "next_cursor": ""})

    async def h_recent_trades(self, request: web.Request) -> web.Response:
        try:
            m, limit = self._market_and_limit(request, max_limit=100)
        except VenueError as exc:
            return self._err(exc)
        trades = list(self.trades[m.market_id])[-limit:][::-1]
        return web.json_response({"code": 200, "trades": trades})

    async def h_height(self, _request: web.Request) -> web.Response:
        return web.json_response({"code": 200, "height": self.height})

    async def h_root(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": 1, "network_id": 1, "timestamp": int(self.clock() // 1_000_000_000)})

    # ================================================================ sim control

    def status(self) -> dict[str, Any]:
        """Body of ``GET /sim/status``."""
        now = self.clock()
        SIM_TIME.set(now / 1e9)
        extra = self.status_extra()
        REPLAYED.set(extra.get("events_replayed", 0))
        return {
            "state": extra.get("state", "running"), "events_replayed": extra.get("events_replayed", 0),
            "total_events": extra.get("total_events"), "sim_time_ns": now,
            "sim_time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now / 1e9)) if now else None,
            "fills": len(self.engine.fills), "pending_txs": self.engine.pending_count(),
            "self_trade_cancels": len(self.engine.self_trade_cancels),
            "rate_limit": {"enabled": self.meter.enabled, "limit_per_min": self.meter.limit,
                           "request_weight": self.meter.weight},
            "accounts": self.account_status(),
            "depth_assumption": DEPTH_ASSUMPTION, "subscribers": self.subscribers(), "ws_clients": len(self.clients),
            "markets": {m.symbol: m.market_id for m in self.markets.values()},
            "tier": msgspec.to_builtins(self.engine.tier), "maker_fee": self.engine.maker_fee,
            "taker_fee": self.engine.taker_fee, **{k: v for k, v in extra.items() if k not in
                                                   ("state", "events_replayed", "total_events")},
        }

    def account_status(self) -> dict[str, dict[str, int]]:
        """Per account that sent txs or traded (key: the account index as a string):
        ``requests``, ``txs``, ``weight_total``, ``max_requests_per_min``, ``rate_limited``
        (see :meth:`ratelimit.RequestMeter.status`), ``fills`` (fills with the account on
        either side), ``self_trade_fills`` (the account on both sides of one fill; 0 while
        self-trade prevention works) and ``self_trade_cancels`` (its resting orders canceled
        to prevent a self-trade)."""
        blank = {"requests": 0, "txs": 0, "weight_total": 0, "max_requests_per_min": 0, "rate_limited": 0,
                 "fills": 0, "self_trade_fills": 0, "self_trade_cancels": 0}
        out = {str(a): dict(blank) for a in self.engine.accounts}
        for acct, row in self.meter.status().items():
            out.setdefault(acct, dict(blank)).update(row)
        for f in self.engine.fills:
            for acct in {f.taker_account, f.maker_account} - {BOOK_ACCOUNT}:
                row = out.setdefault(str(acct), dict(blank))
                row["fills"] += 1
                row["self_trade_fills"] += f.taker_account == f.maker_account
        for o in self.engine.self_trade_cancels:
            out.setdefault(str(o.account), dict(blank))["self_trade_cancels"] += 1
        return dict(sorted(out.items(), key=lambda kv: int(kv[0])))

    async def h_status(self, _request: web.Request) -> web.Response:
        return web.json_response(self.status())

    async def h_start(self, _request: web.Request) -> web.Response:
        self.on_start()
        return web.json_response(self.status())

    async def h_fills(self, _request: web.Request) -> web.Response:
        return web.Response(body=msgspec.json.encode(self.engine.fills), content_type="application/json")

    async def h_health(self, _request: web.Request) -> web.Response:
        s = self.status_extra()
        return web.json_response({"status": "ok", "service": "venue-sim", "state": s.get("state"),
                                  "events_replayed": s.get("events_replayed", 0),
                                  "uptime_s": round(time.time() - self.started_wall, 1)})

    async def h_metrics(self, _request: web.Request) -> web.Response:
        self.status()  # refresh gauges
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


def _diff(old: dict[int, int], new: dict[int, int]) -> dict[int, int]:
    out = {px: sz for px, sz in new.items() if old.get(px) != sz}
    out.update({px: 0 for px in old if px not in new})
    return out


def _levels(m: MarketInfo, levels: dict[int, int], desc: bool) -> list[dict[str, str]]:
    return [{"price": m.price_str(px), "size": m.size_str(sz)} for px, sz in sorted(levels.items(), reverse=desc)]
