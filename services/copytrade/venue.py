"""What the copy-trade API reads from the venue's public REST API (Lighter or venue-sim).

Read only and unsigned: ``orderBookDetails`` (lots, minimums), ``orderBookOrders`` (the mid price)
and ``account`` (total asset value, balances, positions). Orders never go from here: intents go
to the executor, the one process that signs for the account.

Why REST and not the exec stream: sizing needs the account's **total asset value**, which only
the venue knows (the exec stream carries positions and fills, not collateral), and
``GET /api/account`` shows the venue's view of the account, as seed 004 did.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from shared.lighter_rest import LighterRest, RestError
from shared.markets import MarketInfo

log = logging.getLogger(__name__)


class VenueUnavailable(RuntimeError):
    """The venue did not answer, or answered with an error (the API answers 503)."""


class AccountNotFound(LookupError):
    """The venue does not know the account."""


class VenueReader(Protocol):
    """What the copy-trade service needs from the venue (a fake in the tests)."""

    async def markets(self) -> dict[str, MarketInfo]:
        """Perp markets by symbol."""
        ...

    async def mid(self, market: MarketInfo) -> float:
        """Mid of the best bid and ask (USD); one side when the other is empty.

        Raises:
            VenueUnavailable: no price (empty book) or no answer.
        """
        ...

    async def account(self, account_index: int) -> dict[str, Any]:
        """Lighter's account object (``total_asset_value``, ``positions``, ...).

        Raises:
            AccountNotFound, VenueUnavailable.
        """
        ...


class RestVenue:
    """:class:`VenueReader` over Lighter's REST API (the shared read client,
    :class:`shared.lighter_rest.LighterRest`; its errors become :class:`VenueUnavailable`).

    Args:
        base_url: e.g. ``http://127.0.0.1:8090`` (``/api/v1`` is appended).
        timeout_s: per-request timeout in seconds.
    """

    def __init__(self, base_url: str, timeout_s: float = 10.0) -> None:
        self.rest = LighterRest(base_url, timeout_s)

    async def close(self) -> None:
        """Close the HTTP session."""
        await self.rest.close()

    async def _get(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        try:
            return await self.rest.get(path, params)
        except RestError as exc:
            raise VenueUnavailable(str(exc)) from None

    async def markets(self) -> dict[str, MarketInfo]:
        """Perp markets by symbol from ``orderBookDetails`` (entries that do not parse are skipped)."""
        try:
            return await self.rest.markets()
        except RestError as exc:
            raise VenueUnavailable(str(exc)) from None

    async def mid(self, market: MarketInfo) -> float:
        """Mid price from ``orderBookOrders`` (limit 1). Raises :class:`VenueUnavailable` on an empty book."""
        body = await self._get("orderBookOrders", {"market_id": market.market_id, "limit": 1})
        try:
            bid = float(body["bids"][0]["price"]) if body.get("bids") else 0.0
            ask = float(body["asks"][0]["price"]) if body.get("asks") else 0.0
        except (KeyError, ValueError, TypeError, IndexError):
            raise VenueUnavailable(f"orderBookOrders {market.symbol}: malformed") from None
        if bid > 0 and ask > 0:
            return (bid + ask) / 2
        if bid > 0 or ask > 0:
            return bid or ask
        raise VenueUnavailable(f"no price in {market.symbol}: empty book")

    async def account(self, account_index: int) -> dict[str, Any]:
        """The ``account`` object of ``account_index``. Raises :class:`AccountNotFound` when the
        venue has none."""
        body = await self._get("account", {"by": "index", "value": account_index})
        accts = body.get("accounts") or []
        if not accts or not isinstance(accts[0], dict):
            raise AccountNotFound(f"account {account_index} not found at the venue")
        return accts[0]
