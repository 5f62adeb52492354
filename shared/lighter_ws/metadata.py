"""Lighter market metadata (``GET /api/v1/orderBookDetails``) with retries, and the backoff
the WS readers reconnect with.

:func:`fetch_markets` reads ``GET {rest_url}/api/v1/orderBookDetails`` and maps the configured
symbols to :class:`shared.markets.MarketInfo` (market id, decimals, minimum amounts), retrying
with exponential backoff until the venue answers. Used by the collector and by venue-sim's live
source.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Any

import aiohttp
import orjson

from shared.markets import MarketInfo

log = logging.getLogger(__name__)


class MarketMetadataError(RuntimeError):
    """The venue answered but does not list a configured market (not retried)."""


class Backoff:
    """Exponential backoff: ``initial``, ``2*initial``, ... capped at ``maximum`` (seconds)."""

    def __init__(self, initial: float, maximum: float) -> None:
        self.initial = initial
        self.maximum = maximum
        self._next = initial

    def next_delay(self) -> float:
        """The wait before the next attempt (s); doubles the following one."""
        d = self._next
        self._next = min(self._next * 2.0, self.maximum)
        return d

    def reset(self) -> None:
        """Start again from ``initial`` (after a healthy connection)."""
        self._next = self.initial


async def sleep_or_stop(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep ``seconds``; True if ``stop`` was set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    return stop.is_set()


def markets_from_details(body: Any, symbols: Iterable[str]) -> dict[str, MarketInfo]:
    """Pick ``symbols`` out of an ``orderBookDetails`` response body.

    Raises:
        ValueError: the body has no ``order_book_details`` list or an entry is malformed.
        MarketMetadataError: a symbol is not listed.
    """
    if not isinstance(body, dict) or not isinstance(body.get("order_book_details"), list):
        raise ValueError("response has no order_book_details list")
    by_symbol = {d.get("symbol"): d for d in body["order_book_details"] if isinstance(d, dict)}
    out: dict[str, MarketInfo] = {}
    missing = []
    for sym in symbols:
        d = by_symbol.get(sym)
        if d is None:
            missing.append(sym)
            continue
        try:
            out[sym] = MarketInfo.from_lighter(d)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"bad orderBookDetails entry for {sym}: {exc!r}") from None
    if missing:
        raise MarketMetadataError(f"venue does not list market(s) {missing}; it has {sorted(map(str, by_symbol))}")
    return out


async def fetch_markets(rest_url: str, symbols: Iterable[str], stop: asyncio.Event, backoff: Backoff,
                        timeout_s: float = 10.0) -> dict[str, MarketInfo] | None:
    """Market metadata of ``symbols`` from ``GET {rest_url}/api/v1/orderBookDetails``.

    Retries (logging each failure) with ``backoff`` until the venue answers with a valid body.

    Returns:
        ``{symbol: MarketInfo}``, or ``None`` when ``stop`` was set before an answer.

    Raises:
        MarketMetadataError: the venue answered but lacks a configured symbol.
    """
    syms = list(symbols)
    url = rest_url.rstrip("/") + "/api/v1/orderBookDetails"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as http:
        while not stop.is_set():
            try:
                async with http.get(url) as resp:
                    if resp.status != 200:
                        raise ValueError(f"HTTP {resp.status}")
                    body = orjson.loads(await resp.read())
                markets = markets_from_details(body, syms)
                log.info("market metadata from %s: %s", url,
                         ", ".join(f"{m.symbol}={m.market_id}" for m in markets.values()))
                return markets
            except MarketMetadataError:
                raise
            except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
                delay = backoff.next_delay()
                log.warning("orderBookDetails from %s failed (%s); retrying in %.1fs", url, exc or type(exc).__name__,
                            delay)
                if await sleep_or_stop(stop, delay):
                    break
    return None
