"""Reads are metered as Lighter does (reference notes §6.8): per client IP over a rolling minute,
Standard 60 requests unweighted, Premium 24,000 weighted by endpoint; a read over the limit is
answered HTTP 429 ``{"code": 23000}`` without being run; venue-sim's own endpoints are free; the
tx bucket (per account) is separate."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient, TestServer
from venue_tx import order, register, signed

from services.venue_sim.config import VenueSimConfig
from services.venue_sim.ratelimit import RateLimited, RequestMeter
from services.venue_sim.server import VenueServer
from shared.markets import MarketInfo
from shared.venue.matching import MatchingEngine

BTC = MarketInfo(symbol="BTC", market_id=1, size_decimals=5, price_decimals=1, min_base_amount=0.0002,
                 min_quote_amount=10)
T0 = 1_757_894_400_000_000_000
S = 1_000_000_000
ACCT, KEY = 1001, 4
MS = 1_000_000
GTT_MS = 28 * 24 * 3600 * 1000


def tx_info(nonce: int, coi: int, now_ns: int) -> str:
    """A signed post-only bid (every signed field; expires 28 days after the venue time ``now_ns``)."""
    return signed(14, order(AccountIndex=ACCT, ApiKeyIndex=KEY, Nonce=nonce, MarketIndex=1, ClientOrderIndex=coi,
                            BaseAmount=1000, Price=500000, IsAsk=0, Type=0, TimeInForce=2, ReduceOnly=0,
                            TriggerPrice=0, OrderExpiry=now_ns // MS + GTT_MS, ExpiredAt=0))


def test_premium_read_weights_and_the_standard_tier_is_unweighted():
    prem = VenueSimConfig(tier="premium").meter()
    assert prem.weighted_reads and prem.limit == 24_000
    assert [prem.read_weight(e) for e in ("nextNonce", "apikeys", "recentTrades", "trades",
                                          "accountInactiveOrders", "account", "orderBookDetails")] == \
        [6, 150, 600, 600, 100, 300, 300]
    for _ in range(40):  # 40 x 600 = 24,000
        prem.admit_read("10.0.0.1", "recentTrades", T0)
    with pytest.raises(RateLimited):
        prem.admit_read("10.0.0.1", "nextNonce", T0 + S)
    prem.admit_read("10.0.0.2", "recentTrades", T0 + S)  # another IP has its own bucket
    std = VenueSimConfig().meter()
    assert not std.weighted_reads and std.read_weight("recentTrades") == 1
    assert prem.read_status()["10.0.0.1"] == {"requests": 41, "weight_total": 24_000,
                                              "max_requests_per_min": 24_000, "rate_limited": 1}


async def test_sixty_first_read_in_a_minute_is_refused_with_429():
    now = [T0]
    srv = VenueServer(MatchingEngine([BTC]), [BTC], lambda: now[0], meter=RequestMeter())
    srv.verify_signatures = True  # strict, as the runner sets it from the config
    register(srv)
    async with TestClient(TestServer(srv.app())) as client:
        for k in range(60):
            now[0] = T0 + k * S // 2
            path = ("/api/v1/orderBooks", "/api/v1/currentHeight", "/api/v1/nextNonce?account_index=1001&api_key_index=4")[k % 3]
            r = await client.get(path)
            assert r.status == 200, (k, await r.text())
        r = await client.get("/api/v1/orderBooks")
        assert r.status == 429 and await r.json() == {"code": 23000, "message": "too many requests"}
        for free in ("/sim/status", "/health", "/"):  # venue-sim's own endpoints and GET / are not metered
            assert (await client.get(free)).status == 200
        # the tx bucket is the account's, not the IP's
        r = await client.post("/api/v1/sendTx", data={"tx_type": "14", "tx_info": tx_info(0, 1, now[0])})
        assert r.status == 200
        now[0] = T0 + 60 * S  # the first read (at T0) has left the window
        assert (await client.get("/api/v1/orderBooks")).status == 200
        st = srv.status()
        ip = st["reads_by_ip"]["127.0.0.1"]
        assert ip["requests"] == 62 and ip["rate_limited"] == 1 and ip["max_requests_per_min"] == 60
        assert st["accounts"][str(ACCT)]["requests"] == 1


async def test_reads_are_only_counted_with_rate_limit_off():
    srv = VenueServer(MatchingEngine([BTC]), [BTC], lambda: T0, meter=RequestMeter(enabled=False))
    async with TestClient(TestServer(srv.app())) as client:
        for _ in range(70):
            assert (await client.get("/api/v1/currentHeight")).status == 200
        assert srv.status()["reads_by_ip"]["127.0.0.1"]["max_requests_per_min"] == 70
