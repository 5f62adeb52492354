"""venue-sim accounts and API-key registration: configured accounts only (21100 otherwise),
``accountsByL1Address``, ``account?by=l1_address``, ``ChangePubKey`` (type 8) with the L1
signature, ``apikeys`` and the SDK's ``check_client``, ``trades``. The official SDK against a
venue-sim on a loopback port."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import lighter
import pytest
from aiohttp import web
from eth_account import Account
from sdk_setup import register_sdk_key

from services.venue_sim.accounts import change_pub_key_message
from services.venue_sim.config import AccountSpec, VenueSimConfig
from services.venue_sim.runner import build
from shared.events import Bbo, Trade
from shared.markets import MarketInfo
from shared.recording import RecordingHeader, write_recording
from shared.venue.paper_identity import PAPER_L1_ADDRESS, PAPER_L1_PRIVATE_KEY

BTC = MarketInfo(symbol="BTC", market_id=1, size_decimals=5, price_decimals=1, min_base_amount=0.0002,
                 min_quote_amount=10)
T0 = 1_757_894_400_000_000_000
MS = 1_000_000
ACCT, KEY = 1001, 4
OTHER_L1 = Account.from_key("0x" + "22" * 32)


def _recording(path):
    evs = []
    for i in range(20):
        ts = T0 + (i + 1) * 100 * MS
        evs.append(Bbo(id=f"b{i}", ts_event=ts, market="BTC", bid_px=115000.0, bid_sz=0.5, ask_px=115000.5,
                       ask_sz=0.5))
        if i == 5:
            evs.append(Trade(id="t", ts_event=ts, market="BTC", trade_id="77", price=115000.0, size=0.01,
                             taker_side="sell"))
    write_recording(path, RecordingHeader(markets=[BTC], source="test"), evs)
    return path


@pytest.fixture
async def venue(tmp_path):
    cfg = VenueSimConfig(recording=str(_recording(tmp_path / "rec.jsonl.gz")), fills_file="", speed=0,
                         accounts=[AccountSpec(index=ACCT, l1_address=PAPER_L1_ADDRESS, collateral=2500),
                                   AccountSpec(index=1002, l1_address=PAPER_L1_ADDRESS, collateral=10),
                                   AccountSpec(index=2001, l1_address=OTHER_L1.address)])
    server, replay, app = build(cfg, ACCT)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    task = asyncio.create_task(replay.run())
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    async with aiohttp.ClientSession() as http:
        yield server, url, http
    replay.stop()
    await asyncio.wait_for(task, 5)
    await runner.cleanup()
    server.close()


async def _get(http, url, path, **params):
    async with http.get(f"{url}/api/v1/{path}", params=params) as r:
        return r.status, await r.json()


async def _post_tx(http, url, tx_type, tx_info):
    async with http.post(f"{url}/api/v1/sendTx", data={"tx_type": str(tx_type), "tx_info": tx_info}) as r:
        return r.status, await r.json()


async def test_unknown_accounts_are_refused_with_21100(venue):
    _, url, http = venue
    for path, params in [("nextNonce", {"account_index": 5, "api_key_index": 4}), ("apikeys", {"account_index": 5}),
                         ("account", {"by": "index", "value": 5}),
                         ("accountActiveOrders", {"account_index": 5, "market_id": 1}),
                         ("accountInactiveOrders", {"account_index": 5, "limit": 10}),
                         ("trades", {"sort_by": "timestamp", "limit": 10, "account_index": 5}),
                         ("accountsByL1Address", {"l1_address": "0x" + "ab" * 20}),
                         ("account", {"by": "l1_address", "value": "0x" + "ab" * 20})]:
        status, body = await _get(http, url, path, **params)
        assert (status, body["code"], body["message"].split(":")[0]) == (400, 21100, "account not found"), path
    client = lighter.SignerClient(url=url, account_index=5, api_private_keys={KEY: "11" * 40}, chain_id=304)
    try:
        tx_type, info, _, err = client.sign_create_order(1, 1, 100, 1_140_000, False, 0, 2, nonce=0,
                                                         api_key_index=KEY)
        assert err is None
        status, body = await _post_tx(http, url, tx_type, info)
        assert (status, body["code"]) == (400, 21100)
    finally:
        await client.close()


async def test_accounts_by_l1_address_and_account_by_l1_address(venue):
    _, url, http = venue
    status, body = await _get(http, url, "accountsByL1Address", l1_address=PAPER_L1_ADDRESS.lower())
    assert status == 200 and body["l1_address"] == PAPER_L1_ADDRESS
    assert [(s["index"], s["collateral"]) for s in body["sub_accounts"]] == [(1001, "2500.000000"), (1002, "10.000000")]
    # the SDK's model parses it
    parsed = lighter.SubAccounts.from_dict(body)
    assert [s.index for s in parsed.sub_accounts] == [1001, 1002]
    status, body = await _get(http, url, "account", by="l1_address", value=OTHER_L1.address)
    assert status == 200 and [a["index"] for a in body["accounts"]] == [2001]
    assert body["accounts"][0]["l1_address"] == OTHER_L1.address
    status, body = await _get(http, url, "account", by="index", value=ACCT)
    assert body["accounts"][0]["collateral"] == "2500.000000"


async def test_change_pub_key_registers_the_key_and_check_client_passes(venue):
    server, url, http = venue
    priv, pub, err = lighter.create_api_key()
    assert err is None
    client = lighter.SignerClient(url=url, account_index=ACCT, api_private_keys={KEY: priv}, chain_id=304)
    try:
        assert await asyncio.to_thread(client.check_client) is not None  # not registered yet
        resp, err = await client.change_api_key(eth_private_key=PAPER_L1_PRIVATE_KEY, new_pubkey=pub,
                                                nonce=0, api_key_index=KEY)
        assert err is None and resp.code == 200
        assert await asyncio.to_thread(client.check_client) is None
        status, body = await _get(http, url, "apikeys", account_index=ACCT, api_key_index=KEY)
        assert body["api_keys"] == [{"account_index": ACCT, "api_key_index": KEY, "nonce": 1,
                                     "public_key": pub.removeprefix("0x")}]
        # another key index of the same account is not registered by it
        status, body = await _get(http, url, "apikeys", account_index=ACCT, api_key_index=5)
        assert body["api_keys"] == []
    finally:
        await client.close()


async def test_change_pub_key_with_another_wallet_or_tampered_fields_is_refused(venue):
    server, url, http = venue
    priv, pub, _ = lighter.create_api_key()
    client = lighter.SignerClient(url=url, account_index=ACCT, api_private_keys={KEY: priv}, chain_id=304)
    try:
        # signed by a wallet that does not own account 1001
        tx_type, info, _, err = client.sign_change_api_key(OTHER_L1.key.hex(), pub, nonce=0, api_key_index=KEY)
        assert err is None and tx_type == 8
        status, body = await _post_tx(http, url, tx_type, info)
        assert (status, body["code"]) == (400, 21120)
        # the owner's signature, but the key index changed after signing
        _, info, _, _ = client.sign_change_api_key(PAPER_L1_PRIVATE_KEY, pub, nonce=0, api_key_index=KEY)
        d = json.loads(info)
        forged = json.dumps({**d, "ApiKeyIndex": 6})
        status, body = await _post_tx(http, url, 8, forged)
        assert (status, body["code"]) == (400, 21120)
        for bad in ({**d, "L1Sig": ""}, {**d, "L1Sig": "0x1234"}):
            status, body = await _post_tx(http, url, 8, json.dumps(bad))
            assert (status, body["code"]) == (400, 21120)
        status, body = await _post_tx(http, url, 8, json.dumps({**d, "PubKey": "AAAA"}))
        assert (status, body["code"]) == (400, 21501)
        assert server.api_keys == {} and server.nonces.get((ACCT, KEY), 0) == 0
        # the genuine one still goes through with nonce 0 (refusals consumed no nonce)
        status, body = await _post_tx(http, url, 8, info)
        assert status == 200 and server.api_keys[(ACCT, KEY)] == pub.removeprefix("0x")
    finally:
        await client.close()


async def test_change_pub_key_message_matches_the_sdk_signer():
    import ctypes

    from lighter.signer_client import decode_and_free, get_signer

    priv, pub, _ = lighter.create_api_key()
    client = lighter.SignerClient(url="http://127.0.0.1:9", account_index=123456, api_private_keys={9: priv},
                                  chain_id=304)
    try:
        r = get_signer().SignChangePubKey(ctypes.c_char_p(pub.encode()), 0, 7, 9, 123456)
        for field in (r.txInfo, r.txHash, r.err):
            decode_and_free(field)
        assert decode_and_free(r.messageToSign) == change_pub_key_message(bytes.fromhex(pub[2:]), 7, 123456, 9)
    finally:
        await client.close()


async def test_trades_endpoint_lists_the_account_fills(venue):
    server, url, http = venue
    priv, pub, err = lighter.create_api_key()
    assert err is None
    client = lighter.SignerClient(url=url, account_index=ACCT, api_private_keys={KEY: priv}, chain_id=304)
    try:
        nonce = await register_sdk_key(client, pub, KEY)  # venue-sim verifies signatures and auth tokens
        auth, err = client.create_auth_token_with_expiry(api_key_index=KEY)  # an account's trades need one
        assert err is None
        # an IOC buy through the ask fills against the recorded book
        tx_type, info, _, err = client.sign_create_order(1, 9, 100, 1_150_100, False, 0, 0, order_expiry=0,
                                                         nonce=nonce, api_key_index=KEY)
        assert err is None
        status, body = await _post_tx(http, url, tx_type, info)
        assert status == 200, body
        for _ in range(200):
            if server.engine.fills:
                break
            await asyncio.sleep(0.02)
        status, body = await _get(http, url, "trades", sort_by="timestamp", limit=10, account_index=ACCT, auth=auth)
        assert status == 200 and body["next_cursor"] == ""
        (t,) = body["trades"]
        assert t["bid_account_id"] == ACCT and t["size"] == "0.00100" and t["price"] == "115000.5"
        lighter.Trades.from_dict(body)
        _, maker_only = await _get(http, url, "trades", sort_by="timestamp", limit=10, account_index=ACCT,
                                   role="maker", auth=auth)
        assert maker_only["trades"] == []
        status, body = await _get(http, url, "trades", sort_by="price", limit=10)
        assert (status, body["code"]) == (400, 21501)
        status, body = await _get(http, url, "trades", sort_by="trade_id", limit=1)
        assert status == 200 and len(body["trades"]) == 1 and body["next_cursor"] == "1"
    finally:
        await client.close()


async def test_ws_account_channels_of_unknown_accounts_are_refused(venue):
    server, url, http = venue
    async with http.ws_connect(url.replace("http", "ws") + "/stream") as ws:
        assert (await ws.receive_json(timeout=5))["type"] == "connected"
        await ws.send_json({"type": "subscribe", "channel": "account_all/5"})
        msg = await ws.receive_json(timeout=5)
        assert msg["type"] == "error" and msg["code"] == 21100
        await ws.send_json({"type": "subscribe", "channel": f"account_all/{ACCT}"})
        msg = await ws.receive_json(timeout=5)
        assert msg["type"] == "subscribed/account_all"
    assert 5 not in server.engine.accounts


async def test_accounts_by_l1_address_has_the_fields_of_lighters_sample(venue):
    from pathlib import Path

    sample = json.loads((Path(__file__).resolve().parents[2] / "fixtures" / "lighter-samples"
                         / "http_misc_ccxt_comment_examples.json").read_text())["accountsByL1Address_response"]
    _, url, http = venue
    _, body = await _get(http, url, "accountsByL1Address", l1_address=PAPER_L1_ADDRESS)
    assert set(sample) <= set(body)
    assert set(sample["sub_accounts"][0]) <= set(body["sub_accounts"][0])
    for k, v in sample["sub_accounts"][0].items():
        assert type(body["sub_accounts"][0][k]) is type(v), k
