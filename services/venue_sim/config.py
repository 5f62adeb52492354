"""Configuration of venue-sim: the ``services: venue-sim:`` section (every field has a default)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from services.venue_sim.depth_config import DepthSettings
from services.venue_sim.faults import FaultPlan
from services.venue_sim.ratelimit import TIER_LIMIT, TIER_TX_WEIGHT, RequestMeter
from shared.config import REPO_ROOT
from shared.venue.matching import TIERS, Tier
from shared.venue.paper_identity import PAPER_L1_ADDRESS

MAX_ACCOUNT_INDEX = 2**48 - 1  # lighter-go's MaxAccountIndex (account indexes are 48-bit)


class AccountSpec(BaseModel):
    """One venue-sim account (``services.venue-sim.accounts[]``).

    Attributes:
        index: the account index (1 .. 2^48-1).
        l1_address: the owning Ethereum address (``0x`` + 40 hex digits, any case): the address
            a ``ChangePubKey``'s ``L1Sig`` must recover, and what ``accountsByL1Address`` /
            ``account?by=l1_address`` look up.
        collateral: USDC the account starts with.
    """

    model_config = ConfigDict(extra="forbid")
    index: int = Field(ge=1, le=MAX_ACCOUNT_INDEX)
    l1_address: str = PAPER_L1_ADDRESS
    collateral: float = Field(default=100_000.0, ge=0)

    @field_validator("l1_address")
    @classmethod
    def _address(cls, v: str) -> str:
        bare = v[2:] if v.startswith(("0x", "0X")) else ""
        if len(bare) != 40 or any(c not in "0123456789abcdefABCDEF" for c in bare):
            raise ValueError(f"l1_address must be 0x followed by 40 hex digits, not {v!r}")
        return "0x" + bare


class VenueSimConfig(BaseModel):
    """venue-sim settings.

    Attributes:
        host, port: where REST (``/api/v1/...``), WS (``/stream``), ``/sim/...``, ``/health`` and
            ``/metrics`` are served (one port).
        recording: the market-data recording to replay (relative paths are taken from the repo
            root).
        speed: recorded seconds replayed per wall second (60 = one recorded hour per wall
            minute); ``0`` or less replays as fast as possible. Outside lockstep the venue clock
            is the wall clock: events are stamped with the wall time they are applied at, and
            the speed bump, rate limits and ``ExpiredAt`` run in wall time (the market moves
            ``speed`` times faster than real; Lighter's limits stay real).
        max_gap_s: recorded gaps longer than this many recorded seconds take only
            ``max_gap_s / speed`` wall seconds.
        autostart: start replaying at once; when false, wait for ``POST /sim/start`` (or
            ``start_when_subscribed``).
        start_when_subscribed: start once every recorded market's ``order_book`` channel has a
            subscriber and an account channel of ``account_index`` (default: the stack's
            ``account_index``) has one.
        fills_file: JSON-lines file the venue appends every fill to ("" = none; relative to the
            repo root).
        audit_file: JSON-lines audit log of every published book (per nonce) and every accepted
            create order (:mod:`services.venue_sim.audit`; "" = none, the default; relative to
            the repo root). The chaos suite checks the stack against it.
        tier: ``standard`` (taker 300 ms, maker/cancel 200 ms, no fees) or ``premium``.
        taker_delay_ms, maker_delay_ms, cancel_delay_ms, maker_fee, taker_fee: override the tier
            (delays in ms of venue time, fees as fractions of notional, 0.0002 = 2 bps).
        initial_collateral: USDC of the default account (when ``accounts`` is not set).
        accounts: the venue's accounts (``index``, ``l1_address``, ``collateral``); default one
            account: the stack's ``account_index`` owned by the paper L1 address
            (``shared/venue/paper_identity.py``) with ``initial_collateral``. Txs and account
            reads of any other index are refused with 21100 ``account not found``.
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
            account's rolling-minute limit of venue time with ``23000 too many requests``, before
            any tx of the request is processed; when false, requests are only counted
            (``/sim/status`` ``accounts``). Batches of more than 15 txs are refused either way.
        rate_limit_per_min: the limit in weight units per rolling minute; ``null`` = the tier's
            (Standard 60 requests, Premium 24,000 weighted; Lighter docs); 0 = no limit.
        request_weight: weight of one tx request; ``null`` = the tier's (Standard 1, Premium 6).
            Reads (``GET /api/v1/...``) are metered per client IP under the same limit (Standard:
            weight 1; Premium: Lighter's endpoint weights); see ``ratelimit.py``.
        ws_idle_timeout_s: a WebSocket that sends nothing for this many wall seconds is closed
            (Lighter: 2 minutes; pings count).
        ws_max_subscriptions: channels per WebSocket connection (Lighter: 500; 23001 beyond).
        ws_messages_per_min: client messages per rolling wall minute on one connection, txs not
            counted (Lighter: 200; 30009 beyond); 0 = no limit.
        depth: the synthetic depth ladder behind the recorded touch
            (:class:`~services.venue_sim.depth_config.DepthSettings`; on by default in the paced
            mode, off in lockstep).
        verify_signatures: refuse txs whose ``Sig`` does not verify under the key registered for
            (``AccountIndex``, ``ApiKeyIndex``) (21121 no key, 21120 bad signature); ChangePubKey
            is verified under its own ``PubKey``. See docs/venue-sim.md.
        verify_auth: refuse private account reads (``accountActiveOrders``,
            ``accountInactiveOrders``, the auth channels) without a valid auth token of that
            account (20013).
        chain_id: the chain id of tx hashes and signatures (304: what the SDK uses for any URL
            that is not a Lighter host).
        faults: faults to inject from the start (:class:`~services.venue_sim.faults.FaultPlan`;
            all off by default); ``/sim/fault`` changes them at run time. See docs/venue-sim.md,
            Faults.
        state_path: the state file (relative paths from the repo root; "" = none): venue-sim
            continues from it when it exists and keeps it written (write-through before it
            answers or announces a change; :mod:`services.venue_sim.state`), so a restart --
            even after SIGKILL -- keeps the book, orders, accounts, nonces and keys.
        state_interval_ms: market-data-only changes reach the state file at most this many
            wall ms late.
        source: where the public market comes from: ``recording`` (the default: replay
            ``recording``) or ``live`` (paper trading on live market data: follow an upstream
            Lighter feed, :mod:`services.venue_sim.live`; docs/venue-sim.md "Live source"). The
            live source only reads the upstream's public channels; our txs are matched locally
            and never sent anywhere. ``live`` cannot be combined with ``lockstep`` or
            ``state_path``.
        upstream_ws_url: the upstream Lighter WebSocket (``source: live``).
        upstream_rest_url: the upstream REST base URL whose ``orderBookDetails`` gives the market
            metadata (ids, decimals, minimums) (``source: live``).
        markets: symbols to follow upstream (``source: live``); ``null`` = the stack's
            top-level ``markets``.
        upstream_reconnect_initial_s, upstream_reconnect_max_s: backoff (s) of the upstream
            reconnects and metadata retries: the first wait, doubled up to the maximum.
        upstream_timeout_s: timeout (s) of one upstream REST request, of the WS opening
            handshake and of the wait for the ``connected`` frame.
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
    audit_file: str = ""
    tier: Literal["standard", "premium"] = "standard"
    taker_delay_ms: int | None = Field(default=None, ge=0)
    maker_delay_ms: int | None = Field(default=None, ge=0)
    cancel_delay_ms: int | None = Field(default=None, ge=0)
    maker_fee: float | None = None
    taker_fee: float | None = None
    initial_collateral: float = Field(default=100_000.0, ge=0)
    accounts: list[AccountSpec] | None = None
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
    ws_idle_timeout_s: float = Field(default=120.0, gt=0)
    ws_max_subscriptions: int = Field(default=500, ge=0)
    ws_messages_per_min: int = Field(default=200, ge=0)
    depth: DepthSettings = Field(default_factory=DepthSettings)
    verify_signatures: bool = True
    verify_auth: bool = True
    chain_id: int = Field(default=304, ge=0, lt=2**32)
    faults: FaultPlan = Field(default_factory=FaultPlan)
    state_path: str = ""
    state_interval_ms: int = Field(default=1000, ge=10)
    source: Literal["recording", "live"] = "recording"
    upstream_ws_url: str = "wss://mainnet.zklighter.elliot.ai/stream"
    upstream_rest_url: str = "https://mainnet.zklighter.elliot.ai"
    markets: list[str] | None = None
    upstream_reconnect_initial_s: float = Field(default=1.0, gt=0)
    upstream_reconnect_max_s: float = Field(default=30.0, gt=0)
    upstream_timeout_s: float = Field(default=10.0, gt=0)

    @model_validator(mode="after")
    def _live_source(self) -> VenueSimConfig:
        if self.source != "live":
            return self
        if self.lockstep:
            raise ValueError("source: live runs on the wall clock; it cannot be combined with lockstep "
                             "(lockstep paces a recording)")
        if self.state_path:
            raise ValueError("source: live cannot be combined with state_path (the state file's position is a "
                             "place in a recording; a live venue restarts with fresh orders and accounts)")
        if self.markets is not None and not self.markets:
            raise ValueError("markets must not be empty (omit it to use the top-level markets)")
        if self.upstream_reconnect_max_s < self.upstream_reconnect_initial_s:
            raise ValueError("upstream_reconnect_max_s must be >= upstream_reconnect_initial_s")
        return self

    def meter(self) -> RequestMeter:
        """The request meter of this section (tier defaults unless overridden)."""
        limit = TIER_LIMIT[self.tier] if self.rate_limit_per_min is None else self.rate_limit_per_min
        weight = TIER_TX_WEIGHT[self.tier] if self.request_weight is None else self.request_weight
        return RequestMeter(limit=limit, weight=weight, enabled=self.rate_limit,
                            weighted_reads=self.tier == "premium")

    def resolved_accounts(self, account_index: int) -> list[AccountSpec]:
        """``accounts``, or the default: ``account_index`` owned by the paper L1 address with
        ``initial_collateral``.

        Raises:
            ValueError: two accounts with one index.
        """
        if self.accounts is None:
            return [AccountSpec(index=account_index, l1_address=PAPER_L1_ADDRESS,
                                collateral=self.initial_collateral)]
        seen = [a.index for a in self.accounts]
        if len(seen) != len(set(seen)):
            raise ValueError(f"services.venue-sim.accounts: duplicate account index in {seen}")
        return list(self.accounts)

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
    """``p`` as given when absolute, else relative to the stack home (``LIGHTER_STACK_HOME`` or the checkout)."""
    path = Path(p)
    return path if path.is_absolute() else REPO_ROOT / path
