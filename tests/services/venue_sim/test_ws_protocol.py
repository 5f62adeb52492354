"""venue-sim's WebSocket behaves as Lighter's (reference notes §5.1, §6.8): ping/pong, 30003/30005,
500 subscriptions per connection (23001), 200 client messages a minute (30009, txs not counted),
the idle close (120 s; a short timeout via config here), and malformed frames answered with an
error frame while the connection stays open.

The venue is strict: txs are complete and signed with the test key (registered on the built
server, ``venue_tx``), and account channels exist only for configured accounts (21100)."""

from __future__ import annotations

import asyncio
import contextlib
import time

from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient, TestServer
from venue_tx import order, register, signed

from services.venue_sim.config import AccountSpec, VenueSimConfig
from services.venue_sim.runner import build
from shared.events import Bbo
from shared.markets import MarketInfo
from shared.recording import RecordingHeader, write_recording

BTC = MarketInfo(symbol="BTC", market_id=1, size_decimals=5, price_decimals=1, min_base_amount=0.0002,
                 min_quote_amount=10)
T0 = 1_757_894_400_000_000_000
ACCT, KEY = 1001, 4
GTT_MS = 28 * 24 * 3600 * 1000


def tx_info(nonce: int, coi: int) -> str:
    """A signed post-only bid (every signed field; expires 28 days after now, the venue's wall clock)."""
    return signed(14, order(AccountIndex=ACCT, ApiKeyIndex=KEY, Nonce=nonce, MarketIndex=1, ClientOrderIndex=coi,
                            BaseAmount=1000, Price=500000, IsAsk=0, Type=0, TimeInForce=2, ReduceOnly=0,
                            TriggerPrice=0, OrderExpiry=int(time.time() * 1000) + GTT_MS, ExpiredAt=0))


@contextlib.asynccontextmanager
async def venue(tmp_path, **cfg):
    rec = tmp_path / "r.jsonl.gz"
    write_recording(rec, RecordingHeader(markets=[BTC]),
                    [Bbo(id="b", ts_event=T0, market="BTC", bid_px=1e5, bid_sz=0.5, ask_px=100000.5, ask_sz=0.5)])
    server, replay, app = build(VenueSimConfig(recording=str(rec), fills_file="", **cfg))
    register(server)
    task = asyncio.create_task(replay.run())
    try:
        async with TestClient(TestServer(app)) as client:
            ws = await client.ws_connect("/stream", autoping=False)
            assert (await ws.receive_json())["type"] == "connected"
            yield server, client, ws
            await ws.close()
    finally:
        replay.stop()
        await asyncio.wait_for(task, 2)


async def test_ping_pong_duplicate_and_invalid_channel(tmp_path):
    async with venue(tmp_path) as (_, _, ws):
        await ws.send_json({"type": "ping"})
        assert await ws.receive_json() == {"type": "pong"}
        await ws.send_json({"type": "subscribe", "channel": "height"})
        assert (await ws.receive_json())["type"] == "subscribed/height"
        await ws.send_json({"type": "subscribe", "channel": "height"})
        assert (await ws.receive_json())["code"] == 30003
        for bad in ("order_book/99", "nope/1", ["order_book/1"]):
            await ws.send_json({"type": "subscribe", "channel": bad})
            msg = await ws.receive_json()
            assert msg["type"] == "error" and msg["code"] == 30005


async def test_five_hundred_subscriptions_per_connection(tmp_path):
    accounts = [AccountSpec(index=a) for a in range(1, 502)]  # 501 configured accounts: 500 channels + 1
    async with venue(tmp_path, ws_messages_per_min=0, accounts=accounts) as (server, _, ws):
        for a in range(1, 501):
            await ws.send_json({"type": "subscribe", "channel": f"user_stats/{a}"})
        for _ in range(500):
            assert (await ws.receive_json())["type"] == "subscribed/user_stats"
        await ws.send_json({"type": "subscribe", "channel": "user_stats/501"})
        msg = await ws.receive_json()
        assert msg == {"type": "error", "code": 23001, "channel": "user_stats:501", "message": "too many subscriptions"}
        await ws.send_json({"type": "unsubscribe", "channel": "user_stats/1"})
        assert (await ws.receive_json())["type"] == "unsubscribed"
        await ws.send_json({"type": "subscribe", "channel": "user_stats/501"})
        assert (await ws.receive_json())["type"] == "subscribed/user_stats"


async def test_two_hundred_messages_a_minute_txs_not_counted(tmp_path):
    async with venue(tmp_path) as (_, _, ws):
        for _ in range(200):
            await ws.send_json({"type": "ping"})
        for _ in range(200):
            assert await ws.receive_json() == {"type": "pong"}
        await ws.send_json({"type": "ping"})
        assert await ws.receive_json() == {"type": "error", "code": 30009, "message": "too many messages"}
        await ws.send_json({"type": "subscribe", "channel": "height"})  # refused too, not processed
        assert (await ws.receive_json())["code"] == 30009
        await ws.send_json({"type": "jsonapi/sendtx", "data": {"id": "t", "tx_type": 14, "tx_info": tx_info(0, 1)}})
        msg = await ws.receive_json()
        assert (msg["type"], msg["id"], msg["code"]) == ("jsonapi/sendtx", "t", 200)


async def test_idle_connection_is_closed_and_pings_keep_it_open(tmp_path):
    async with venue(tmp_path, ws_idle_timeout_s=0.4) as (_, client, ws):
        for _ in range(4):  # app-level pings every 0.2 s keep it open for 0.8 s
            await asyncio.sleep(0.2)
            await ws.send_json({"type": "ping"})
            assert await ws.receive_json() == {"type": "pong"}
        for _ in range(3):  # WS-level ping frames count too
            await asyncio.sleep(0.2)
            await ws.ping(b"x")
            assert (await ws.receive()).type == WSMsgType.PONG
        t = time.monotonic()
        msg = await asyncio.wait_for(ws.receive(), 2)  # then silence
        assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING)
        assert 0.3 < time.monotonic() - t < 1.0
        assert ws.closed or msg.type == WSMsgType.CLOSE


async def test_malformed_frames_get_an_error_and_the_connection_stays_open(tmp_path):
    async with venue(tmp_path) as (server, _, ws):
        for raw in ("not json", "[1, 2]", "42", '{"type": 7}', '{"no_type": 1}'):
            await ws.send_str(raw)
            msg = await ws.receive_json()
            assert msg["type"] == "error" and msg["code"] == 30000 and msg["message"], raw
        await ws.send_bytes(b"\x00\x01")
        assert (await ws.receive_json())["code"] == 30000
        garbled = [
            {"type": "jsonapi/sendtx"},
            {"type": "jsonapi/sendtx", "data": [1, 2]},
            {"type": "jsonapi/sendtx", "data": {"id": "a", "tx_type": "abc", "tx_info": {}}},
            {"type": "jsonapi/sendtx", "data": {"id": "b", "tx_type": 14}},
            {"type": "jsonapi/sendtx", "data": {"id": "c", "tx_type": 14, "tx_info": "{not json"}},
            {"type": "jsonapi/sendtx", "data": {"id": "d", "tx_type": 14, "tx_info": 5}},
            {"type": "jsonapi/sendtx", "data": {"id": "e", "tx_type": None, "tx_info": tx_info(0, 1)}},
            {"type": "jsonapi/sendtxbatch", "data": {"id": "f", "tx_types": "oops", "tx_infos": "[]"}},
            {"type": "jsonapi/sendtxbatch", "data": "x"},
        ]
        for frame in garbled:
            await ws.send_json(frame)
            msg = await ws.receive_json()
            data = frame.get("data")
            rid = data.get("id", "") if isinstance(data, dict) else ""
            assert (msg["type"], msg["id"], msg["code"]) == (frame["type"], rid, 21501), (frame, msg)
            assert msg["message"]
        assert server.nonces.get((ACCT, KEY), 0) == 0  # nothing taken
        await ws.send_json({"type": "jsonapi/sendtx", "data": {"id": "ok", "tx_type": 14, "tx_info": tx_info(0, 1)}})
        msg = await ws.receive_json()
        assert (msg["id"], msg["code"]) == ("ok", 200)
        await ws.send_json({"type": "ping"})
        assert await ws.receive_json() == {"type": "pong"}
        assert not ws.closed
