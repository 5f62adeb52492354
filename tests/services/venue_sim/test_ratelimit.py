"""venue-sim request accounting and Lighter's rate limit on the tx path (REST and WS): 60
requests per rolling minute of sim time for a Standard account, 23000 before any tx is
processed (no nonce consumed), batches of at most 15 txs, per-account counts on /sim/status."""

from __future__ import annotations

import json

import pytest
from aiohttp.test_utils import TestClient, TestServer

from services.venue_sim.config import VenueSimConfig
from services.venue_sim.ratelimit import RateLimited, RequestMeter
from services.venue_sim.server import VenueServer
from shared.events import Bbo
from shared.markets import MarketInfo
from shared.venue.matching import CreateOrder, MatchingEngine

BTC = MarketInfo(symbol="BTC", market_id=1, size_decimals=5, price_decimals=1, min_base_amount=0.0002,
                 min_quote_amount=10)
T0 = 1_757_894_400_000_000_000
S = 1_000_000_000
ACCT, KEY = 1001, 4


def info(nonce: int, coi: int, acct: int = ACCT) -> str:
    """A post-only bid far below the market (rests, never fills), 28 days of OrderExpiry after
    T0 (the venue time of these tests)."""
    return json.dumps({"AccountIndex": acct, "ApiKeyIndex": KEY, "Nonce": nonce, "MarketIndex": 1,
                       "ClientOrderIndex": coi, "BaseAmount": 100, "Price": 500000, "IsAsk": 0, "Type": 0,
                       "TimeInForce": 2, "ReduceOnly": 0, "TriggerPrice": 0,
                       "OrderExpiry": T0 // 1_000_000 + 28 * 86_400_000, "ExpiredAt": 0})


def cancel_all(nonce: int, acct: int = ACCT) -> str:
    return json.dumps({"AccountIndex": acct, "ApiKeyIndex": KEY, "Nonce": nonce, "TimeInForce": 0, "Time": 0})


def make_server(meter: RequestMeter | None = None) -> tuple[VenueServer, list[int]]:
    now = [T0]
    return VenueServer(MatchingEngine([BTC]), [BTC], lambda: now[0], meter=meter), now


def test_meter_window_is_the_rolling_minute_of_sim_time():
    m = RequestMeter(limit=3, weight=1)
    for k in range(3):
        m.admit(5, T0 + k * S)
    with pytest.raises(RateLimited) as exc:
        m.admit(5, T0 + 59 * S)  # T0 is still inside (T0+59s-60s, T0+59s]
    assert exc.value.to_json() == {"code": 23000, "message": "too many requests"}
    m.admit(5, T0 + 60 * S)  # the request of T0 left the window
    m.admit(6, T0 + 60 * S)  # another account has its own bucket
    st = m.status()
    assert st["5"] == {"requests": 5, "txs": 4, "weight_total": 4, "max_requests_per_min": 3, "rate_limited": 1}
    assert st["6"]["requests"] == 1 and st["6"]["max_requests_per_min"] == 1


def test_meter_premium_weights_and_counting_only():
    m = RequestMeter(limit=12, weight=6)
    m.admit(1, T0)
    m.admit(1, T0 + S)
    with pytest.raises(RateLimited):
        m.admit(1, T0 + 2 * S)
    off = RequestMeter(limit=2, weight=1, enabled=False)
    for k in range(5):
        off.admit(1, T0 + k)
    assert off.status()["1"]["max_requests_per_min"] == 5 and off.status()["1"]["rate_limited"] == 0


def test_config_meter_follows_the_tier_unless_overridden():
    std = VenueSimConfig().meter()
    assert (std.limit, std.weight, std.enabled) == (60, 1, True)
    prem = VenueSimConfig(tier="premium").meter()
    assert (prem.limit, prem.weight) == (24_000, 6)
    own = VenueSimConfig(rate_limit=False, rate_limit_per_min=10, request_weight=2).meter()
    assert (own.limit, own.weight, own.enabled) == (10, 2, False)


def test_sixty_first_request_in_a_minute_is_refused_before_its_tx_is_processed():
    srv, now = make_server()
    for n in range(60):
        now[0] = T0 + n * 500_000_000  # 60 requests in 29.5 s of sim time
        srv.send_tx(14, info(n, n + 1))
    now[0] = T0 + 40 * S
    with pytest.raises(RateLimited):
        srv.send_tx(14, info(60, 61))
    assert srv.nonces[(ACCT, KEY)] == 60  # nothing consumed
    assert len(srv.engine.active_orders(ACCT)) + srv.engine.pending_count() == 60
    now[0] = T0 + 60 * S + 1  # the first request (at T0) has left the window
    srv.send_tx(14, info(60, 61))
    acct = srv.status()["accounts"][str(ACCT)]
    assert acct["requests"] == 62 and acct["rate_limited"] == 1 and acct["max_requests_per_min"] == 60
    assert acct["txs"] == 61 and acct["self_trade_fills"] == 0 and acct["self_trade_cancels"] == 0


def test_a_batch_is_one_request_and_more_than_15_txs_are_refused():
    srv, now = make_server(RequestMeter(limit=2, weight=1))
    srv.send_tx_batch(json.dumps([14] * 15), json.dumps([info(n, n + 1) for n in range(15)]))
    with pytest.raises(Exception) as exc:
        srv.send_tx_batch(json.dumps([14] * 16), json.dumps([info(15 + n, 16 + n) for n in range(16)]))
    assert exc.value.code == 21501 and "at most 15" in exc.value.message
    srv.send_tx_batch(json.dumps([14, 16]), json.dumps([info(15, 16), cancel_all(16)]))
    with pytest.raises(RateLimited):  # the third request within the minute
        srv.send_tx_batch(json.dumps([14]), json.dumps([info(17, 18)]))
    assert srv.nonces[(ACCT, KEY)] == 17
    st = srv.status()["accounts"][str(ACCT)]
    assert (st["requests"], st["txs"], st["max_requests_per_min"], st["rate_limited"]) == (3, 17, 2, 1)


def test_disabled_rate_limit_only_counts():
    srv, now = make_server(RequestMeter(limit=60, weight=1, enabled=False))
    for n in range(70):
        srv.send_tx(14, info(n, n + 1))
    st = srv.status()
    assert st["rate_limit"] == {"enabled": False, "limit_per_min": 60, "request_weight": 1}
    assert st["accounts"][str(ACCT)]["max_requests_per_min"] == 70
    assert st["accounts"][str(ACCT)]["rate_limited"] == 0


def test_status_counts_fills_and_self_trade_cancels_per_account():
    srv, _ = make_server()
    eng, B = srv.engine, 2002
    ms = 1_000_000

    def order(acct, coi, px, lots, is_ask, tif):
        return CreateOrder(account=acct, market_id=1, client_order_index=coi, base_amount=lots, price=px,
                           is_ask=is_ask, time_in_force=tif)

    eng.on_market_data(Bbo(id="b", ts_event=T0, market="BTC", bid_px=99990.0, bid_sz=0.5, ask_px=100010.0,
                           ask_sz=0.05))
    eng.submit(order(B, 1, 1000050, 1000, True, "post_only"), T0)  # B's ask inside the spread
    eng.advance(T0 + 200 * ms)
    eng.submit(order(ACCT, 2, 1000100, 1000, True, "gtt"), T0 + 200 * ms)  # our ask at the touch
    eng.advance(T0 + 400 * ms)
    eng.submit(order(ACCT, 3, 1000100, 20000, False, "ioc"), T0 + 400 * ms)  # we buy through both
    eng.advance(T0 + 700 * ms)
    accts = srv.status()["accounts"]
    ours, theirs = accts[str(ACCT)], accts[str(B)]
    assert ours["fills"] == len(eng.fills) >= 2 and theirs["fills"] == 1
    assert ours["self_trade_cancels"] == 1 and theirs["self_trade_cancels"] == 0  # our resting ask
    assert ours["self_trade_fills"] == theirs["self_trade_fills"] == 0
    assert srv.status()["self_trade_cancels"] == 1


async def test_rest_and_ws_share_the_bucket_and_answer_23000():
    srv, now = make_server(RequestMeter(limit=2, weight=1))
    async with TestClient(TestServer(srv.app())) as client:
        r = await client.post("/api/v1/sendTx", data={"tx_type": "14", "tx_info": info(0, 1)})
        assert r.status == 200
        ws = await client.ws_connect("/stream")
        assert (await ws.receive_json())["type"] == "connected"
        await ws.send_json({"type": "jsonapi/sendtx", "data": {"id": "a", "tx_type": 14, "tx_info": info(1, 2)}})
        assert (await ws.receive_json())["code"] == 200
        await ws.send_json({"type": "jsonapi/sendtxbatch",
                            "data": {"id": "b", "tx_types": "[14]", "tx_infos": json.dumps([info(2, 3)])}})
        msg = await ws.receive_json()
        assert (msg["id"], msg["code"], msg["message"]) == ("b", 23000, "too many requests")
        r = await client.post("/api/v1/sendTxBatch", data={"tx_types": "[14]", "tx_infos": json.dumps([info(2, 3)])})
        assert r.status == 429 and (await r.json()) == {"code": 23000, "message": "too many requests"}
        r = await client.get("/api/v1/nextNonce", params={"account_index": ACCT, "api_key_index": KEY})
        assert (await r.json())["nonce"] == 2
        st = await (await client.get("/sim/status")).json()
        assert st["accounts"][str(ACCT)]["requests"] == 4 and st["accounts"][str(ACCT)]["rate_limited"] == 2
        await ws.close()
