"""The backtest's config section (``services.backtest``): :class:`BacktestConfig`.

Kept apart from :mod:`lighter_stack.backtest.runner` so that checking a config
(``lighter_stack.registry.config_sections``) does not import the backtest machinery.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.markets import MarketInfo

#: Keys a ``services.backtest.markets.<SYM>`` entry may set (``MarketInfo`` fields but the symbol).
MARKET_KEYS = tuple(f for f in MarketInfo.__struct_fields__ if f != "symbol")


class BacktestConfig(BaseModel):
    """Section ``services.backtest``.

    Attributes:
        account_index: simulated account (default: the stack's ``account_index``).
        tier: venue tier ``standard`` (300/200/200 ms speed bump, no fees) or ``premium``.
        maker_fee / taker_fee: fee fractions overriding the tier's (0.0002 = 2 bps).
        initial_capital_usd: equity at the start (returns, drawdown %).
        equity_sample_s: equity sampling interval (event time).
        markets: market metadata per symbol (``MarketInfo`` fields: ``market_id``,
            ``size_decimals``, ``price_decimals``, ``min_base_amount``, ``min_quote_amount``,
            ``taker_fee``, ``maker_fee``) for data whose markets are not known (klines, CSV
            folders of other markets). An unknown key is refused.
    """

    model_config = ConfigDict(extra="forbid")
    account_index: int | None = Field(default=None, ge=0)
    tier: str = Field(default="standard", pattern="^(standard|premium)$")
    maker_fee: float | None = Field(default=None, ge=0)
    taker_fee: float | None = Field(default=None, ge=0)
    initial_capital_usd: float = Field(default=10_000.0, gt=0)
    equity_sample_s: float = Field(default=60.0, gt=0)
    markets: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @field_validator("markets")
    @classmethod
    def _known_market_keys(cls, v: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for sym, d in v.items():
            bad = sorted(set(d) - set(MARKET_KEYS))
            if bad:
                raise ValueError(f"{sym}.{bad[0]}: unknown key (known: {', '.join(MARKET_KEYS)})")
        return v

    def market_overrides(self) -> dict[str, MarketInfo]:
        """The configured market metadata as ``{SYMBOL: MarketInfo}`` (``market_id`` -1 unless set).

        Raises:
            TypeError: a required ``MarketInfo`` field is missing.
        """
        out = {}
        for sym, d in self.markets.items():
            out[sym.upper()] = MarketInfo(**{"symbol": sym.upper(), "market_id": -1, **d})
        return out
