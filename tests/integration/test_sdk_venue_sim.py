"""venue-sim end to end: the official lighter-sdk SignerClient and a websockets client against a
venue-sim served on a free loopback port, replaying a small recording written in tmp_path."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import lighter
import pytest
import websockets
from aiohttp import web
from sdk_setup import register_sdk_key

from services.venue_sim.config import VenueSimConfig
from services.venue_sim.runner import build
from shared.events import Bbo, MarketStats, Trade
from shared.markets import MarketInfo
from shared.recording import RecordingHeader, write_recording

BTC = MarketInfo(symbol="BTC", market_id=1, size_decimals=5, price_decimals=1, min_base_amount=0.0002,
                 min_quote_amount=10)
ETH = MarketInfo(symbol="ETH", market_id=0, size_decimals=4, price_decimals=2, min_base_amount=0.005,
                 min_quote_amount=10)
T0 = 1_757_894_400_000_000_000  # 2025-09-15T00:00:00Z
MS = 1_000_000
ACCT, KEY = 1001, 4


def _recording(path, n=40):
    evs = [Bbo(id="e0", ts_event=T0, market="ETH", bid_px=4500.0, bid_sz=2.0, ask_px=4500.01, ask_sz=1.5)]
    for i in range(n):
        ts = T0 + (i + 1) * 100 * MS
        evs.append(Bbo(id=f"b{i}", ts_event=ts, market="BTC", bid_px=115000.0 + i * 0.1, bid_sz=0.5,
                       ask_px=115000.5 + i * 0.1, ask_sz=0.25 + i * 0.01))
        if i % 10 == 5:
            evs.append(Trade(id=f"t{i}", ts_event=ts, market="BTC", trade_id=str(1000 + i), price=115000.0 + i * 0.1,
                             size=0.01, taker_side="sell"))
            evs.append(MarketStats(id=f"s{i}", ts_event=ts, market="BTC", mark_price=115000.2, index_price=115000.3))
    write_recording(path, RecordingHeader(markets=[ETH, BTC], source="test"), evs)
    return path


async def _serve(tmp_path, **kw):
    cfg = VenueSimConfig(recording=str(_recording(tmp_path / "rec.jsonl.gz")), fills_file=str(tmp_path / "fills.jsonl"),
                         **kw)
    server, replay, app = build(cfg, ACCT)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    task = asyncio.create_task(replay.run())

    async def close():
        replay.stop()
        await asyncio.wait_for(task, 5)
        await runner.cleanup()
        server.close()

    return server, replay, port, close


async def _wait_for(cond, timeout=5.0):
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while loop.time() < end:
        if await cond():
            return True
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


async def _recv(ws, pred, timeout=5.0):
    """Next message matching ``pred`` (others are skipped)."""
    async with asyncio.timeout(timeout):
        while True:
            msg = json.loads(await ws.recv())
            if pred(msg):
                return msg


@pytest.fixture
async def finished_venue(tmp_path):
    """A venue whose (short) recording has been replayed: txs execute at once."""
    server, replay, port, close = await _serve(tmp_path, speed=0)
    await _wait_for(lambda: _async(replay.state == "finished"))
    yield server, f"http://127.0.0.1:{port}"
    await close()


async def _async(v):
    return v


def _client(url: str) -> tuple[lighter.SignerClient, str]:
    """A SignerClient with a fresh SDK API key for (ACCT, KEY), and that key's public key (not
    registered yet: :func:`register_sdk_key`)."""
    priv, pub, err = lighter.create_api_key()
    assert err is None, err
    return lighter.SignerClient(url=url, account_index=ACCT, api_private_keys={KEY: priv}, chain_id=304), pub


def _auth(client: lighter.SignerClient) -> str:
    """An auth token of (ACCT, KEY) made by the SDK, for account reads and auth channels."""
    token, err = client.create_auth_token_with_expiry(api_key_index=KEY)
    assert err is None, err
    return token


def _expiry(server) -> int:
    """OrderExpiry 28 days after the venue's time (ms): Lighter takes now + 5 min .. 30 days,
    and the SDK's default (-1) would take the wall clock's now, which is not the venue's when
    it replays an old recording."""
    return server.clock() // 1_000_000 + 28 * 86_400_000


async def test_signer_client_create_cancel_cancel_all_and_errors(finished_venue):
    server, url = finished_venue
    client, pub = _client(url)
    http = aiohttp.ClientSession()
    try:
        nonce = (await client.tx_api.next_nonce(account_index=ACCT, api_key_index=KEY)).nonce
        assert nonce == 0
        # venue-sim verifies signatures: register the SDK's key (ChangePubKey, nonce 0) first
        nonce = await register_sdk_key(client, pub, KEY)
        assert (await client.tx_api.next_nonce(account_index=ACCT, api_key_index=KEY)).nonce == nonce == 1
        auth = {"Authorization": _auth(client)}
        # the SDK's own parsers accept the market endpoints
        details = await client.order_api.order_book_details(market_id=1)
        assert details.order_book_details[0].price_decimals == 1
        ob = await client.order_api.order_book_orders(1, 10)
        best_ask = int(ob.asks[0].price.replace(".", ""))
        assert best_ask == BTC.price_to_int(115000.5 + 39 * 0.1)
        assert await client.get_best_price(1, is_ask=True) == BTC.price_to_int(115000.0 + 39 * 0.1)

        # post-only bid below the touch: rests
        _, resp, err = await client.create_order(market_index=1, client_order_index=11, base_amount=100,
                                                 price=1_140_000, is_ask=False, order_type=0, time_in_force=2,
                                                 order_expiry=_expiry(server), nonce=nonce, api_key_index=KEY)
        assert err is None and resp.code == 200 and len(resp.tx_hash) == 80

        async def active():
            async with http.get(f"{url}/api/v1/accountActiveOrders",
                                params={"account_index": ACCT, "market_id": 1}, headers=auth) as r:
                return (await r.json())["orders"]

        await _wait_for(lambda: _has(active(), 1))
        (o,) = await active()
        assert o["client_order_index"] == 11 and o["status"] == "open" and o["price"] == "114000.0"
        assert lighter.Order.from_dict(o).time_in_force == "post-only"

        _, resp, err = await client.cancel_order(market_index=1, order_index=11, nonce=nonce + 1, api_key_index=KEY)
        assert err is None and resp.code == 200
        await _wait_for(lambda: _has(active(), 0))
        async with http.get(f"{url}/api/v1/accountInactiveOrders", params={"account_index": ACCT, "limit": 10},
                            headers=auth) as r:
            assert (await r.json())["orders"][0]["status"] == "canceled"

        _, resp, err = await client.cancel_all_orders(time_in_force=0, timestamp_ms=0, nonce=nonce + 2,
                                                      api_key_index=KEY)
        assert err is None and resp.code == 200

        # stale nonce -> 21104
        _, resp, err = await client.create_order(market_index=1, client_order_index=12, base_amount=100,
                                                 price=1_140_000, is_ask=False, order_type=0, time_in_force=2,
                                                 order_expiry=_expiry(server), nonce=nonce, api_key_index=KEY)
        assert resp is None and "21104" in err and "invalid nonce" in err
        # too small -> 21706 (0.00001 BTC < min 0.0002)
        _, resp, err = await client.create_order(market_index=1, client_order_index=13, base_amount=1,
                                                 price=1_140_000, is_ask=False, order_type=0, time_in_force=2,
                                                 order_expiry=_expiry(server), nonce=nonce + 3, api_key_index=KEY)
        assert resp is None and "21706" in err
        # rejected txs do not use up the nonce
        assert (await client.tx_api.next_nonce(account_index=ACCT, api_key_index=KEY)).nonce == nonce + 3

        async with http.get(f"{url}/api/v1/account", params={"by": "index", "value": ACCT}) as r:
            acct = lighter.DetailedAccounts.from_dict(await r.json())
        assert acct.accounts[0].collateral == "100000.000000"
    finally:
        await http.close()
        await client.close()


async def _has(coro, n):
    return len(await coro) == n


async def test_ws_fill_sends_trade_before_order_update(finished_venue):
    server, url = finished_venue
    ws_url = url.replace("http", "ws") + "/stream"
    client, pub = _client(url)
    try:
        nonce = await register_sdk_key(client, pub, KEY)  # venue-sim verifies signatures and auth tokens
        auth = _auth(client)
        async with websockets.connect(ws_url) as ws:
            assert json.loads(await ws.recv())["type"] == "connected"
            for ch in (f"account_all_trades/{ACCT}", f"account_all_orders/{ACCT}", f"account_all_positions/{ACCT}"):
                await ws.send(json.dumps({"type": "subscribe", "channel": ch, "auth": auth}))
                snap = await _recv(ws, lambda m: m["type"].startswith("subscribed/"))
                assert snap["channel"] == ch.replace("/", ":")
            # IOC buy 0.3 BTC through the touch: the recorded ask has 0.64 BTC displayed
            _, resp, err = await client.create_order(market_index=1, client_order_index=21, base_amount=30_000,
                                                     price=1_151_000, is_ask=False, order_type=1, time_in_force=0,
                                                     order_expiry=0, nonce=nonce, api_key_index=KEY)
            assert err is None, err
            seen = []
            while len(seen) < 3:
                m = await _recv(ws, lambda m: m["type"].startswith("update/"))
                seen.append(m)
            assert [m["type"] for m in seen] == ["update/account_all_trades", "update/account_all_positions",
                                                 "update/account_all_orders"]
            (t,) = seen[0]["trades"]["1"]
            assert t["size"] == "0.30000" and t["bid_account_id"] == ACCT and t["is_maker_ask"] is True
            assert t["bid_client_id"] == 21 and t["price"] == "115004.4"
            assert seen[1]["positions"]["1"]["position"] == "0.30000" and seen[1]["positions"]["1"]["sign"] == 1
            (o,) = seen[2]["orders"]["1"]
            assert o["status"] == "filled" and o["type"] == "market" and o["time_in_force"] == "immediate-or-cancel"
        async with aiohttp.ClientSession() as http, http.get(f"{url}/sim/fills") as r:
            fills = await r.json()
        assert fills[0]["taker_account"] == ACCT and fills[0]["maker_account"] == 0
        assert fills[0]["taker_client_order_index"] == 21
    finally:
        await client.close()


async def test_ws_order_book_snapshot_then_chained_deltas_and_control(tmp_path):
    server, replay, port, close = await _serve(tmp_path, speed=20, autostart=False)
    try:
        async with websockets.connect(f"ws://127.0.0.1:{port}/stream") as ws:
            first = json.loads(await ws.recv())
            assert first["type"] == "connected" and first["session_id"]
            await ws.send(json.dumps({"type": "ping"}))
            assert json.loads(await ws.recv()) == {"type": "pong"}
            await ws.send(json.dumps({"type": "subscribe", "channel": "order_book/1"}))
            snap = json.loads(await ws.recv())
            assert snap["type"] == "subscribed/order_book" and snap["channel"] == "order_book:1"
            assert snap["order_book"]["begin_nonce"] == 0
            prev = snap["order_book"]["nonce"]
            await ws.send(json.dumps({"type": "subscribe", "channel": "order_book/1"}))
            assert json.loads(await ws.recv())["code"] == 30003
            await ws.send(json.dumps({"type": "subscribe", "channel": "order_book/77"}))
            assert json.loads(await ws.recv())["code"] == 30005
            assert replay.state == "waiting"
            async with aiohttp.ClientSession() as http:
                async with http.post(f"http://127.0.0.1:{port}/sim/start") as r:
                    assert r.status == 200
                for _ in range(3):
                    d = await _recv(ws, lambda m: m["type"] == "update/order_book")
                    ob = d["order_book"]
                    assert ob["begin_nonce"] == prev and ob["nonce"] > prev
                    assert d["timestamp"] >= T0 // MS  # sim (recording) time
                    for lvl in ob["asks"] + ob["bids"]:
                        assert len(lvl["price"].split(".")[1]) == 1 and len(lvl["size"].split(".")[1]) == 5
                    prev = ob["nonce"]
                await ws.send(json.dumps({"type": "unsubscribe", "channel": "order_book/1"}))
                await _recv(ws, lambda m: m["type"] == "unsubscribed")
                async with http.get(f"http://127.0.0.1:{port}/sim/status") as r:
                    st = await r.json()
                assert st["state"] in ("running", "finished") and st["events_replayed"] > 0
                assert "one level per side" in st["depth_assumption"] or "top-of-book" in st["depth_assumption"]
                async with http.get(f"http://127.0.0.1:{port}/metrics") as r:
                    assert "lighter_stack_venue_" in await r.text()
    finally:
        await close()


async def test_start_when_subscribed_waits_for_books_and_account(tmp_path):
    server, replay, port, close = await _serve(tmp_path, speed=0, autostart=False, start_when_subscribed=True)
    try:
        # max_queue=None: this test does not read every update; an unread bounded queue would
        # make websockets wait its close_timeout on exit
        async with websockets.connect(f"ws://127.0.0.1:{port}/stream", max_queue=None) as ws:
            await ws.recv()
            for ch in ("order_book/0", "order_book/1"):
                await ws.send(json.dumps({"type": "subscribe", "channel": ch}))
                await _recv(ws, lambda m: m["type"] == "subscribed/order_book")
            await asyncio.sleep(0.05)
            assert replay.state == "waiting"
            await ws.send(json.dumps({"type": "subscribe", "channel": f"account_all/{ACCT}", "auth": "token"}))
            snap = await _recv(ws, lambda m: m["type"] == "subscribed/account_all")
            assert snap["channel"] == f"account_all:{ACCT}" and snap["orders"] == {}
            await _wait_for(lambda: _async(replay.state == "finished"))
    finally:
        await close()


async def test_sdk_market_order_helpers_walk_the_depth_ladder(finished_venue):
    """Paced venue-sim (depth on by default): the SDK's market-order helpers read a multi-level
    ``orderBookOrders``, a sweep pays slippage across levels, and the book never empties."""
    server, url = finished_venue
    assert server.engine.depth is not None
    client, pub = _client(url)
    try:
        nonce = await register_sdk_key(client, pub, KEY)  # venue-sim verifies signatures
        ob = await client.order_api.order_book_orders(1, 100)
        assert len(ob.asks) == 11 and len(ob.bids) == 11  # the touch and 10 synthetic levels
        assert all(len(o.price.split(".")[1]) == 1 for o in ob.asks + ob.bids)
        touch_ask = BTC.price_to_int(115000.5 + 39 * 0.1)
        # 2 BTC at most 1% worse than the touch: more than the touch's 0.64 BTC
        _, resp, err = await client.create_market_order_if_slippage(
            market_index=1, client_order_index=41, base_amount=200_000, max_slippage=0.01, is_ask=False,
            nonce=nonce, api_key_index=KEY)
        assert err is None, err
        await _wait_for(lambda: _async(sum(f.size_lots for f in server.engine.fills) == 200_000))
        prices = [f.price_ticks for f in server.engine.fills]
        assert prices[0] == touch_ask and len(set(prices)) == 4 and prices == sorted(prices)
        # the ask side is not empty after the sweep: the helpers keep working
        assert await client.get_best_price(1, is_ask=False) > touch_ask
        best_bid = await client.get_best_price(1, is_ask=True)
        _, resp, err = await client.create_market_order_limited_slippage(
            market_index=1, client_order_index=42, base_amount=500_000, max_slippage=0.0005, is_ask=True,
            nonce=nonce + 1, api_key_index=KEY)
        assert err is None, err
        await _wait_for(lambda: _async(any(f.taker_client_order_index == 42 for f in server.engine.fills)))
        sells = [f for f in server.engine.fills if f.taker_client_order_index == 42]
        assert len(sells) > 1 and min(f.price_ticks for f in sells) >= round(best_bid * (1 - 0.0005))
        assert sum(f.size_lots for f in sells) < 500_000  # the rest was beyond the slippage limit: canceled
        ob = await client.order_api.order_book_orders(1, 100)
        assert ob.bids and ob.asks
    finally:
        await client.close()
