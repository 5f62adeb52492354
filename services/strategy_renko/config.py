"""Configuration of strategy-renko: section ``services.strategy-renko`` of the stack config.

Defaults are the seed Renko+AO strategy's code defaults (seed 000, ``renko_ao_trader.py``) with
the sizes of the markets traded here. Units: ``_bps`` basis points of price, ``_s`` seconds,
sizes in base units of the market, periods in bricks unless they say candles.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveFloat, model_validator

from shared.strategy_base import HttpPort, StrategyName, TargetStrategyConfig

SECTION = "strategy-renko"


class RenkoConfig(TargetStrategyConfig):
    """Every parameter of the Renko+AO divergence strategy (rules in ``engine.py``); the
    fields every target strategy has (``markets``, ``sizes`` over
    :data:`shared.strategy_base.DEFAULT_SIZES` (BTC 0.0002–0.0004, ETH 0.005–0.01),
    ``notional_usd``, ``dry_run``, ...) and their rules are
    :class:`shared.strategy_base.TargetStrategyConfig`'s.
    """

    SECTION = SECTION

    strategy: StrategyName = "renko"
    http_port: HttpPort = 9105
    take_profit_bps: PositiveFloat = 10.0
    stop_loss_bps: PositiveFloat = 5.0
    max_hold_s: PositiveFloat = 300.0

    # brick size: Wilder ATR over fixed-interval mid candles
    atr_candle_interval_s: float = Field(default=15.0, gt=0)
    renko_atr_period: int = Field(default=14, ge=1)
    renko_atr_multiplier: float = Field(default=1.0, gt=0)
    fallback_brick_bps: float = Field(default=10.0, gt=0)  # 0.1 % of price until the ATR is ready
    min_brick_bps: float = Field(default=0.5, ge=0)        # floor: a frozen market (ATR 0) never makes 0-size bricks
    renko_reversal_bricks: Literal[1, 2] = 2

    # indicators on bricks
    renko_lookback: int = Field(default=20, ge=3)
    ao_fast_period: int = Field(default=5, ge=1)
    ao_slow_period: int = Field(default=34, ge=2)
    bb_period: int = Field(default=20, ge=1)
    bb_std: float = Field(default=2.0, gt=0)

    # entry
    min_divergence_strength: float = Field(default=0.3, ge=0, le=1)
    bb_enhancement_threshold: float = Field(default=0.2, ge=0, le=0.5)
    bb_enhancement_factor: float = Field(default=1.5, ge=1)
    divergence_price_bricks: float = Field(default=2.0, gt=0)  # price gap (bricks) for full price strength
    divergence_ao_bricks: float = Field(default=1.0, gt=0)     # AO gap (bricks) for full AO strength

    # sizing
    ao_size_multiplier: float = Field(default=0.1, ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> RenkoConfig:
        if self.ao_fast_period >= self.ao_slow_period:
            raise ValueError("ao_fast_period must be shorter than ao_slow_period")
        return self

    @property
    def candle_interval_ns(self) -> int:
        """ATR candle length in nanoseconds."""
        return int(round(self.atr_candle_interval_s * 1e9))

