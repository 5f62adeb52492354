"""venue-sim's state file (``state_path``, :mod:`services.venue_sim.state`): a restart keeps the book,
orders, accounts, nonces and keys. The reads a client makes (REST) are the same before and after;
a SIGKILL loses nothing the venue acknowledged or announced (write-through); the restart fault of
``/sim/fault/once`` restarts in place; a file from other settings or a damaged one is refused.

Keys: the in-process tests register the test key on the built server (``venue_tx``); the
subprocess test registers its key with a real ChangePubKey (the SDK signs it with the paper L1 key)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import lighter
import pytest
from aiohttp.test_utils import TestClient, TestServer
from venue_tx import auth_token, order, register, signed

from services.venue_sim.config import VenueSimConfig
from services.venue_sim.runner import build, serve
from services.venue_sim.state import MAGIC, PERSISTED, TRANSIENT, StateError
from shared.events import Bbo
from shared.markets import MarketInfo
from shared.recording import RecordingHeader, write_recording
from shared.venue.paper_identity import PAPER_L1_PRIVATE_KEY

REPO = Path(__file__).resolve().parents[3]
BTC = MarketInfo(symbol="BTC", market_id=1, size_decimals=5, price_decimals=1, min_base_amount=0.0002,
                 min_quote_amount=10)
T0 = 1_757_894_400_000_000_000
ACCT, KEY = 1001, 4
GTT_MS = 28 * 24 * 3600 * 1000


def recording(tmp_path: Path, n: int = 3) -> Path:
    rec = tmp_path / "r.jsonl.gz"
    write_recording(rec, RecordingHeader(markets=[BTC]),
                    [Bbo(id=f"b{k}", ts_event=T0 + k * 100_000_000, market="BTC", bid_px=100000.0, bid_sz=0.5,
                         ask_px=100000.5, ask_sz=0.5) for k in range(n)])
    return rec


def txs(priv: str | None = None, first_nonce: int = 0) -> list[tuple[int, str]]:
    """Two resting post-only bids, a taker buy that fills, a cancel of the second bid (nonces
    ``first_nonce`` ..+3), signed with ``priv`` (default: the test key)."""
    kw = {} if priv is None else {"private_key": priv}
    expiry = int(time.time() * 1000) + GTT_MS
    n = first_nonce

    def bid(nonce: int, coi: int, price: int) -> str:
        return signed(14, order(Nonce=nonce, ClientOrderIndex=coi, BaseAmount=1000, Price=price, TimeInForce=2,
                                OrderExpiry=expiry), **kw)

    taker = signed(14, order(Nonce=n + 2, ClientOrderIndex=3, BaseAmount=1000, Price=1000100, TimeInForce=0,
                             OrderExpiry=0), **kw)
    cancel = signed(15, {"AccountIndex": ACCT, "ApiKeyIndex": KEY, "MarketIndex": 1, "Index": 2, "ExpiredAt": 0,
                         "Nonce": n + 3}, **kw)
    return [(14, bid(n, 1, 990000)), (14, bid(n + 1, 2, 980000)), (14, taker), (15, cancel)]


READS = ("/api/v1/account?by=index&value=1001", "/api/v1/accountActiveOrders?account_index=1001&market_id=1",
         "/api/v1/accountInactiveOrders?account_index=1001&limit=100",
         "/api/v1/nextNonce?account_index=1001&api_key_index=4", "/api/v1/apikeys?account_index=1001",
         "/api/v1/orderBookOrders?market_id=1&limit=20",
         "/api/v1/trades?account_index=1001&sort_by=timestamp&limit=100", "/sim/fills")


async def reads(get, token: str) -> dict[str, object]:
    """What a client reads of the venue (``get(path, headers)`` -> (status, JSON)), without the
    fields that are the time of the read: the account's ``transaction_time`` and the
    ``order_expiry`` of ``orderBookOrders`` rows (now + 28 days, whoever's; our orders'
    expiries are in ``accountActiveOrders``)."""
    out = {}
    for path in READS:
        status, body = await get(path, {"Authorization": token})
        assert status == 200, (path, body)
        if path.startswith("/api/v1/account?"):
            for a in body["accounts"]:
                a.pop("transaction_time")
        if path.startswith("/api/v1/orderBookOrders"):
            for o in body["asks"] + body["bids"]:
                o.pop("order_expiry")
        out[path] = body
    return out


@contextlib.asynccontextmanager
async def venue(cfg: VenueSimConfig):
    server, replay, app = build(cfg)
    register(server)
    task = asyncio.create_task(replay.run())
    try:
        async with TestClient(TestServer(app)) as client:
            async def get(path, headers):
                r = await client.get(path, headers=headers)
                return r.status, await r.json()
            yield server, replay, client, get
    finally:  # no final save: what is on file is what write-through wrote (a kill)
        replay.stop()
        await asyncio.wait_for(task, 2)


async def test_restart_keeps_book_orders_accounts_nonces_and_keys(tmp_path):
    cfg = VenueSimConfig(recording=str(recording(tmp_path)), fills_file="", speed=0,
                         state_path=str(tmp_path / "venue.state"))
    token = auth_token()
    async with venue(cfg) as (server, replay, client, get):
        for tx_type, info in txs():
            r = await client.post("/api/v1/sendTx", data={"tx_type": str(tx_type), "tx_info": info})
            assert r.status == 200, await r.text()
        await asyncio.sleep(0.6)  # the speed bumps
        before = await reads(get, token)
        assert len(server.engine.fills) == 1 and [o.client_order_index for o in server.engine.active_orders(ACCT)] == [1]
        writes = server.state_store.writes
        assert writes >= 8  # each tx, each announced execution
    async with venue(cfg) as (server, replay, client, get):
        assert server.api_keys[(ACCT, KEY)]  # the key came back from the file (register() re-set it anyway)
        after = await reads(get, token)
        assert after == before
        assert before["/api/v1/nextNonce?account_index=1001&api_key_index=4"]["nonce"] == 4
        assert len(before["/api/v1/accountInactiveOrders?account_index=1001&limit=100"]["orders"]) == 2
        assert replay.replayed == 3 and replay.state == "finished"
        status = await (await client.get("/sim/status")).json()
        assert status["faults"]["restart"] == 1 and status["state_file"]["writes"] >= 0
        # the venue goes on from there: nonce 4 next, 3 is used
        bad = signed(14, order(Nonce=3, ClientOrderIndex=9, Price=990000, TimeInForce=2,
                               OrderExpiry=int(time.time() * 1000) + GTT_MS))
        r = await client.post("/api/v1/sendTx", data={"tx_type": "14", "tx_info": bad})
        assert (await r.json())["code"] == 21104
        good = signed(14, order(Nonce=4, ClientOrderIndex=9, Price=990000, TimeInForce=2,
                                OrderExpiry=int(time.time() * 1000) + GTT_MS))
        r = await client.post("/api/v1/sendTx", data={"tx_type": "14", "tx_info": good})
        assert r.status == 200


async def test_replay_position_continues_and_pending_txs_survive(tmp_path):
    cfg = VenueSimConfig(recording=str(recording(tmp_path, 400)), fills_file="", speed=1.0,
                         state_path=str(tmp_path / "venue.state"), taker_delay_ms=60_000, maker_delay_ms=60_000)
    async with venue(cfg) as (server, replay, client, _):
        await asyncio.sleep(0.5)
        r = await client.post("/api/v1/sendTx", data={"tx_type": "14", "tx_info": txs()[0][1]})
        assert r.status == 200
        at = replay.replayed
        assert 0 < at < 400 and server.engine.pending_count() == 1
        due = server.engine.next_pending_ns()
    async with venue(cfg) as (server, replay, client, _):
        assert replay.replayed == at and replay.started  # read past, not applied again
        assert server.engine.pending_count() == 1 and server.engine.next_pending_ns() == due
        await asyncio.sleep(0.3)
        assert replay.replayed > at


def test_every_server_attribute_is_kept_or_named_transient(tmp_path):
    async def attrs():
        server, _, _ = build(VenueSimConfig(recording=str(recording(tmp_path)), fills_file=""))
        server._verified_tokens()
        return set(vars(server))

    names = asyncio.run(attrs())
    assert names - set(PERSISTED) - set(TRANSIENT) == set(), "add new VenueServer state to state.PERSISTED or TRANSIENT"
    assert not set(PERSISTED) & set(TRANSIENT)


async def test_other_settings_or_a_damaged_file_are_refused(tmp_path):
    path = tmp_path / "venue.state"
    cfg = VenueSimConfig(recording=str(recording(tmp_path)), fills_file="", state_path=str(path))
    async with venue(cfg) as (server, _, _, _):
        server.state_store.save()
    with pytest.raises(StateError, match="tier"):
        build(cfg.model_copy(update={"tier": "premium"}))
    with pytest.raises(StateError, match="lockstep, public_book"):
        build(cfg.model_copy(update={"lockstep": True}), redis=object())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(StateError, match="damaged"):
        build(cfg)
    path.write_bytes(b"something else")
    with pytest.raises(StateError, match="not a venue-sim state file"):
        build(cfg)
    path.write_bytes(MAGIC + b"\x80\x05N.")  # a pickle of None
    with pytest.raises(StateError, match="damaged"):
        build(cfg)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_restart_fault_restarts_in_place_and_keeps_the_state(tmp_path):
    port = _free_port()
    cfg = VenueSimConfig(host="127.0.0.1", port=port, recording=str(recording(tmp_path)), fills_file="", speed=0,
                         state_path=str(tmp_path / "venue.state"), verify_signatures=False, verify_auth=False)
    stop = asyncio.Event()
    task = asyncio.create_task(serve(cfg, stop=stop))
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            async def get(path, headers):
                async with http.get(base + path, headers=headers) as r:
                    return r.status, await r.json()

            for _ in range(100):
                with contextlib.suppress(aiohttp.ClientError):
                    if (await get("/health", {}))[0] == 200:
                        break
                await asyncio.sleep(0.05)
            ws = await http.ws_connect(base + "/stream")
            for tx_type, info in txs()[:3]:
                async with http.post(base + "/api/v1/sendTx", data={"tx_type": str(tx_type), "tx_info": info}) as r:
                    assert r.status == 200
            await asyncio.sleep(0.6)
            before = await reads(get, "")
            async with http.post(base + "/sim/fault/once", json={"kind": "restart"}) as r:
                assert r.status == 200
            msg = await asyncio.wait_for(ws.receive(), 5)  # the connection ends with the old venue
            assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.TEXT)
            restarts = 0
            for _ in range(100):
                await asyncio.sleep(0.05)
                with contextlib.suppress(aiohttp.ClientError):
                    restarts = (await get("/sim/fault", {}))[1]["injected"]["restart"]
                    if restarts:
                        break
            assert restarts == 1
            assert await reads(get, "") == before
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def test_sigkill_loses_nothing_the_venue_acknowledged(tmp_path):
    """venue-sim as its own process (``lighter-stack run venue-sim``), killed with SIGKILL right
    after its last answer, then started again on the same state file."""
    port = _free_port()
    state = tmp_path / "venue.state"
    cfg_file = tmp_path / "stack.yaml"
    cfg_file.write_text(json.dumps({"services": {"venue-sim": {
        "host": "127.0.0.1", "port": port, "recording": str(recording(tmp_path)), "fills_file": "", "speed": 0,
        "state_path": str(state)}}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("LS_")}
    env["PYTHONPATH"] = str(REPO)
    cmd = [sys.executable, "-c", "from lighter_stack.cli import app; app()", "run", "venue-sim", "-c", str(cfg_file)]
    base = f"http://127.0.0.1:{port}"
    priv, pub, _ = lighter.create_api_key()
    sdk = lighter.SignerClient(url=base, account_index=ACCT, api_private_keys={KEY: priv}, chain_id=304)

    async def start(http, log_name):
        log = open(tmp_path / log_name, "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        for _ in range(600):  # 30 s: a loaded machine imports slowly
            assert proc.poll() is None, (tmp_path / log_name).read_text()
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(base + "/health") as r:
                    if r.status == 200:
                        return proc, log
            await asyncio.sleep(0.05)
        raise AssertionError((tmp_path / log_name).read_text())

    token = auth_token(private_key=priv)
    async with aiohttp.ClientSession() as http:
        async def get(path, headers):
            async with http.get(base + path, headers=headers) as r:
                return r.status, await r.json()

        async def send(tx_type, info):
            async with http.post(base + "/api/v1/sendTx", data={"tx_type": str(tx_type), "tx_info": info}) as r:
                assert r.status == 200, await r.text()

        proc, log = await start(http, "first.log")
        try:
            tx_type, info, _, err = sdk.sign_change_api_key(PAPER_L1_PRIVATE_KEY, pub, nonce=0, api_key_index=KEY)
            assert err is None
            await send(tx_type, info)
            for tx_type, info in txs(priv, first_nonce=1):  # the ChangePubKey used nonce 0
                await send(tx_type, info)
            await asyncio.sleep(0.6)
            before = await reads(get, token)
        finally:
            proc.send_signal(signal.SIGKILL)  # no shutdown, no final write
            proc.wait(10)
            log.close()
        assert before["/api/v1/nextNonce?account_index=1001&api_key_index=4"]["nonce"] == 5
        assert len(before["/sim/fills"]) == 1
        proc, log = await start(http, "second.log")
        try:
            assert await reads(get, token) == before
        finally:
            proc.terminate()
            proc.wait(10)
            log.close()
    await sdk.close()
