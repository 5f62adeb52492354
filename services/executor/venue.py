"""Talking to Lighter (or venue-sim): REST calls and the private account WebSocket feed.

REST (``{rest_url}/api/v1/...``, responses are JSON with ``code`` 200 on success; errors are
HTTP 4xx with ``{"code": <Lighter code>, "message": ...}``):

- ``GET nextNonce?account_index=&api_key_index=`` -> ``{"nonce": N}``
- ``GET orderBookDetails`` -> ``{"order_book_details": [MarketInfo fields ...]}``
- ``GET account?by=index&value=<acct>`` -> ``{"accounts": [{"account_index", "collateral",
  "positions": [{"market_id", "symbol", "sign", "position", "avg_entry_price", ...}], ...}]}``
  (read strictly at reconciliation: :meth:`LighterRest.account_state`)
- ``GET accountActiveOrders?account_index=&market_id=`` with ``Authorization: <auth token>``
  -> ``{"orders": [Order ...]}``
- ``GET accountInactiveOrders?account_index=&market_id=&limit=`` (auth) -> ``{"orders": [Order
  ...], "next_cursor": ...}``: finished orders, newest first (stale-order checks)
- ``GET trades?account_index=&sort_by=timestamp&sort_dir=desc&limit=&cursor=`` (auth) ->
  ``{"trades": [Trade ...], "next_cursor": ...}``: the account's trades, newest first (fill
  recovery at reconciliation)
- ``POST sendTx`` form ``tx_type``, ``tx_info`` -> ``{"code": 200, "tx_hash": ...,
  "volume_quota_remaining": N}``
- ``POST sendTxBatch`` form ``tx_types``, ``tx_infos`` (JSON-encoded lists; ``tx_infos`` a list
  of tx_info strings; consecutive nonces; at most 15 per request) -> ``{"code": 200,
  "tx_hash": [...], "volume_quota_remaining": N}``. On an error the body is the error of the
  first refused tx; the txs before it may have been taken (venue-sim: they are), which the
  caller finds out from ``nextNonce``.
- Error 23000 (too many requests) answers a request over the account tier's rate limit.

WS (``ws_url``): wait for ``{"type":"connected"}``, then subscribe (with ``auth``) to
``account_all_orders/{acct}``, ``account_all_trades/{acct}``, ``account_all_positions/{acct}``.
Frames ``subscribed/<chan>`` / ``update/<chan>`` carry ``orders`` / ``trades`` /
``positions`` keyed by market id string (trades may also be a flat list). ``{"type":"ping"}`` is
answered with ``{"type":"pong"}``; the feed pings every ``ping_interval_s`` and reconnects with
exponential backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import websockets

from shared.lighter_rest import LighterRest as LighterRestBase
from shared.lighter_rest import RestError
from shared.venue.reports import VenueOrder, VenuePosition, VenueTrade

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SendResult:
    """Outcome of ``sendTx``/``sendTxBatch``: ``ok``; ``code`` (200, a Lighter error code, or
    ``None`` when the outcome is unknown: transport error or timeout); ``message``;
    ``tx_hash`` (``sendTx``; for a batch the first hash); ``tx_hashes`` (batch: one per tx);
    ``volume_quota_remaining`` (from the response when present, else ``None``)."""

    ok: bool
    code: int | None
    message: str = ""
    tx_hash: str = ""
    tx_hashes: tuple[str, ...] = ()
    volume_quota_remaining: int | None = None


@dataclass(frozen=True, slots=True)
class AccountState:
    """The account as read at reconciliation (:meth:`LighterRest.account_state`):
    ``account_index``, ``collateral`` (USDC) and ``positions`` (Lighter Position objects, each
    with a readable ``market_id``, ``position`` and ``sign``)."""

    account_index: int
    collateral: float
    positions: tuple[dict[str, Any], ...]


@dataclass(frozen=True, slots=True)
class StopOrder:
    """A stop-loss order the venue lists as active (:func:`parse_stop_order`): ``market_id``,
    ``client_order_index``, ``order_index``, ``side`` (``sell`` protects a long),
    ``remaining`` (base units), ``trigger_price`` (USD), ``reduce_only``."""

    market_id: int
    client_order_index: int
    order_index: int
    side: str
    remaining: float
    trigger_price: float
    reduce_only: bool


class LighterRest(LighterRestBase):
    """The executor's REST client: the shared reads (:class:`shared.lighter_rest.LighterRest`:
    ``get``, ``markets``) plus nonces, the account's positions and orders, and ``sendTx``/
    ``sendTxBatch``.

    Args:
        base_url: e.g. ``http://127.0.0.1:8090`` (``/api/v1`` is appended).
        timeout_s: per-request timeout in seconds.
    """

    async def next_nonce(self, account_index: int, api_key_index: int) -> int:
        """The next nonce to use for (account, key)."""
        body = await self.get("nextNonce", {"account_index": account_index, "api_key_index": api_key_index})
        return int(body["nonce"])

    async def positions(self, account_index: int) -> list[dict[str, Any]]:
        """The account's positions (Lighter Position objects); see :meth:`account_state`.

        Raises:
            RestError: as :meth:`account_state`.
        """
        return list((await self.account_state(account_index)).positions)

    async def account_state(self, account_index: int) -> AccountState:
        """The account as reconciliation needs it (``GET account?by=index``), read strictly: a
        response that does not state the positions is never read as "no positions".

        Raises:
            RestError: transport error, timeout, HTTP error (5xx, 4xx) or Lighter code (see
                :meth:`get`); the account unknown (21100); and a malformed answer: no
                ``accounts`` list, an entry for another account, no ``positions`` list, a
                position without a readable ``market_id``/``position``/``sign``, or no numeric
                ``collateral``.
        """
        body = await self.get("account", {"by": "index", "value": account_index})
        accts = body.get("accounts")
        if not isinstance(accts, list):
            raise RestError(f"GET account: malformed answer without an accounts list: {str(body)[:200]}")
        if not accts:
            raise RestError(f"account {account_index} not found", 21100)
        acct = accts[0]
        if not isinstance(acct, dict):
            raise RestError(f"GET account: malformed account entry: {str(acct)[:200]}")
        index = acct.get("account_index", acct.get("index"))
        if _int(index, -1) != account_index:
            raise RestError(f"GET account: answer for account {index!r}, asked for {account_index}")
        positions = acct.get("positions")
        if not isinstance(positions, list):
            raise RestError("GET account: the answer states no positions list; refusing to read it as no positions")
        for p in positions:
            if (not isinstance(p, dict) or p.get("market_id") is None or p.get("position") is None
                    or parse_position(p.get("market_id"), p) is None):
                raise RestError(f"GET account: malformed position: {str(p)[:200]}")
        try:
            collateral = float(acct["collateral"])
        except (KeyError, TypeError, ValueError):
            raise RestError(f"GET account: no numeric collateral: {str(acct.get('collateral'))[:50]}") from None
        return AccountState(account_index=account_index, collateral=collateral, positions=tuple(positions))

    async def active_orders(self, account_index: int, market_id: int, auth: str) -> list[dict[str, Any]]:
        """The account's resting orders in one market (needs the auth token).

        Raises:
            RestError: as :meth:`get`, and an answer without an ``orders`` list or with an entry
                that is not an order object (never read as "no orders").
        """
        body = await self.get("accountActiveOrders", {"account_index": account_index, "market_id": market_id},
                              auth=auth)
        orders = body.get("orders")
        if not isinstance(orders, list) or not all(isinstance(o, dict) for o in orders):
            raise RestError(f"GET accountActiveOrders: malformed answer (market {market_id}): {str(body)[:200]}")
        return list(orders)

    async def inactive_orders(self, account_index: int, market_id: int, auth: str,
                              limit: int = 100) -> list[dict[str, Any]]:
        """The account's recently finished orders in one market, newest first (Lighter:
        ``accountInactiveOrders``, auth, ``limit`` at most 100; older ones need the cursor,
        which is not followed)."""
        body = await self.get("accountInactiveOrders", {"account_index": account_index, "market_id": market_id,
                                                        "limit": max(1, min(100, limit))}, auth=auth)
        return list(body.get("orders") or [])

    async def account_trades(self, account_index: int, auth: str, limit: int = 100,
                             cursor: str = "") -> tuple[list[dict[str, Any]], str]:
        """One page of the account's trades, newest first (Lighter: ``GET trades`` with
        ``account_index``, ``sort_by=timestamp``, ``sort_dir=desc``, ``limit`` at most 100,
        ``cursor`` from the previous page; auth): ``(trades, next_cursor)``, ``next_cursor``
        empty on the last page. Read at reconciliation to recover fills missed while the executor
        was down (:mod:`services.executor.recovery`).

        Raises:
            RestError: as :meth:`get`, and an answer without a ``trades`` list or with an entry
                that is not a trade object (never read as "no trades").
        """
        params: dict[str, Any] = {"account_index": account_index, "sort_by": "timestamp", "sort_dir": "desc",
                                  "limit": max(1, min(100, limit))}
        if cursor:
            params["cursor"] = cursor
        body = await self.get("trades", params, auth=auth)
        trades = body.get("trades")
        if not isinstance(trades, list) or not all(isinstance(t, dict) for t in trades):
            raise RestError(f"GET trades: malformed answer: {str(body)[:200]}")
        nxt = body.get("next_cursor")
        return list(trades), str(nxt) if nxt else ""

    async def send_tx(self, tx_type: int, tx_info: str) -> SendResult:
        """POST ``sendTx``; never raises: a transport failure is ``SendResult(ok=False,
        code=None)`` (outcome unknown)."""
        return await self._post_tx("sendTx", {"tx_type": str(tx_type), "tx_info": tx_info})

    async def send_tx_batch(self, tx_types: list[int], tx_infos: list[str]) -> SendResult:
        """POST ``sendTxBatch`` with the signed txs (consecutive nonces, in order); never
        raises. On success ``tx_hashes`` holds one hash per tx; on failure ``code`` is the first
        refused tx's error (earlier txs may have been taken: check ``nextNonce``)."""
        return await self._post_tx("sendTxBatch", {"tx_types": json.dumps(tx_types), "tx_infos": json.dumps(tx_infos)})

    async def _post_tx(self, path: str, form: dict[str, str]) -> SendResult:
        s = await self._s()
        try:
            async with s.post(f"{self.base}/{path}", data=form) as r:
                text = await r.text()
                status = r.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            return SendResult(False, None, f"{path}: {type(exc).__name__}: {exc}")
        try:
            body = json.loads(text)
        except ValueError:
            return SendResult(False, status if status >= 400 else None, f"{path}: HTTP {status}: {text[:200]}")
        if not isinstance(body, dict):
            return SendResult(False, status if status >= 400 else None, f"{path}: HTTP {status}: {text[:200]}")
        try:
            code = int(body.get("code", status))
        except (TypeError, ValueError):
            code = status
        msg = str(body.get("message", ""))
        quota = body.get("volume_quota_remaining")
        try:
            quota_i = int(quota) if quota is not None else None
        except (TypeError, ValueError):
            quota_i = None
        if status == 200 and code == 200:
            raw = body.get("tx_hash")
            hashes = tuple(str(h) for h in raw) if isinstance(raw, list) else ((str(raw),) if raw else ())
            return SendResult(True, 200, msg, hashes[0] if hashes else "", hashes, quota_i)
        return SendResult(False, code, msg or f"HTTP {status}", volume_quota_remaining=quota_i)


Handler = Callable[[str, dict[str, Any]], Awaitable[None]]


class AccountFeed:
    """The private account channels over WS, with reconnects.

    Args:
        ws_url: e.g. ``ws://127.0.0.1:8090/stream``.
        account_index: the account.
        token: callable returning a fresh auth token for the subscribe messages.
        on_message: ``await on_message(kind, frame)`` with kind ``orders``/``trades``/
            ``positions`` and the decoded frame.
        on_connected: optional ``await on_connected()`` after each successful subscribe.
        ping_interval_s: client ping period (s).
        backoff_max_s: reconnect backoff ceiling (s).
    """

    CHANNELS = ("account_all_orders", "account_all_trades", "account_all_positions")

    def __init__(self, ws_url: str, account_index: int, token: Callable[[], str], on_message: Handler,
                 on_connected: Callable[[], Awaitable[None]] | None = None, ping_interval_s: float = 30.0,
                 backoff_max_s: float = 30.0) -> None:
        self.ws_url = ws_url
        self.account = account_index
        self.token = token
        self.on_message = on_message
        self.on_connected = on_connected
        self.ping_interval_s = ping_interval_s
        self.backoff_max_s = backoff_max_s
        self.connected = asyncio.Event()
        self.reconnects = 0
        self._stop = asyncio.Event()
        self._task: asyncio.Task | None = None

    def stop(self) -> None:
        """Make :meth:`run` return (cancels the running session)."""
        self._stop.set()
        if self._task is not None and not self._task.done():
            self._task.cancel()

    async def run(self) -> None:
        """Connect, subscribe and dispatch until :meth:`stop`; reconnects with backoff."""
        self._task = asyncio.current_task()
        delay = 0.5
        while not self._stop.is_set():
            try:
                await self._session()
                delay = 0.5
            except asyncio.CancelledError:
                if self._stop.is_set():
                    return
                raise
            except Exception as exc:  # any failure: reconnect
                log.warning("account feed: %s: %s; reconnecting in %.1fs", type(exc).__name__, exc, delay)
            finally:
                self.connected.clear()
            if self._stop.is_set():
                break
            self.reconnects += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay * (1 + random.random() * 0.2))
            delay = min(delay * 2, self.backoff_max_s)

    async def _session(self) -> None:
        async with websockets.connect(self.ws_url, open_timeout=10, ping_interval=None,
                                      max_size=2**24) as ws:
            first = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if first.get("type") != "connected":
                raise ConnectionError(f"expected a 'connected' frame, got {str(first)[:200]}")
            auth = self.token()
            for ch in self.CHANNELS:
                await ws.send(json.dumps({"type": "subscribe", "channel": f"{ch}/{self.account}", "auth": auth}))
            self.connected.set()
            if self.on_connected is not None:
                await self.on_connected()
            pinger = asyncio.create_task(self._ping(ws))
            try:
                while True:
                    await self._dispatch(ws, await ws.recv())
            finally:
                pinger.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await pinger

    async def _ping(self, ws) -> None:
        while True:
            await asyncio.sleep(self.ping_interval_s)
            await ws.send(json.dumps({"type": "ping"}))

    async def _dispatch(self, ws, raw: str | bytes) -> None:
        try:
            msg = json.loads(raw)
        except ValueError:
            log.warning("account feed: non-JSON frame %r", raw[:200])
            return
        if not isinstance(msg, dict):
            return
        typ = str(msg.get("type") or "")
        if typ == "ping":
            await ws.send(json.dumps({"type": "pong"}))
            return
        if typ == "error" or "error" in msg:
            err = msg.get("error") if isinstance(msg.get("error"), dict) else msg
            code = err.get("code")
            if code == 30003:  # already subscribed
                return
            raise ConnectionError(f"WS error {code}: {err.get('message')}")
        chan = typ.split("/", 1)[1] if "/" in typ else ""
        if chan == "account_all_orders":
            await self.on_message("orders", msg)
        elif chan == "account_all_trades":
            await self.on_message("trades", msg)
        elif chan == "account_all_positions":
            await self.on_message("positions", msg)


def iter_keyed(payload: Any) -> list[tuple[int, dict[str, Any]]]:
    """Flatten ``{"<market_id>": [obj, ...]}`` / ``{"<market_id>": obj}`` / ``[obj, ...]`` into
    ``(market_id, obj)`` pairs (market id from the key, else the object's ``market_id`` /
    ``market_index``)."""
    out: list[tuple[int, dict[str, Any]]] = []
    if isinstance(payload, dict):
        for key, val in payload.items():
            items = val if isinstance(val, list) else [val]
            for obj in items:
                if isinstance(obj, dict):
                    try:
                        mid = int(key)
                    except ValueError:
                        mid = int(obj.get("market_id", obj.get("market_index", -1)))
                    out.append((mid, obj))
    elif isinstance(payload, list):
        for obj in payload:
            if isinstance(obj, dict):
                out.append((int(obj.get("market_id", obj.get("market_index", -1))), obj))
    return out


# ---------------------------------------------------------------------- Lighter JSON -> typed reports
# The only place (besides venue-sim) that knows Lighter's field names: the engine gets the structs
# of shared.venue.reports. A malformed object gives None (the caller logs and skips it).


def lighter_ts_ns(v: Any) -> int:
    """A Lighter timestamp (s, ms, us or ns; guessed by magnitude) in ns; 0 when missing."""
    try:
        x = int(v)
    except (TypeError, ValueError):
        return 0
    if x <= 0:
        return 0
    if x < 10**11:
        return x * 10**9
    if x < 10**14:
        return x * 10**6
    if x < 10**17:
        return x * 10**3
    return x


def _int(v: Any, default: int) -> int:
    try:
        return int(v)
    except (TypeError, ValueError):
        return default


def parse_trade(market_id: Any, d: dict[str, Any]) -> VenueTrade | None:
    """Lighter's Trade object (``trade_id``/``trade_id_str``, ``size``/``price``/``usd_amount``
    decimal strings, ``ask_account_id``/``bid_account_id``, ``ask_client_id[_str]``/
    ``bid_client_id[_str]``, ``is_maker_ask``, ``taker_fee``/``maker_fee`` in 1e-6 of notional,
    ``timestamp`` in ms) as a :class:`VenueTrade`. None when it has no trade id, no positive size
    or an amount that is not a number. Unreadable account ids count as not ours (-1), unreadable
    client order indices as unknown (0)."""
    try:
        trade_id = str(d.get("trade_id_str") or d.get("trade_id") or "")
        size = float(d.get("size") or 0)
        price = float(d.get("price") or 0)
        if not trade_id or not size > 0:
            return None
        usd = float(d.get("usd_amount") or size * price)
        market_id = int(market_id)
        taker_fee = usd * float(d.get("taker_fee") or 0) / 1e6
        maker_fee = usd * float(d.get("maker_fee") or 0) / 1e6
    except (TypeError, ValueError, AttributeError):
        return None
    return VenueTrade(
        trade_id=trade_id, market_id=market_id, price=price, size=size, usd_amount=usd,
        ts_ns=lighter_ts_ns(d.get("timestamp")), bid_account=_int(d.get("bid_account_id", -1), -1),
        ask_account=_int(d.get("ask_account_id", -1), -1),
        bid_client_order_index=_int(d.get("bid_client_id_str") or d.get("bid_client_id") or 0, 0),
        ask_client_order_index=_int(d.get("ask_client_id_str") or d.get("ask_client_id") or 0, 0),
        is_maker_ask=bool(d.get("is_maker_ask")), taker_fee_usd=taker_fee, maker_fee_usd=maker_fee)


def parse_order(market_id: Any, d: dict[str, Any]) -> VenueOrder | None:
    """Lighter's Order object (``client_order_index``, ``order_index``, ``status``,
    ``remaining_base_amount`` decimal string, ``updated_at``/``timestamp`` in ms) as a
    :class:`VenueOrder`. None without a readable positive client order index or with a
    remaining amount that is not a number."""
    try:
        coi = int(d.get("client_order_index") or 0)
        remaining = float(d.get("remaining_base_amount") or 0)
        market_id = int(market_id)
    except (TypeError, ValueError, AttributeError):
        return None
    if coi <= 0:
        return None
    return VenueOrder(market_id=market_id, client_order_index=coi,
                      order_index=_int(d.get("order_index") or 0, 0), status=str(d.get("status") or ""),
                      remaining=remaining, ts_ns=lighter_ts_ns(d.get("updated_at") or d.get("timestamp")))


def parse_stop_order(market_id: Any, d: dict[str, Any]) -> StopOrder | None:
    """Lighter's Order object of a stop-loss (``type`` ``stop-loss``/``stop-loss-limit``,
    ``is_ask``, ``trigger_price`` and ``remaining_base_amount`` decimal strings) as a
    :class:`StopOrder`; None for another order type or a malformed entry."""
    if str(d.get("type") or "") not in ("stop-loss", "stop-loss-limit"):
        return None
    order = parse_order(market_id, d)
    if order is None:
        return None
    try:
        trigger = float(d.get("trigger_price") or 0)
    except (TypeError, ValueError):
        return None
    is_ask = d.get("is_ask")
    if not isinstance(is_ask, bool):
        return None
    return StopOrder(market_id=order.market_id, client_order_index=order.client_order_index,
                     order_index=order.order_index, side="sell" if is_ask else "buy", remaining=order.remaining,
                     trigger_price=trigger, reduce_only=bool(d.get("reduce_only")))


def parse_position(market_id: Any, d: dict[str, Any]) -> VenuePosition | None:
    """Lighter's Position object (``position`` absolute size string, ``sign`` 1/-1) as a
    :class:`VenuePosition` (signed base units). None when the size, the sign or ``market_id``
    is not a number."""
    try:
        size = float(d.get("position") or 0)
        sign = -1 if int(d.get("sign") or 1) < 0 else 1
        market_id = int(market_id)
    except (TypeError, ValueError, AttributeError):
        return None
    return VenuePosition(market_id=market_id, position=sign * size)


def feed_reports(kind: str, msg: dict[str, Any]) -> list[VenueTrade | VenueOrder | VenuePosition]:
    """The typed reports of one account-channel frame (``kind`` ``trades``/``orders``/``positions``
    from :class:`AccountFeed`), in frame order. Objects that do not parse (or whose market id is
    unreadable) are logged and skipped."""
    parse = {"trades": parse_trade, "orders": parse_order, "positions": parse_position}.get(kind)
    if parse is None:
        return []
    try:
        items = iter_keyed(msg.get(kind))
    except (TypeError, ValueError) as exc:
        log.warning("account feed: unreadable %s frame (%s): %s", kind, exc, str(msg)[:200])
        return []
    out: list[VenueTrade | VenueOrder | VenuePosition] = []
    for mid, obj in items:
        rep = parse(mid, obj)  # type: ignore[operator]
        if rep is None:
            log.warning("account feed: skipping malformed %s entry: %s", kind[:-1], str(obj)[:200])
        else:
            out.append(rep)
    return out
