"""The copy-trade API over a fake venue: requests answered at once with a request_id, processed
in order per account into copytrade targets; idempotency; auth; 404/422/400/503."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from copytrade_kit import FakeVenue, make_trader

from services.copytrade.app import build_app
from shared.events import StopLossIntent, TargetPosition


def targets_of(out):  # noqa: ANN001, ANN201
    return [(a, ev) for a, ev in out if isinstance(ev, TargetPosition)]


def _client(app) -> httpx.AsyncClient:  # noqa: ANN001
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def test_trades_are_answered_at_once_and_become_targets_in_order() -> None:
    trader, out = make_trader()
    async with _client(build_app(trader, None)) as c:
        r1 = await c.post("/api/trade", json={"account_index": 1001, "symbol": "btc", "trade_type": "long",
                                              "reference_position_ratio": 0.5})
        r2 = await c.post("/api/trade/adjust", json={"account_index": 1001, "market_id": 1,
                                                     "adjustment_type": "decrease", "percentage": 0.5})
        r3 = await c.post("/api/trade", json={"account_index": 1001, "symbol": "BTC", "trade_type": "close"})
        assert [r.status_code for r in (r1, r2, r3)] == [200, 200, 200]
        body = r1.json()
        assert body["status"] == "success" and body["request_id"] and 1 <= body["client_order_index"] < 2**48
        await trader.drain()
        st = (await c.get(f"/api/trade/{body['request_id']}")).json()
        assert st["status"] == "done" and st["target"] == pytest.approx(0.04)
    targets = [(a, ev.strategy, ev.market, ev.target) for a, ev in targets_of(out)]
    assert targets == [(1001, "copytrade", "BTC", pytest.approx(0.04)), (1001, "copytrade", "BTC", pytest.approx(0.02)),
                       (1001, "copytrade", "BTC", 0.0)]
    assert out[0][1].max_slippage_bps == 100.0 and out[0][1].reference_price == 100_000.0
    # the stop-loss: placed for the whole position after opening, kept on a decrease, cancelled on close
    assert [type(ev).__name__ for _, ev in out] == ["TargetPosition", "StopLossIntent", "TargetPosition",
                                                     "TargetPosition", "StopLossIntent"]
    sl, cancel = out[1][1], out[4][1]
    assert isinstance(sl, StopLossIntent) and isinstance(cancel, StopLossIntent)
    assert (sl.strategy, sl.side, sl.size, sl.max_slippage_bps) == ("copytrade", "sell", pytest.approx(0.04), 100.0)
    assert sl.trigger_price == pytest.approx(100_000 * (1 - 0.3333 * 0.05), abs=0.1)
    assert cancel.size == 0.0


async def test_a_repeated_request_id_is_never_traded_twice() -> None:
    trader, out = make_trader()
    body = {"account_index": 1001, "symbol": "ETH", "trade_type": "short", "reference_position_ratio": 0.1,
            "request_id": "sig-42"}
    async with _client(build_app(trader, None)) as c:
        a = (await c.post("/api/trade", json=body)).json()
        await trader.drain()
        b = (await c.post("/api/trade", json=body)).json()
        await trader.drain()
    assert a["request_id"] == b["request_id"] == "sig-42" and b["duplicate"] and not a["duplicate"]
    assert a["client_order_index"] == b["client_order_index"]
    assert len(targets_of(out)) == 1 and out[0][1].target == pytest.approx(-0.2)  # 800 USD / 4000


async def test_accounts_have_their_own_queues_and_an_outage_is_retried() -> None:
    venue = FakeVenue()
    trader, out = make_trader(venue)
    app = build_app(trader, None)
    async with _client(app) as c:
        for acct in (1001, 1002):
            r = await c.post("/api/trade", json={"account_index": acct, "symbol": "BTC", "trade_type": "long",
                                                 "reference_position_ratio": 0.25})
            assert r.status_code == 200
        await trader.drain()
        venue.down = 2  # the next two venue reads fail; the worker retries
        r = await c.post("/api/trade", json={"account_index": 1001, "symbol": "BTC", "trade_type": "long",
                                             "reference_position_ratio": 0.25})
        await trader.drain()
    assert sorted((a, ev.target) for a, ev in targets_of(out)) == [(1001, pytest.approx(0.02)), (1001, pytest.approx(0.04)),
                                                      (1002, pytest.approx(0.02))]
    assert trader.requests[r.json()["request_id"]].attempts >= 2


async def test_the_venue_down_for_good_fails_the_request_without_an_intent() -> None:
    venue = FakeVenue()
    trader, out = make_trader(venue, max_retries=1)
    await trader.markets()
    async with _client(build_app(trader, None)) as c:
        venue.down = 100
        rid = (await c.post("/api/trade", json={"account_index": 1001, "symbol": "BTC", "trade_type": "long",
                                                "reference_position_ratio": 0.25})).json()["request_id"]
        await trader.drain()
        assert (await c.get(f"/api/trade/{rid}")).json()["status"] == "failed"
        assert (await c.get("/api/account/1001")).status_code == 503
    assert out == []


async def test_account_view_lists_positions_and_the_copytrade_stop_loss() -> None:
    trader, _ = make_trader()
    async with _client(build_app(trader, None)) as c:
        await c.post("/api/trade", json={"account_index": 1001, "symbol": "BTC", "trade_type": "long",
                                         "reference_position_ratio": 0.5})
        await trader.drain()
        acct = (await c.get("/api/account/1001")).json()
    assert acct["total_asset_value"] == "10000.0" and acct["positions"][0]["symbol"] == "BTC"
    (stop,) = acct["stop_loss_orders"]
    assert stop["reduce_only"] and stop["side"] == "sell" and float(stop["trigger_price"]) < 100_000
    assert float(stop["base_amount"]) == pytest.approx(0.04)


@pytest.mark.parametrize(("method", "path", "body", "code", "needle"), [
    ("post", "/api/trade", {"account_index": 7, "symbol": "BTC", "trade_type": "long"}, 404, "not configured"),
    ("get", "/api/account/7", None, 404, "not configured"),
    ("post", "/api/trade", {"account_index": 1001, "symbol": "DOGE", "trade_type": "long"}, 404, "unknown symbol"),
    ("post", "/api/trade", {"account_index": 1001, "trade_type": "long"}, 422, "market_id or symbol"),
    ("post", "/api/trade", {"account_index": 1001, "symbol": "BTC", "trade_type": "sideways"}, 422, "trade_type"),
    ("post", "/api/trade", {"account_index": 1001, "symbol": "BTC", "trade_type": "long",
                            "reference_position_ratio": 2}, 422, "reference_position_ratio"),
    ("post", "/api/trade/adjust", {"account_index": 1001, "symbol": "BTC", "adjustment_type": "increase",
                                   "percentage": 0}, 422, "percentage"),
    ("get", "/api/trade/nope", None, 404, "unknown request_id"),
])
async def test_bad_requests_get_a_clear_4xx(method: str, path: str, body: dict | None, code: int,
                                             needle: str) -> None:
    trader, out = make_trader()
    async with _client(build_app(trader, None)) as c:
        r = await (c.post(path, json=body) if method == "post" else c.get(path))
    assert r.status_code == code and needle in r.text
    assert out == []


async def test_api_key_is_required_when_configured_and_health_stays_open() -> None:
    trader, _ = make_trader()
    body = {"account_index": 1001, "symbol": "BTC", "trade_type": "close"}
    async with _client(build_app(trader, "s3cret")) as c:
        assert (await c.post("/api/trade", json=body)).status_code == 401
        bad = await c.post("/api/trade", json=body, headers={"X-API-Key": "nope"})
        assert bad.status_code == 401 and "s3cret" not in bad.text
        assert (await c.post("/api/trade", json=body, headers={"X-API-Key": "s3cret"})).status_code == 200
        assert (await c.get("/health")).json()["status"] == "ok"
        assert "lighter_stack_copytrade_requests_total" in (await c.get("/metrics")).text
    await asyncio.sleep(0)
    await trader.drain()
