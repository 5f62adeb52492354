"""Lighter's REST API, the read side shared by every service that asks the venue (Lighter or
venue-sim): one session, ``GET /api/v1/<path>`` with Lighter's error convention, and the market
list. The executor's client (``services/executor/venue.py``) adds nonces, account reads and
``sendTx``; the copy-trade API reads markets, prices and the account.

Responses are JSON with ``code`` 200 on success; errors are HTTP 4xx with
``{"code": <Lighter code>, "message": ...}`` (``../shared/reference/lighter-api.md``).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import aiohttp

from shared.markets import MarketInfo
from shared.venue.errors import VenueError

log = logging.getLogger(__name__)


class RestError(VenueError):
    """A REST call failed (one of the :class:`~shared.venue.errors.VenueError` family):
    ``code`` is Lighter's error code (or the HTTP status, or -1 for a transport error);
    ``message`` the full description."""

    def __init__(self, message: str, code: int = -1) -> None:
        Exception.__init__(self, message)
        self.code = code
        self.message = message


class LighterRest:
    """Minimal async REST client (reads; subclasses add writes).

    Args:
        base_url: e.g. ``http://127.0.0.1:8090`` (``/api/v1`` is appended).
        timeout_s: per-request timeout in seconds.
    """

    def __init__(self, base_url: str, timeout_s: float = 10.0) -> None:
        self.base = base_url.rstrip("/") + "/api/v1"
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def _s(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        return self._session

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()

    async def get(self, path: str, params: dict[str, Any], auth: str | None = None) -> dict[str, Any]:
        """GET ``/api/v1/<path>`` and return the JSON body.

        Raises:
            RestError: transport error, non-JSON body, HTTP error or ``code`` not 200.
        """
        s = await self._s()
        headers = {"Authorization": auth} if auth else None
        try:
            async with s.get(f"{self.base}/{path}", params={k: str(v) for k, v in params.items()},
                             headers=headers) as r:
                text = await r.text()
                status = r.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise RestError(f"GET {path}: {type(exc).__name__}: {exc}") from None
        try:
            body = json.loads(text)
        except ValueError:
            raise RestError(f"GET {path}: HTTP {status}, not JSON: {text[:200]}", status) from None
        code = body.get("code", status) if isinstance(body, dict) else status
        if status != 200 or code not in (200, 0):
            msg = body.get("message", text[:200]) if isinstance(body, dict) else text[:200]
            raise RestError(f"GET {path}: HTTP {status} code {code}: {msg}", int(code or status))
        return body

    async def markets(self) -> dict[str, MarketInfo]:
        """Perp markets by symbol from ``orderBookDetails``."""
        body = await self.get("orderBookDetails", {})
        out: dict[str, MarketInfo] = {}
        for d in body.get("order_book_details") or []:
            try:
                m = MarketInfo.from_lighter(d)
            except (KeyError, ValueError, TypeError) as exc:
                log.warning("skipping market entry %s: %s", d.get("symbol"), exc)
                continue
            out[m.symbol] = m
        return out
