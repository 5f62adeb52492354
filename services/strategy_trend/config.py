"""Configuration of strategy-trend: section ``services.strategy-trend`` of the stack config.

Defaults are the seed strategy's documented rules (seed 000, ``config.yaml.example``) with the
sizes scaled to the markets traded here. Units: ``_bps`` basis points of price, ``_s`` seconds,
sizes in base units of the market.
"""

from __future__ import annotations

from pydantic import Field, PositiveFloat, model_validator

from shared.strategy_base import DEFAULT_SIZES, HttpPort, MarketSizing, StrategyName, TargetStrategyConfig

__all__ = ["DEFAULT_SIZES", "MarketSizing", "TrendConfig"]


class TrendConfig(TargetStrategyConfig):
    """Every parameter of the RSI+BB trend strategy (see ``engine.py`` for the rules); the
    fields every target strategy has (``markets``, ``sizes``, ``notional_usd``, ``dry_run``,
    ...) and their rules are :class:`shared.strategy_base.TargetStrategyConfig`'s.
    """

    SECTION = "strategy-trend"

    strategy: StrategyName = "trend"
    http_port: HttpPort = 9102
    take_profit_bps: PositiveFloat = 8.0
    stop_loss_bps: PositiveFloat = 4.0
    max_hold_s: PositiveFloat = 180.0

    # candles from the mid
    candle_interval_s: float = Field(default=15.0, gt=0)

    # indicators
    rsi_period: int = Field(default=14, ge=1)
    bb_period: int = Field(default=20, ge=1)
    bb_std: float = Field(default=2.0, gt=0)
    ema_fast_period: int = Field(default=8, ge=1)
    ema_slow_period: int = Field(default=21, ge=1)
    atr_period: int = Field(default=14, ge=1)
    volatility_period: int = Field(default=20, ge=1)

    # entry rules
    rsi_bullish_threshold: float = 50.0
    rsi_bearish_threshold: float = 50.0
    rsi_momentum_strength: float = Field(default=10.0, ge=0)
    bb_position_threshold: float = Field(default=0.3, ge=0)
    trend_confirmation_bps: float = Field(default=2.0, ge=0)
    vol_min_bps: float = Field(default=2.0, ge=0)
    vol_max_bps: float = Field(default=25.0, ge=0)

    # sizing
    atr_size_multiplier: float = Field(default=0.5, ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> TrendConfig:
        if self.vol_max_bps < self.vol_min_bps:
            raise ValueError(f"vol_max_bps {self.vol_max_bps} is below vol_min_bps {self.vol_min_bps}")
        if self.ema_fast_period >= self.ema_slow_period:
            raise ValueError("ema_fast_period must be shorter than ema_slow_period")
        return self

    @property
    def candle_interval_ns(self) -> int:
        """Candle length in nanoseconds."""
        return int(round(self.candle_interval_s * 1e9))

    @property
    def warmup_candles(self) -> int:
        """Candles needed before every indicator has a value (21 with the defaults): RSI and
        ATR need n + 1, the volatility n + 1 (n returns), Bollinger and the EMAs n."""
        return max(self.rsi_period + 1, self.bb_period, self.ema_fast_period, self.ema_slow_period,
                   self.atr_period + 1, self.volatility_period + 1)
