"""venue-sim: Lighter's read endpoints (``orderBooks``, ``orderBookDetails``, ``orderBookOrders``,
``account``, ``accountActiveOrders``, ``accountInactiveOrders``, ``recentTrades``,
``currentHeight``, ``GET /``).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from services.venue_sim.auth import AuthChecks
from services.venue_sim.base import _ms, _num, _us
from services.venue_sim.httpio import error_response, query_int
from shared.markets import MarketInfo
from shared.venue import errors as E
from shared.venue.errors import VenueError
from shared.venue.matching import BOOK_ACCOUNT


def auth_token(request: web.Request) -> str | None:
    """The auth token of a REST request: the ``Authorization`` header, else the ``auth`` query
    parameter (reference notes sections 2 and 4); None when neither is given."""
    return request.headers.get("Authorization") or request.query.get("auth") or None


class RestReads(AuthChecks):
    """Lighter's REST read endpoints (``accountActiveOrders``/``accountInactiveOrders`` are
    auth-gated through :meth:`AuthChecks.authorize_account`)."""

    def _market_and_limit(self, request: web.Request, max_limit: int) -> tuple[MarketInfo, int]:
        """The required ``market_id`` and ``limit`` (default 100, clamped to 1..``max_limit``).

        Raises:
            VenueError: 21602 when ``market_id`` is missing or unknown; 21501 when ``limit`` is
                not an integer.
        """
        if not request.query.get("market_id"):
            raise VenueError(E.INVALID_MARKET, "market_id is required")
        return self._selected(request)[0], max(1, min(max_limit, query_int(request, "limit", 100)))

    def _selected(self, request: web.Request) -> list[MarketInfo]:
        mid = request.query.get("market_id")
        if mid in (None, "", "255"):
            return list(self.markets.values())
        try:
            return [self.markets[int(mid)]]
        except (KeyError, ValueError):
            raise VenueError(E.INVALID_MARKET, f"market {mid}") from None

    def _order_book_light(self, m: MarketInfo) -> dict[str, Any]:
        d = m.to_lighter()
        keep = ("symbol", "market_id", "market_type", "status", "taker_fee", "maker_fee", "min_base_amount",
                "min_quote_amount", "supported_size_decimals", "supported_price_decimals", "supported_quote_decimals")
        out = {k: d[k] for k in keep}
        out.update(self._fee_fields())
        out.update({"base_asset_id": 0, "quote_asset_id": 3, "liquidation_fee": "1.0000",
                    "order_quote_limit": "281474976.710655", "is_maker_fee_enabled": True,
                    "is_taker_fee_enabled": True, "created_at": "0", "multiplier": "1", "start_timestamp": 0,
                    "end_timestamp": 0, "settlement_type": 0, "settlement_price": 0, "settlement_cap": 0,
                    "outcome": 0, "default_price": 0, "operator_account_index": 0, "is_frozen": False,
                    "open_interest": _num(self.engine.state[m.market_id].open_interest, m.size_decimals)})
        return out

    def _fee_fields(self) -> dict[str, str]:
        return {"taker_fee": f"{self.engine.taker_fee * 100:.4f}", "maker_fee": f"{self.engine.maker_fee * 100:.4f}"}

    async def h_order_books(self, request: web.Request) -> web.Response:
        try:
            ms = self._selected(request)
        except VenueError as exc:
            return error_response(exc)
        return web.json_response({"code": 200, "order_books": [self._order_book_light(m) for m in ms]})

    async def h_order_book_details(self, request: web.Request) -> web.Response:
        try:
            ms = self._selected(request)
        except VenueError as exc:
            return error_response(exc)
        out = []
        for m in ms:
            d = {**self._order_book_light(m), **m.to_lighter(), **self._fee_fields()}
            stats = self.stats_json(m.market_id)
            st = self.engine.state[m.market_id]
            d.update({"last_trade_price": st.last_trade_price or float(stats["mid_price"]),
                      "mark_price": stats["mark_price"], "index_price": stats["index_price"],
                      "daily_trades_count": 0, "daily_base_token_volume": 0.0, "daily_quote_token_volume": 0.0,
                      "daily_price_low": 0.0, "daily_price_high": 0.0, "daily_price_change": 0.0,
                      "open_interest": st.open_interest, "daily_chart": {},
                      "market_config": {"market_margin_mode": 0, "insurance_fund_account_index": 281474976710655,
                                        "liquidation_mode": 0, "force_reduce_only": False, "trading_hours": "",
                                        "funding_fee_discounts_enabled": False, "hidden": False,
                                        "rfq_enabled": False},
                      "strategy_index": 0, "funding_clamp_small": "0.0500", "funding_clamp_big": "4.0000",
                      "base_interest_rate": "0.0000", "market_flags": 0, "funding_premium_multiplier": 0})
            out.append(d)
        return web.json_response({"code": 200, "order_book_details": out, "spot_order_book_details": []})

    async def h_order_book_orders(self, request: web.Request) -> web.Response:
        try:
            m, limit = self._market_and_limit(request, max_limit=250)
        except VenueError as exc:
            return error_response(exc)
        bids, asks = self.engine.public_book(m.market_id)
        st = self.engine.state[m.market_id]
        own = {o.price: o for o in self.engine.resting[m.market_id].values()}
        own_lots: dict[int, int] = {}
        for o in self.engine.resting[m.market_id].values():
            own_lots[o.price] = own_lots.get(o.price, 0) + o.remaining
        expiry = _ms(self.clock()) + 28 * 86_400_000

        def rows(levels: dict[int, int], is_bid: bool) -> list[dict[str, Any]]:
            out = []
            for n, (px, lots) in enumerate(sorted(levels.items(), reverse=is_bid)[:limit]):
                touch = st.bid_px if is_bid else st.ask_px
                base = (2**49 - 2**40 if is_bid else 2**48) + 2**39 + (px % 2**30)
                mine = px in own and px != touch and lots == own_lots[px]  # not the recorded/synthetic book's
                oi = own[px].order_index if mine else base + n
                acct = own[px].account if mine else BOOK_ACCOUNT
                out.append({"order_index": oi, "order_id": str(oi), "owner_account_index": acct,
                            "initial_base_amount": m.size_str(lots), "remaining_base_amount": m.size_str(lots),
                            "price": m.price_str(px), "order_expiry": expiry, "transaction_time": 0})
            return out

        a, b = rows(asks, False), rows(bids, True)
        return web.json_response({"code": 200, "total_asks": len(a), "asks": a, "total_bids": len(b), "bids": b})

    def _account_json(self, acct: int) -> dict[str, Any]:
        a = self.engine.account(acct)
        stats = self.user_stats(acct)
        positions = [self.position_json(p) for _, p in sorted(a.positions.items())]
        n_orders = len(self.engine.active_orders(acct))
        return {
            "code": 0, "account_type": 0, "account_trading_mode": 0, "index": acct, "l1_address": self.require_account(acct).l1_address,
            "cancel_all_time": self.engine.cancel_all_at.get(acct, 0), "total_order_count": n_orders, "total_isolated_order_count": 0,
            "pending_order_count": 0, "available_balance": stats["available_balance"], "status": 1,
            "collateral": stats["collateral"], "account_index": acct, "name": "", "description": "",
            "can_invite": False, "referral_points_percentage": "", "positions": positions,
            "assets": [{"symbol": "USDC", "asset_id": 3, "balance": stats["collateral"], "locked_balance": "0.000000",
                        "margin_balance": stats["collateral"], "margin_mode": "enabled", "multiplier": "1"}],
            "total_asset_value": stats["portfolio_value"], "cross_asset_value": stats["portfolio_value"],
            "pool_info": {"status": 0, "operator_fee": "0", "min_operator_share_rate": "0", "total_shares": 0,
                          "operator_shares": 0, "annual_percentage_yield": 0, "daily_returns": [],
                          "share_prices": [], "sharpe_ratio": 0, "strategies": []},
            "shares": [], "created_at": 0, "transaction_time": _us(self.clock()), "pending_unlocks": [],
            "approved_integrators": [], "can_rfq": False, "cross_initial_margin_requirement": "0.000000",
            "cross_maintenance_margin_requirement": "0.000000", "can_rfq_market_ids": [],
            "metadata": {"color": ""}, "agent_enabled": False,
        }

    async def h_account(self, request: web.Request) -> web.Response:
        """``account?by=index|l1_address&value=``; 21100 for an unknown account or address."""
        by = request.query.get("by", "index")
        try:
            if by == "l1_address":
                accts = [a.index for a in self.accounts_of(request.query.get("value", ""))]  # type: ignore[attr-defined]
                if not accts:
                    raise VenueError(E.ACCOUNT_NOT_FOUND, f"no account for {request.query.get('value', '')}")
            elif by == "index":
                accts = [query_int(request, "value")]
                self.require_account(accts[0])
            else:
                raise VenueError(E.INVALID_TX_INFO, "by must be index or l1_address")
        except VenueError as exc:
            return error_response(exc)
        return web.json_response({"code": 200, "total": len(accts), "accounts": [self._account_json(a) for a in accts],
                                  "next_cursor": ""})

    async def h_active_orders(self, request: web.Request) -> web.Response:
        try:
            acct = query_int(request, "account_index")
            self.require_account(acct)
            self.authorize_account(auth_token(request), acct)
            mid = request.query.get("market_id")
            market = None if mid in (None, "", "255") else self._selected(request)[0].market_id
        except VenueError as exc:
            return error_response(exc)
        orders = [self.order_json(o) for o in self.engine.active_orders(acct, market)]
        return web.json_response({"code": 200, "orders": orders})

    async def h_inactive_orders(self, request: web.Request) -> web.Response:
        try:
            acct = query_int(request, "account_index")
            self.require_account(acct)
            self.authorize_account(auth_token(request), acct)
            limit = max(1, min(100, query_int(request, "limit", 100)))
            mid = request.query.get("market_id")
            market = None if mid in (None, "", "255") else self._selected(request)[0].market_id
        except VenueError as exc:
            return error_response(exc)
        orders = [self.order_json(o) for o in self.engine.inactive_orders(acct, market)[:limit]]
        return web.json_response({"code": 200, "orders": orders, "next_cursor": ""})

    async def h_recent_trades(self, request: web.Request) -> web.Response:
        try:
            m, limit = self._market_and_limit(request, max_limit=100)
        except VenueError as exc:
            return error_response(exc)
        trades = list(self.trades[m.market_id])[-limit:][::-1]
        return web.json_response({"code": 200, "trades": trades})

    async def h_height(self, _request: web.Request) -> web.Response:
        return web.json_response({"code": 200, "height": self.height})

    async def h_root(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": 1, "network_id": 1, "timestamp": int(self.clock() // 1_000_000_000)})
