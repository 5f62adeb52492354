"""venue-sim: where the faults of :mod:`services.venue_sim.faults` act, and ``/sim/fault``.

The hooks sit at the venue's edges, so the matching engine and the venue's state never see a
fault -- only what a client receives (or does not) changes:

- the WebSocket sender (:meth:`FaultHooks.send_faulty`, called by ``feed._send`` for channel
  updates while a WebSocket fault is on): ``ws_disconnect``, ``book_drop``,
  ``book_duplicate``, ``book_reorder``, ``account_delay``, ``account_duplicate``;
- the HTTP middleware (:func:`fault_middleware`, outermost: injected answers are not metered):
  ``rate_limit`` (429 + 23000), ``http_5xx``, and ``tx_timeout`` of a REST ``sendTx`` /
  ``sendTxBatch`` (executed, then no answer);
- ``jsonapi/sendtx(batch)`` (:meth:`FaultHooks._ws_tx`): ``rate_limit`` (reply code 23000) and
  ``tx_timeout`` (executed, no reply);
- the nonce check of the tx path (``txs.py``): ``nonce_reject``.

``/sim/fault`` (never metered): ``GET`` -> :meth:`~services.venue_sim.faults.FaultInjector.status`;
``POST`` a JSON object of plan fields -> merged into the plan (HTTP 400 naming the field on bad
input; the answer is the new status); ``DELETE`` -> every fault off (seed and counts kept);
``POST /sim/fault/once`` ``{"kind": K, "count": n}`` -> ``ws_disconnect`` cuts every connection
now, ``restart`` restarts the venue from its state file (needs ``state_path``), any other kind
faults its next ``n`` opportunities.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.venue_sim.base import ACCOUNT_CHANNELS, ServerBase
from services.venue_sim.faults import ONCE_KINDS, FaultInjector, FaultPlan
from services.venue_sim.httpio import error_response
from services.venue_sim.ratelimit import RateLimited

if TYPE_CHECKING:
    from services.venue_sim.ws import Client

log = logging.getLogger("services.venue_sim.server")

API_PREFIX = "/api/v1/"
TX_ENDPOINTS = ("sendTx", "sendTxBatch")
REORDER_FLUSH_S = 1.0
"""A reordered delta is sent after at most this many wall seconds, even without a next delta."""
ACCOUNT_FAULT_CHANNELS = frozenset(ACCOUNT_CHANNELS + ("account_tx", "account_all_assets"))
"""Channels whose messages ``account_delay``/``account_duplicate`` hit."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Outgoing = list[tuple[str, "frozenset[Any] | None"]]  # (message, only these clients or None = all)


class FaultOnce(BaseModel):
    """Body of ``POST /sim/fault/once``."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal[ONCE_KINDS]  # type: ignore[valid-type]
    count: int = Field(default=1, ge=1, le=1_000_000)


class _Reply:
    """Stands in for a WS client to catch the reply of a ``jsonapi/sendtx(batch)``."""

    def __init__(self) -> None:
        self.msg: Any = None

    def send(self, msg: Any) -> None:
        self.msg = msg


def validation_body(exc: ValidationError, what: str) -> dict[str, Any]:
    """The HTTP 400 body for a pydantic error: ``{"error", "fields": [{"field", "message"}]}``."""
    return {"error": f"invalid {what}",
            "fields": [{"field": ".".join(str(p) for p in e["loc"]) or "(body)", "message": e["msg"]}
                       for e in exc.errors()]}


class FaultHooks(ServerBase):
    """The fault hooks of the WebSocket sender and ``jsonapi/sendtx``, and ``/sim/fault``.

    State (set by :meth:`init_faults`): ``faults`` (the injector), ``connections`` (WS
    connections accepted so far: a connection's ordinal), the reordered book delta held per
    market, ``request_restart`` (set by the runner's ``serve``; None = in-process restarts
    unavailable).
    """

    faults: FaultInjector
    connections: int
    request_restart: Callable[[], None] | None

    def init_faults(self, plan: FaultPlan | None = None) -> None:
        """Create the injector (all faults off unless ``plan``)."""
        self.faults = FaultInjector(plan)
        self.connections = 0
        self.request_restart = None
        self._held_book: dict[int, tuple[str, frozenset[Any]]] = {}

    # ---------------------------------------------------------------- WebSocket sender

    def send_faulty(self, channel: str, msg: dict[str, Any], data: str, clients: Iterable[Client]) -> None:
        """Send one channel update (``data``, the JSON of ``msg``) to ``clients`` with the
        WebSocket faults of the plan (called by ``feed._send`` while ``faults.ws_active``)."""
        kind = channel.split(":", 1)[0]
        recipients = frozenset(clients)
        if kind == "order_book" and msg.get("type") == "update/order_book":
            out = self._book_faults(int(channel.split(":")[1]), int(msg["order_book"]["nonce"]), data, recipients)
        elif kind in ACCOUNT_FAULT_CHANNELS:
            out = self._account_faults(data, recipients)
        else:
            out = [(data, None)]
        self._deliver(recipients, out)

    def _book_faults(self, mid: int, nonce: int, data: str, recipients: frozenset[Any]) -> Outgoing:
        """Drop, hold back (reorder) or duplicate one order-book delta; precedence in that order.
        A held delta goes out right after the market's next delta that is sent (or after
        :data:`REORDER_FLUSH_S` without one), to those of its recipients still subscribed."""
        f, key = self.faults, (mid, nonce)
        out: Outgoing
        if f.roll("book_drop", key):
            return []
        if mid not in self._held_book and f.roll("book_reorder", key):
            held = self._held_book[mid] = (data, recipients)
            f.hold()
            with contextlib.suppress(RuntimeError):  # no loop (a synchronous caller): the next delta frees it
                asyncio.get_running_loop().call_later(REORDER_FLUSH_S, self._flush_held, mid, held)
            return []
        out = [(data, None), (data, None)] if f.roll("book_duplicate", key) else [(data, None)]
        held = self._held_book.pop(mid, None)
        if held is not None:
            f.release()
            out.append(held)
        return out

    def _flush_held(self, mid: int, held: tuple[str, frozenset[Any]]) -> None:
        """Send a held delta no next delta came for (it is then only late)."""
        if self._held_book.get(mid) is not held:
            return
        del self._held_book[mid]
        self.faults.release()
        self._deliver(self.subs.get(f"order_book:{mid}", frozenset()), [held])

    def _account_faults(self, data: str, recipients: frozenset[Any]) -> Outgoing:
        """Delay or duplicate one account-channel message."""
        f = self.faults
        if f.roll("account_delay"):
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no loop (a synchronous caller): send now rather than lose it
                return [(data, None)]
            f.hold()
            loop.call_later(f.plan.account_delay_ms / 1000.0, self._deliver_late, recipients, data)
            return []
        if f.roll("account_duplicate"):
            return [(data, None), (data, None)]
        return [(data, None)]

    def _deliver_late(self, recipients: frozenset[Any], data: str) -> None:
        self.faults.release()
        self._deliver(recipients, [(data, None)])

    def _deliver(self, recipients: Iterable[Any], out: Outgoing) -> None:
        """Send ``out`` to each open client of ``recipients`` (by connection ordinal), each
        message an opportunity of ``ws_disconnect`` for its connection."""
        if not out:
            return
        f = self.faults
        cut = f.on("ws_disconnect")
        for c in sorted(recipients, key=lambda c: c.ordinal):
            for data, only in out:
                if c.closed:
                    break
                if only is not None and c not in only:
                    continue
                if cut:
                    c.updates += 1
                    if f.roll("ws_disconnect", (c.ordinal, c.updates)):
                        self.cut(c)
                        break
                c.send(data)

    def cut(self, client: Client) -> None:
        """Drop ``client``'s connection as the plan's ``ws_disconnect_mode`` says: ``abort``
        (no close frame, queued messages lost) or ``close`` (close frame 1001)."""
        if self.faults.plan.ws_disconnect_mode == "close":
            client.shut(1001, b"going away")
            return
        client.closed = True
        client.queue.put_nowait(None)
        if client.transport is not None:
            client.transport.abort()

    # ---------------------------------------------------------------- txs over the socket

    def _ws_tx(self, client: Any, kind: str, data: Any) -> None:
        """``jsonapi/sendtx(batch)`` with ``rate_limit`` (reply 23000, nothing processed) and
        ``tx_timeout`` (processed, the reply never sent); the state is saved before the reply
        goes out."""
        f = self.faults
        if f.tx_active and f.roll("rate_limit"):
            rid = data.get("id", "") if isinstance(data, dict) else ""
            client.send({"type": kind, "id": rid, **RateLimited().to_json()})
            return
        if f.tx_active and f.on("tx_timeout"):
            box = _Reply()
            super()._ws_tx(box, kind, data)  # type: ignore[misc]
            self.persist_urgent()
            if isinstance(box.msg, dict) and box.msg.get("code") == 200 and f.roll("tx_timeout"):
                log.info("fault tx_timeout: %s executed, no reply", kind)
                return
            client.send(box.msg)
            return
        super()._ws_tx(client, kind, data)  # type: ignore[misc]
        self.persist_urgent()

    # ---------------------------------------------------------------- /sim/fault

    async def h_fault_get(self, _request: web.Request) -> web.Response:
        return web.json_response(self.faults.status())

    async def h_fault_post(self, request: web.Request) -> web.Response:
        body = await _json_object(request)
        if isinstance(body, web.Response):
            return body
        try:
            plan = self.faults.merged(body)
        except ValidationError as exc:
            return web.json_response(validation_body(exc, "fault plan"), status=400)
        self.faults.set_plan(plan)
        log.info("fault plan changed: %s", {k: getattr(plan, k) for k in body})
        return web.json_response(self.faults.status())

    async def h_fault_delete(self, _request: web.Request) -> web.Response:
        self.faults.set_plan(FaultPlan(seed=self.faults.plan.seed))
        log.info("fault plan cleared")
        return web.json_response(self.faults.status())

    async def h_fault_once(self, request: web.Request) -> web.Response:
        body = await _json_object(request)
        if isinstance(body, web.Response):
            return body
        try:
            once = FaultOnce.model_validate(body)
        except ValidationError as exc:
            return web.json_response(validation_body(exc, "fault"), status=400)
        if once.kind == "ws_disconnect":
            for c in sorted(self.clients, key=lambda c: c.ordinal):
                if not c.closed:
                    self.faults.count("ws_disconnect")
                    self.cut(c)
        elif once.kind == "restart":
            if self.request_restart is None or self.state_store is None:
                return web.json_response({"error": "restart needs state_path (and a venue run by serve)"}, status=400)
            log.info("fault restart: venue-sim restarts from its state file")
            asyncio.get_running_loop().call_later(0.05, self.request_restart)
        else:
            self.faults.arm(once.kind, once.count)
        return web.json_response(self.faults.status())

    def fault_routes(self, app: web.Application) -> None:
        """Add ``/sim/fault`` and ``/sim/fault/once`` to ``app``."""
        r = app.router
        r.add_get("/sim/fault", self.h_fault_get)
        r.add_post("/sim/fault", self.h_fault_post)
        r.add_delete("/sim/fault", self.h_fault_delete)
        r.add_post("/sim/fault/once", self.h_fault_once)


async def _json_object(request: web.Request) -> dict[str, Any] | web.Response:
    """The request's JSON object body, or the HTTP 400 answer."""
    try:
        body = await request.json()
    except ValueError:
        return web.json_response({"error": "the body must be a JSON object"}, status=400)
    if not isinstance(body, dict):
        return web.json_response({"error": "the body must be a JSON object"}, status=400)
    return body


def _plain(status: int) -> web.Response:
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = "Server Error"
    return web.Response(status=status, text=f"{status} {phrase}")


def fault_middleware(server: Any) -> Any:
    """The HTTP fault middleware of ``server`` (a ``VenueServer``: its ``faults``): injected
    429/5xx answers before the request runs, and the tx timeout after a REST tx ran."""

    @web.middleware
    async def faults(request: web.Request, handler: Handler) -> web.StreamResponse:
        f: FaultInjector = server.faults
        if not f.tx_active or not request.path.startswith(API_PREFIX):
            return await handler(request)
        is_tx = request.method == "POST" and request.path[len(API_PREFIX):] in TX_ENDPOINTS
        if is_tx or f.plan.http_scope == "api":
            if f.roll("rate_limit"):
                return error_response(RateLimited())
            if f.roll("http_5xx"):
                return _plain(f.status_5xx())
        resp = await handler(request)
        if is_tx and resp.status == 200 and f.roll("tx_timeout"):
            log.info("fault tx_timeout: %s executed, answer withheld %d ms", request.path, f.plan.tx_timeout_ms)
            await asyncio.sleep(f.plan.tx_timeout_ms / 1000.0)
            if f.plan.tx_timeout_answer == "504":
                return _plain(504)
            if request.transport is not None:
                request.transport.abort()
        return resp

    return faults
