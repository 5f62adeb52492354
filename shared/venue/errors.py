"""Lighter error codes the venue model produces, and the exception that carries them.

The codes and meanings follow Lighter's tx path (reference notes, section 6.7). venue-sim turns a
:class:`VenueError` into HTTP 400 ``{"code": <code>, "message": <message>}``, which the official
SDK reports as ``(None, None, "<message>")``.
"""

from __future__ import annotations

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
"""Cancel ``Index`` is not a valid order or client order index."""
INVALID_PRICE = 21702
"""Price is 0 or does not fit uint32."""
INVALID_ORDER_TYPE = 21704
"""Order type venue-sim does not support (only limit 0 and market 1)."""
INVALID_TIF = 21705
"""Time in force not in {0 IOC, 1 GTT, 2 post-only}, or market order without IOC."""
INVALID_AMOUNT = 21706
"""Size below ``min_base_amount``, notional below ``min_quote_amount``, or zero."""
INVALID_CLIENT_ORDER_INDEX = 21727
"""ClientOrderIndex outside 1 .. 2^48-1."""
DUPLICATE_CLIENT_ORDER_INDEX = 21728
"""ClientOrderIndex already used by an active (or pending) order of the account."""
INVALID_TRIGGER_PRICE = 21729
"""A stop-loss order without a trigger price (or one outside 1 .. 2^32-1)."""
REDUCE_ONLY_INCREASES = 21732
"""A reduce-only order would increase (or open) the position."""
NOT_ENOUGH_MARGIN = 21739
"""The order (or margin added) needs more margin than the account has available."""

MESSAGES: dict[int, str] = {
    INVALID_NONCE: "invalid nonce",
    INVALID_TX_INFO: "invalid tx info",
    UNSUPPORTED_TX_TYPE: "unsupported tx type",
    ACCOUNT_BELOW_INITIAL_MARGIN: "account below initial margin",
    TX_EXPIRED: "tx expired",
    INVALID_MARKET: "invalid market index",
    INVALID_MARGIN_MODE: "invalid margin mode",
    NO_POSITION: "no position",
    INVALID_ORDER_INDEX: "invalid order index",
    INVALID_PRICE: "invalid price",
    INVALID_ORDER_TYPE: "invalid order type",
    INVALID_TIF: "invalid time in force",
    INVALID_AMOUNT: "invalid order base or quote amount",
    INVALID_CLIENT_ORDER_INDEX: "invalid client order index",
    DUPLICATE_CLIENT_ORDER_INDEX: "client order index already exists",
    INVALID_TRIGGER_PRICE: "invalid trigger price",
    REDUCE_ONLY_INCREASES: "reduce only order would increase position",
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
