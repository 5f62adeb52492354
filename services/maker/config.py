"""Configuration of the maker: section ``services.maker`` of the stack config.

Units are in the names: ``_bps`` basis points of the mid, ``_s`` seconds of **event time**,
``_usd`` USD, sizes and inventories in base units of the market. A-S parameters follow
:class:`shared.events.ModelParams`: sigma ticks/sqrt(s), A 1/s, k 1/tick, gamma 1/tick.
The rules that use each field are in ``engine.py`` and ``docs/maker.md``.

Example (a subset; every default is in the model below)::

    services:
      maker:
        strategy: maker
        http_port: 9107
        horizon_s: 60                 # tau of the A-S formulas
        band_min_bps: 7               # seed 001 volatility band (full spread)
        band_max_bps: 13
        requote_threshold_bps: 1.5
        max_quote_age_s: 30
        max_requotes_per_min: 24
        sizes: {BTC: {min_size: 0.0002, max_size: 0.0004, size_step: 0.00001}}
        soft_inventory: {BTC: 0.001}
        max_inventory_units: {BTC: 0.002}
        notional_usd: 25              # markets missing from sizes: min_size notional, USD

Any market can be quoted: a market missing from a per-market dict gets, at its first mid,
``sizes`` from ``notional_usd`` (``min_size`` that notional rounded up to the market's lot and at
least its minimums, ``max_size`` twice it), ``tick_size`` the market's tick,
``soft_inventory`` ``soft_inventory_orders`` [5] x ``min_size`` and ``max_inventory_units``
``max_inventory_orders`` [10] x ``min_size`` (the shipped BTC/ETH ratios). The lot, tick and
minimums come from the market's metadata (the backtest's data; Lighter's known markets; else
guessed from the mid, :func:`shared.markets.guess_market`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from shared.config import describe_errors, merge_market_values, require_positive, section_markets
from shared.markets import KNOWN_MARKETS
from shared.strategy_base import DEFAULT_NOTIONAL_USD, DEFAULT_SIZES, MarketSizing, default_sizes, merge_sizes

SECTION = "maker"

Bias = Literal["bid", "ask", "both"]

DEFAULT_TICKS: dict[str, float] = {m: info.tick for m, info in KNOWN_MARKETS.items()}
DEFAULT_SOFT_INVENTORY: dict[str, float] = {"BTC": 0.001, "ETH": 0.025}
DEFAULT_MAX_INVENTORY: dict[str, float] = {"BTC": 0.002, "ETH": 0.05}


class MakerConfig(BaseModel):
    """Every parameter of the maker (rules: ``services/maker/engine.py``, ``docs/maker.md``).

    Per-market dicts (``sizes``, ``tick_size``, ``soft_inventory``, ``max_inventory_units``) given
    in the file are merged over the defaults, market keys upper-cased (so
    ``LS_SERVICES__MAKER__SOFT_INVENTORY__BTC=0.002`` works).
    """

    model_config = ConfigDict(extra="forbid")

    # --- identity and I/O
    strategy: str = Field(default="maker", min_length=1, description="strategy name in intents, fills and the consumer group")
    markets: list[str] | None = Field(default=None, description="markets to quote; null = the stack's markets")
    http_port: int = Field(default=9107, ge=0, le=65535, description="/health and /metrics port")
    dry_run: bool = Field(default=False, description="compute quotes and metrics, emit no QuoteIntent")
    seed: int = Field(default=0, description="seed of the quote jitter RNG (same seed, same quotes)")

    # --- Avellaneda-Stoikov
    horizon_s: float = Field(default=60.0, gt=0, description="tau: horizon of the A-S formulas, s (constant, no session end on a perp)")
    require_params: bool = Field(default=False, description="true: never quote before an ok ModelParams; false: quote the seed band around the mid until then")
    fallback_skew_bps: float = Field(default=2.0, ge=0, description="without A-S params: reservation shift at the soft inventory cap, bps of mid (linear in inventory)")
    recalibrate_s: float = Field(default=300.0, gt=0, description="calibrate A-S parameters every this much event time, s")
    calibration_window_s: float = Field(default=900.0, gt=0, description="BBOs and trades kept per market for calibration, s")
    min_calibration_span_s: float = Field(default=300.0, gt=0, description="first calibration once the buffer spans this long, s")
    max_buffer_events: int = Field(default=50_000, ge=100, description="at most this many BBOs (and trades) kept per market")
    calibration: dict[str, Any] = Field(default_factory=dict, description="options passed to shared.calibration (its own config model)")
    calibration_thread: bool = Field(default=True, description="live service: calibrate in a worker thread off the consume loop (params published to the params stream, used when read back); false: inline at the triggering Bbo as backtests do (lockstep replays, for backtest parity)")

    # --- seed 001 volatility band (spreads are full bid-ask spreads, as in the seed)
    vol_sample_s: float = Field(default=5.0, gt=0, description="mid sampling interval of the volatility EWMA and trend filter, s (seed loop cadence)")
    vol_half_life_s: float = Field(default=45.0, gt=0, description="half-life of the EWMA of |mid change| between samples, s")
    vol_low_bps: float = Field(default=6.0, ge=0, description="volatility at which the band is at its minimum, bps")
    vol_high_bps: float = Field(default=22.0, gt=0, description="volatility at which the band is at its maximum, bps")
    band_min_bps: float = Field(default=7.0, gt=0, description="full spread of the band at low volatility, bps")
    band_max_bps: float = Field(default=13.0, gt=0, description="full spread of the band at high volatility, bps")
    size_mult_low_vol: float = Field(default=1.1, gt=0, description="size multiplier at low volatility")
    size_mult_high_vol: float = Field(default=0.7, gt=0, description="size multiplier at high volatility")
    high_vol_clip_bps: float = Field(default=9.0, gt=0, description="volatility from which size is also multiplied by high_vol_clip_mult, bps")
    high_vol_clip_mult: float = Field(default=0.85, gt=0, le=1, description="size multiplier in high volatility")
    pause_bps: float = Field(default=30.0, gt=0, description="pause quoting (pull both sides) when volatility >= this, bps")
    resume_bps: float = Field(default=18.0, gt=0, description="resume only when volatility <= this, bps ...")
    resume_inventory_frac: float = Field(default=0.25, ge=0, description="... and |inventory| <= this fraction of soft_inventory")

    # --- seed 001 trend filter
    trend_lookback_s: float = Field(default=45.0, gt=0, description="trend = mid change over this lookback, s")
    trend_up_bps: float = Field(default=12.0, gt=0, description="up-trend when the change >= this, bps")
    trend_down_bps: float = Field(default=6.0, gt=0, description="down-trend when the change <= -this, bps")
    trend_exit_bps: float = Field(default=6.0, ge=0, description="trend ends when the change is back inside +-this, bps")
    trend_up_bias: Bias = Field(default="bid", description="side quoted in an up-trend (seed 001 code: ask; see docs/maker.md)")
    trend_down_bias: Bias = Field(default="ask", description="side quoted in a down-trend")
    trend_up_extra_bps: float = Field(default=2.5, ge=0, description="extra full spread in an up-trend, bps")
    trend_down_extra_bps: float = Field(default=6.0, ge=0, description="extra full spread in a down-trend and its cooldown, bps")
    trend_override_inventory_frac: float = Field(default=0.6, ge=0, description="quote both sides, no trend extra, when the biased side would grow |inventory| above this fraction of soft_inventory")

    # --- seed 001 regimes
    min_dwell_s: float = Field(default=60.0, ge=0, description="minimum time between regime switches, s")
    defensive_size_mult: float = Field(default=0.7, gt=0, description="size multiplier in the defensive regime")
    defensive_extra_bps: float = Field(default=2.0, ge=0, description="extra full spread in the defensive regime, bps")
    defensive_cooldown_s: float = Field(default=45.0, ge=0, description="down-trend cooldown started in the defensive regime, s")
    aggressive_size_mult: float = Field(default=1.0, gt=0, description="size multiplier in the aggressive regime")
    aggressive_extra_bps: float = Field(default=0.0, ge=0, description="extra full spread in the aggressive regime, bps")
    aggressive_cooldown_s: float = Field(default=20.0, ge=0, description="down-trend cooldown started in the aggressive regime, s")

    # --- seed 001 PnL guard (on FIFO realized PnL of the maker's fills)
    pnl_guard: bool = Field(default=True, description="enable the realized-PnL guard")
    pnl_window_s: float = Field(default=300.0, gt=0, description="realized FIFO PnL summed over this window, s")
    pnl_check_s: float = Field(default=15.0, ge=5, description="guard check interval, s (seed minimum 5)")
    pnl_floor_usd: float = Field(default=-0.5, description="a check fails when the window's realized PnL <= this, USD")
    pnl_trigger_checks: int = Field(default=2, ge=1, description="consecutive failed checks that engage the guard")
    pnl_widen_bps: float = Field(default=4.0, ge=0, description="extra full spread while the guard is engaged, bps")
    pnl_max_extra_bps: float = Field(default=8.0, ge=0, description="cap of pnl_widen_bps, bps")
    pnl_size_mult: float = Field(default=0.85, gt=0, le=1, description="size multiplier while engaged")
    pnl_min_size_mult: float = Field(default=0.6, gt=0, le=1, description="floor of pnl_size_mult")
    pnl_guard_ttl_s: float = Field(default=120.0, gt=0, description="the guard releases after this long, s")

    # --- price and size
    randomize_bps: float = Field(default=1.0, ge=0, description="uniform jitter of the full spread in +-this at each requote, bps (seeded)")
    min_notional_usd: float = Field(default=10.5, gt=0, description="order notional floor, USD (Lighter minimum 10 + margin)")
    sizes: dict[str, MarketSizing] = Field(default_factory=default_sizes, description="per market: min_size, max_size (the clip at zero inventory), size_step (lot), base units")
    tick_size: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_TICKS), description="per market: price tick, USD (Lighter price decimals)")
    soft_inventory: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_SOFT_INVENTORY), description="per market: soft inventory cap, base units (size shrinks to min_size and, without A-S params, quotes skew)")
    max_inventory_units: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_MAX_INVENTORY), description="per market: hard cap; the side that would grow |inventory| beyond it is not quoted, base units")
    notional_usd: float = Field(default=DEFAULT_NOTIONAL_USD, gt=0, description="markets missing from sizes: min_size = this notional on the lot (and >= the market minimums), max_size twice it, USD")
    soft_inventory_orders: float = Field(default=5.0, gt=0, description="markets missing from soft_inventory: this many min_size")
    max_inventory_orders: float = Field(default=10.0, gt=0, description="markets missing from max_inventory_units: this many min_size")
    post_only: bool = Field(default=True, description="quotes are post-only limit orders")
    max_spread_bps: float = Field(default=100.0, gt=0, description="cap of the full quoted spread, bps (guards against a bad A-S fit)")
    max_reservation_offset_bps: float = Field(default=50.0, ge=0, description="cap of |reservation price - mid|, bps")

    # --- requote discipline
    requote_threshold_bps: float = Field(default=1.5, ge=0, description="requote a side when its wanted price moved more than this from the resting one, bps")
    max_quote_age_s: float = Field(default=30.0, gt=0, description="requote a side older than this even if the price did not move, s")
    max_requotes_per_min: int = Field(default=24, ge=1, description="QuoteIntents that change orders per rolling 60 s, all markets (pulls always pass)")
    adverse_horizons_s: list[float] = Field(default_factory=lambda: [1.0, 10.0], description="adverse selection measured this long after each fill, s")

    @field_validator("sizes", mode="before")
    @classmethod
    def _merge_sizes(cls, v: Any) -> Any:
        return merge_sizes(v, DEFAULT_SIZES)

    @field_validator("tick_size", mode="before")
    @classmethod
    def _merge_ticks(cls, v: Any) -> Any:
        return merge_market_values(v, DEFAULT_TICKS)

    @field_validator("soft_inventory", mode="before")
    @classmethod
    def _merge_soft(cls, v: Any) -> Any:
        return merge_market_values(v, DEFAULT_SOFT_INVENTORY)

    @field_validator("max_inventory_units", mode="before")
    @classmethod
    def _merge_hard(cls, v: Any) -> Any:
        return merge_market_values(v, DEFAULT_MAX_INVENTORY)

    @model_validator(mode="after")
    def _consistent(self) -> MakerConfig:
        require_positive((("tick_size", self.tick_size), ("soft_inventory", self.soft_inventory),
                          ("max_inventory_units", self.max_inventory_units)))
        if self.vol_high_bps <= self.vol_low_bps:
            raise ValueError("vol_high_bps must be above vol_low_bps")
        if self.band_max_bps < self.band_min_bps:
            raise ValueError("band_max_bps must be at least band_min_bps")
        if self.resume_bps > self.pause_bps:
            raise ValueError("resume_bps must not exceed pause_bps")
        if any(not h > 0 for h in self.adverse_horizons_s):
            raise ValueError("adverse_horizons_s: every horizon must be > 0")
        from shared.calibration import CalibrationConfig  # lazy: numpy/scipy only when configured

        try:
            CalibrationConfig(**self.calibration)
        except ValidationError as exc:
            raise ValueError(describe_errors(exc, "calibration", CalibrationConfig).removeprefix("config error: ")) from None
        return self

    def resolve_markets(self, stack_markets: list[str]) -> list[str]:
        """The markets quoted: ``markets`` or the stack's (a market missing from ``sizes``,
        ``tick_size``, ``soft_inventory`` or ``max_inventory_units`` gets the derived default
        at its first mid, see the module docstring).

        Raises:
            ConfigError: no market.
        """
        return section_markets(SECTION, self.markets, stack_markets, (), verb="quote")
