"""Configuration of strategy-grid: section ``services.strategy-grid`` of the stack config.

Units: ``_pct`` percent of price (0.1 = 0.1 %), ``_s`` seconds of event time, sizes and
positions in base units of the market.

Example (the defaults)::

    services:
      strategy-grid:
        strategy: grid
        markets: null              # null = the stack's top-level markets
        http_port: 9106
        dry_run: false             # compute and expose the grid, emit no intents
        spacing_pct: 0.1           # seed 002's documented spacing (its code used 0.05)
        levels_per_side: 4
        max_orders: 8              # resting orders of the grid in one market, at most
        recenter_pct: 0.5          # re-anchor when the mid is this far from the anchor
        cooldown_s: 10             # event time between two emissions of RestingOrders
        post_only: true
        sizes: {BTC: 0.0002, ETH: 0.005}            # per order, base units
        max_position: {BTC: 0.001, ETH: 0.025}      # inventory cap per market, base units
        notional_usd: 25           # markets without sizes: per-order notional, USD
        max_position_orders: 5     # markets without max_position: cap = this many orders

A market missing from ``sizes`` (any market the stack trades, e.g. a backtest on new data) gets,
at its first mid, orders of ``notional_usd`` USD rounded up to the market's lot and at least its
minimums (:func:`shared.strategy_base.notional_size`); one missing from ``max_position`` gets
``max_position_orders`` times its order size (the shipped BTC/ETH ratio).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.config import merge_market_values, require_positive, section_markets
from shared.strategy_base import DEFAULT_NOTIONAL_USD

SECTION = "strategy-grid"

DEFAULT_SIZES: dict[str, float] = {"BTC": 0.0002, "ETH": 0.005}
DEFAULT_MAX_POSITION: dict[str, float] = {"BTC": 0.001, "ETH": 0.025}


class GridConfig(BaseModel):
    """Every parameter of the grid strategy (see ``engine.py`` for the rules).

    ``sizes`` and ``max_position`` given in the file are merged over the defaults (market keys
    upper-cased, so ``LS_SERVICES__STRATEGY_GRID__SIZES__BTC=0.0003`` works).
    """

    model_config = ConfigDict(extra="forbid")

    strategy: str = Field(default="grid", min_length=1)
    markets: list[str] | None = None
    http_port: int = Field(default=9106, ge=0, le=65535)
    dry_run: bool = False
    spacing_pct: float = Field(default=0.1, gt=0, lt=10)
    levels_per_side: int = Field(default=4, ge=1, le=8)
    max_orders: int = Field(default=8, ge=1, le=16)
    recenter_pct: float = Field(default=0.5, gt=0)
    cooldown_s: float = Field(default=10.0, ge=0)
    post_only: bool = True
    sizes: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_SIZES))
    max_position: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_MAX_POSITION))
    notional_usd: float = Field(default=DEFAULT_NOTIONAL_USD, gt=0)
    max_position_orders: float = Field(default=5.0, ge=1)

    @field_validator("sizes", mode="before")
    @classmethod
    def _merge_sizes(cls, v: Any) -> Any:
        return merge_market_values(v, DEFAULT_SIZES)

    @field_validator("max_position", mode="before")
    @classmethod
    def _merge_max_position(cls, v: Any) -> Any:
        return merge_market_values(v, DEFAULT_MAX_POSITION)

    @model_validator(mode="after")
    def _positive(self) -> GridConfig:
        require_positive((("sizes", self.sizes), ("max_position", self.max_position)))
        return self

    @property
    def spacing(self) -> float:
        """Spacing as a fraction of price (0.001 = 0.1 %)."""
        return self.spacing_pct / 100.0

    @property
    def cooldown_ns(self) -> int:
        return int(round(self.cooldown_s * 1e9))

    def resolve_markets(self, stack_markets: list[str]) -> list[str]:
        """The markets traded: ``markets`` or the stack's (those missing from ``sizes`` or
        ``max_position`` are sized from ``notional_usd`` at their first mid).

        Raises:
            ConfigError: no market at all.
        """
        return section_markets(SECTION, self.markets, stack_markets, ())
