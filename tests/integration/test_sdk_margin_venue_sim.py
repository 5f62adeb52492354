"""The official SDK's ``update_leverage`` / ``update_margin`` (txs 20 and 29) against venue-sim
over loopback HTTP: accepted ones change the account, refused ones reach the SDK as Lighter's
HTTP 400 errors with their codes, and the account channel shows the new leverage."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import lighter
import websockets
from aiohttp import web
from sdk_setup import register_sdk_key

from services.venue_sim.config import VenueSimConfig
from services.venue_sim.runner import build
from shared.events import Bbo
from shared.markets import MarketInfo
from shared.recording import RecordingHeader, write_recording

BTC = MarketInfo(symbol="BTC", market_id=1, size_decimals=5, price_decimals=1, min_base_amount=0.0002,
                 min_quote_amount=10)
T0 = 1_757_894_400_000_000_000
ACCT, KEY = 1001, 4


async def _serve(tmp_path):
    evs = [Bbo(id=f"b{i}", ts_event=T0 + i * 100_000_000, market="BTC", bid_px=115000.0, bid_sz=0.5,
               ask_px=115000.5, ask_sz=0.5) for i in range(100)]
    write_recording(tmp_path / "rec.jsonl.gz", RecordingHeader(markets=[BTC], source="test"), evs)
    server, replay, app = build(VenueSimConfig(recording=str(tmp_path / "rec.jsonl.gz"), fills_file="",
                                               initial_collateral=500.0), ACCT)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    task = asyncio.create_task(replay.run())

    async def close():
        replay.stop()
        await asyncio.wait_for(task, 5)
        await runner.cleanup()
        server.close()

    return server, runner.addresses[0][1], close


async def _position(port: int) -> dict:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{port}/api/v1/account", params={"by": "index", "value": ACCT}) as r:
            return (await r.json())["accounts"][0]["positions"][0]


async def test_sdk_update_leverage_and_margin(tmp_path):
    server, port, close = await _serve(tmp_path)
    priv, pub, _err = lighter.signer_client.create_api_key()
    client = lighter.SignerClient(url=f"http://127.0.0.1:{port}", account_index=ACCT, api_private_keys={KEY: priv},
                                  chain_id=304)
    try:
        await register_sdk_key(client, pub, KEY)  # venue-sim verifies signatures
        async with websockets.connect(f"ws://127.0.0.1:{port}/stream") as ws:
            json.loads(await ws.recv())  # connected
            await ws.send(json.dumps({"type": "subscribe", "channel": f"account_all_positions/{ACCT}"}))
            json.loads(await ws.recv())  # subscribed (no positions yet)
            _info, _resp, err = await client.update_leverage(1, client.ISOLATED_MARGIN_MODE, 100)
            assert err is not None and "21501" in err  # 100x: above BTC's 50x
            _info, resp, err = await client.update_leverage(1, client.ISOLATED_MARGIN_MODE, 4)
            assert err is None and resp.code == 200
            async with asyncio.timeout(5):
                msg = json.loads(await ws.recv())
            assert msg["type"] == "update/account_all_positions"
            assert (msg["positions"]["1"]["initial_margin_fraction"], msg["positions"]["1"]["margin_mode"]) == \
                ("25.00", 1)
        _info, _resp, err = await client.update_margin(1, 10.0, client.ISOLATED_MARGIN_ADD_COLLATERAL)
        assert err is not None and "21614" in err  # no position yet
        # 0.01 BTC at 4x: about 287.5 USD of the 500 moves to the position when the order is accepted
        _tx, _resp, err = await client.create_order(1, 1, 1000, 1150010, False, client.ORDER_TYPE_LIMIT,
                                                    client.ORDER_TIME_IN_FORCE_IMMEDIATE_OR_CANCEL, False,
                                                    order_expiry=client.DEFAULT_IOC_EXPIRY)
        assert err is None
        _tx, _resp, err = await client.create_order(1, 2, 1000, 1150010, False, client.ORDER_TYPE_LIMIT,
                                                    client.ORDER_TIME_IN_FORCE_IMMEDIATE_OR_CANCEL, False,
                                                    order_expiry=client.DEFAULT_IOC_EXPIRY)
        assert err is not None and "21739" in err  # another 287.5: only 212.5 available
        async with asyncio.timeout(5):
            while (await _position(port))["position"] != "0.01000":
                await asyncio.sleep(0.05)
        _info, _resp, err = await client.update_margin(1, 300.0, client.ISOLATED_MARGIN_ADD_COLLATERAL)
        assert err is not None and "21739" in err
        _info, resp, err = await client.update_margin(1, 100.0, client.ISOLATED_MARGIN_ADD_COLLATERAL)
        assert err is None and resp.code == 200
        assert abs(float((await _position(port))["allocated_margin"]) - 387.5) < 0.01  # at the mid 115000.25
        _info, _resp, err = await client.update_margin(1, 200.0, client.ISOLATED_MARGIN_REMOVE_COLLATERAL)
        assert err is not None and "21508" in err
    finally:
        await client.close()
        await close()
