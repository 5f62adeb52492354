"""Configuration of venue-sim: the ``services: venue-sim:`` section (every field has a default)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from services.venue_sim.ratelimit import TIER_LIMIT, TIER_TX_WEIGHT, RequestMeter
from shared.config import REPO_ROOT
from shared.venue.matching import TIERS, Tier


class VenueSimConfig(BaseModel):
    """venue-sim settings.

    Attributes:
        host, port: where REST (``/api/v1/...``), WS (``/stream``), ``/sim/...``, ``/health`` and
            ``/metrics`` are served (one port).
        recording: the market-data recording to replay (relative paths are taken from the repo
            root).
        speed: sim seconds per wall second (60 = one recorded hour per wall minute); ``0`` or
            less replays as fast as possible.
        max_gap_s: recorded gaps longer than this many sim seconds take only ``max_gap_s / speed``
            wall seconds (sim timestamps stay the recording's).
        autostart: start replaying at once; when false, wait for ``POST /sim/start`` (or
            ``start_when_subscribed``).
        start_when_subscribed: start once every recorded market's ``order_book`` channel has a
            subscriber and an account channel of ``account_index`` (default: the stack's
            ``account_index``) has one.
        fills_file: JSON-lines file the venue appends every fill to ("" = none; relative to the
            repo root).
        tier: ``standard`` (taker 300 ms, maker/cancel 200 ms, no fees) or ``premium``.
        taker_delay_ms, maker_delay_ms, cancel_delay_ms, maker_fee, taker_fee: override the tier
            (delays in ms of sim time, fees as fractions of notional, 0.0002 = 2 bps).
        initial_collateral: USDC of an account created on first use (its margin collateral).
        margin_checks: refuse create orders that would take the account's initial margin
            requirement (positions and open orders at mark, per market leverage) above its
            equity, with ``21739 not enough margin`` (see docs/venue-sim.md, Margin); ``null`` =
            on, except in ``lockstep`` (the backtest has no margin checks; parity).
        market_stats_interval_s: at most one ``market_stats`` message per market per this many sim
            seconds.
        recent_trades: trades kept per market for ``recentTrades``.
        lockstep: replay without the wall clock: release each recorded event only when every
            consumer group of the namespace's streams is idle and nothing moved for
            ``lockstep_settle_ms``; transactions arrive at the current event's time. Needs
            Redis (the stack's ``redis_url``/``REDIS_URL``). Deterministic; ``speed`` and
            ``max_gap_s`` are unused. See docs/venue-sim.md.
        lockstep_settle_ms: wall milliseconds the stack must stay quiet before the next step.
        lockstep_timeout_s: a step waits at most this long for quiet, then goes on (warning).
        public_book: what the public ``order_book`` channel shows: ``venue`` (recorded level
            minus our consumption, plus simulated resting orders, as Lighter would) or
            ``recorded`` (the recorded top of book only, as a backtest sees it); default
            ``recorded`` with ``lockstep``, else ``venue``.
        rate_limit: refuse tx requests (``sendTx``/``sendTxBatch``, REST and WS) over the
            account's rolling-minute limit of sim time with ``23000 too many requests``, before
            any tx of the request is processed; when false, requests are only counted
            (``/sim/status`` ``accounts``). Batches of more than 15 txs are refused either way.
        rate_limit_per_min: the limit in weight units per rolling minute; ``null`` = the tier's
            (Standard 60 requests, Premium 24,000 weighted; Lighter docs); 0 = no limit.
        request_weight: weight of one tx request; ``null`` = the tier's (Standard 1, Premium 6).
    """

    model_config = ConfigDict(extra="forbid")
    host: str = "0.0.0.0"
    port: int = Field(default=8090, ge=0, le=65535)
    recording: str = "data/recordings/lighter-2025-09-15-btc-eth.jsonl.gz"
    speed: float = 60.0
    max_gap_s: float = Field(default=5.0, gt=0)
    autostart: bool = True
    start_when_subscribed: bool = False
    account_index: int | None = None
    fills_file: str = "var/venue-fills.jsonl"
    tier: Literal["standard", "premium"] = "standard"
    taker_delay_ms: int | None = Field(default=None, ge=0)
    maker_delay_ms: int | None = Field(default=None, ge=0)
    cancel_delay_ms: int | None = Field(default=None, ge=0)
    maker_fee: float | None = None
    taker_fee: float | None = None
    initial_collateral: float = Field(default=100_000.0, ge=0)
    margin_checks: bool | None = None
    market_stats_interval_s: float = Field(default=1.0, ge=0)
    recent_trades: int = Field(default=200, ge=1)
    lockstep: bool = False
    lockstep_settle_ms: float = Field(default=30.0, gt=0)
    lockstep_timeout_s: float = Field(default=30.0, gt=0)
    public_book: Literal["venue", "recorded"] | None = None
    rate_limit: bool = True
    rate_limit_per_min: int | None = Field(default=None, ge=0)
    request_weight: int | None = Field(default=None, ge=1)

    def meter(self) -> RequestMeter:
        """The request meter of this section (tier defaults unless overridden)."""
        limit = TIER_LIMIT[self.tier] if self.rate_limit_per_min is None else self.rate_limit_per_min
        weight = TIER_TX_WEIGHT[self.tier] if self.request_weight is None else self.request_weight
        return RequestMeter(limit=limit, weight=weight, enabled=self.rate_limit)

    def resolved_public_book(self) -> str:
        """``public_book``, or its default: ``recorded`` in lockstep, else ``venue``."""
        if self.public_book is not None:
            return self.public_book
        return "recorded" if self.lockstep else "venue"

    def resolved_margin_checks(self) -> bool:
        """``margin_checks``, or its default: off in lockstep, else on."""
        return (not self.lockstep) if self.margin_checks is None else self.margin_checks

    def resolved_tier(self) -> Tier:
        """The tier with this section's overrides applied."""
        base = TIERS[self.tier]
        return Tier(
            name=base.name,
            taker_delay_ms=base.taker_delay_ms if self.taker_delay_ms is None else self.taker_delay_ms,
            maker_delay_ms=base.maker_delay_ms if self.maker_delay_ms is None else self.maker_delay_ms,
            cancel_delay_ms=base.cancel_delay_ms if self.cancel_delay_ms is None else self.cancel_delay_ms,
            maker_fee=base.maker_fee if self.maker_fee is None else self.maker_fee,
            taker_fee=base.taker_fee if self.taker_fee is None else self.taker_fee,
        )


def resolve_path(p: str) -> Path:
    """``p`` as given when absolute, else relative to the repository root."""
    path = Path(p)
    return path if path.is_absolute() else REPO_ROOT / path
