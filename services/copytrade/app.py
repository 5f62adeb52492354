"""The copy-trade HTTP API (FastAPI): request models, authentication, routes.

Routes (docs/copytrade.md has the reference generated from this app's OpenAPI spec):

- ``POST /api/trade``: ``long``/``short``/``close`` by ``market_id`` or ``symbol``.
- ``POST /api/trade/adjust``: ``increase``/``decrease`` the position by ``percentage`` in (0, 1].
- ``GET /api/trade/{request_id}``: what became of a request.
- ``GET /api/account/{account_index}``: balances, positions, stop-loss orders.
- ``GET /health`` (no key) and ``GET /metrics`` (Prometheus; no key).

Errors: 400 a body that is not JSON, 401 missing/wrong ``X-API-Key`` (when one is configured), 404 account not configured,
404 unknown market (``symbol``/``market_id``), 422 invalid body (FastAPI names the field), 503 venue unavailable.
"""

from __future__ import annotations

import hmac
import logging
import time
from typing import Any, Literal

from fastapi import Depends, FastAPI, Header, HTTPException, Path, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.copytrade.journal import JournalUnavailable
from services.copytrade.service import CopyTrader, UnknownMarket
from services.copytrade.venue import AccountNotFound, VenueUnavailable
from shared.markets import MarketInfo

log = logging.getLogger(__name__)

ACCOUNT_INDEX = Field(ge=0, le=2**48, description="Lighter account index (must be configured).")
REQUEST_ID = Field(default=None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$",
                   description="Idempotency key: a request repeated with the same id is answered with the "
                               "first answer and never traded twice. Generated when absent.")


class _Market(BaseModel):
    # the spec says what the validator checks: market_id or symbol, not null
    model_config = ConfigDict(extra="forbid", json_schema_extra={"anyOf": [
        {"required": ["market_id"], "properties": {"market_id": {"type": "integer"}}},
        {"required": ["symbol"], "properties": {"symbol": {"type": "string"}}}]})
    account_index: int = ACCOUNT_INDEX
    market_id: int | None = Field(default=None, ge=0, le=2**16, description="Lighter market index.")
    symbol: str | None = Field(default=None, min_length=1, max_length=32, pattern=r"^[A-Za-z0-9]+$",
                               description="Lighter symbol, e.g. BTC (case-insensitive).")
    request_id: str | None = REQUEST_ID

    @model_validator(mode="after")
    def _market_given(self) -> _Market:
        if self.market_id is None and self.symbol is None:
            raise ValueError("market_id or symbol is required")
        return self


class TradeRequest(_Market):
    """``POST /api/trade``. ``reference_position_ratio`` in [0, 1] (ignored for close):
    size = total asset value x ratio x scaling_factor, rounded down to the lot."""

    trade_type: Literal["long", "short", "close"] = Field(
        description="long buys, short sells the computed size; close brings the copytrade position to 0.")
    reference_position_ratio: float = Field(default=0.0, ge=0, le=1, description=(
        "fraction of the account's total asset value (times scaling_factor) to trade; unused by close."))


class AdjustRequest(_Market):
    """``POST /api/trade/adjust``: change the copytrade position by ``percentage`` of its size."""

    adjustment_type: Literal["increase", "decrease"] = Field(
        description="increase trades in the position's direction, decrease against it.")
    percentage: float = Field(gt=0, le=1, description="fraction of the current position's size, rounded down to the lot.")


class Accepted(BaseModel):
    """Answer of the trade endpoints: the request is queued (or was already known)."""

    status: Literal["success"] = "success"
    message: str
    request_id: str
    client_order_index: int
    duplicate: bool = False


class RequestStatus(BaseModel):
    """What became of a request: ``queued``, ``processing``, ``done``, ``skipped`` or ``failed``."""

    request_id: str
    kind: str
    account_index: int
    market: str
    params: dict[str, Any]
    client_order_index: int
    status: str
    detail: str
    target: float | None
    delta: float | None
    price: float | None
    stop_trigger: float | None
    attempts: int


class Position(BaseModel):
    """One venue position (Lighter's decimal strings)."""

    market_id: int
    symbol: str
    position: str
    position_value: str
    avg_entry_price: str
    unrealized_pnl: str
    realized_pnl: str
    sign: int


class StopLoss(BaseModel):
    """A reduce-only stop-loss for the copytrade position of one market."""

    market_id: int
    symbol: str
    trigger_price: str
    price: str | None
    base_amount: str
    side: str
    order_type: str
    status: str
    reduce_only: bool


class Account(BaseModel):
    """``GET /api/account/{account_index}``."""

    account_index: int
    l1_address: str
    available_balance: str
    collateral: str
    total_asset_value: str
    cross_asset_value: str
    status: int
    positions: list[Position]
    copytrade_positions: dict[str, float]
    stop_loss_orders: list[StopLoss]


class Health(BaseModel):
    """``GET /health``: ``status`` ok while the service runs; ``api_healthy`` whether the venue answered last."""

    status: str
    service: str
    api_healthy: bool
    accounts: list[int]
    queued: int
    uptime_s: float


class Error(BaseModel):
    """An error answer."""

    detail: str


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Error, "description": "The body is not JSON"},
    401: {"model": Error, "description": "Missing or invalid X-API-Key"},
    404: {"model": Error, "description": "Account not configured, or unknown market"},
    503: {"model": Error, "description": "The venue (or, for a request, the request stream) is unavailable"},
}


def build_app(trader: CopyTrader, api_key: str | None) -> FastAPI:
    """The FastAPI app over ``trader``. ``api_key``: required ``X-API-Key`` value (None = open).
    The key is compared in constant time and never logged or echoed."""
    app = FastAPI(title="lighter-stack copytrade", version="1",
                  description="Copy-trading API: requests become target-position intents of the "
                              "`copytrade` strategy, traded by the account's executor.")
    started = time.time()
    state = {"api_healthy": True}

    def auth(x_api_key: str | None = Header(default=None, description="API key, when one is configured.")) -> None:
        if api_key is None:
            return
        if not x_api_key:
            raise HTTPException(401, "API key required")
        if not hmac.compare_digest(x_api_key.encode(), api_key.encode()):
            raise HTTPException(401, "Invalid API key")

    def known(account: int) -> None:
        if account not in trader.accounts:
            raise HTTPException(404, f"account {account} is not configured")

    async def market(m: _Market):  # noqa: ANN202
        try:
            out = await trader.resolve(m.market_id, m.symbol)
        except UnknownMarket as exc:
            raise HTTPException(404, str(exc)) from None
        except VenueUnavailable:
            state["api_healthy"] = False
            raise HTTPException(503, "Lighter API is currently unavailable") from None
        state["api_healthy"] = True
        return out

    async def submit(kind: str, account: int, m: MarketInfo, params: dict[str, Any],
                     request_id: str | None) -> tuple[Any, bool]:
        try:
            return await trader.submit(kind, account, m, params, request_id)
        except JournalUnavailable:
            log.warning("request not accepted: the request stream is unavailable")
            raise HTTPException(503, "request stream unavailable: not accepted, retry") from None

    def accepted(rec, new: bool, what: str) -> Accepted:  # noqa: ANN001
        msg = f"{what} accepted, processing in background" if new else f"{what} already accepted"
        return Accepted(message=msg, request_id=rec.request_id, client_order_index=rec.client_order_index,
                        duplicate=not new)

    @app.post("/api/trade", response_model=Accepted, responses=ERRORS, dependencies=[Depends(auth)])
    async def trade(req: TradeRequest) -> Accepted:
        """Open, add to (``long``/``short``) or close the copytrade position in one market."""
        known(req.account_index)
        m = await market(req)
        rec, new = await submit("trade", req.account_index, m, {
            "trade_type": req.trade_type, "reference_position_ratio": req.reference_position_ratio}, req.request_id)
        return accepted(rec, new, "request")

    @app.post("/api/trade/adjust", response_model=Accepted, responses=ERRORS, dependencies=[Depends(auth)])
    async def adjust(req: AdjustRequest) -> Accepted:
        """Increase or decrease the copytrade position by a fraction of its size."""
        known(req.account_index)
        m = await market(req)
        rec, new = await submit("adjust", req.account_index, m, {
            "adjustment_type": req.adjustment_type, "percentage": req.percentage}, req.request_id)
        return accepted(rec, new, "adjustment request")

    @app.get("/api/trade/{request_id}", response_model=RequestStatus,
             responses={401: ERRORS[401], 404: {"model": Error, "description": "Unknown request id"}},
             dependencies=[Depends(auth)])
    async def request_status(request_id: str = Path(max_length=64)) -> dict[str, Any]:
        """What became of a request."""
        rec = trader.requests.get(request_id)
        if rec is None:
            raise HTTPException(404, "unknown request_id")
        return rec.to_json()

    @app.get("/api/account/{account_index}", response_model=Account, responses=ERRORS, dependencies=[Depends(auth)])
    async def account(account_index: int = Path(ge=0, le=2**48)) -> dict[str, Any]:
        """Balances and positions from the venue, and the copytrade stop-loss orders."""
        known(account_index)
        try:
            out = await trader.account_view(account_index)
        except AccountNotFound:
            raise HTTPException(404, f"account {account_index} not found at the venue") from None
        except VenueUnavailable:
            state["api_healthy"] = False
            raise HTTPException(503, "Lighter API is currently unavailable") from None
        state["api_healthy"] = True
        return out

    _add_ops_routes(app, trader, state, started)

    return app


def _add_ops_routes(app: FastAPI, trader: CopyTrader, state: dict[str, bool], started: float) -> None:
    """``GET /health`` (liveness, venue reachability, queued requests; no key needed) and
    ``GET /metrics`` (Prometheus text format) on ``app``."""

    @app.get("/health", response_model=Health)
    async def health() -> dict[str, Any]:
        """Liveness (no key needed)."""
        return {"status": "ok", "service": "copytrade", "api_healthy": state["api_healthy"],
                "accounts": trader.accounts,
                "queued": sum(1 for r in trader.requests.values() if r.status in ("queued", "processing")),
                "uptime_s": round(time.time() - started, 1)}

    @app.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
    async def metrics() -> Response:
        """Prometheus metrics (text format)."""
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
