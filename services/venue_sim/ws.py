"""venue-sim: WebSocket connections (``/stream``): subscriptions, their ``subscribed/...`` snapshots,
ping/pong, and txs sent over the socket (``jsonapi/sendtx``, ``jsonapi/sendtxbatch``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from typing import Any

from aiohttp import WSMsgType, web

from services.venue_sim.auth import AUTH_CHANNELS, AuthChecks
from services.venue_sim.base import ACCOUNT_CHANNELS, CLIENT_QUEUE_MAX, _ms
from services.venue_sim.metrics import WS_CLIENTS
from shared.venue.errors import VenueError

log = logging.getLogger("services.venue_sim.server")  # the server's logger, as before the split


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


class WsChannels(AuthChecks):
    """The ``/stream`` handler: channels, subscriptions and snapshots."""

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
                if ch.split(":")[0] in AUTH_CHANNELS:
                    try:
                        self.authorize_account(msg.get("auth"), int(ch.split(":")[-1]))
                    except VenueError as exc:
                        client.send({"type": "error", "channel": ch, **exc.to_json()})
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
