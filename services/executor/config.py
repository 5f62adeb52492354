"""The executor's config section (``services: executor:`` in the stack YAML).

Every field has a default, so an empty section is valid. Units are in the field names or
descriptions: base units for sizes, USD for notionals, basis points (bps) for slippage,
milliseconds (ms) or seconds (s) for times.

Example (the defaults)::

    services:
      executor:
        http_port: 9103
        max_position: {BTC: 0.01, ETH: 0.2}
        max_notional_usd: {}          # per market; markets not listed use default_max_notional_usd
        default_max_notional_usd: 2000
        default_max_position: null    # base units for markets not in max_position (null = no unit cap:
                                      # the notional cap applies; 0 = refuse)
        default_slippage_bps: 10
        quote_expiry: -1              # post-only/GTT order expiry: -1 = SDK default (28 days)
        max_intent_age_ms: 60000
        reconcile_retry_s: 5
        reconcile_timeout_s: 10
        cancel_on_start: true
        cancel_on_shutdown: true
        cancel_scope: own             # which resting orders those cancel: own | all | none
        paper_key: generate           # generate | env
        auth_token_ttl_s: 3600
        ws_ping_interval_s: 30
        ws_backoff_max_s: 30
        unattributed_strategy: _unattributed
        tier: standard                # Lighter account tier: standard | premium
        requests_per_minute: null     # null = the tier's (60 standard, 24000 premium); 0 = no budget
        request_weight: null          # null = the tier's weight of sendTx/sendTxBatch (1 standard, 6 premium)
        batch_max_txs: 15             # transactions per sendTxBatch request
        budget_reserve: 0.2           # share of the minute's budget kept for cancels and taker orders
        rate_limit_backoff_s: 10      # after error 23000: quote updates wait this long (event time)
        order_check_s: 5              # how often the runner asks the venue about stale orders (0 = never)
        order_stale_s: 3              # an IOC in flight / a cancel unconfirmed this long (event time) is stale
        lockstep_barrier: false       # lockstep runs only: gather every strategy's intents into one batch
        lockstep_order: []            # strategy names in the backtest's order (barrier batches are sorted so)
        lockstep_timeout_s: 30        # the barrier waits at most this long for quiet (then goes on, warning)
        leverage: {}                  # per market, set at start-up: {BTC: {leverage: 5, margin_mode: cross}}
        protective_stop:              # executor-maintained reduce-only stops (off by default; see below)
          enabled: false
          distance_bps: {}            # per market; markets not listed use default_distance_bps
          default_distance_bps: 300
          max_slippage_bps: 100       # worst fill price beyond the trigger
          reference: entry            # entry | mark: the price the distance is taken from
          resize_threshold: 0.1       # re-place a stop smaller than the position only beyond this share
          retry_s: 60                 # after the venue refused one: wait this long (event time) unless the size changes
          exclude: []                 # strategies that get no protective stop
        dead_man_switch_s: 0          # scheduled cancel-all (tx 16, SCHEDULED) this many s ahead; 0 = off

Request budget (Lighter docs, rate limits; ``/work/shared/reference/lighter-api.md`` §6.8): REST
limits are counted over a rolling minute; Standard accounts get 60 requests per minute,
unweighted; Premium accounts 24,000 weighted requests per minute where ``sendTx`` and
``sendTxBatch`` weigh 6. ``sendTxBatch`` carries up to 15 transactions (older docs: 50).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

TIER_REQUESTS_PER_MINUTE = {"standard": 60, "premium": 24_000}
"""Lighter REST budget per rolling minute by account tier (weight units)."""
TIER_SEND_WEIGHT = {"standard": 1, "premium": 6}
"""Weight of one sendTx/sendTxBatch request by tier (Standard accounts are unweighted)."""
NO_POSITION_LIMIT = 1e12
"""Base units: the position limit of a market without one (finite, unlike ``inf``, so the
engine's guard arithmetic keeps its cached ranges; the notional limit is always smaller)."""


class LeverageSetting(BaseModel):
    """One market's leverage at start-up: ``leverage`` (1 to 10000: ``InitialMarginFraction =
    int(10000 / leverage)`` must be at least 1) and ``margin_mode`` (``cross`` or ``isolated``;
    Lighter's 0 / 1)."""

    model_config = ConfigDict(extra="forbid")
    leverage: float = Field(ge=1, le=10_000)
    margin_mode: Literal["cross", "isolated"] = "cross"

    @property
    def initial_margin_fraction(self) -> int:
        """Lighter's ``InitialMarginFraction`` (1/10000): ``int(10000 / leverage)`` (the SDK's
        rounding in ``SignerClient.update_leverage``)."""
        return int(10_000 / self.leverage)

    @property
    def mode_code(self) -> int:
        """Lighter's ``MarginMode``: 0 cross, 1 isolated."""
        return 1 if self.margin_mode == "isolated" else 0
DEAD_MAN_MIN_S = 300
"""Lighter: a scheduled cancel-all lies at least 5 minutes ahead (``lighter-api.md`` 6.3)."""
DEAD_MAN_MAX_S = 15 * 24 * 3600
"""Lighter: a scheduled cancel-all lies at most 15 days ahead (``lighter-api.md`` 6.3)."""


class ProtectiveStopConfig(BaseModel):
    """Executor-maintained protective stops (``services.executor.protective_stop``): for each
    (strategy, market) with a non-zero virtual position and no stop-loss of the strategy's own,
    the executor keeps one reduce-only Lighter ``stop-loss`` order (type 2) on the exchange, so a
    crash of any process leaves the position protected. See
    :mod:`services.executor.protective` and ``docs/runbook.md`` (protective stops).

    Attributes:
        enabled: maintain them (default off: the in-process backtest and lockstep parity runs
            must keep their outputs byte-identical; recommended on in live trading).
        distance_bps: per market (symbol), the trigger's distance from the reference price in
            basis points (a long's sell stop below it, a short's buy stop above it).
        default_distance_bps: distance of markets missing from ``distance_bps`` (bps).
        max_slippage_bps: the triggered market order's worst price beyond the trigger (bps).
        reference: ``entry`` -- the strategy's average entry price, but never nearer the market
            than the distance from the mid at placement (a position already in loss gets its stop
            ``distance`` beyond the mid, not an instantly triggered one); ``mark`` -- the mid at
            placement. The stop is not trailed: its trigger only changes when it is re-placed.
        resize_threshold: a stop smaller than the position is re-placed only when the position
            exceeds the stop's size by more than this share (0.1 = 10%; 0 = on any growth); a
            stop larger than the position (it shrank or flipped) is always re-placed, since a
            reduce-only order acts on the whole account position.
        retry_s: after the venue refused a protective stop, seconds of event time before the
            same stop (same side and size) is tried again.
        exclude: strategy names that get no protective stop.
    """

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    distance_bps: dict[str, float] = Field(default_factory=dict)
    default_distance_bps: float = Field(default=300.0, gt=0, lt=10_000)
    max_slippage_bps: float = Field(default=100.0, ge=0, lt=10_000)
    reference: Literal["entry", "mark"] = "entry"
    resize_threshold: float = Field(default=0.1, ge=0, le=10)
    retry_s: float = Field(default=60.0, gt=0)
    exclude: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _distances_valid(self) -> ProtectiveStopConfig:
        for market, bps in self.distance_bps.items():
            if not 0 < bps < 10_000:
                raise ValueError(f"protective_stop.distance_bps.{market} must be in (0, 10000), got {bps}")
        return self

    def distance(self, market: str) -> float:
        """Trigger distance of ``market`` as a fraction of the reference price (bps / 1e4)."""
        return float(self.distance_bps.get(market, self.default_distance_bps)) / 1e4


class ExecutorConfig(BaseModel):
    """Settings of the executor service.

    Attributes:
        http_port: port of ``/health`` and ``/metrics`` (0 = none).
        max_position: per market (symbol), the largest absolute **account** position in base
            units that an order may lead to. A target beyond it is clipped (with a reason).
        default_max_position: limit for markets missing from ``max_position``, base units;
            ``None`` (default) = no base-unit limit there, so a market the config does not list
            is traded under its notional limit (``max_notional_usd`` or
            ``default_max_notional_usd``, 2,000 USD); 0 = no trading in unlisted markets.
        max_notional_usd: per market, the largest absolute account notional (position x price)
            in USD an order may lead to.
        default_max_notional_usd: notional limit for markets missing from ``max_notional_usd``.
        default_slippage_bps: slippage bound of the marketable IOC limit when an intent gives
            none (bps of the touch).
        quote_expiry: order expiry of resting quotes in ms since the epoch; -1 = 28 days after
            the event that caused the order, in that event's (the venue's) time
            (``services.executor.signer.order_expiry_ms``).
        max_intent_age_ms: intents whose ``ts_event`` is older than the newest input time seen
            by the engine minus this are not traded on: a stale ``TargetPosition`` is refused
            (``OrderRejected`` code 0, ``stale intent: ...``) and not recorded (no later
            rebalance trades it), a stale ``QuoteIntent``/``RestingOrders`` is ignored; restored
            wishes older than this at their market's first touch are dropped. 0 disables the check.
        reconcile_retry_s: seconds between reconciliation attempts while halted by a failed
            reconciliation.
        reconcile_timeout_s: timeout of each REST call during reconciliation (s).
        cancel_on_start / cancel_on_shutdown: cancel resting orders (those of ``cancel_scope``)
            during reconciliation / on SIGTERM.
        cancel_scope: which resting orders the start and shutdown cancels touch. ``own``
            (default; safe when other bots trade the same account): only the account's active
            orders (``accountActiveOrders`` per market) whose client order index is ours -- one
            of an ``OrderAccepted`` on our exec stream (folded at start) or of an order the
            engine holds live -- each canceled by its own cancel tx. ``all``: one account-wide
            cancel-all tx (every resting order of the account, other bots' too). ``none``: no
            cancel at start or shutdown (as ``cancel_on_start: false`` and
            ``cancel_on_shutdown: false``). A kill switch in force at start cancels like a
            live ``kill`` does, account-wide, whatever the scope.
        paper_key: in paper mode, ``generate`` uses ``LIGHTER_API_PRIVATE_KEY`` when set and
            otherwise a throwaway key generated at start, which the executor registers on
            venue-sim at start-up (``ChangePubKey`` signed by the paper L1 key, see
            ``services/executor/keys.py``); ``env`` requires the environment variable as in
            live mode.
        auth_token_ttl_s: lifetime of the auth token used for private WS channels and REST
            (s, at most 8 h).
        ws_ping_interval_s: how often the account feed sends ``{"type":"ping"}`` (s).
        ws_backoff_max_s: ceiling of the exponential reconnect backoff (s).
        unattributed_strategy: strategy name that receives fills of orders the executor did not
            place (manual orders, orders of a previous run).
        tier: the Lighter account tier whose request budget the engine models: ``standard`` or
            ``premium``.
        requests_per_minute: the budget in weight units per rolling minute of event time;
            ``None`` = the tier's (60 standard, 24,000 premium); 0 = no budget modelling.
        request_weight: weight of one ``sendTx``/``sendTxBatch`` request; ``None`` = the
            tier's (1 standard: unweighted; 6 premium).
        batch_max_txs: transactions per ``sendTxBatch`` request (Lighter: 15); the commands of
            one engine step are sent in ``ceil(n / batch_max_txs)`` requests.
        budget_reserve: fraction of the minute's budget that quote/resting updates may not use:
            it is kept for cancels and taker (IOC) orders, which are never held back.
        rate_limit_backoff_s: after the venue answers 23000 (too many requests), quote/resting
            updates are deferred and failed cancels are retried only after this many seconds of
            event time (s).
        order_check_s: wall seconds between the runner's checks of stale orders (0 = no
            checks): it asks the venue (``accountActiveOrders`` / ``accountInactiveOrders``)
            about our orders that :meth:`Engine.stale_orders` lists and feeds the answers back
            as order reports; an order the venue does not know is finished unfilled.
        order_stale_s: an IOC in flight, or an order whose cancel is unconfirmed, for this many
            seconds of event time without a final order update is stale (s).
        lockstep_barrier: for lockstep runs (venue-sim ``lockstep: true``; ``lighter-stack demo
            --lockstep`` sets it): when a read returns intents, the runner waits until every
            other consumer group on the namespace's market-data, params and exec streams is idle
            (pending 0, lag 0; :mod:`shared.quiet`), reads again without blocking and repeats
            until nothing new arrives, then hands the whole set to the engine as one batch --
            so the intents caused by one event net as in the backtest. Off (default) in paper
            and live trading: there the executor processes what each read returns.
        lockstep_order: strategy names in the order the backtest registers them; the intents of
            one barrier batch are sorted like the backtest feeds them (see
            ``docs/venue-sim.md``, Lockstep): by the exec event that caused them (publication
            order; intents caused by market data last), then by position in this list
            (strategies not listed after the listed ones, by name), then by arrival.
        lockstep_timeout_s: the barrier waits at most this many wall seconds for quiet, then
            processes what it has (warning): a dead strategy must not stop the executor.
        leverage: per market (symbol), the leverage and margin mode the executor sets at
            start-up with an ``updateLeverage`` tx (type 20; ``InitialMarginFraction =
            int(10000 / leverage)``, as the SDK's ``update_leverage``), before reconciliation;
            a market not listed keeps the account's current setting. The venue refusing it (or
            a leverage above the market's maximum, ``10000 / min_initial_margin_fraction``)
            stops start-up (:mod:`services.executor.leverage`).
        protective_stop: executor-maintained reduce-only stops
            (:class:`ProtectiveStopConfig`; off by default).
        dead_man_switch_s: 0 = off (default); else, while the executor is alive, a scheduled
            cancel-all (tx 16, TimeInForce SCHEDULED, Time = now + this many s) is kept ahead of
            the wall clock (refreshed every quarter of it) and aborted (TimeInForce ABORT) on a
            clean shutdown. If the executor dies, the venue cancels **every** order of the
            account at that time, the protective stops included. Lighter: 5 min .. 15 days.
    """

    model_config = ConfigDict(extra="forbid")

    http_port: int = Field(default=9103, ge=0, le=65535)
    max_position: dict[str, float] = Field(default_factory=lambda: {"BTC": 0.01, "ETH": 0.2})
    default_max_position: float | None = Field(default=None, ge=0)
    max_notional_usd: dict[str, float] = Field(default_factory=dict)
    default_max_notional_usd: float = Field(default=2000.0, ge=0)
    default_slippage_bps: float = Field(default=10.0, ge=0, le=1000)
    quote_expiry: int = Field(default=-1, ge=-1)
    max_intent_age_ms: int = Field(default=60_000, ge=0)
    reconcile_retry_s: float = Field(default=5.0, gt=0)
    reconcile_timeout_s: float = Field(default=10.0, gt=0)
    cancel_on_start: bool = True
    cancel_on_shutdown: bool = True
    cancel_scope: Literal["own", "all", "none"] = "own"
    paper_key: Literal["generate", "env"] = "generate"
    auth_token_ttl_s: int = Field(default=3600, ge=60, le=8 * 3600)
    ws_ping_interval_s: float = Field(default=30.0, gt=0)
    ws_backoff_max_s: float = Field(default=30.0, gt=0)
    unattributed_strategy: str = "_unattributed"
    tier: Literal["standard", "premium"] = "standard"
    requests_per_minute: int | None = Field(default=None, ge=0)
    request_weight: int | None = Field(default=None, ge=1)
    batch_max_txs: int = Field(default=15, ge=1, le=50)
    budget_reserve: float = Field(default=0.2, ge=0.0, lt=1.0)
    rate_limit_backoff_s: float = Field(default=10.0, gt=0)
    order_check_s: float = Field(default=5.0, ge=0)
    order_stale_s: float = Field(default=3.0, gt=0)
    lockstep_barrier: bool = False
    lockstep_order: list[str] = Field(default_factory=list)
    lockstep_timeout_s: float = Field(default=30.0, gt=0)
    leverage: dict[str, LeverageSetting] = Field(default_factory=dict)
    protective_stop: ProtectiveStopConfig = Field(default_factory=ProtectiveStopConfig)
    dead_man_switch_s: float = Field(default=0.0, ge=0)

    @model_validator(mode="after")
    def _dead_man_range(self) -> ExecutorConfig:
        """``dead_man_switch_s`` is 0 (off) or within Lighter's 5 min .. 15 days."""
        d = self.dead_man_switch_s
        if d and not DEAD_MAN_MIN_S <= d <= DEAD_MAN_MAX_S:
            raise ValueError(f"dead_man_switch_s must be 0 (off) or in [{DEAD_MAN_MIN_S}, {DEAD_MAN_MAX_S}] s "
                             f"(Lighter's scheduled cancel-all: now + 5 min .. 15 days), got {d:g}")
        return self

    @model_validator(mode="after")
    def _scope_none_cancels_nothing(self) -> ExecutorConfig:
        """``cancel_scope: none`` turns both ``cancel_on_start`` and ``cancel_on_shutdown`` off."""
        if self.cancel_scope == "none":
            self.cancel_on_start = False
            self.cancel_on_shutdown = False
        return self

    def position_limit(self, market: str) -> float:
        """Maximum absolute account position in ``market`` (base units): ``max_position``, else
        ``default_max_position``, else :data:`NO_POSITION_LIMIT` (only :meth:`notional_limit`
        bounds it)."""
        limit = self.max_position.get(market, self.default_max_position)
        return NO_POSITION_LIMIT if limit is None else float(limit)

    def budget_per_minute(self) -> int:
        """Request budget in weight units per rolling minute (0 = unlimited): the configured
        ``requests_per_minute``, else the tier's (60 standard, 24,000 premium; Lighter docs)."""
        if self.requests_per_minute is not None:
            return self.requests_per_minute
        return TIER_REQUESTS_PER_MINUTE[self.tier]

    def send_weight(self) -> int:
        """Weight of one ``sendTx``/``sendTxBatch`` request: ``request_weight``, else the
        tier's (1 standard, 6 premium; Lighter docs)."""
        if self.request_weight is not None:
            return self.request_weight
        return TIER_SEND_WEIGHT[self.tier]

    def notional_limit(self, market: str) -> float:
        """Maximum absolute account notional in ``market`` (USD)."""
        return float(self.max_notional_usd.get(market, self.default_max_notional_usd))
