"""venue-sim: Lighter's input rules for the order txs -- CreateOrder (14), CancelOrder (15),
CancelAllOrders (16), ModifyOrder (17) -- turned into the matching engine's txs.

The rules copy Lighter's: the field checks of the signer's ``Validate`` (lighter-go
``types/txtypes/{create_order,cancel_order,cancel_all_orders,modify_order}.go``, read for the
rules only) with the server's error codes (reference notes 6.7), and the server-side time
windows (reference notes 6.3: OrderExpiry now + 5 min .. 30 days, 21711; a scheduled cancel-all
now + 5 min .. 15 days). "now" is the venue clock. Where Lighter's code for a case is not
documented, the field's own code is used and the choice is written in docs/venue-sim.md.

Every integer field must be a JSON integer: a float (``5.0``), a string (``"5"``), a bool or
null is refused with 21501 (Lighter's server decodes tx_info into Go integers, which refuse
them). A missing field is refused the same way (Lighter's signer always sends every field).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from services.venue_sim.base import ServerBase
from shared.markets import MarketInfo
from shared.venue import errors as E
from shared.venue.errors import VenueError
from shared.venue.model import (
    MAX_CLIENT_ORDER_INDEX,
    MAX_PRICE,
    CancelAll,
    CancelOrder,
    CreateOrder,
    ModifyOrder,
)
from shared.venue.timed import MAX_BASE_AMOUNT

TX_CREATE, TX_CANCEL, TX_CANCEL_ALL, TX_MODIFY = 14, 15, 16, 17
ORDER_TYPES = {0: "limit", 1: "market", 2: "stop-loss", 3: "stop-loss-limit", 4: "take-profit",
               5: "take-profit-limit"}
"""Lighter's order type integers (reference notes 6.3) that venue-sim models."""
TWAP = 6
TIF_CODES = {0: "ioc", 1: "gtt", 2: "post_only"}
CANCEL_ALL_MODES = {0: "immediate", 1: "scheduled", 2: "abort"}
NIL_MARKET_INDEX = 255
MINUTE_MS = 60_000
DAY_MS = 24 * 60 * MINUTE_MS
EXPIRY_MIN_MS, EXPIRY_MAX_MS = 5 * MINUTE_MS, 30 * DAY_MS
"""OrderExpiry window after now (lighter-go Min/MaxOrderExpiryPeriod; reference notes 6.3)."""
CANCEL_ALL_MIN_MS, CANCEL_ALL_MAX_MS = 5 * MINUTE_MS, 15 * DAY_MS
"""Scheduled cancel-all window after now (lighter-go Min/MaxOrderCancelAllPeriod)."""
_MARKET_LIKE = ("market", "stop-loss", "take-profit")


def field(info: Mapping[str, Any], key: str, default: int | None = None) -> int:
    """``info[key]`` as an int; it must be a JSON integer (not a bool, float, string or null).

    Raises:
        VenueError: 21501, the field is missing (and has no ``default``) or not an integer.
    """
    if key not in info:
        if default is not None:
            return default
        raise VenueError(E.INVALID_TX_INFO, f"missing field {key}")
    v = info[key]
    if type(v) is not int:
        raise VenueError(E.INVALID_TX_INFO, f"{key} must be an integer, not {type(v).__name__} {v!r}")
    return v


def _market(markets: Mapping[int, MarketInfo], info: Mapping[str, Any]) -> int:
    mid = field(info, "MarketIndex")
    if mid not in markets:
        raise VenueError(E.INVALID_MARKET, f"market {mid} is not traded here (have {sorted(markets)})")
    return mid


def parse_create(info: Mapping[str, Any], now_ms: int, markets: Mapping[int, MarketInfo], tx_hash: str) -> CreateOrder:
    """A CreateOrder tx_info (dict) checked as Lighter does, as the engine's tx.

    Raises:
        VenueError: 21501 a field missing or not an integer; 21602 unknown market; 21727
            ClientOrderIndex outside 0 .. 2^48-1; 21701 BaseAmount outside 1 .. 2^48-1; 21702
            Price outside 1 .. 2^32-1; 21703 IsAsk not 0/1; 21740 ReduceOnly not 0/1; 21704
            Type unknown (7, 8: venue-only types), 21710 TWAP (6); 21705 TimeInForce not 0/1/2 or
            not IOC for market/stop-loss/take-profit; 21729 TriggerPrice missing on a trigger type,
            set on limit/market, or above 2^32-1; 21711 OrderExpiry not 0 where it must be (IOC
            limit, market), 0 where it must not be (GTT/post-only limit, trigger types), or
            outside now + 5 min .. now + 30 days.
    """
    mid = _market(markets, info)
    coi, amount, price = field(info, "ClientOrderIndex"), field(info, "BaseAmount"), field(info, "Price")
    is_ask, otype_i, tif_i = field(info, "IsAsk"), field(info, "Type"), field(info, "TimeInForce")
    reduce_only, trigger, expiry = field(info, "ReduceOnly"), field(info, "TriggerPrice"), field(info, "OrderExpiry")
    if not 0 <= coi <= MAX_CLIENT_ORDER_INDEX:
        raise VenueError(E.INVALID_CLIENT_ORDER_INDEX, f"client order index {coi}")
    if not 1 <= amount <= MAX_BASE_AMOUNT:
        raise VenueError(E.INVALID_BASE_AMOUNT, f"base amount {amount} (1 .. 2^48-1; 0 only inside grouped orders)")
    if not 1 <= price <= MAX_PRICE:
        raise VenueError(E.INVALID_PRICE, f"price {price}")
    if is_ask not in (0, 1):
        raise VenueError(E.INVALID_IS_ASK, f"IsAsk {is_ask}")
    if reduce_only not in (0, 1):
        raise VenueError(E.INVALID_REDUCE_ONLY_MODE, f"ReduceOnly {reduce_only}")
    if otype_i == TWAP:
        raise VenueError(E.UNSUPPORTED_ORDER_TYPE, "TWAP orders (type 6) are not modelled by venue-sim")
    otype = ORDER_TYPES.get(otype_i)
    if otype is None:
        raise VenueError(E.INVALID_ORDER_TYPE, f"order type {otype_i}")
    tif = TIF_CODES.get(tif_i)
    if tif is None:
        raise VenueError(E.INVALID_TIF, f"time in force {tif_i}")
    if otype in _MARKET_LIKE and tif != "ioc":
        raise VenueError(E.INVALID_TIF, f"a {otype} order must be IOC (0), not {tif_i}")
    trigger_type = otype not in ("limit", "market")
    if trigger_type and not 1 <= trigger <= MAX_PRICE:
        raise VenueError(E.INVALID_TRIGGER_PRICE, f"a {otype} order needs a trigger price 1 .. 2^32-1, not {trigger}")
    if not trigger_type and trigger != 0:
        raise VenueError(E.INVALID_TRIGGER_PRICE, f"a {otype} order takes no trigger price ({trigger})")
    _check_expiry(otype, tif, expiry, now_ms)
    return CreateOrder(account=field(info, "AccountIndex"), market_id=mid, client_order_index=coi, base_amount=amount,
                       price=price, is_ask=bool(is_ask), order_type=otype, time_in_force=tif,  # type: ignore[arg-type]
                       reduce_only=bool(reduce_only), order_expiry_ms=expiry, nonce=field(info, "Nonce"),
                       tx_hash=tx_hash, trigger_price=trigger)


def _check_expiry(otype: str, tif: str, expiry: int, now_ms: int) -> None:
    """OrderExpiry rules (lighter-go CreateOrder.Validate; window: reference notes 6.3)."""
    needs_none = otype == "market" or (otype == "limit" and tif == "ioc")
    if needs_none:
        if expiry != 0:
            raise VenueError(E.INVALID_EXPIRY, f"OrderExpiry must be 0 for an IOC {otype} order, not {expiry}")
        return
    if expiry == 0:
        raise VenueError(E.INVALID_EXPIRY, f"a {otype} {tif} order needs an OrderExpiry (ms), not 0")
    if not now_ms + EXPIRY_MIN_MS <= expiry <= now_ms + EXPIRY_MAX_MS:
        raise VenueError(E.INVALID_EXPIRY, f"OrderExpiry {expiry} outside now + 5 min .. now + 30 days "
                         f"(now {now_ms} ms, venue time)")


def parse_cancel(info: Mapping[str, Any], markets: Mapping[int, MarketInfo], tx_hash: str) -> CancelOrder:
    """A CancelOrder tx_info checked as Lighter does.

    Raises:
        VenueError: 21501 a field missing or not an integer; 21602 unknown market; 21700 Index
            not a client order index (1 .. 2^48-1) nor an order index (2^48 .. 2^60-1).
    """
    mid = _market(markets, info)
    index = field(info, "Index")
    if not 1 <= index < 2**60:
        raise VenueError(E.INVALID_ORDER_INDEX, f"index {index}")
    return CancelOrder(account=field(info, "AccountIndex"), market_id=mid, index=index, tx_hash=tx_hash)


def parse_cancel_all(info: Mapping[str, Any], now_ms: int, markets: Mapping[int, MarketInfo],
                     tx_hash: str) -> CancelAll:
    """A CancelAllOrders tx_info checked as Lighter does. ``L2TxAttributes`` ``{"5": m}`` (the
    SDK's ``cancel_all_market_index``) limits an immediate cancel-all to market ``m`` (255 = all).

    Raises:
        VenueError: 21501 a field missing or not an integer; 21713 TimeInForce not 0/1/2; 21714
            Time not 0 for immediate (0) or abort (2), or outside now + 5 min .. now + 15 days
            (ms, venue time) for scheduled (1); 21602 unknown market in the attributes.
    """
    mode = CANCEL_ALL_MODES.get(tif := field(info, "TimeInForce"))
    when = field(info, "Time")
    if mode is None:
        raise VenueError(E.INVALID_CANCEL_ALL_TIF, f"cancel-all time in force {tif}")
    if mode != "scheduled" and when != 0:
        raise VenueError(E.INVALID_CANCEL_ALL_TIME, f"an {mode} cancel-all takes Time 0, not {when}")
    if mode == "scheduled" and not now_ms + CANCEL_ALL_MIN_MS <= when <= now_ms + CANCEL_ALL_MAX_MS:
        raise VenueError(E.INVALID_CANCEL_ALL_TIME, f"Time {when} outside now + 5 min .. now + 15 days "
                         f"(now {now_ms} ms, venue time)")
    attrs = info.get("L2TxAttributes") or {}
    if not isinstance(attrs, dict):
        raise VenueError(E.INVALID_TX_INFO, "L2TxAttributes must be an object or null")
    market: int | None = field(attrs, "5", NIL_MARKET_INDEX)
    if market == NIL_MARKET_INDEX:
        market = None
    elif market not in markets:
        raise VenueError(E.INVALID_MARKET, f"market {market} is not traded here (have {sorted(markets)})")
    return CancelAll(account=field(info, "AccountIndex"), market_id=market, mode=mode,  # type: ignore[arg-type]
                     time_ms=when, tx_hash=tx_hash)


def parse_modify(info: Mapping[str, Any], markets: Mapping[int, MarketInfo], tx_hash: str) -> ModifyOrder:
    """A ModifyOrder tx_info: field types and market here; ranges and the target order are
    the engine's (:meth:`shared.venue.timed.TimedOrders._validate_modify`).

    Raises:
        VenueError: 21501 a field missing or not an integer; 21602 unknown market.
    """
    mid = _market(markets, info)
    return ModifyOrder(account=field(info, "AccountIndex"), market_id=mid, index=field(info, "Index"),
                       base_amount=field(info, "BaseAmount"), price=field(info, "Price"),
                       trigger_price=field(info, "TriggerPrice"), tx_hash=tx_hash)


def parse_order_tx(tx_type: int, info: Mapping[str, Any], now_ms: int, markets: Mapping[int, MarketInfo],
                   tx_hash: str) -> CreateOrder | CancelOrder | CancelAll | ModifyOrder:
    """An order tx (14, 15, 16, 17) as the engine's tx; ``now_ms`` is the venue time (ms) of
    its arrival. The common fields (AccountIndex, ApiKeyIndex, Nonce, ExpiredAt) must be
    integers too.

    Raises:
        VenueError: see :func:`parse_create`, :func:`parse_cancel`, :func:`parse_cancel_all`,
            :func:`parse_modify`.
    """
    for key in ("AccountIndex", "ApiKeyIndex", "Nonce"):
        field(info, key)
    field(info, "ExpiredAt", 0)
    if tx_type == TX_CREATE:
        return parse_create(info, now_ms, markets, tx_hash)
    if tx_type == TX_CANCEL:
        return parse_cancel(info, markets, tx_hash)
    if tx_type == TX_CANCEL_ALL:
        return parse_cancel_all(info, now_ms, markets, tx_hash)
    return parse_modify(info, markets, tx_hash)


class OrderTxs(ServerBase):
    """Adds ModifyOrder (17) to the tx path (the other order txs are the base's)."""

    _engine_tx: Callable[[int], Callable[[dict[str, Any], str], int]]

    def tx_handlers(self) -> dict[int, Callable[[dict[str, Any], str], int]]:
        """The base's handlers plus ModifyOrder (17), executed by the engine like a cancel."""
        return super().tx_handlers() | {TX_MODIFY: self._engine_tx(TX_MODIFY)}  # type: ignore[misc]
