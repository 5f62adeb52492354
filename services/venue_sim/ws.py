"""venue-sim: WebSocket connections (``/stream``): subscriptions, their ``subscribed/...`` snapshots,
ping/pong, and txs sent over the socket (``jsonapi/sendtx``, ``jsonapi/sendtxbatch``).

Connection limits as Lighter's (reference notes §5.1, §6.8; docs/venue-sim.md "WebSocket
limits"), all in wall time (they concern the connection, not the market, so lockstep too):

- a connection that sends nothing for ``ws_idle_timeout_s`` (120 s) is closed (1000, ``idle``);
  any frame counts: text messages, ``{"type":"ping"}``, WS-level ping and pong frames;
- at most ``ws_max_subscriptions`` (500) channels per connection: the next subscribe gets
  ``{"type":"error","code":23001,"message":"too many subscriptions"}``;
- at most ``ws_messages_per_min`` (200) client messages per rolling minute, txs
  (``jsonapi/sendtx``, ``jsonapi/sendtxbatch``) not counted: a message over it is not processed
  and gets ``{"type":"error","code":30009,"message":"too many messages"}``;
- a malformed frame (not JSON, not an object, binary, unknown ``type``) gets
  ``{"type":"error","code":30000,"message":...}``; a ``jsonapi/sendtx``/``sendtxbatch`` with
  missing or garbled ``data`` gets its reply ``{"type":<kind>,"id":<id>,"code":21501,
  "message":...}``; the connection stays open in every case.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections import deque
from typing import Any

from aiohttp import WSMsgType, web

from services.venue_sim.auth import AUTH_CHANNELS, AuthChecks
from services.venue_sim.base import ACCOUNT_CHANNELS, CLIENT_QUEUE_MAX, _ms
from services.venue_sim.metrics import WS_CLIENTS
from shared.venue import errors as E
from shared.venue.errors import VenueError

log = logging.getLogger("services.venue_sim.server")  # the server's logger, as before the split

TX_KINDS = ("jsonapi/sendtx", "jsonapi/sendtxbatch")
WS_INVALID_MESSAGE = 30000
"""A frame venue-sim cannot read (Lighter's code for it is not documented; assumption)."""
WS_TOO_MANY_MESSAGES = 30009
"""Lighter's WS rate-limit code (30009/30010, reference notes §5.1): over 200 messages a minute."""
TOO_MANY_SUBSCRIPTIONS = 23001
"""Lighter's "too many subscriptions" (reference notes §6.7): over 500 on one connection."""


class Client:
    """One WebSocket connection: its subscriptions and an ordered send queue (``transport``:
    the TCP transport, ``ordinal``: the connection's number, for the faults of
    :mod:`services.venue_sim.fault_hooks`)."""

    def __init__(self, ws: web.WebSocketResponse, transport: Any = None, ordinal: int = 0) -> None:
        self.ws = ws
        self.transport = transport  # the TCP transport (a fault may abort it; None in tests)
        self.ordinal = ordinal  # n-th connection the server accepted (faults key on it)
        self.updates = 0  # channel updates offered to it while ws_disconnect faults were on
        self.session_id = str(uuid.uuid4())
        self.channels: set[str] = set()
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()
        self.closed = False
        self.last_frame = time.monotonic()  # wall (monotonic s) of the client's last frame
        self.msg_times: deque[float] = deque()  # wall (monotonic s) of counted messages, last minute
        self.close_code = 1000
        self.close_message = b""

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
            await self.ws.close(code=self.close_code, message=self.close_message)

    def shut(self, code: int, message: bytes) -> None:
        """Close the connection after the queued messages (close ``code``, ``message``)."""
        if self.closed:
            return
        self.close_code, self.close_message = code, message
        self.closed = True
        self.queue.put_nowait(None)


class WsChannels(AuthChecks):
    """The ``/stream`` handler: channels, subscriptions and snapshots.

    Attributes (limits, see the module docstring; ``runner.build`` sets them from the config):
        ws_idle_timeout_s: wall seconds without a client frame before the server closes.
        ws_max_subscriptions: channels per connection (0 = no limit).
        ws_messages_per_min: client messages per rolling wall minute, txs excluded (0 = no limit).
    """

    ws_idle_timeout_s: float = 120.0
    ws_max_subscriptions: int = 500
    ws_messages_per_min: int = 200

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

    # ---------------------------------------------------------------- WS handler

    async def h_ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=4 * 1024 * 1024, autoping=False)
        await ws.prepare(request)
        self.connections += 1
        client = Client(ws, request.transport, self.connections)
        self.clients.add(client)
        WS_CLIENTS.set(len(self.clients))
        writer = asyncio.create_task(client.writer())
        idle = asyncio.create_task(self._idle_watch(client))
        client.send({"session_id": client.session_id, "type": "connected"})
        try:
            async for msg in ws:
                client.last_frame = time.monotonic()
                if msg.type == WSMsgType.TEXT:
                    self._on_ws_message(client, msg.data)
                elif msg.type == WSMsgType.PING:  # autoping off, so that pings count as activity
                    await ws.pong(msg.data)
                elif msg.type == WSMsgType.BINARY:
                    client.send({"type": "error", "code": WS_INVALID_MESSAGE, "message": "binary frames are not supported"})
                elif msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                    break
        finally:
            idle.cancel()
            for ch in client.channels:
                self.subs.get(ch, set()).discard(client)
            self.clients.discard(client)
            WS_CLIENTS.set(len(self.clients))
            client.queue.put_nowait(None)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer, 2)
        return ws

    async def _idle_watch(self, client: Client) -> None:
        """Close ``client`` once it sent no frame for ``ws_idle_timeout_s`` wall seconds."""
        timeout = self.ws_idle_timeout_s
        while not client.closed:
            left = client.last_frame + timeout - time.monotonic()
            if left <= 0:
                log.info("ws client %s sent nothing for %g s; closing it", client.session_id, timeout)
                client.shut(1000, b"idle")
                return
            await asyncio.sleep(left)

    def _over_message_limit(self, client: Client) -> bool:
        """Count one client message; True when it is over ``ws_messages_per_min`` (not counted
        then, and not to be processed)."""
        limit = self.ws_messages_per_min
        if not limit:
            return False
        now = time.monotonic()
        times = client.msg_times
        while times and times[0] <= now - 60.0:
            times.popleft()
        if len(times) >= limit:
            return True
        times.append(now)
        return False

    def _on_ws_message(self, client: Client, data: str) -> None:
        """One client text frame; never raises (bad input gets an error frame, the connection
        stays open)."""
        try:
            msg = json.loads(data)
            kind = msg.get("type")
        except (ValueError, AttributeError):
            client.send({"type": "error", "code": WS_INVALID_MESSAGE, "message": "invalid message: not a JSON object"})
            return
        if kind not in TX_KINDS and self._over_message_limit(client):
            client.send({"type": "error", "code": WS_TOO_MANY_MESSAGES, "message": "too many messages"})
            return
        try:
            self._dispatch(client, kind, msg)
        except Exception as exc:  # bad input never drops the connection
            log.warning("ws message of type %r failed: %s: %s", kind, type(exc).__name__, exc)
            client.send({"type": "error", "code": WS_INVALID_MESSAGE, "message": f"invalid message: {type(exc).__name__}"})

    def _dispatch(self, client: Client, kind: Any, msg: dict[str, Any]) -> None:
        if kind == "ping":
            client.send({"type": "pong"})
        elif kind == "pong":
            pass
        elif kind in ("subscribe", "unsubscribe"):
            self._on_subscribe(client, kind, msg.get("channel", ""), msg.get("auth"))
        elif kind in TX_KINDS:
            self._ws_tx(client, kind, msg.get("data"))
        else:
            client.send({"type": "error", "code": WS_INVALID_MESSAGE, "message": f"unknown message type {kind!r}"})

    def _on_subscribe(self, client: Client, kind: str, raw: Any, auth: Any = None) -> None:
        ch = self.parse_channel(raw) if isinstance(raw, str) else None
        if ch is None:
            client.send({"type": "error", "code": 30005, "message": f"Invalid Channel: {raw}"})
            return
        if kind == "subscribe":
            if ch.split(":")[0] in ACCOUNT_CHANNELS:
                try:
                    self.require_account(int(ch.split(":")[-1]))
                except VenueError as exc:  # 21100: unknown accounts have no channels
                    client.send({"type": "error", "channel": ch, **exc.to_json()})
                    return
            if ch.split(":")[0] in AUTH_CHANNELS:
                try:
                    self.authorize_account(auth if isinstance(auth, str) else None, int(ch.split(":")[-1]))
                except VenueError as exc:
                    client.send({"type": "error", "channel": ch, **exc.to_json()})
                    return
            if ch in client.channels:
                client.send({"type": "error", "code": 30003, "channel": ch, "message": "Already Subscribed"})
                return
            if self.ws_max_subscriptions and len(client.channels) >= self.ws_max_subscriptions:
                client.send({"type": "error", "code": TOO_MANY_SUBSCRIPTIONS, "channel": ch,
                             "message": "too many subscriptions"})
                return
            client.channels.add(ch)
            self.subs.setdefault(ch, set()).add(client)
            client.send(self.snapshot(ch))
            self._check_start()
        else:
            client.channels.discard(ch)
            self.subs.get(ch, set()).discard(client)
            client.send({"type": "unsubscribed", "channel": ch})

    def _ws_tx(self, client: Client, kind: str, data: Any) -> None:
        """A tx request over the socket; the reply (success or error) carries the request's
        ``id``. Missing or garbled ``data`` is answered with 21501."""
        rid = data.get("id", "") if isinstance(data, dict) else ""
        try:
            if not isinstance(data, dict):
                raise VenueError(E.INVALID_TX_INFO, "data must be an object")
            if kind == "jsonapi/sendtx":
                info = data.get("tx_info")
                if not isinstance(info, (str, dict)):
                    raise VenueError(E.INVALID_TX_INFO, "tx_info must be a JSON object or string")
                try:
                    tx_type = int(data.get("tx_type"))  # type: ignore[arg-type]
                except (TypeError, ValueError):
                    raise VenueError(E.INVALID_TX_INFO, "tx_type must be an integer") from None
                body = self.send_tx(tx_type, info if isinstance(info, str) else json.dumps(info))
            else:
                body = self.send_tx_batch(str(data.get("tx_types", "[]")), str(data.get("tx_infos", "[]")))
        except VenueError as exc:
            client.send({"type": kind, "id": rid, **exc.to_json()})
            return
        client.send({"type": kind, "id": rid, **body})
