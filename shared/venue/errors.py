"""Lighter error codes the venue model produces, and the exception that carries them.

The codes and meanings follow Lighter's tx path (reference notes, section 6.7). venue-sim turns a
:class:`VenueError` into HTTP 400 ``{"code": <code>, "message": <message>}``, which the official
SDK reports as ``(None, None, "<message>")``.
"""

from __future__ import annotations

ACCOUNT_NOT_FOUND = 21100
"""The account index (or L1 address) is not an account of the venue (Lighter: ``{"code":21100,
"message":"account not found"}``, seen in elliottech/lighter-python issue #132)."""
INVALID_NONCE = 21104
"""``Nonce`` is not the next expected nonce of the (account, api key) pair."""
INVALID_TX_INFO = 21501
"""``tx_info`` is not valid JSON or misses a field."""
UNSUPPORTED_TX_TYPE = 21505
"""A tx type venue-sim does not implement (it has 14 create, 15 cancel, 16 cancel-all, 20 update
leverage, 29 update margin, and those other parts of the server add)."""
ACCOUNT_BELOW_INITIAL_MARGIN = 21508
"""The tx would leave the account (or an isolated position) below its initial margin
requirement (venue-sim: an ``updateMargin`` removal or an ``updateLeverage`` raising the
requirement above equity)."""
TX_EXPIRED = 21511
"""``ExpiredAt`` (wall-clock ms) is in the past. (Lighter's exact code for this is undocumented.)"""
INVALID_MARKET = 21602
"""Unknown market index."""
INVALID_MARGIN_MODE = 21613
"""Margin mode not 0 (cross) / 1 (isolated), a mode change while the market has a position or
open orders, or an ``updateMargin`` on a cross position."""
NO_POSITION = 21614
"""``updateMargin`` on a market where the account has no position."""
INVALID_ORDER_INDEX = 21700
"""Cancel/modify ``Index`` is not a valid order or client order index (0 or negative)."""
INVALID_BASE_AMOUNT = 21701
"""BaseAmount outside 1 .. 2^48-1."""
INVALID_PRICE = 21702
"""Price is 0 or does not fit uint32."""
INVALID_IS_ASK = 21703
"""IsAsk not 0 or 1."""
INVALID_ORDER_TYPE = 21704
"""Order type not one Lighter takes from an API tx (0 limit .. 6 TWAP)."""
INVALID_TIF = 21705
"""Time in force not in {0 IOC, 1 GTT, 2 post-only}, or not allowed for the order type
(market, stop-loss and take-profit need IOC)."""
INVALID_AMOUNT = 21706
"""Size below ``min_base_amount``, notional below ``min_quote_amount``, or zero."""
UNSUPPORTED_ORDER_TYPE = 21710
"""An order type Lighter has that venue-sim does not model (TWAP, 6)."""
INVALID_EXPIRY = 21711
"""OrderExpiry not allowed: non-zero for IOC limit or market, zero for GTT/post-only limit and
the trigger types, or outside now + 5 min .. now + 30 days (venue time)."""
CANCEL_ALL_PENDING = 21712
"""A queued cancel-all is pending (Lighter's code; venue-sim does not produce it)."""
INVALID_CANCEL_ALL_TIF = 21713
"""CancelAllOrders TimeInForce not in {0 immediate, 1 scheduled, 2 abort}."""
INVALID_CANCEL_ALL_TIME = 21714
"""CancelAllOrders Time: not 0 for immediate/abort, or outside now + 5 min .. now + 15 days
for scheduled (venue time, ms)."""
NOT_ACTIVE_ORDER = 21715
"""ModifyOrder names no active order of the account."""
INVALID_CLIENT_ORDER_INDEX = 21727
"""ClientOrderIndex outside 0 .. 2^48-1 (0 = none)."""
DUPLICATE_CLIENT_ORDER_INDEX = 21728
"""ClientOrderIndex already used by an active (or pending) order of the account."""
INVALID_TRIGGER_PRICE = 21729
"""A trigger order (stop-loss, take-profit and their limit types) without a trigger price
(or one outside 1 .. 2^32-1), or a trigger price on a limit or market order."""
REDUCE_ONLY_INCREASES = 21732
"""A reduce-only order would increase (or open) the position."""
INVALID_REDUCE_ONLY_MODE = 21740
"""ReduceOnly not 0 or 1."""
INVALID_SIGNATURE = 21120
"""The tx's ``Sig`` does not verify under the key it must be signed with, or a ChangePubKey's
``L1Sig`` is not the account owner's (venue-sim's choice: Lighter's code for this is
undocumented; docs/venue-sim.md)."""
API_KEY_NOT_FOUND = 21121
"""No public key is registered for the tx's (``AccountIndex``, ``ApiKeyIndex``) (venue-sim's
choice: Lighter's code is undocumented)."""
INVALID_AUTH = 20013
"""An account read without a valid auth token: missing, malformed, expired, more than 8 h
ahead, of another account, of an unregistered key, or wrongly signed (venue-sim's choice:
Lighter's code is undocumented)."""
NOT_ENOUGH_MARGIN = 21739
"""The order (or margin added) needs more margin than the account has available."""

MESSAGES: dict[int, str] = {
    ACCOUNT_NOT_FOUND: "account not found",
    INVALID_NONCE: "invalid nonce",
    INVALID_TX_INFO: "invalid tx info",
    UNSUPPORTED_TX_TYPE: "unsupported tx type",
    ACCOUNT_BELOW_INITIAL_MARGIN: "account below initial margin",
    TX_EXPIRED: "tx expired",
    INVALID_MARKET: "invalid market index",
    INVALID_MARGIN_MODE: "invalid margin mode",
    NO_POSITION: "no position",
    INVALID_ORDER_INDEX: "invalid order index",
    INVALID_BASE_AMOUNT: "invalid base amount",
    INVALID_PRICE: "invalid price",
    INVALID_IS_ASK: "invalid isAsk",
    INVALID_ORDER_TYPE: "invalid order type",
    INVALID_TIF: "invalid time in force",
    UNSUPPORTED_ORDER_TYPE: "unsupported order type",
    INVALID_EXPIRY: "invalid expiry",
    CANCEL_ALL_PENDING: "queued cancel all pending",
    INVALID_CANCEL_ALL_TIF: "invalid cancel all time in force",
    INVALID_CANCEL_ALL_TIME: "invalid cancel all time",
    NOT_ACTIVE_ORDER: "not an active order",
    INVALID_AMOUNT: "invalid order base or quote amount",
    INVALID_CLIENT_ORDER_INDEX: "invalid client order index",
    DUPLICATE_CLIENT_ORDER_INDEX: "client order index already exists",
    INVALID_TRIGGER_PRICE: "invalid trigger price",
    REDUCE_ONLY_INCREASES: "reduce only order would increase position",
    INVALID_REDUCE_ONLY_MODE: "invalid reduce only mode",
    INVALID_SIGNATURE: "invalid signature",
    API_KEY_NOT_FOUND: "api key not found",
    INVALID_AUTH: "invalid auth",
    NOT_ENOUGH_MARGIN: "not enough margin",
}


class VenueError(Exception):
    """A transaction the venue refuses. ``code`` is Lighter's error code; ``message`` starts
    with Lighter's wording for the code, followed by details."""

    def __init__(self, code: int, detail: str = "") -> None:
        self.code = code
        base = MESSAGES.get(code, "error")
        self.message = f"{base}: {detail}" if detail else base
        super().__init__(f"{code} {self.message}")

    def to_json(self) -> dict[str, object]:
        """The HTTP 400 body Lighter sends: ``{"code": N, "message": "..."}``."""
        return {"code": self.code, "message": self.message}
