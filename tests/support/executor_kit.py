"""Building blocks of the executor engine tests: the paper account, two real Lighter markets
(BTC market 1, ETH market 0, minimums as on Lighter), an engine factory and Lighter trade
payloads as the account channels send them. Import as ``from executor_kit import ...``: pytest
puts ``tests/support`` on ``sys.path`` (``pythonpath`` in pyproject.toml)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from services.executor.config import ExecutorConfig
from services.executor.engine import Engine
from shared.markets import MarketInfo

ACCT = 1001
BTC = MarketInfo(symbol="BTC", market_id=1, size_decimals=5, price_decimals=1, min_base_amount=0.0002,
                 min_quote_amount=10.0)
ETH = MarketInfo(symbol="ETH", market_id=0, size_decimals=4, price_decimals=2, min_base_amount=0.005,
                 min_quote_amount=10.0)
T0 = 1_757_973_376_000_000_000  # ns
MS = 1_000_000  # ns
S = 1_000_000_000  # ns


def make_engine(markets: Iterable[MarketInfo] = (BTC, ETH), **cfg: Any) -> Engine:
    """An executor engine for :data:`ACCT` on ``markets``, config fields from ``cfg``, running
    (reconciled), client order indexes from 100."""
    return Engine(ExecutorConfig(**cfg), {m.symbol: m for m in markets}, ACCT, next_client_order_index=100)


def lighter_trade(trade_id: int, coi: int, size: str, price: str, side: str = "buy", maker: bool = False,
                  market_id: int = 1, *, taker_fee: int = 196, maker_fee: int = 28,
                  timestamp_ms: int = 1_757_973_377_000) -> dict[str, Any]:
    """A Lighter Trade (account channel payload) where our account (client order index
    ``coi``) is on ``side`` against account 9; ``maker``: our order was the resting one.
    ``size``/``price`` are Lighter's decimal strings; fees in Lighter's fee ticks."""
    ours_bid = side == "buy"
    return {
        "trade_id": trade_id, "type": "trade", "market_id": market_id, "size": size, "price": price,
        "usd_amount": f"{float(size) * float(price):.6f}",
        "ask_account_id": 9 if ours_bid else ACCT, "bid_account_id": ACCT if ours_bid else 9,
        "ask_client_id": 0 if ours_bid else coi, "bid_client_id": coi if ours_bid else 0,
        # maker is the ask when is_maker_ask; our side is maker iff (we sell) == is_maker_ask
        "is_maker_ask": (not ours_bid) if maker else ours_bid,
        "taker_fee": taker_fee, "maker_fee": maker_fee, "timestamp": timestamp_ms,
    }


def of(events: Iterable[Any], cls: type) -> list[Any]:
    """The events of type ``cls``, in order."""
    return [e for e in events if isinstance(e, cls)]
