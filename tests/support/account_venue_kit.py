"""A scripted Lighter REST venue for the executor runner's start-up tests, served on loopback so
the executor's real REST client (timeouts, HTTP errors, JSON parsing) is exercised: ``nextNonce``,
``account``, ``accountActiveOrders``, ``apikeys``, ``trades`` (the account's, newest first, paged by
``limit``/``cursor``), ``sendTx``, ``sendTxBatch``. Each answer can be replaced
per path (``venue.script[path] = (status, body)`` or ``("sleep", seconds)``); every transaction
sent is recorded decoded (``venue.txs``: ``(tx_type, tx_info dict)``). Shapes follow
``shared/venue/lighter_json.py`` (venue-sim's) and Lighter's samples (``lighter-api.md`` 2, 3).
Import as ``from account_venue_kit import ...`` (``tests/support`` is on ``sys.path``)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from shared.redis_util import free_port


def position_json(market_id: int, symbol: str, position: float, entry: float = 0.0) -> dict[str, Any]:
    """A Lighter Position object (absolute size string and sign)."""
    return {"market_id": market_id, "symbol": symbol, "sign": -1 if position < 0 else 1,
            "position": f"{abs(position):.5f}", "avg_entry_price": f"{entry:.1f}", "open_order_count": 0}


def order_json(market_id: int, coi: int, order_index: int, *, is_ask: bool, remaining: str, price: str,
               type_: str = "limit", trigger: str = "0.0", reduce_only: bool = False) -> dict[str, Any]:
    """A Lighter Order object as ``accountActiveOrders`` lists it (the fields the executor reads)."""
    return {"order_index": order_index, "client_order_index": coi, "market_index": market_id,
            "owner_account_index": 1001, "initial_base_amount": remaining, "remaining_base_amount": remaining,
            "price": price, "is_ask": is_ask, "side": "sell" if is_ask else "buy", "type": type_,
            "time_in_force": "immediate-or-cancel" if type_.startswith("stop") else "good-till-time",
            "reduce_only": reduce_only, "trigger_price": trigger, "status": "open", "timestamp": 1_757_973_377_000}


class AccountVenue:
    """The scripted venue for one account (see the module docstring).

    Attributes:
        account: the account index answered for.
        positions: Position objects of ``GET account``.
        collateral: its ``collateral`` string.
        orders: market id -> Order objects of ``accountActiveOrders``.
        trades: Trade objects of ``GET trades`` (any order: served newest first by ``timestamp``).
        script: path -> ``(status, body)`` (answered instead) or ``("sleep", s)`` (answer late).
        txs: the transactions received, ``(tx_type, tx_info dict)``, in order.
        nonce: the next nonce (advances per tx taken).
    """

    def __init__(self, account: int = 1001) -> None:
        self.account = account
        self.positions: list[dict[str, Any]] = []
        self.collateral = "1000.000000"
        self.orders: dict[int, list[dict[str, Any]]] = {}
        self.trades: list[dict[str, Any]] = []
        self.script: dict[str, tuple[Any, Any]] = {}
        self.txs: list[tuple[int, dict[str, Any]]] = []
        self.nonce = 7
        self.requests: list[str] = []
        self.api_keys: dict[int, str] = {}  # api key index -> public key (hex) reported by ``apikeys``
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> AccountVenue:
        app = web.Application()
        for path in ("nextNonce", "account", "accountActiveOrders", "apikeys", "trades"):
            app.router.add_get(f"/api/v1/{path}", self._get)
        app.router.add_post("/api/v1/sendTx", self._send)
        app.router.add_post("/api/v1/sendTxBatch", self._send)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        self.port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _scripted(self, path: str) -> web.Response | None:
        got = self.script.get(path)
        if got is None:
            return None
        if got[0] == "sleep":
            await asyncio.sleep(got[1])
            return None
        status, body = got
        text = body if isinstance(body, str) else json.dumps(body)
        return web.Response(status=status, text=text, content_type="application/json")

    async def _get(self, request: web.Request) -> web.Response:
        path = request.path.rsplit("/", 1)[1]
        self.requests.append(path)
        scripted = await self._scripted(path)
        if scripted is not None:
            return scripted
        if path == "nextNonce":
            return web.json_response({"code": 200, "nonce": self.nonce})
        if path == "apikeys":  # the key the executor signs with is registered (paper mode checks it)
            idx = int(request.query.get("api_key_index", 255))
            keys = [{"account_index": self.account, "api_key_index": k, "nonce": self.nonce, "public_key": pub}
                    for k, pub in sorted(self.api_keys.items()) if idx in (255, k)]
            return web.json_response({"code": 200, "api_keys": keys})
        if path == "account":
            acct = {"code": 0, "index": self.account, "account_index": self.account, "collateral": self.collateral,
                    "available_balance": self.collateral, "cancel_all_time": 0, "positions": self.positions}
            return web.json_response({"code": 200, "total": 1, "accounts": [acct]})
        if request.headers.get("Authorization") is None:
            return web.json_response({"code": 20001, "message": "auth required"}, status=400)
        if path == "trades":
            rows = sorted(self.trades, key=lambda t: (t["timestamp"], t["trade_id"]), reverse=True)
            start, limit = int(request.query.get("cursor") or 0), int(request.query["limit"])
            nxt = str(start + limit) if start + limit < len(rows) else ""
            return web.json_response({"code": 200, "trades": rows[start:start + limit], "next_cursor": nxt})
        mid = int(request.query["market_id"])
        return web.json_response({"code": 200, "orders": self.orders.get(mid, [])})

    async def _send(self, request: web.Request) -> web.Response:
        form = await request.post()
        self.requests.append(request.path.rsplit("/", 1)[1])
        scripted = await self._scripted("sendTx")
        if scripted is not None:
            return scripted
        if "tx_types" in form:
            pairs = list(zip(json.loads(str(form["tx_types"])), json.loads(str(form["tx_infos"])), strict=True))
        else:
            pairs = [(int(str(form["tx_type"])), str(form["tx_info"]))]
        hashes = []
        for tx_type, info in pairs:
            d = json.loads(info)
            if int(d["Nonce"]) != self.nonce:
                return web.json_response({"code": 21104, "message": "invalid nonce"}, status=400)
            self.nonce += 1
            self.txs.append((int(tx_type), d))
            hashes.append(f"{len(self.txs):080x}")
        body = {"code": 200, "tx_hash": hashes if "tx_types" in form else hashes[0], "volume_quota_remaining": 100}
        return web.json_response(body)
