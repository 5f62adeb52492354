"""venue-sim: Lighter's market-history and order-lookup read endpoints -- ``candles``, ``fundings``,
``funding-rates`` and ``accountOrders`` (reference notes section 3; shapes of
``http_candles.json``, ``http_fundings.json`` and ccxt's ``funding_rates_response``).

Candles are built from every trade the venue sees: the recording's public trades and the fills
of simulated accounts (sim time; one set of candles per resolution, the newest
:data:`MAX_CANDLES` kept). Fundings are the recording's ``market_stats`` funding rates, one per
hour (the last rate seen in that hour). Assumptions are listed in docs/venue-sim.md.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from aiohttp import web

from services.venue_sim.base import ServerBase
from services.venue_sim.httpio import error_response, query_int
from shared.venue import errors as E
from shared.venue.errors import VenueError
from shared.venue.matching import FillUpdate, PublicTrade, StatsChanged, Update

#: Lighter's candle resolutions and their length in ms (reference notes section 3)
RESOLUTIONS_MS = {"1m": 60_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000, "1h": 3_600_000,
                  "4h": 14_400_000, "12h": 43_200_000, "1d": 86_400_000, "1w": 604_800_000}
#: at most this many candles per call (Lighter docs) and kept per market and resolution
MAX_CANDLES = 500
#: Lighter's fundings resolutions (the SDK's ``CandlestickApi.fundings``) and at most per call
FUNDING_RESOLUTIONS_MS = {"1h": 3_600_000, "1d": 86_400_000}
MAX_FUNDINGS = 750
#: most client order indexes per ``accountOrders`` call (the SDK's parameter description)
MAX_CLIENT_ORDER_INDEXES = 20
_HOUR_MS = 3_600_000


class MarketReads(ServerBase):
    """``candles``, ``fundings``, ``funding-rates``, ``accountOrders`` and the history they read.

    State (set by :meth:`init_market_reads`): ``candles[market][resolution]`` a deque of
    ``[t_ms, o, h, l, c, v, V, i]`` lists (prices USD, v base units, V quote USD, i last trade
    id), ``funding_hist[market]`` a deque of ``(hour_start_ms, rate, mark_price)``.
    """

    candles: dict[int, dict[str, deque[list[Any]]]]
    funding_hist: dict[int, deque[tuple[int, float, float]]]

    def init_market_reads(self) -> None:
        """Create the candle and funding history (called by ``VenueServer.__init__``)."""
        self.candles = {mid: {r: deque(maxlen=MAX_CANDLES) for r in RESOLUTIONS_MS} for mid in self.markets}
        self.funding_hist = {mid: deque(maxlen=24 * 400) for mid in self.markets}

    def market_routes(self) -> dict[str, Any]:
        """``/api/v1/<name>`` -> GET handler of this part."""
        return {"candles": self.h_candles, "fundings": self.h_fundings, "funding-rates": self.h_funding_rates,
                "accountOrders": self.h_account_orders}

    # ---------------------------------------------------------------- history

    def publish(self, updates: list[Update]) -> None:
        """Record trades (candles) and funding rates, then publish as before."""
        for u in updates:
            t = type(u)
            if t is PublicTrade:
                m = self.markets[u.market_id]  # type: ignore[union-attr]
                self._candle_trade(u.market_id, u.ts_ns, m.int_to_price(u.price_ticks),  # type: ignore[union-attr]
                                   m.int_to_size(u.size_lots), u.trade_id)  # type: ignore[union-attr]
            elif t is FillUpdate:
                f = u.fill  # type: ignore[union-attr]
                self._candle_trade(f.market_id, f.ts_ns, f.price, f.size, f.trade_id)
            elif t is StatsChanged:
                self._funding_sample(u.market_id, u.ts_ns)  # type: ignore[union-attr]
        super().publish(updates)  # type: ignore[misc]

    def _candle_trade(self, mid: int, ts_ns: int, price: float, size: float, trade_id: int) -> None:
        t_ms = ts_ns // 1_000_000
        for res, length in RESOLUTIONS_MS.items():
            series = self.candles[mid][res]
            start = t_ms - t_ms % length
            last = series[-1] if series else None
            if last is None or start > last[0]:
                series.append([start, price, price, price, price, size, price * size, trade_id])
            elif start == last[0]:
                last[2], last[3], last[4] = max(last[2], price), min(last[3], price), price
                last[5] += size
                last[6] += price * size
                last[7] = trade_id
            # an older bucket cannot happen: the engine's time never goes back

    def _funding_sample(self, mid: int, ts_ns: int) -> None:
        st = self.engine.state[mid]
        hour = ts_ns // 1_000_000 // _HOUR_MS * _HOUR_MS
        hist = self.funding_hist[mid]
        row = (hour, st.funding_rate, st.mark_price)
        if hist and hist[-1][0] == hour:
            hist[-1] = row
        else:
            hist.append(row)

    # ---------------------------------------------------------------- endpoints

    def _market_id(self, request: web.Request) -> int:
        """The required ``market_id``. Raises VenueError 21602 (missing/unknown)."""
        raw = request.query.get("market_id", "")
        try:
            mid = int(raw)
        except ValueError:
            raise VenueError(E.INVALID_MARKET, f"market_id {raw!r}") from None
        if mid not in self.markets:
            raise VenueError(E.INVALID_MARKET, f"market {mid}")
        return mid

    @staticmethod
    def _window(request: web.Request, resolutions: dict[str, int]) -> tuple[str, int, int, int]:
        """``(resolution, start_ms, end_ms, count_back)`` of a candles/fundings request.

        Raises:
            VenueError: 21501 for a missing or unknown resolution, missing/non-integer
                timestamps or count_back, timestamps outside 0..5e12 or start > end, or a
                negative count_back.
        """
        res = request.query.get("resolution", "")
        if res not in resolutions:
            raise VenueError(E.INVALID_TX_INFO, f"resolution {res!r}; one of {', '.join(resolutions)}")
        start, end = query_int(request, "start_timestamp"), query_int(request, "end_timestamp")
        count_back = query_int(request, "count_back")
        if not (0 <= start <= 5_000_000_000_000 and 0 <= end <= 5_000_000_000_000) or start > end:
            raise VenueError(E.INVALID_TX_INFO, f"timestamps {start}..{end} (ms, 0..5e12, start <= end)")
        if count_back < 0:
            raise VenueError(E.INVALID_TX_INFO, f"count_back {count_back}")
        return res, start, end, count_back

    async def h_candles(self, request: web.Request) -> web.Response:
        """GET ``candles``: ``{code, r, c: [{t, o, h, l, c, v, V, i}]}``, oldest first, the last
        ``count_back`` (0 = up to 500; at most 500) candles with ``start <= t <= end`` (ms);
        ``set_timestamp_to_end=true`` reports ``t`` as the candle's end."""
        try:
            mid = self._market_id(request)
            res, start, end, count_back = self._window(request, RESOLUTIONS_MS)
        except VenueError as exc:
            return error_response(exc)
        m = self.markets[mid]
        n = min(count_back or MAX_CANDLES, MAX_CANDLES)
        rows = [c for c in self.candles[mid][res] if start <= c[0] <= end][-n:]
        shift = RESOLUTIONS_MS[res] if request.query.get("set_timestamp_to_end", "").lower() == "true" else 0
        pd, sd = m.price_decimals, m.size_decimals
        out = [{"t": c[0] + shift, "o": round(c[1], pd), "h": round(c[2], pd), "l": round(c[3], pd),
                "c": round(c[4], pd), "v": round(c[5], sd), "V": round(c[6], 6), "i": c[7]} for c in rows]
        return web.json_response({"code": 200, "r": res, "c": out})

    async def h_fundings(self, request: web.Request) -> web.Response:
        """GET ``fundings``: ``{code, resolution, fundings: [{timestamp (s), value, rate,
        direction}]}``, oldest first from ``start_timestamp``, at most ``count_back`` (0 = all,
        at most 750). ``rate`` is the recorded rate's magnitude, ``direction`` ``long`` when it
        is >= 0 (longs pay) else ``short``, ``value`` = mark price x rate / 100 (USD per base
        unit; the relation of Lighter's sample)."""
        try:
            mid = self._market_id(request)
            res, start, end, count_back = self._window(request, FUNDING_RESOLUTIONS_MS)
        except VenueError as exc:
            return error_response(exc)
        length = FUNDING_RESOLUTIONS_MS[res]
        buckets: dict[int, tuple[float, float]] = {}
        for hour, rate, mark in self.funding_hist[mid]:
            t = hour - hour % length
            if start <= t <= end:
                buckets[t] = (rate, mark)  # the last sample of the bucket
        n = min(count_back or MAX_FUNDINGS, MAX_FUNDINGS)
        out = [{"timestamp": t // 1000, "value": f"{abs(mark * rate) / 100:.8f}", "rate": f"{abs(rate):.6f}",
                "direction": "long" if rate >= 0 else "short"} for t, (rate, mark) in sorted(buckets.items())[:n]]
        return web.json_response({"code": 200, "resolution": res, "fundings": out})

    async def h_funding_rates(self, _request: web.Request) -> web.Response:
        """GET ``funding-rates``: ``{code, funding_rates: [{market_id, exchange, symbol, rate}]}``:
        the last recorded funding rate of every market, exchange ``lighter`` (the other
        exchanges Lighter lists are not recorded)."""
        rates = [{"market_id": mid, "exchange": "lighter", "symbol": m.symbol,
                  "rate": self.engine.state[mid].funding_rate} for mid, m in sorted(self.markets.items())]
        return web.json_response({"code": 200, "funding_rates": rates})

    async def h_account_orders(self, request: web.Request) -> web.Response:
        """GET ``accountOrders`` (auth): the account's orders whose client order index is in
        ``client_order_indexes`` (comma-separated, 1..20): active ones oldest first, then
        finished ones newest first; ``{code, orders, next_cursor}``. ``account_index`` defaults
        to the auth token's account (``Authorization`` header or ``auth`` parameter).

        Errors (HTTP 400): 21501 bad or too many indexes, or no account; whatever
        ``authorize_account`` raises for the token."""
        token = request.headers.get("Authorization") or request.query.get("auth")
        try:
            raw = request.query.get("client_order_indexes", "")
            try:
                cois = {int(x) for x in raw.split(",")} if raw else set()
            except ValueError:
                raise VenueError(E.INVALID_TX_INFO, "client_order_indexes: comma-separated integers") from None
            if not 1 <= len(cois) <= MAX_CLIENT_ORDER_INDEXES:
                raise VenueError(E.INVALID_TX_INFO, f"1..{MAX_CLIENT_ORDER_INDEXES} client_order_indexes")
            acct = query_int(request, "account_index", _token_account(token))
            self.authorize_account(token, acct)  # type: ignore[attr-defined]
        except VenueError as exc:
            return error_response(exc)
        found = [o for o in self.engine.active_orders(acct) if o.client_order_index in cois]
        found += [o for o in self.engine.inactive_orders(acct) if o.client_order_index in cois]
        return web.json_response({"code": 200, "orders": [self.order_json(o) for o in found],  # type: ignore[attr-defined]
                                  "next_cursor": ""})


def _token_account(token: str | None) -> int | None:
    """The account field of an auth token ``"<expiry>:<account>:<key>:<sig>"`` (None if absent
    or malformed; the token itself is checked by ``authorize_account``)."""
    parts = (token or "").split(":")
    if len(parts) == 4 and parts[1].isdigit():
        return int(parts[1])
    return None
