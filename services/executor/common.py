"""Types and constants shared by the executor engine's parts: order commands for the runner,
stale-order reports, the per-strategy position record, the order record and the output
collector (event ids: see :mod:`services.executor.engine`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from shared.events import (
    Bbo,
    BookSnapshot,
    Event,
    MarketStats,
    Side,
    Trade,
    child,
    derive_id,
)

DONE_ORDERS_KEPT = 10_000
"""Finished orders remembered for late venue reports (oldest forgotten first)."""

SOURCE = "executor"
MAX_CLIENT_ORDER_INDEX = 2**48 - 1
EPS = 1e-12
MAX_OPEN_ORDERS_PER_MARKET = 16  # Lighter: pending orders per market per account
RATE_LIMITED = 23000  # Lighter: too many requests
BUDGET_WINDOW_NS = 60_000_000_000  # Lighter counts REST requests over a rolling minute
CANCEL_RETRIES = 3  # failed sends of one cancel retried at most this often (23000: without limit)
Guard = Literal["max_position", "max_notional", "self_trade"]
PROTECTIVE_SUFFIX = "/protective-stop"
"""Suffix of the strategy label on the order events (``OrderAccepted``/``OrderRejected``/
``OrderCanceled``) of an executor-maintained protective stop: ``"trend/protective-stop"``. The
strategies do not recognise it as theirs (:func:`shared.strategy_base.addressed_to`), so the
executor's own stop never disturbs their order bookkeeping; its ``Fill``s name the strategy."""
PROTECTIVE_REASON = "protective-stop"
"""``Fill.reason`` of a protective stop's fills."""

Tif = Literal["ioc", "gtt", "post_only"]
_MARKET_DATA = (Bbo, BookSnapshot, Trade, MarketStats)
_NEVER = 2**63  # an event time after any other (ns)


@dataclass(frozen=True, slots=True)
class OrderCommand:
    """An order transaction for the runner to sign and send.

    Attributes:
        kind: ``create`` (tx 14), ``cancel`` (tx 15) or ``cancel_all`` (tx 16, immediate).
        market: symbol (empty for cancel_all).
        market_id: Lighter market index.
        client_order_index: our id of the order (create; cancel of an order without known
            exchange index), 1 .. 2^48-1.
        order_index: for ``cancel``: the index to cancel (the exchange order index when known,
            else the client order index; Lighter accepts both).
        side: ``buy`` or ``sell`` (``is_ask = side == "sell"``).
        price: limit price in integer ticks (``MarketInfo.price_to_int``).
        size: base amount in integer lots (``MarketInfo.size_to_int``).
        tif: ``ioc`` (order_expiry 0), ``gtt`` or ``post_only`` (order_expiry ``expiry``).
        order_expiry: Lighter OrderExpiry in ms; 0 for IOC, -1 = signer default (28 days).
        reduce_only: Lighter ReduceOnly.
        cause_id: id of the event that caused the command.
        ts_event: that event's time (ns).
        order_type: ``limit`` (Lighter type 0) or ``stop-loss`` (type 2: IOC market order no
            worse than ``price`` once the trigger is reached; ``order_expiry`` applies).
        trigger_price: stop-loss trigger in integer ticks (0 for a limit order).
        cancel_all_tif: ``cancel_all`` only: ``immediate`` (Lighter TimeInForce 0, the default),
            ``scheduled`` (1: a dead-man switch at ``cancel_all_time_ms``) or ``abort`` (2:
            cancels the scheduled one).
        cancel_all_time_ms: ``scheduled``: the wall time (ms since the epoch) at which the venue
            cancels every order of the account; 0 otherwise.
    """

    kind: Literal["create", "cancel", "cancel_all"]
    market: str = ""
    market_id: int = 0
    client_order_index: int = 0
    order_index: int = 0
    side: Side = "buy"
    price: int = 0
    size: int = 0
    tif: Tif = "ioc"
    order_expiry: int = 0
    reduce_only: bool = False
    cause_id: str = ""
    ts_event: int = 0
    order_type: Literal["limit", "stop-loss"] = "limit"
    trigger_price: int = 0
    cancel_all_tif: Literal["immediate", "scheduled", "abort"] = "immediate"
    cancel_all_time_ms: int = 0


@dataclass(frozen=True, slots=True)
class StaleOrder:
    """A live order of ours without its final venue update for ``cfg.order_stale_s`` of event
    time (:meth:`Engine.stale_orders`); the runner asks the venue about it.

    Attributes:
        client_order_index: our id of the order.
        order_index: the exchange order index when known (0 otherwise).
        market: symbol.
        market_id: Lighter market index.
        why: ``ioc`` (a taker order in flight) or ``cancel`` (a cancel not confirmed).
        age_ns: event time since it was sent / its cancel was requested (ns).
    """

    client_order_index: int
    order_index: int
    market: str
    market_id: int
    why: Literal["ioc", "cancel"]
    age_ns: int


@dataclass(slots=True)
class _Strat:
    position: float = 0.0
    avg_entry: float = 0.0
    target: float | None = None
    seq: int = 0
    slippage_bps: float = 0.0
    reason: str = ""  # the reason of the standing target (Fill.reason of what executes it)


@dataclass(slots=True)
class _Order:
    coi: int
    market: str
    side: Side
    price: int
    size: int
    tif: Tif
    kind: Literal["taker", "quote", "stop"]  # stop: a reduce-only stop-loss, off the book until triggered
    alloc: list[list[Any]]  # FIFO [[strategy, remaining base units], ...]
    cause_id: str
    ts_event: int
    reduce_only: bool = False
    status: Literal["pending", "open", "done"] = "pending"
    filled: float = 0.0
    order_index: int = 0
    cancel_requested: bool = False
    req_size: int = 0  # resting orders: lots the strategy asked for (size may be clipped)
    cancel_ts: int = 0  # event time (ns) of the last cancel request
    checks: int = 0  # cancels re-sent after a stale-order check found the order still open
    reasons: dict[str, str] | None = None  # taker orders: strategy -> reason of the target it executes
    protective: bool = False  # an executor-maintained protective stop (kind "stop")
    trigger: int = 0  # stop orders: trigger price in ticks

    @property
    def live(self) -> bool:
        return self.status != "done"

    @property
    def label(self) -> str:
        """Strategy name(s) of the order, comma-joined in FIFO order; a protective stop's is its
        strategy's name with :data:`PROTECTIVE_SUFFIX`."""
        if self.protective:
            return (self.alloc[0][0] if self.alloc else "") + PROTECTIVE_SUFFIX
        seen: list[str] = []
        for s, _ in self.alloc:
            if s not in seen:
                seen.append(s)
        return ",".join(seen)

    @property
    def sign(self) -> int:
        return 1 if self.side == "buy" else -1


class _Out:
    """Collects outputs of one cause with consecutive output indexes."""

    def __init__(self, cause: Event | None = None, key: str = "", ts: int = 0,
                 causation_id: str | None = None) -> None:
        self.cause = cause
        self.key = key
        self.ts = ts
        self.causation_id = causation_id
        self.k = 0
        self.events: list[Event] = []

    def env(self) -> dict[str, Any]:
        k = self.k
        self.k += 1
        if self.cause is not None:
            return child(self.cause, SOURCE, k)
        return {"id": derive_id(self.key, SOURCE, k), "ts_event": self.ts, "ts_recv": 0,
                "source": SOURCE, "causation_id": self.causation_id}

    def add(self, cls: type[Event], **kw: Any) -> None:
        self.events.append(cls(**self.env(), **kw))


