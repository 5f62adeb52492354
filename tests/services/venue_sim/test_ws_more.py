"""venue-sim's ticker, account_tx and account_all_assets channels (ws_more.py) against a served
venue: Lighter's shapes (ws_ticker_update.json, reference notes 5.2), the auth check of private
channels, and that the SDK's models parse the tx objects."""

from __future__ import annotations

import asyncio
import json
import secrets
from pathlib import Path

import lighter
import pytest
import websockets
from aiohttp import web
from venue_tx import register

from services.venue_sim.config import VenueSimConfig
from services.venue_sim.runner import build
from shared.events import Bbo
from shared.markets import MarketInfo
from shared.recording import RecordingHeader, write_recording
from shared.venue.errors import VenueError

BTC = MarketInfo(symbol="BTC", market_id=1, size_decimals=5, price_decimals=1, min_base_amount=0.0002,
                 min_quote_amount=10)
T0 = 1_757_894_400_000_000_000
MS = 1_000_000
ACCT, KEY = 1001, 4
TOKEN = f"9999999999:{ACCT}:{KEY}:sig"


def _recording(path, n=30):
    evs = [Bbo(id=f"b{i}", ts_event=T0 + i * 100 * MS, market="BTC", bid_px=115000.0 + i * 0.1, bid_sz=0.5,
               ask_px=115000.5 + i * 0.1, ask_sz=0.25) for i in range(n)]
    write_recording(path, RecordingHeader(markets=[BTC], source="test"), evs)
    return path


async def _serve(tmp_path, **kw):
    cfg = VenueSimConfig(recording=str(_recording(tmp_path / "rec.jsonl.gz")), fills_file="", **kw)
    server, replay, app = build(cfg, ACCT)

    def authorize(token, account):  # a stand-in for the real token check (another part)
        if token != f"9999999999:{account}:{KEY}:sig":
            raise VenueError(20013, "invalid auth token")

    server.authorize_account = authorize
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    task = asyncio.create_task(replay.run())

    async def close():
        replay.stop()
        await asyncio.wait_for(task, 5)
        await runner.cleanup()
        server.close()

    return server, replay, runner.addresses[0][1], close


async def _recv(ws, pred, timeout=5.0):
    async with asyncio.timeout(timeout):
        while True:
            msg = json.loads(await ws.recv())
            if pred(msg):
                return msg


async def _subscribe(ws, channel, **kw):
    await ws.send(json.dumps({"type": "subscribe", "channel": channel, **kw}))
    return await _recv(ws, lambda m: m["type"].startswith("subscribed/") or m["type"] == "error")


async def test_ticker_snapshot_and_updates(tmp_path):
    server, replay, port, close = await _serve(tmp_path, speed=20, autostart=False)
    try:
        async with websockets.connect(f"ws://127.0.0.1:{port}/stream", max_queue=None) as ws:
            await ws.recv()
            snap = await _subscribe(ws, "ticker/1")
            assert snap["type"] == "subscribed/ticker" and snap["channel"] == "ticker:1"
            assert set(snap) == {"channel", "last_updated_at", "nonce", "ticker", "timestamp", "type"}
            assert set(snap["ticker"]) == {"s", "a", "b", "last_updated_at"} and snap["ticker"]["s"] == "BTC"
            ref = json.loads((Path(__file__).resolve().parents[2] / "fixtures" / "lighter-samples"
                              / "ws_ticker_update.json").read_text())
            assert set(snap) == set(ref) and set(snap["ticker"]) == set(ref["ticker"])
            assert set(snap["ticker"]["a"]) == set(ref["ticker"]["a"]) == {"price", "size"}
            assert (await _subscribe(ws, "ticker/7"))["code"] == 30005
            replay.start()
            prev = snap["nonce"]
            for _ in range(3):
                u = await _recv(ws, lambda m: m["type"] == "update/ticker")
                t = u["ticker"]
                assert u["channel"] == "ticker:1" and u["nonce"] > prev
                assert float(t["b"]["price"]) < float(t["a"]["price"])
                assert len(t["a"]["price"].split(".")[1]) == 1 and len(t["a"]["size"].split(".")[1]) == 5
                assert t["b"]["size"] == "0.50000" and t["a"]["size"] == "0.25000"
                prev = u["nonce"]
    finally:
        await close()


async def test_account_tx_and_assets_need_auth_and_follow_txs(tmp_path):
    server, replay, port, close = await _serve(tmp_path, speed=0, taker_fee=0.001)
    for _ in range(250):
        if replay.state == "finished":
            break
        await asyncio.sleep(0.02)
    url = f"http://127.0.0.1:{port}"
    priv = secrets.token_hex(40)
    register(server, ACCT, KEY, priv)  # the venue verifies tx signatures: the SDK's key is registered
    client = lighter.SignerClient(url=url, account_index=ACCT, api_private_keys={KEY: priv}, chain_id=304)
    try:
        async with websockets.connect(f"ws://127.0.0.1:{port}/stream", max_queue=None) as ws:
            await ws.recv()
            for ch in (f"account_tx/{ACCT}", f"account_all_assets/{ACCT}"):
                err = await _subscribe(ws, ch)  # no auth
                assert err["type"] == "error" and err["code"] == 20013
                err = await _subscribe(ws, ch, auth=f"9999999999:{ACCT + 1}:{KEY}:sig")  # another account's
                assert err["type"] == "error" and err["code"] == 20013
            snap = await _subscribe(ws, f"account_tx/{ACCT}", auth=TOKEN)
            assert snap == {"channel": f"account_tx:{ACCT}", "txs": [], "timestamp": snap["timestamp"],
                            "type": "subscribed/account_tx"}
            assets = await _subscribe(ws, f"account_all_assets/{ACCT}", auth=TOKEN)
            assert assets["channel"] == f"account_all_assets:{ACCT}"
            assert assets["assets"] == {"3": {"symbol": "USDC", "asset_id": 3, "balance": "100000.000000",
                                              "locked_balance": "0.000000"}}
            # a taker buy: pending tx, then executed, then the fee shows in the balance
            _, resp, e = await client.create_order(market_index=1, client_order_index=5, base_amount=10_000,
                                                   price=1_160_000, is_ask=False, order_type=0, time_in_force=0,
                                                   order_expiry=0, nonce=0, api_key_index=KEY)
            assert e is None, e
            pending = await _recv(ws, lambda m: m["type"] == "update/account_tx")
            (tx,) = pending["txs"]
            assert tx["hash"] == resp.tx_hash and tx["type"] == 14 and tx["status"] == 1 and tx["nonce"] == 0
            assert json.loads(tx["info"])["ClientOrderIndex"] == 5 and tx["account_index"] == ACCT
            assert lighter.Tx.from_dict(tx).api_key_index == KEY
            done = await _recv(ws, lambda m: m["type"] in ("update/account_tx", "update/account_all_assets"))
            upd = [done, await _recv(ws, lambda m: m["type"] in ("update/account_tx", "update/account_all_assets"))]
            by_type = {m["type"]: m for m in upd}
            (tx2,) = by_type["update/account_tx"]["txs"]
            assert tx2["hash"] == tx["hash"] and tx2["status"] == 2 and tx2["executed_at"] >= tx2["queued_at"]
            f = server.engine.fills[0]
            bal = by_type["update/account_all_assets"]["assets"]["3"]["balance"]
            assert bal == f"{100000.0 - f.price * f.size * 0.001:.6f}"
            # a new subscriber gets the tx history
            async with websockets.connect(f"ws://127.0.0.1:{port}/stream") as ws2:
                await ws2.recv()
                snap2 = await _subscribe(ws2, f"account_tx/{ACCT}", auth=TOKEN)
                assert [t["status"] for t in snap2["txs"]] == [2]
    finally:
        await client.close()
        await close()


@pytest.mark.parametrize("channel", ["account_tx/x", "account_all_assets/-1", "ticker/x", "account_tx"])
async def test_bad_channels_are_refused(tmp_path, channel):
    server, replay, port, close = await _serve(tmp_path, speed=0, autostart=False)
    try:
        async with websockets.connect(f"ws://127.0.0.1:{port}/stream") as ws:
            await ws.recv()
            assert (await _subscribe(ws, channel, auth=TOKEN))["code"] == 30005
    finally:
        await close()


async def test_order_book_channel_shows_the_depth_ladder(tmp_path):
    """Paced venue-sim (depth on by default): the public order_book snapshot carries the touch and
    10 synthetic levels a side, prices with exactly price_decimals digits, sizes size_decimals."""
    server, replay, port, close = await _serve(tmp_path, speed=0)
    try:
        for _ in range(250):
            if replay.state == "finished":
                break
            await asyncio.sleep(0.02)
        async with websockets.connect(f"ws://127.0.0.1:{port}/stream") as ws:
            await ws.recv()
            ob = (await _subscribe(ws, "order_book/1"))["order_book"]
            assert len(ob["asks"]) == 11 and len(ob["bids"]) == 11
            asks = [float(lv["price"]) for lv in ob["asks"]]
            assert asks == sorted(asks) and asks[0] == 115000.5 + 29 * 0.1
            assert all(len(lv["price"].split(".")[1]) == 1 and len(lv["size"].split(".")[1]) == 5
                       for lv in ob["asks"] + ob["bids"])
            assert {lv["size"] for lv in ob["asks"]} == {"0.25000"}
    finally:
        await close()
