"""The venue model's vocabulary: Lighter tiers, the txs the matching engine takes (create,
cancel, cancel-all, modify), its orders, positions and fills, and the updates it returns. Prices are
integer ticks, sizes integer lots (``shared.markets.MarketInfo`` scaling), times ns of sim time.
The engine itself is :mod:`shared.venue.matching`."""

from __future__ import annotations

from typing import Literal

import msgspec

BOOK_ACCOUNT = 0
"""Counterparty account index of fills against the recorded (external) book."""

MAX_CLIENT_ORDER_INDEX = 2**48 - 1
ASK_ID_BASE = 2**48
BID_ID_BASE = 2**49 - 2**40
SIM_TRADE_ID_BASE = 10**15
MAX_PRICE = 2**32 - 1

OrderType = Literal["limit", "market", "stop-loss", "stop-loss-limit", "take-profit", "take-profit-limit"]
STOP_TYPES = ("stop-loss", "stop-loss-limit", "take-profit", "take-profit-limit")
"""The trigger (conditional) order types: off the book until their trigger price is reached."""
MARKET_TYPES = ("market", "stop-loss", "take-profit")
"""Types that execute as a market order (IOC, no worse than ``price``) once live."""
TimeInForce = Literal["gtt", "ioc", "post_only"]
OrderStatus = Literal[
    "open", "filled", "canceled", "canceled-post-only", "canceled-reduce-only", "canceled-self-trade",
    "canceled-expired",
]
CancelAllMode = Literal["immediate", "scheduled", "abort"]


class Tier(msgspec.Struct, frozen=True, kw_only=True):
    """A Lighter account tier: speed bump in ms of sim time and fees as fractions of notional.

    Standard (the default): taker 300 ms, maker and cancel 200 ms, no fees.
    """

    name: str = "standard"
    taker_delay_ms: int = 300
    maker_delay_ms: int = 200
    cancel_delay_ms: int = 200
    maker_fee: float = 0.0
    taker_fee: float = 0.0


STANDARD = Tier()
PREMIUM = Tier(name="premium", taker_delay_ms=200, maker_delay_ms=0, cancel_delay_ms=0,
               maker_fee=0.00004, taker_fee=0.00028)
TIERS = {"standard": STANDARD, "premium": PREMIUM}


# ---------------------------------------------------------------------------------------------
# Requests: parsed transactions
# ---------------------------------------------------------------------------------------------


class CreateOrder(msgspec.Struct, kw_only=True):
    """A create-order tx (Lighter tx type 14), already parsed.

    ``base_amount`` in lots, ``price`` in ticks (for a market order: the worst acceptable
    price), ``order_expiry_ms`` Lighter's OrderExpiry (ms of venue time; 0 = none; an engine
    made with ``expire_orders=True`` cancels a live order at that time as ``canceled-expired``).
    ``client_order_index`` 0 = none (the order can then be canceled by its order index only).
    ``trigger_price`` (ticks) only for the trigger types (:data:`STOP_TYPES`): the order waits,
    off the book, until the market's last trade or mark price reaches it -- a stop-loss sell
    at or below, a stop-loss buy at or above; a take-profit sell at or above, a take-profit buy
    at or below -- then ``stop-loss``/``take-profit`` execute as a market order no worse than
    ``price`` and the ``-limit`` types become a limit order at ``price`` (docs/venue-sim.md).
    """

    account: int
    market_id: int
    client_order_index: int
    base_amount: int
    price: int
    is_ask: bool
    order_type: OrderType = "limit"
    time_in_force: TimeInForce = "gtt"
    reduce_only: bool = False
    order_expiry_ms: int = 0
    nonce: int = 0
    tx_hash: str = ""
    trigger_price: int = 0


class CancelOrder(msgspec.Struct, kw_only=True):
    """A cancel tx (type 15): ``index`` is the order_index or the client_order_index."""

    account: int
    market_id: int
    index: int
    tx_hash: str = ""


class CancelAll(msgspec.Struct, kw_only=True):
    """A cancel-all tx (type 16); ``market_id`` None = all markets. ``mode`` is Lighter's
    TimeInForce: ``immediate`` (0) cancels now; ``scheduled`` (1) arms the account's
    cancel-all at ``time_ms`` (venue time; a newer one replaces it): then every order of the
    account is canceled; ``abort`` (2) disarms it (reference notes 6.3)."""

    account: int
    market_id: int | None = None
    mode: CancelAllMode = "immediate"
    time_ms: int = 0
    tx_hash: str = ""

    @property
    def scheduled(self) -> bool:
        """True for a scheduled or abort cancel-all (not an immediate one)."""
        return self.mode != "immediate"


class ModifyOrder(msgspec.Struct, kw_only=True):
    """A modify tx (type 17): order ``index`` (order index or client order index) of the
    account in ``market_id`` gets ``base_amount`` (lots, the new remaining size), ``price``
    (ticks) and ``trigger_price`` (ticks, trigger types only; 0 = unchanged)."""

    account: int
    market_id: int
    index: int
    base_amount: int
    price: int
    trigger_price: int = 0
    tx_hash: str = ""


Tx = CreateOrder | CancelOrder | CancelAll | ModifyOrder


# ---------------------------------------------------------------------------------------------
# State and outputs
# ---------------------------------------------------------------------------------------------


class Order(msgspec.Struct, kw_only=True):
    """One of our orders. Amounts in lots, price in ticks, ``filled_quote`` in USD, times in ns.

    ``queue_ahead`` is the recorded displayed size (lots) ahead of the order at its price;
    ``None`` while the order rests at a level the recording cannot see.
    """

    order_index: int
    client_order_index: int
    account: int
    market_id: int
    is_ask: bool
    price: int
    initial_amount: int
    remaining: int
    filled: int = 0
    filled_quote: float = 0.0
    order_type: OrderType = "limit"
    time_in_force: TimeInForce = "gtt"
    reduce_only: bool = False
    status: OrderStatus = "open"
    order_expiry_ms: int = 0
    nonce: int = 0
    created_ns: int = 0
    updated_ns: int = 0
    queue_ahead: int | None = 0
    seq: int = 0
    tx_hash: str = ""
    trigger_price: int = 0
    triggered: bool = False

    @property
    def active(self) -> bool:
        """True while the order rests on the book."""
        return self.status == "open"


class Position(msgspec.Struct, kw_only=True):
    """An account's position in one market: ``size`` signed lots (+long), ``avg_entry_price``
    and ``realized_pnl``/``fees_paid`` in USD."""

    account: int
    market_id: int
    size: int = 0
    avg_entry_price: float = 0.0
    realized_pnl: float = 0.0
    fees_paid: float = 0.0


class Fill(msgspec.Struct, kw_only=True):
    """One execution. ``price``/``size`` in USD/base units (``price_ticks``/``size_lots`` on
    the wire), fees in USD (positive = paid), ``ts_ns`` sim time. ``maker_account`` is
    :data:`BOOK_ACCOUNT` for a fill against the recorded book."""

    trade_id: int
    market: str
    market_id: int
    price: float
    size: float
    price_ticks: int
    size_lots: int
    taker_account: int
    maker_account: int
    taker_order_index: int
    maker_order_index: int
    taker_client_order_index: int
    maker_client_order_index: int
    taker_side: Literal["buy", "sell"]
    maker_side: Literal["buy", "sell"]
    taker_fee: float
    maker_fee: float
    ts_ns: int
    tx_hash: str = ""

    @property
    def is_maker_ask(self) -> bool:
        """Lighter's flag: the maker sold (so the taker bought)."""
        return self.maker_side == "sell"


class OrderUpdate(msgspec.Struct, kw_only=True):
    """An order changed state (a snapshot taken at ``ts_ns``)."""

    order: Order
    ts_ns: int


class FillUpdate(msgspec.Struct, kw_only=True):
    """A fill happened."""

    fill: Fill


class PositionUpdate(msgspec.Struct, kw_only=True):
    """A position changed (snapshot)."""

    position: Position
    ts_ns: int


class BookChanged(msgspec.Struct, kw_only=True):
    """The public book of ``market_id`` may have changed (recorded quote or our resting orders)."""

    market_id: int
    ts_ns: int


class PublicTrade(msgspec.Struct, kw_only=True):
    """A recorded public trade (not ours): price ticks, size lots, aggressor side."""

    market_id: int
    trade_id: int
    price_ticks: int
    size_lots: int
    taker_side: Literal["buy", "sell"]
    ts_ns: int


class StatsChanged(msgspec.Struct, kw_only=True):
    """Recorded market stats (mark/index) were applied."""

    market_id: int
    ts_ns: int


Update = OrderUpdate | FillUpdate | PositionUpdate | BookChanged | PublicTrade | StatsChanged


class Accepted(msgspec.Struct, kw_only=True):
    """Result of :meth:`MatchingEngine.submit`: when the tx will execute (sim ns) and its role."""

    exec_ns: int
    role: Literal["taker", "maker", "cancel"]


class MarketState(msgspec.Struct, kw_only=True):
    """Per-market recorded state: touch prices (ticks) and sizes (lots), ``None`` when a side is
    empty; ``consumed_*`` is displayed size our takers already took from the current level."""

    bid_px: int | None = None
    bid_sz: int = 0
    ask_px: int | None = None
    ask_sz: int = 0
    consumed_bid: int = 0
    consumed_ask: int = 0
    last_trade_price: float = 0.0
    mark_price: float = 0.0
    index_price: float = 0.0
    funding_rate: float = 0.0
    open_interest: float = 0.0
    last_ts_ns: int = 0

    @property
    def mid_ticks(self) -> float | None:
        """Mid price in ticks, or None without both sides."""
        if self.bid_px is None or self.ask_px is None:
            return None
        return (self.bid_px + self.ask_px) / 2.0


class AccountState(msgspec.Struct, kw_only=True):
    """An account: ``collateral`` USD = initial + realized PnL - fees."""

    account: int
    collateral: float
    positions: dict[int, Position] = msgspec.field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# The engine
# ---------------------------------------------------------------------------------------------
