"""Configuration of the hedger: section ``services.hedger`` of the stack config.

Units: ``_units`` base units of the market, ``_usd`` USD, ``_bps`` basis points, ``_s`` seconds
of **event time** (the clock is ``ts_event`` of the inputs, never a wall clock).

Example (the defaults; seed 001's SOL numbers, docs/hedger.md says where each comes from)::

    services:
      hedger:
        strategy: hedger           # fills/intents of the hedger carry this name
        maker_strategy: maker      # whose inventory is hedged
        http_port: 9108
        dry_run: false             # decide and expose metrics, emit no intents
        markets:                   # per market; the traded markets are these keys
          SOL: {trigger_units: 0.05, target_units: 0.02, max_clip_units: 0.10, min_clip_units: 0.0}
        trigger_notional_usd: 7.0  # no hedge while |exposure| x mid is at or below this
        prefer_passive: true
        passive_wait_s: 0.25
        max_exposure_s: 8.0        # over the trigger this long: every hedge crosses
        price_offset_bps: 10.0     # worst price of a cross, bps beyond the touch
        max_slippage_bps: 12.0     # cap every cross (normal and emergency) is checked against
        cooldown_s: 6.0
        emergency_after_s: 10.0    # exposure or an executor guard held this long: emergency
        emergency_clip_multiplier: 1.4
        emergency_extra_bps: 2.0   # seed 6.0 made the emergency offset 16 > cap 12: never executed
        emergency_cooldown_s: 0.75
        notional_usd: 25.0         # markets without thresholds: the base order notional, USD

Markets: the hedger hedges the stack's ``markets`` (those the maker quotes by default) and every
market with thresholds under ``markets``. A market without thresholds gets them at its first mid
from ``notional_usd``: with ``base`` = that notional in base units (rounded up to the lot, at least
the market minimums; :func:`shared.strategy_base.notional_size`), ``trigger_units`` 2.5 x base,
``target_units`` 1 x base, ``max_clip_units`` 5 x base and ``min_clip_units`` the market's
smallest order -- seed 001's ratios to the maker's soft inventory cap (trigger 0.5x, target 0.2x,
clip 1x) with the maker's default cap of 5 orders.

Validation refuses a config whose emergency cross could never execute: ``price_offset_bps +
emergency_extra_bps`` must not exceed ``max_slippage_bps`` (the error names
``services.hedger.emergency_extra_bps``).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from shared.config import ConfigError
from shared.markets import LIGHTER_MIN_QUOTE_USD, MarketInfo
from shared.strategy_base import DEFAULT_NOTIONAL_USD, merge_sizes, notional_size

SECTION = "hedger"

#: Seed 001's SOL hedger thresholds (config.yaml at 2fe908c, docs/state_packet.md).
SEED_SOL: dict[str, float] = {"trigger_units": 0.05, "target_units": 0.02, "max_clip_units": 0.10}
DEFAULT_MARKETS: dict[str, dict[str, float]] = {"SOL": dict(SEED_SOL)}
#: Thresholds of a market without any, in multiples of the base order (``notional_usd``).
TRIGGER_ORDERS, TARGET_ORDERS, CLIP_ORDERS = 2.5, 1.0, 5.0


class HedgerMarket(BaseModel):
    """Hedge thresholds of one market, in base units.

    - ``trigger_units``: hedge only while ``|exposure| > trigger_units`` (exposure = maker
      inventory + hedge position);
    - ``target_units``: hedge toward ``sign(maker inventory) · target_units``;
    - ``max_clip_units``: the largest single hedge order;
    - ``min_clip_units``: the smallest order the venue accepts (Lighter ``min_base_amount`` or
      ``min_quote_amount`` / price, on the lot); a smaller hedge is raised to it when that does
      not hedge past flat, else skipped. 0 = unknown (the executor refuses too small orders).

    Raises (on validation): ``target_units`` not below ``trigger_units``, or
    ``min_clip_units`` above ``max_clip_units``.
    """

    model_config = ConfigDict(extra="forbid")
    trigger_units: float = Field(gt=0)
    target_units: float = Field(ge=0)
    max_clip_units: float = Field(gt=0)
    min_clip_units: float = Field(default=0.0, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> HedgerMarket:
        if self.target_units >= self.trigger_units:
            raise ValueError(f"target_units {self.target_units:g} must be below trigger_units {self.trigger_units:g}")
        if self.min_clip_units > self.max_clip_units:
            raise ValueError(f"min_clip_units {self.min_clip_units:g} exceeds max_clip_units {self.max_clip_units:g}")
        return self


class HedgerConfig(BaseModel):
    """Every parameter of the hedger (rules in ``engine.py`` and docs/hedger.md).

    ``markets`` given in the file are merged over :data:`DEFAULT_MARKETS` per market and field
    (symbols upper-cased), so a profile (``lighter-stack profile``) or
    ``LS_SERVICES__HEDGER__MARKETS__SOL__TRIGGER_UNITS=0.08`` changes one value.
    """

    model_config = ConfigDict(extra="forbid")

    strategy: str = Field(default="hedger", min_length=1)
    maker_strategy: str = Field(default="maker", min_length=1)
    http_port: int = Field(default=9108, ge=0, le=65535)
    dry_run: bool = False
    markets: dict[str, HedgerMarket] = Field(
        default_factory=lambda: {k: HedgerMarket(**v) for k, v in DEFAULT_MARKETS.items()})
    trigger_notional_usd: float = Field(default=7.0, ge=0)
    prefer_passive: bool = True
    passive_wait_s: float = Field(default=0.25, ge=0)
    passive_success_fraction: float = Field(default=0.6, gt=0, le=1)
    passive_cancel_timeout_s: float = Field(default=2.0, gt=0)
    max_exposure_s: float = Field(default=8.0, ge=0)
    price_offset_bps: float = Field(default=10.0, ge=0)
    max_slippage_bps: float = Field(default=12.0, gt=0, validate_default=True)
    cooldown_s: float = Field(default=6.0, ge=0)
    emergency_after_s: float = Field(default=10.0, ge=0)
    emergency_clip_multiplier: float = Field(default=1.4, ge=1)
    emergency_extra_bps: float = Field(default=2.0, ge=0, validate_default=True)
    emergency_cooldown_s: float = Field(default=0.75, ge=0)
    notional_usd: float = Field(default=DEFAULT_NOTIONAL_USD, gt=0)

    @field_validator("markets", mode="before")
    @classmethod
    def _merge_markets(cls, v: Any) -> Any:
        return merge_sizes(v, DEFAULT_MARKETS)  # per market, field by field (the same merge as sizes)

    @field_validator("max_slippage_bps")
    @classmethod
    def _cap_covers_offset(cls, v: float, info: ValidationInfo) -> float:
        offset = info.data.get("price_offset_bps")
        if offset is not None and offset > v:
            raise ValueError(f"price_offset_bps {offset:g} exceeds max_slippage_bps {v:g}: no cross could ever execute")
        return v

    @field_validator("emergency_extra_bps")
    @classmethod
    def _emergency_executable(cls, v: float, info: ValidationInfo) -> float:
        offset, cap = info.data.get("price_offset_bps"), info.data.get("max_slippage_bps")
        if offset is not None and cap is not None and offset + v > cap:
            raise ValueError(
                f"price_offset_bps {offset:g} + emergency_extra_bps {v:g} = {offset + v:g} bps exceeds "
                f"max_slippage_bps {cap:g}: an emergency cross would never execute (seed 001's bug); "
                f"use at most {max(0.0, cap - offset):g}")
        return v

    @property
    def emergency_offset_bps(self) -> float:
        """Worst price of an emergency cross, bps beyond the touch."""
        return self.price_offset_bps + self.emergency_extra_bps

    def resolve_markets(self, stack_markets: list[str] | None = None) -> list[str]:
        """The hedged markets, sorted: the keys of ``markets`` and the stack's ``stack_markets``
        (those without thresholds get :meth:`derived_limits` at their first mid).

        Raises:
            ConfigError: no market at all.
        """
        markets = sorted({*self.markets, *(stack_markets or ())})
        if not markets:
            raise ConfigError(f"config error: services.{SECTION}.markets: no market to hedge")
        return markets

    def derived_limits(self, mid: float, info: MarketInfo) -> HedgerMarket:
        """Thresholds of a market ``markets`` does not list (module docstring): multiples of
        ``notional_usd`` in base units at ``mid``; ``min_clip_units`` the market's smallest
        order (``min_base_amount``, ``min_quote_amount`` -- at least Lighter's 10 USD -- plus
        5 %, on the lot).

        Raises:
            ValueError: ``mid`` is not > 0.
        """
        base = notional_size(self.notional_usd, mid, info)
        return HedgerMarket(trigger_units=round(base * TRIGGER_ORDERS, 12), target_units=round(base * TARGET_ORDERS, 12),
                            max_clip_units=round(base * CLIP_ORDERS, 12),
                            min_clip_units=notional_size(max(info.min_quote_amount, LIGHTER_MIN_QUOTE_USD), mid, info))


def load_section(stack: Any) -> HedgerConfig:
    """Validate ``services.hedger`` of a :class:`~shared.config.StackConfig`.

    Raises:
        ConfigError: an invalid field (named), including an emergency offset above the cap
            (``services.hedger.emergency_extra_bps``) or no market.
    """
    cfg: HedgerConfig = stack.section(SECTION, HedgerConfig)
    cfg.resolve_markets()
    return cfg
