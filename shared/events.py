"""The event model: one envelope, typed payloads, one encoding.

Every fact that passes between services is an :class:`Event` subclass appended to a Redis stream
(see ``shared/bus.py``). Events are ``msgspec`` structs encoded as JSON; the ``type`` field is the
tag that selects the class on decode, so a reader never guesses.

Envelope fields (on every event):

- ``id``: a stable event id (16 hex chars). Engines derive output ids from the causing event with
  :func:`derive_id`, so reprocessing the same input after a crash yields the same ids and
  consumers can drop duplicates (delivery is at-least-once).
- ``schema_version``: version of the event type's schema (bump on incompatible change).
- ``ts_event``: exchange time in **nanoseconds** since the Unix epoch. Engines take time only from
  here, never from a wall clock.
- ``ts_recv``: local receive time in nanoseconds (0 when unknown, e.g. engine outputs in a
  backtest). Informational; engines must not branch on it.
- ``source``: the service instance that wrote the event (``collector``, ``strategy-trend``, ...).
- ``causation_id``: id of the event that caused this one (``None`` for external facts).

Units used by payloads: prices in quote currency (USD) per base unit, sizes in base units, fees
in quote currency, basis points (bps) where a name ends in ``_bps``. Sides are ``"buy"``/``"sell"``.
Markets are Lighter symbols (``"BTC"``, ``"ETH"``); the Lighter integer market index travels in
:class:`shared.markets.MarketInfo`, not in every event.
"""

from __future__ import annotations

import hashlib
from typing import Literal

import msgspec

Side = Literal["buy", "sell"]
Liquidity = Literal["maker", "taker", "internal"]

SCHEMA_VERSION = 1


class Event(msgspec.Struct, kw_only=True, tag_field="type", omit_defaults=False):
    """Envelope shared by all events. Subclasses add the payload and set the ``type`` tag."""

    id: str
    ts_event: int
    ts_recv: int = 0
    source: str = ""
    causation_id: str | None = None
    schema_version: int = SCHEMA_VERSION


# ---------------------------------------------------------------------------------------------
# Market data (collector -> {ns}:md:book:{market}, {ns}:md:trade:{market}, {ns}:md:stats:{market})
# ---------------------------------------------------------------------------------------------


class BookSnapshot(Event, tag="book_snapshot"):
    """Full aggregated book as sent by Lighter's ``subscribed/order_book`` frame.

    ``bids``/``asks`` are ``[price, size]`` pairs, bids best (highest) first, asks best (lowest)
    first. ``nonce`` is Lighter's book nonce after this message.
    """

    market: str
    bids: list[tuple[float, float]]
    asks: list[tuple[float, float]]
    nonce: int


class BookDelta(Event, tag="book_delta"):
    """Changed levels of one ``update/order_book`` frame: sizes are absolute, size 0 deletes.

    A delta applies to a book whose last nonce equals ``begin_nonce`` (Lighter venue docs,
    order-book channel); otherwise the book has a gap and must be resubscribed.
    """

    market: str
    bids: list[tuple[float, float]]
    asks: list[tuple[float, float]]
    nonce: int
    begin_nonce: int


class Bbo(Event, tag="bbo"):
    """Best bid and offer (top of book): prices in USD, sizes in base units."""

    market: str
    bid_px: float
    bid_sz: float
    ask_px: float
    ask_sz: float

    @property
    def mid(self) -> float:
        """Mid price ``(bid + ask) / 2`` in USD."""
        return (self.bid_px + self.ask_px) / 2.0


class Trade(Event, tag="trade"):
    """A public trade. ``taker_side`` is the aggressor: ``buy`` lifted the ask."""

    market: str
    trade_id: str
    price: float
    size: float
    taker_side: Side


class MarketStats(Event, tag="market_stats"):
    """Mark, index, funding and open interest of one market (Lighter ``market_stats`` channel)."""

    market: str
    mark_price: float
    index_price: float
    last_trade_price: float = 0.0
    funding_rate: float = 0.0
    open_interest: float = 0.0


# ---------------------------------------------------------------------------------------------
# Intents (strategies, maker, hedger, copytrade -> {ns}:intent:{account})
# ---------------------------------------------------------------------------------------------


class TargetPosition(Event, tag="target_position"):
    """A strategy's desired position in one market, in signed base units (+long, -short).

    The executor nets all strategies' targets of the account and trades only the difference,
    with a marketable IOC limit no worse than ``max_slippage_bps`` from the touch.
    ``reference_price`` is the price the strategy decided on (USD), for slippage accounting.
    """

    strategy: str
    market: str
    target: float
    max_slippage_bps: float = 10.0
    reference_price: float = 0.0
    reason: str = ""


class QuoteIntent(Event, tag="quote"):
    """A two-sided (or one-sided) resting quote. A side with ``None`` price or 0 size is pulled.

    Quotes are post-only limit orders unless ``post_only`` is False. A new QuoteIntent from the
    same strategy and market replaces the previous one.
    """

    strategy: str
    market: str
    bid_px: float | None = None
    bid_sz: float = 0.0
    ask_px: float | None = None
    ask_sz: float = 0.0
    post_only: bool = True


class RestingOrders(Event, tag="resting_orders"):
    """The complete set of resting limit orders a strategy wants in one market (e.g. a grid).

    ``orders`` are ``(side, price USD, size base units)``. The executor diffs the set against the
    strategy's live orders in that market: identical orders stay (keeping queue position),
    missing ones are canceled, new ones placed (post-only unless ``post_only`` is False). An
    empty list cancels them all.
    """

    strategy: str
    market: str
    orders: list[tuple[Side, float, float]]
    post_only: bool = True


class StopLossIntent(Event, tag="stop_loss"):
    """A reduce-only stop-loss order of ``strategy`` in ``market``: at most one per (strategy,
    market); a new one replaces the live one, ``size`` 0 only cancels it.

    ``side`` is the order's side (``sell`` protects a long). When the venue's last trade or mark
    price reaches ``trigger_price`` (USD; a sell stop at or below, a buy stop at or above), it
    becomes a market order of ``size`` base units (at most the position: reduce-only) no worse
    than ``max_slippage_bps`` beyond the trigger (Lighter order type ``stop-loss``).
    """

    strategy: str
    market: str
    side: Side
    trigger_price: float
    size: float
    max_slippage_bps: float = 100.0
    reason: str = ""


class CancelIntent(Event, tag="cancel"):
    """Cancel all resting orders of ``strategy`` in ``market`` (all markets when ``None``)."""

    strategy: str
    market: str | None = None
    reason: str = ""


# ---------------------------------------------------------------------------------------------
# Execution events (executor -> {ns}:exec:{account})
# ---------------------------------------------------------------------------------------------


class OrderAccepted(Event, tag="order_accepted"):
    """The venue accepted a signed order transaction.

    ``client_order_index`` is the executor's idempotency key (Lighter ClientOrderIndex,
    1 .. 2^48-1). ``order_type`` is ``limit`` or ``market``; ``time_in_force`` is one of
    ``ioc``, ``gtt``, ``post_only``.
    """

    strategy: str
    market: str
    client_order_index: int
    side: Side
    price: float
    size: float
    order_type: str = "limit"
    time_in_force: str = "gtt"
    reduce_only: bool = False
    tx_hash: str = ""


class OrderRejected(Event, tag="order_rejected"):
    """An order that never reached the book. ``code``:

    - 0: refused locally by the executor (``client_order_index`` 0) for any other reason: a
      clip by ``max_position``/``max_notional_usd``, halted or reducing, no market data, the
      self-trade guard, the open-orders cap, a resting order below the market minimum...
      Retrying the same intent later may pass.
    - 1: refused locally as **unreachable**: the strategy's remainder to its target is below
      the market minimum (``min_base_amount`` or ``min_quote_amount``) and nothing of it is in
      flight, so re-sending the same target can never trade. The executor keeps the target
      (netting with another strategy may still fill it); the strategy should not retry it
      until its target changes.
    - -1: the send failed in transport or signing (the runner).
    - >= 21000: refused by the venue (``client_order_index`` set); Lighter's error code, e.g.
      21706 for a bad amount, 23000 for too many requests."""

    strategy: str
    market: str
    client_order_index: int
    side: Side
    price: float
    size: float
    code: int
    reason: str


class OrderCanceled(Event, tag="order_canceled"):
    """An order left the book without filling completely (``remaining`` base units unfilled).

    ``reason`` is the venue status, e.g. ``canceled``, ``canceled-post-only``, ``expired-ioc``.
    """

    strategy: str
    market: str
    client_order_index: int
    remaining: float
    reason: str = "canceled"


class Fill(Event, tag="fill"):
    """A fill attributed to one strategy.

    ``fill_id`` is unique per attributed fill. ``venue_trade_id`` is the Lighter trade id the
    fill came from (one venue trade may be split between strategies); it is empty for an
    ``internal`` fill, where two strategies of the account crossed inside the executor at
    ``price`` without touching the venue. ``fee`` is in USD (positive = paid). ``reason`` is the
    ``reason`` of the strategy's :class:`TargetPosition` the fill executes (e.g. ``take profit``,
    ``stop``, ``time stop``, ``signal``, ``flatten``); empty for resting orders and quotes.
    """

    fill_id: str
    strategy: str
    market: str
    side: Side
    price: float
    size: float
    fee: float = 0.0
    liquidity: Liquidity = "taker"
    client_order_index: int = 0
    venue_trade_id: str = ""
    reason: str = ""


class PositionSnapshot(Event, tag="position"):
    """A strategy's virtual position after a fill: ``position`` in signed base units,
    ``avg_entry_price`` in USD (0 when flat). ``account_position`` is the whole account's net
    position in the market as the executor knows it."""

    strategy: str
    market: str
    position: float
    avg_entry_price: float = 0.0
    account_position: float = 0.0


class RiskState(Event, tag="risk_state"):
    """The executor's trading state: ``running``, ``halted`` (no orders) or ``reducing``
    (only orders that shrink exposure), with the reason it changed."""

    state: Literal["running", "halted", "reducing"]
    reason: str = ""


class GuardState(Event, tag="guard_state"):
    """A risk guard of the executor engaged (``engaged`` True) or released (False).

    ``guard`` is ``max_position`` (account position in base units would exceed the market's
    limit), ``max_notional`` (account position x price in USD would exceed it) or
    ``self_trade`` (a taker order would have crossed one of our own resting orders).
    ``side`` is the side that is blocked (``buy`` blocks growing a long). ``position`` is the
    account position in base units when the state changed; ``limit`` the limit in the guard's
    unit (base units, USD; 0 for ``self_trade``).
    """

    guard: Literal["max_position", "max_notional", "self_trade"]
    market: str
    side: Side
    engaged: bool
    position: float = 0.0
    limit: float = 0.0
    reason: str = ""


class PositionMismatch(Event, tag="position_mismatch"):
    """The venue's account position in a market differs from the sum of the strategies' virtual
    positions the executor attributes (``_unattributed`` included), or no longer does.

    Published by the executor when the difference changes by at least one lot of the market:
    ``mismatch`` True when a difference is found or changes, False when it is gone.
    ``account_position`` is the venue's position (signed base units), ``strategies_position``
    the sum of the virtual positions, ``difference`` = account - strategies (base units),
    ``positions`` each strategy's virtual position (base units, non-zero ones). ``reason`` says
    it in words. A difference means fills the executor did not attribute (lost, or not its own):
    see ``docs/runbook.md``, "Positions do not match the venue"."""

    market: str
    account_position: float
    strategies_position: float
    difference: float
    mismatch: bool
    positions: dict[str, float] = {}
    reason: str = ""


# ---------------------------------------------------------------------------------------------
# Model parameters (calibrator -> {ns}:params:{strategy})
# ---------------------------------------------------------------------------------------------


class ModelParams(Event, tag="model_params"):
    """Avellaneda-Stoikov parameters of one market, estimated from recorded mids and trades.

    Units (all prices in integer ticks of the market, ``tick_size`` USD each):

    - ``sigma``: volatility of the mid in **ticks per sqrt(second)**; ``sigma_source`` says
      which estimate was used (``garch``: GARCH(1,1) with Student-t errors, or ``rolling``:
      rolling standard deviation), and ``sigma_garch``/``sigma_rolling`` give both (``None``
      when one could not be computed).
    - ``A``: order-arrival intensity at the mid, **per second**; ``k``: its decay **per tick**
      of distance from the mid (lambda(delta) = A * exp(-k * delta), Avellaneda & Stoikov
      2008, eq. 2.11).
    - ``gamma``: risk aversion **per tick** (with inventory q counted in order clips, so that
      ``gamma / k`` is dimensionless).
    - ``interval_s``: the sampling interval of the returns (s); ``window_start``/``window_end``:
      the data window (ns); ``mid``: the last mid (USD).

    ``ok`` is False when a fit failed or a value is not finite and positive; ``problems`` then
    says why, and consumers must not quote from these parameters. ``problems`` may also hold
    entries starting with ``warning:`` while ``ok`` is True (e.g. the sigma fallback engaged,
    gamma at the edge of its candidate range): usable, but worth a look. JSON has no NaN: a value
    that could not be computed is 0.0 in the required fields and ``None`` in the optional ones. ``fit`` holds fit-quality
    figures (e.g. ``ak_r2``, ``garch_loglik``) and ``inputs`` the counts the fit used (e.g.
    ``returns``, ``trades``).
    """

    strategy: str
    market: str
    sigma: float
    A: float
    k: float
    gamma: float
    tick_size: float
    mid: float
    interval_s: float
    window_start: int
    window_end: int
    sigma_source: Literal["garch", "rolling"] = "garch"
    sigma_garch: float | None = None
    sigma_rolling: float | None = None
    ok: bool = True
    problems: list[str] = []
    fit: dict[str, float | None] = {}
    inputs: dict[str, float] = {}


# ---------------------------------------------------------------------------------------------
# Control ({ns}:control)
# ---------------------------------------------------------------------------------------------


class Control(Event, tag="control"):
    """An operator command: ``pause``/``resume`` intents, ``kill`` (halt, cancel all, keep
    positions) or ``flatten`` (close positions). ``target`` is a strategy name or ``*``."""

    command: Literal["pause", "resume", "kill", "flatten"]
    target: str = "*"
    reason: str = ""


AnyEvent = (
    BookSnapshot
    | BookDelta
    | Bbo
    | Trade
    | MarketStats
    | TargetPosition
    | QuoteIntent
    | RestingOrders
    | StopLossIntent
    | CancelIntent
    | OrderAccepted
    | OrderRejected
    | OrderCanceled
    | Fill
    | PositionSnapshot
    | RiskState
    | GuardState
    | PositionMismatch
    | ModelParams
    | Control
)

EVENT_TYPES: dict[str, type[Event]] = {
    cls.__struct_config__.tag: cls  # type: ignore[misc]
    for cls in AnyEvent.__args__  # type: ignore[attr-defined]
}

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(AnyEvent)


class DecodeError(ValueError):
    """Raised by :func:`decode` for bytes that are not a valid event; the message says why."""


def encode(event: Event) -> bytes:
    """Encode an event as compact JSON bytes (deterministic field order: declaration order)."""
    return _encoder.encode(event)


def decode(data: bytes | str) -> AnyEvent:
    """Decode and validate JSON bytes into the event class named by its ``type`` field.

    Raises:
        DecodeError: malformed JSON, unknown ``type``, missing field or wrong field type; also
            a ``str`` that is not encodable as UTF-8 (a lone surrogate), which msgspec would
            report as ``UnicodeEncodeError``.
    """
    try:
        return _decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise DecodeError(str(exc)) from None
    except UnicodeEncodeError as exc:
        raise DecodeError(f"text is not valid UTF-8: {exc.reason} at {exc.start}") from None


def derive_id(*parts: object) -> str:
    """A stable 16-hex-char id from the given parts (BLAKE2b-64 of their ``repr`` joined by ``|``).

    Use the causing event's id, the writer's name and an output index, so the same input
    always produces the same output ids.
    """
    h = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8)
    return h.hexdigest()


def child(cause: Event, source: str, index: int = 0) -> dict[str, object]:
    """Envelope keyword arguments for an event caused by ``cause``.

    Returns ``id`` (derived from cause id, source and index), ``ts_event`` (the cause's
    exchange time: engines have no other clock), ``ts_recv``, ``source`` and ``causation_id``.
    """
    return {
        "id": derive_id(cause.id, source, index),
        "ts_event": cause.ts_event,
        "ts_recv": cause.ts_recv,
        "source": source,
        "causation_id": cause.id,
    }
