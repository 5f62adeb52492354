"""One WebSocket to a Lighter market-data feed, kept open until stopped (websockets).

:class:`FeedConnection` connects, waits for the ``connected`` frame, sends the subscriptions,
passes every frame to its handler, sends its own ``{"type":"ping"}`` every ``ping_interval_s``
(plus WS-level keepalive pings) and reconnects with exponential backoff (reset after a connection
that stayed up ``healthy_after_s``). The collector (publishes the frames' events) and venue-sim's
live source (feeds them to its matching engine) each wrap one; what they do with a frame, and
what they count, is theirs (callbacks).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import websockets
from websockets.exceptions import ConnectionClosedOK, WebSocketException

from shared.lighter_ws.metadata import Backoff, sleep_or_stop

log = logging.getLogger(__name__)

#: a network failure of one connection (it is retried)
CONNECTION_ERRORS = (OSError, TimeoutError, WebSocketException)


async def send_json(ws: Any, msg: dict[str, Any]) -> None:
    """Write ``msg`` as one JSON text frame."""
    await ws.send(orjson.dumps(msg).decode())


class ConnectionCounts:
    """What a wrapper of one :class:`FeedConnection` (``self.conn``) reports about it:
    ``connected``, ``connections`` and ``reconnects``, read from the connection."""

    conn: FeedConnection

    @property
    def connected(self) -> bool:
        """True while the socket is open and subscribed."""
        return self.conn.connected

    @property
    def connections(self) -> int:
        """Connections opened so far."""
        return self.conn.connections

    @property
    def reconnects(self) -> int:
        """Reconnect attempts so far."""
        return self.conn.reconnects


class FeedConnection:
    """Keeps one connection to ``url`` at a time, reconnecting until ``stop`` is set.

    Args:
        url: the WS endpoint (``ws://`` or ``wss://``).
        subscriptions: returns the subscribe messages sent after each ``connected`` frame.
        handle: ``await handle(raw, ws)`` for every frame received (the ``connected`` frame
            included); returns the frame's kind (``"connected"`` ends the wait for it). It sends
            its own replies on ``ws`` (pong, resubscribe).
        backoff: the reconnect backoff (s).
        ping_interval_s: period (s) of our ``{"type":"ping"}`` and of WS-level keepalive pings.
        open_timeout_s: opening handshake and ``connected``-frame timeout (s).
        healthy_after_s: a connection that stayed up this long (s) resets the backoff.
        name: how logs name the connection (``WS``, ``upstream``).
        send: writes one control message (default :func:`send_json`); the only writer of
            subscriptions and pings.
        on_up: called once subscribed.
        on_down: called with ``was_connected`` after every connection (attempt) ended.
        on_error: called with the exception of a failed connection (not on stop).
        on_retry: called with the delay (s) before each reconnect.
        consume: ``await consume(ws, ws)`` reads the subscribed connection's frames itself (e.g.
            the collector's batching) instead of one ``handle`` call per frame; it returns when
            the connection ends and raises its error.

    Attributes:
        connected: True while the connection is open and subscribed.
        connections: connections opened; reconnects: reconnect attempts.
    """

    def __init__(self, url: str, subscriptions: Callable[[], list[dict[str, Any]]],
                 handle: Callable[[bytes | str, Any], Awaitable[str]], *, backoff: Backoff,
                 ping_interval_s: float = 30.0, open_timeout_s: float = 10.0, healthy_after_s: float = 10.0,
                 name: str = "WS", send: Callable[[Any, dict[str, Any]], Awaitable[None]] = send_json,
                 on_up: Callable[[], None] = lambda: None, on_down: Callable[[bool], None] = lambda was: None,
                 on_error: Callable[[BaseException], None] = lambda exc: None,
                 on_retry: Callable[[float], None] = lambda delay: None,
                 consume: Callable[[Any, Any], Awaitable[None]] | None = None) -> None:
        self.url = url
        self.subscriptions = subscriptions
        self.handle = handle
        self.backoff = backoff
        self.ping_interval_s = ping_interval_s
        self.open_timeout_s = open_timeout_s
        self.healthy_after_s = healthy_after_s
        self.name = name
        self.send = send
        self.on_up, self.on_down, self.on_error, self.on_retry = on_up, on_down, on_error, on_retry
        self.consume = consume
        self.connected = False
        self.connections = 0
        self.reconnects = 0

    async def run(self, stop: asyncio.Event) -> None:
        """Connect, read and reconnect until ``stop`` is set."""
        while not stop.is_set():
            started = time.monotonic()
            try:
                await self._connection(stop)
            except CONNECTION_ERRORS as exc:
                if not stop.is_set():
                    log.warning("%s %s: %s: %s", self.name, self.url, type(exc).__name__, exc)
                    self.on_error(exc)
            finally:
                was = self.connected
                self.connected = False
                self.on_down(was)
            if stop.is_set():
                break
            if time.monotonic() - started >= self.healthy_after_s:
                self.backoff.reset()
            delay = self.backoff.next_delay()
            self.reconnects += 1
            self.on_retry(delay)
            log.info("reconnecting to %s in %.2fs", self.url, delay)
            if await sleep_or_stop(stop, delay):
                break

    async def _connection(self, stop: asyncio.Event) -> None:
        async with websockets.connect(self.url, ping_interval=self.ping_interval_s, ping_timeout=self.ping_interval_s,
                                      max_size=None, open_timeout=self.open_timeout_s, close_timeout=2) as ws:
            self.connections += 1
            stopper = asyncio.create_task(self._close_on_stop(ws, stop))
            pinger: asyncio.Task | None = None
            try:
                await self._await_connected(ws)
                subs = self.subscriptions()
                for sub in subs:
                    await self.send(ws, sub)
                self.connected = True
                self.on_up()
                log.info("connected to %s; subscribed %d channels", self.url, len(subs))
                pinger = asyncio.create_task(self._ping_loop(ws))
                if self.consume is not None:
                    await self.consume(ws, ws)
                else:
                    async for raw in ws:
                        await self.handle(raw, ws)
            except ConnectionClosedOK as exc:
                if not stop.is_set():
                    log.warning("%s %s closed by the server", self.name, self.url)
                    self.on_error(exc)
            finally:
                for t in (stopper, pinger):
                    if t is not None:
                        t.cancel()
                        with contextlib.suppress(asyncio.CancelledError, Exception):
                            await t

    async def _close_on_stop(self, ws: Any, stop: asyncio.Event) -> None:
        await stop.wait()
        await ws.close()

    async def _await_connected(self, ws: Any) -> None:
        """Read frames until ``{"type":"connected"}`` (others are handled normally)."""
        deadline = time.monotonic() + self.open_timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no 'connected' frame from the server")
            raw = await asyncio.wait_for(ws.recv(), timeout=left)
            if await self.handle(raw, ws) == "connected":
                return

    async def _ping_loop(self, ws: Any) -> None:
        while True:
            await asyncio.sleep(self.ping_interval_s)
            await self.send(ws, {"type": "ping"})
