"""A fake venue and a list publisher for the copy-trade tests (no network, no Redis)."""

from __future__ import annotations

from typing import Any

from services.copytrade.config import CopytradeConfig
from services.copytrade.service import CopyTrader
from services.copytrade.venue import AccountNotFound, VenueUnavailable
from shared.events import Event
from shared.markets import MarketInfo

BTC = MarketInfo(symbol="BTC", market_id=1, size_decimals=5, price_decimals=1, min_base_amount=0.0002,
                 min_quote_amount=10.0)
ETH = MarketInfo(symbol="ETH", market_id=0, size_decimals=4, price_decimals=2, min_base_amount=0.005,
                 min_quote_amount=10.0)


class FakeVenue:
    """Answers like venue-sim: ``mids`` per symbol, accounts with a total asset value."""

    def __init__(self, tav: float = 10_000.0, accounts: tuple[int, ...] = (1001, 1002)) -> None:
        self.mids = {"BTC": 100_000.0, "ETH": 4_000.0}
        self.tav = tav
        self.accounts = set(accounts)
        self.down = 0  # this many next calls raise VenueUnavailable
        self.calls = 0

    def _maybe_down(self) -> None:
        self.calls += 1
        if self.down > 0:
            self.down -= 1
            raise VenueUnavailable("down")

    async def markets(self) -> dict[str, MarketInfo]:
        self._maybe_down()
        return {"BTC": BTC, "ETH": ETH}

    async def mid(self, market: MarketInfo) -> float:
        self._maybe_down()
        return self.mids[market.symbol]

    async def account(self, account_index: int) -> dict[str, Any]:
        self._maybe_down()
        if account_index not in self.accounts:
            raise AccountNotFound(str(account_index))
        return {"account_index": account_index, "l1_address": "0x0", "available_balance": str(self.tav),
                "collateral": str(self.tav), "total_asset_value": str(self.tav),
                "cross_asset_value": str(self.tav), "status": 1,
                "positions": [{"market_id": 1, "symbol": "BTC", "position": "0.01000", "sign": 1,
                               "position_value": "1000", "avg_entry_price": "100000", "unrealized_pnl": "0",
                               "realized_pnl": "0"}]}


def make_trader(venue: FakeVenue | None = None, **cfg: Any) -> tuple[CopyTrader, list[tuple[int, Event]]]:
    """A :class:`CopyTrader` on a fake venue, accounts 1001 and 1002, no retry sleeps; returns it
    and the list its intents are published to."""
    out: list[tuple[int, Event]] = []

    async def publish(account: int, ev: Event) -> None:
        out.append((account, ev))

    async def nosleep(_s: float) -> None:
        return None

    t = CopyTrader(CopytradeConfig(**cfg), [1001, 1002], venue or FakeVenue(), publish, sleep=nosleep)
    return t, out
