"""venue-sim's tx authentication and account-read authorization (services/venue_sim/auth.py) with
txs and auth tokens made by the official SDK's signer: the tx hash venue-sim answers is the
signer's (checks on or off); with ``verify_signatures`` a tx needs a registered key of its
(account, api key) and a valid signature (21121 / 21120, nonce not consumed); with
``verify_auth`` the auth-gated REST reads and WS channels need a valid token of that account
(20013)."""

from __future__ import annotations

import base64
import json
import time

import lighter
import pytest
from aiohttp.test_utils import TestClient, TestServer

from services.venue_sim.config import AccountSpec, VenueSimConfig
from services.venue_sim.server import VenueServer
from shared.markets import MarketInfo
from shared.venue.errors import VenueError
from shared.venue.matching import MatchingEngine

BTC = MarketInfo(symbol="BTC", market_id=1, size_decimals=5, price_decimals=1, min_base_amount=0.0002,
                 min_quote_amount=10)
ACCT, KEY, OTHER = 1001, 4, 1002


def make_server(verify_signatures: bool = False, verify_auth: bool = False) -> VenueServer:
    """A venue on the wall clock (the SDK signs OrderExpiry = wall now + 28 days, which the venue
    checks against its own clock), accounts ACCT and OTHER, with both checks set explicitly."""
    srv = VenueServer(MatchingEngine([BTC]), [BTC], time.time_ns,
                      accounts=[AccountSpec(index=ACCT), AccountSpec(index=OTHER)])
    srv.verify_signatures, srv.verify_auth = verify_signatures, verify_auth
    return srv


def new_key() -> tuple[str, str]:
    priv, pub, err = lighter.signer_client.create_api_key()
    assert err is None
    return priv, pub.removeprefix("0x")


async def signer(priv: str, account: int = ACCT) -> lighter.SignerClient:
    return lighter.SignerClient(url="http://127.0.0.1:1", account_index=account, api_private_keys={KEY: priv},
                                chain_id=304)


def bid(c: lighter.SignerClient, nonce: int, coi: int) -> tuple[int, str, str]:
    """A signed post-only bid far below the market (rests, never fills)."""
    tx_type, tx_info, tx_hash, err = c.sign_create_order(1, coi, 100, 500000, False, 0, 2, nonce=nonce,
                                                         api_key_index=KEY)
    assert err is None
    return tx_type, tx_info, tx_hash


def test_config_defaults_are_on_and_chain_304():
    """The service config turns both checks on; a bare VenueServer (unit tests) has them off
    until the runner sets them from the config."""
    cfg = VenueSimConfig()
    assert (cfg.verify_signatures, cfg.verify_auth, cfg.chain_id) == (True, True, 304)
    srv = VenueServer(MatchingEngine([BTC]), [BTC], time.time_ns)
    assert (srv.verify_signatures, srv.verify_auth, srv.chain_id) == (False, False, 304)


async def test_tx_hash_is_the_signers_with_checks_off():
    priv, _ = new_key()
    c = await signer(priv)
    try:
        txs = [bid(c, n, 10 + n) for n in range(3)]
        cancel = c.sign_cancel_order(1, 10, nonce=3, api_key_index=KEY)
    finally:
        await c.close()
    srv = make_server()  # no key registered: nothing is checked
    assert srv.send_tx(txs[0][0], txs[0][1])["tx_hash"] == txs[0][2]
    body = srv.send_tx_batch(json.dumps([14, 14, 15]), json.dumps([txs[1][1], txs[2][1], cancel[1]]))
    assert body["tx_hash"] == [txs[1][2], txs[2][2], cancel[2]]
    # a tx_info the signer-hash cannot read (no ExpiredAt) still gets a stand-in hash
    info = {"AccountIndex": ACCT, "ApiKeyIndex": KEY, "Nonce": 4, "TimeInForce": 0, "Time": 0}
    assert len(srv.send_tx(16, json.dumps(info))["tx_hash"]) == 80


async def test_verify_signatures_needs_a_registered_key_and_a_valid_signature():
    priv, pub = new_key()
    _, other_pub = new_key()
    c = await signer(priv)
    try:
        t0, i0, h0 = bid(c, 0, 11)
        t1, i1, h1 = bid(c, 1, 12)
    finally:
        await c.close()
    srv = make_server(verify_signatures=True)
    with pytest.raises(VenueError) as exc:
        srv.send_tx(t0, i0)
    assert exc.value.code == 21121 and srv.nonces.get((ACCT, KEY), 0) == 0
    srv.api_keys[(ACCT, KEY)] = other_pub
    with pytest.raises(VenueError) as exc:
        srv.send_tx(t0, i0)
    assert exc.value.code == 21120 and exc.value.message.startswith("invalid signature")
    assert srv.nonces.get((ACCT, KEY), 0) == 0
    srv.api_keys[(ACCT, KEY)] = pub
    tampered = json.loads(i0) | {"Price": 500001}
    with pytest.raises(VenueError) as exc:
        srv.send_tx(t0, json.dumps(tampered))
    assert exc.value.code == 21120
    assert srv.send_tx(t0, i0)["tx_hash"] == h0
    assert srv.nonces[(ACCT, KEY)] == 1
    # another account's tx signed with this key is refused (the key is registered for ACCT only)
    moved = json.loads(i1) | {"AccountIndex": OTHER, "Nonce": 0}
    srv.api_keys[(OTHER, KEY)] = pub
    with pytest.raises(VenueError) as exc:
        srv.send_tx(t1, json.dumps(moved))
    assert exc.value.code == 21120
    # a malformed Sig is a signature error too, never a crash
    with pytest.raises(VenueError) as exc:
        srv.send_tx(t1, json.dumps(json.loads(i1) | {"Sig": "%%%"}))
    assert exc.value.code == 21120
    assert srv.send_tx(t1, i1)["tx_hash"] == h1


async def test_change_pub_key_is_verified_with_its_own_new_key():
    new_priv, new_pub = new_key()
    c = await signer(new_priv)
    try:
        t, info, h, err = c.sign_change_api_key("0x" + "22" * 32, "0x" + new_pub, nonce=0, api_key_index=KEY)
    finally:
        await c.close()
    assert err is None
    srv = make_server(verify_signatures=True)  # empty registry: the tx names its key itself
    assert srv.authenticate_tx(t, json.loads(info), info) == h
    _, old_pub = new_key()
    swapped = json.loads(info) | {"PubKey": base64.b64encode(bytes.fromhex(old_pub)).decode()}
    with pytest.raises(VenueError) as exc:
        srv.authenticate_tx(t, swapped, json.dumps(swapped))
    assert exc.value.code == 21120
    with pytest.raises(VenueError) as exc:
        srv.authenticate_tx(t, json.loads(info) | {"PubKey": "xx"}, info)
    assert exc.value.code == 21501
    with pytest.raises(VenueError) as exc:
        srv.authenticate_tx(13, json.loads(info), info)
    assert exc.value.code == 21505


async def test_ws_sendtx_refuses_a_bad_signature():
    priv, pub = new_key()
    _, other_pub = new_key()
    c = await signer(priv)
    try:
        t, info, h = bid(c, 0, 11)
    finally:
        await c.close()
    srv = make_server(verify_signatures=True)
    srv.api_keys[(ACCT, KEY)] = other_pub
    async with TestClient(TestServer(srv.app())) as client:
        ws = await client.ws_connect("/stream")
        assert (await ws.receive_json())["type"] == "connected"
        await ws.send_json({"type": "jsonapi/sendtx", "data": {"id": "a", "tx_type": t, "tx_info": info}})
        msg = await ws.receive_json()
        assert (msg["id"], msg["code"]) == ("a", 21120)
        srv.api_keys[(ACCT, KEY)] = pub
        r = await client.post("/api/v1/sendTx", data={"tx_type": str(t), "tx_info": info})
        assert r.status == 200 and (await r.json())["tx_hash"] == h
        await ws.close()


async def test_account_reads_need_a_valid_token_of_that_account():
    priv, pub = new_key()
    other_priv, other_pub = new_key()
    c = await signer(priv)
    oc = await signer(other_priv, OTHER)
    try:
        token, _ = c.create_auth_token_with_expiry(api_key_index=KEY)
        expired, _ = c.create_auth_token_with_expiry(600, timestamp=int(time.time()) - 3600, api_key_index=KEY)
        too_long, _ = c.create_auth_token_with_expiry(9 * 3600, api_key_index=KEY)
        other_token, _ = oc.create_auth_token_with_expiry(api_key_index=KEY)
    finally:
        await c.close()
        await oc.close()
    srv = make_server(verify_auth=True)
    srv.api_keys[(ACCT, KEY)] = pub
    srv.api_keys[(OTHER, KEY)] = other_pub
    q = {"account_index": ACCT, "market_id": 1}
    async with TestClient(TestServer(srv.app())) as client:
        for path in ("/api/v1/accountActiveOrders", "/api/v1/accountInactiveOrders"):
            r = await client.get(path, params=q)
            assert r.status == 400 and (await r.json())["code"] == 20013
            r = await client.get(path, params=q, headers={"Authorization": token})
            assert r.status == 200 and (await r.json())["orders"] == []
            r = await client.get(path, params=q | {"auth": token})
            assert r.status == 200
            r = await client.get(path, params=q, headers={"Authorization": token})  # cached: still fine
            assert r.status == 200
            for bad in (other_token, expired, too_long, "garbage", token[:-2] + "00"):
                r = await client.get(path, params=q, headers={"Authorization": bad})
                body = await r.json()
                assert r.status == 400 and body["code"] == 20013, bad
                assert token not in body["message"] and bad not in body["message"]
        # the other account reads its own orders with its own token
        r = await client.get("/api/v1/accountActiveOrders", params={"account_index": OTHER, "market_id": 1},
                             headers={"Authorization": other_token})
        assert r.status == 200
        # a key change invalidates the account's tokens
        srv.api_keys[(ACCT, KEY)] = other_pub
        r = await client.get("/api/v1/accountActiveOrders", params=q, headers={"Authorization": token})
        assert r.status == 400 and (await r.json())["code"] == 20013
        del srv.api_keys[(ACCT, KEY)]
        r = await client.get("/api/v1/accountActiveOrders", params=q, headers={"Authorization": token})
        assert r.status == 400 and (await r.json())["code"] == 20013


async def test_ws_auth_channels_need_a_token_and_public_ones_do_not():
    priv, pub = new_key()
    other_priv, other_pub = new_key()
    c = await signer(priv)
    oc = await signer(other_priv, OTHER)
    try:
        token, _ = c.create_auth_token_with_expiry(api_key_index=KEY)
        other_token, _ = oc.create_auth_token_with_expiry(api_key_index=KEY)
    finally:
        await c.close()
        await oc.close()
    srv = make_server(verify_auth=True)
    srv.api_keys[(ACCT, KEY)] = pub
    srv.api_keys[(OTHER, KEY)] = other_pub
    async with TestClient(TestServer(srv.app())) as client:
        ws = await client.ws_connect("/stream")
        assert (await ws.receive_json())["type"] == "connected"
        for channel in (f"account_all_orders/{ACCT}", f"account_orders/1/{ACCT}"):
            await ws.send_json({"type": "subscribe", "channel": channel})
            msg = await ws.receive_json()
            assert (msg["type"], msg["code"]) == ("error", 20013)
            await ws.send_json({"type": "subscribe", "channel": channel, "auth": other_token})
            msg = await ws.receive_json()
            assert (msg["type"], msg["code"]) == ("error", 20013) and other_token not in msg["message"]
            await ws.send_json({"type": "subscribe", "channel": channel, "auth": token})
            msg = await ws.receive_json()
            assert msg["type"] == f"subscribed/{channel.split('/')[0]}"
        assert srv.subscribers() == {f"account_all_orders:{ACCT}": 1, f"account_orders:1:{ACCT}": 1}
        await ws.send_json({"type": "subscribe", "channel": f"user_stats/{ACCT}"})  # public on Lighter
        assert (await ws.receive_json())["type"] == "subscribed/user_stats"
        await ws.close()


async def test_reads_are_open_with_verify_auth_off():
    srv = make_server()
    async with TestClient(TestServer(srv.app())) as client:
        r = await client.get("/api/v1/accountActiveOrders", params={"account_index": ACCT, "market_id": 1})
        assert r.status == 200
        ws = await client.ws_connect("/stream")
        assert (await ws.receive_json())["type"] == "connected"
        await ws.send_json({"type": "subscribe", "channel": f"account_all_orders/{ACCT}"})
        assert (await ws.receive_json())["type"] == "subscribed/account_all_orders"
        await ws.close()


async def test_sdk_end_to_end_with_both_checks_on():
    """The unmodified SDK (sendTx, accountActiveOrders with its auth header) against a venue-sim
    with ``verify_signatures`` and ``verify_auth`` on."""
    priv, pub = new_key()
    srv = make_server(verify_signatures=True, verify_auth=True)
    srv.api_keys[(ACCT, KEY)] = pub
    async with TestClient(TestServer(srv.app())) as http:
        url = str(http.make_url("")).rstrip("/")
        c = lighter.SignerClient(url=url, account_index=ACCT, api_private_keys={KEY: priv}, chain_id=304)
        try:
            t, info, h = bid(c, 0, 21)
            resp = await c.send_tx(tx_type=t, tx_info=info)
            assert resp.code == 200 and resp.tx_hash == h
            token, _ = c.create_auth_token_with_expiry(api_key_index=KEY)
            orders = await c.order_api.account_active_orders(authorization=token, account_index=ACCT, market_id=1)
            assert orders.orders == [] and srv.nonces[(ACCT, KEY)] == 1  # the order waits for its speed bump
            with pytest.raises(lighter.ApiException) as exc:
                forged_token = token[:-1] + ("1" if token[-1] == "0" else "0")  # always differs from the real one
                await c.order_api.account_active_orders(authorization=forged_token, account_index=ACCT,
                                                        market_id=1)
            assert json.loads(exc.value.body)["code"] == 20013
            _, forged, _ = bid(c, 1, 22)
            with pytest.raises(lighter.ApiException) as exc:
                await c.send_tx(tx_type=t, tx_info=json.dumps(json.loads(forged) | {"Price": 1}))
            assert json.loads(exc.value.body)["code"] == 21120
        finally:
            await c.close()
