"""Paper trading on live market data (docs/venue-sim.md "Live source"): a venue-sim with
``source: live`` follows an upstream Lighter feed -- here a second venue-sim, which speaks the
same WS/REST protocol -- and matches our signed orders locally against the upstream's top of
book and trades; nothing of ours ever reaches the upstream. Loopback only."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import ValidationError
from venue_tx import order, register, signed

from services.venue_sim.config import VenueSimConfig
from services.venue_sim.live import LiveFeed, UpstreamSendRefused
from services.venue_sim.runner import build, serve, upstream_markets
from shared.events import Bbo, Trade
from shared.markets import MarketInfo
from shared.recording import RecordingHeader, write_recording
from shared.venue.matching import MatchingEngine

BTC = MarketInfo(symbol="BTC", market_id=1, size_decimals=5, price_decimals=1, min_base_amount=0.0002,
                 min_quote_amount=10)
ETH = MarketInfo(symbol="ETH", market_id=0, size_decimals=4, price_decimals=2, min_base_amount=0.005,
                 min_quote_amount=10)
T0 = 1_757_894_400_000_000_000
S = 1_000_000_000
ACCT, KEY = 1001, 4
GTT_MS = 28 * 24 * 3600 * 1000


def bbo(bid: float, ask: float, i: int = 0, market: str = "BTC") -> Bbo:
    return Bbo(id=f"u{i}", ts_event=T0 + i * S // 10, market=market, bid_px=bid, bid_sz=0.5, ask_px=ask, ask_sz=0.5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def until(pred, timeout: float = 5.0, what: str = "") -> None:
    t = time.monotonic()
    while not pred():
        if time.monotonic() - t > timeout:
            raise AssertionError(f"timed out waiting for {what or pred}")
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def upstream(tmp_path, events: list[Any], port: int = 0) -> AsyncIterator[tuple[Any, Any, TestServer]]:
    """The upstream "Lighter": a venue-sim replaying ``events`` (recording time, speed 1) on a
    loopback port; yields ``(server, replay, test_server)``."""
    rec = tmp_path / f"up{time.monotonic_ns()}.jsonl.gz"
    write_recording(rec, RecordingHeader(markets=[ETH, BTC]), events)
    server, replay, app = build(VenueSimConfig(recording=str(rec), fills_file="", speed=1.0))
    task = asyncio.create_task(replay.run())
    ts = TestServer(app, host="127.0.0.1", port=port or None)
    await ts.start_server()
    try:
        yield server, replay, ts
    finally:
        replay.stop()
        await asyncio.wait_for(task, 2)
        await server.close_clients()
        await ts.close()


def upstream_move(server: Any, ev: Any) -> None:
    """Move the upstream's market: the event goes through its engine and publish path, as a
    replayed event does."""
    server.publish(server.engine.on_market_data(ev))


@contextlib.asynccontextmanager
async def live_venue(up_port: int, markets: list[MarketInfo] | None = None,
                     **cfg: Any) -> AsyncIterator[tuple[Any, LiveFeed, TestClient]]:
    """venue-sim in live mode following the upstream on ``up_port`` (markets from the upstream's
    ``orderBookDetails`` unless given); the test key registered for (1001, 4)."""
    vcfg = VenueSimConfig(source="live", upstream_ws_url=f"ws://127.0.0.1:{up_port}/stream",
                          upstream_rest_url=f"http://127.0.0.1:{up_port}", fills_file="",
                          upstream_reconnect_initial_s=0.05, upstream_reconnect_max_s=0.2, **cfg)
    if markets is None:
        found = await upstream_markets(vcfg.model_copy(update={"host": "127.0.0.1", "port": 0}), ["BTC"],
                                       asyncio.Event())
        assert found is not None
        markets = found
    server, feed, app = build(vcfg, live_markets=markets)
    assert isinstance(feed, LiveFeed)
    register(server)
    task = asyncio.create_task(feed.run())
    try:
        async with TestClient(TestServer(app)) as client:
            yield server, feed, client
    finally:
        feed.stop()
        await asyncio.wait_for(task, 3)


def bid_info(nonce: int, coi: int, price: int, base: int = 1000, ask: int = 0, tif: int = 2) -> str:
    """A signed limit order (post-only by default) of the test key; prices in ticks of 0.1 USD."""
    expiry = int(time.time() * 1000) + GTT_MS if tif != 0 else 0
    return signed(14, order(AccountIndex=ACCT, ApiKeyIndex=KEY, Nonce=nonce, MarketIndex=1, ClientOrderIndex=coi,
                            BaseAmount=base, Price=price, IsAsk=ask, Type=0, TimeInForce=tif, ReduceOnly=0,
                            TriggerPrice=0, OrderExpiry=expiry, ExpiredAt=0))


async def test_live_venue_trades_on_the_upstream_market_and_sends_it_nothing(tmp_path):
    async with upstream(tmp_path, [bbo(100000.0, 100001.0)]) as (up, _, up_ts), \
            live_venue(up_ts.port) as (server, feed, client):
        assert server.markets[1].symbol == "BTC" and server.markets[1].price_decimals == 1  # from orderBookDetails
        await until(lambda: feed.connected and server.engine.state[1].ask_px == 1000010, what="upstream top")
        ws = await client.ws_connect("/stream")
        assert (await ws.receive_json())["type"] == "connected"
        await ws.send_json({"type": "subscribe", "channel": "order_book/1"})
        snap = await ws.receive_json()
        assert snap["order_book"]["bids"][0]["price"] == "100000.0"
        assert snap["order_book"]["asks"][0]["price"] == "100001.0"
        up_before = (up.tx_requests, len(up.engine.orders), len(up.engine.fills), dict(up.nonces))

        r = await client.post("/api/v1/sendTx", data={"tx_type": "14", "tx_info": bid_info(0, 1, 1000005)})
        assert r.status == 200, await r.text()
        await until(lambda: server.engine.active_orders(ACCT), what="our bid resting")
        # the live venue's public book shows our bid at the top, the upstream's does not
        upd = await asyncio.wait_for(ws.receive_json(), 2)
        assert upd["order_book"]["bids"][0]["price"] == "100000.5"

        upstream_move(up, bbo(99999.0, 100000.0, 1))  # the upstream's ask comes down through our bid
        await until(lambda: server.engine.fills, what="our fill")
        (fill,) = server.engine.fills
        assert fill.maker_account == ACCT and fill.price_ticks == 1000005 and fill.size_lots == 1000
        assert server.engine.position(ACCT, 1).size == 1000
        # the live book follows the upstream's
        await until(lambda: server.engine.state[1].bid_px == 999990, what="book follows upstream")

        # a taker sell on the live venue fills against the upstream's bid, locally
        r = await client.post("/api/v1/sendTx", data={"tx_type": "14", "tx_info": bid_info(1, 2, 999000, ask=1, tif=0)})
        assert r.status == 200, await r.text()
        await until(lambda: len(server.engine.fills) == 2, what="our taker fill")
        assert server.engine.fills[1].price_ticks == 999990 and server.engine.position(ACCT, 1).size == 0

        # nothing of ours reached the upstream: no tx request, order, fill, nonce or account
        assert (up.tx_requests, len(up.engine.orders), len(up.engine.fills), dict(up.nonces)) == up_before
        assert up_before == (0, 0, 0, {})
        assert up.status()["accounts"] == {str(ACCT): {"requests": 0, "txs": 0, "weight_total": 0,
                                                       "max_requests_per_min": 0, "rate_limited": 0, "fills": 0,
                                                       "self_trade_fills": 0, "self_trade_cancels": 0}}
        # upstream trades fill our resting orders too
        r = await client.post("/api/v1/sendTx", data={"tx_type": "14", "tx_info": bid_info(2, 3, 999960)})
        assert r.status == 200, await r.text()
        await until(lambda: server.engine.active_orders(ACCT), what="second bid resting")
        upstream_move(up, Trade(id="t1", ts_event=T0 + S, market="BTC", trade_id="77", price=99995.0, size=0.5,
                                taker_side="sell"))
        await until(lambda: len(server.engine.fills) == 3, what="fill from an upstream trade")
        assert server.engine.fills[2].price_ticks == 999960
        status = (await (await client.get("/sim/status")).json())
        assert status["source"] == "live" and status["upstream"]["connected"] and status["clock"] == "wall"
        await ws.close()


async def test_live_book_follows_an_upstream_replaying_a_recording(tmp_path):
    events = [bbo(100000.0 + k, 100001.0 + k, k) for k in range(20)]
    async with upstream(tmp_path, events) as (up, up_replay, up_ts), \
            live_venue(up_ts.port, markets=[BTC]) as (server, feed, _):
        await until(lambda: up_replay.state == "finished", timeout=10, what="upstream replay")
        await until(lambda: server.engine.state[1].bid_px == 1000190, what="last upstream top")
        st = server.engine.state[1]
        assert (st.bid_px, st.ask_px) == (1000190, 1000200)
        assert feed.replayed >= 1 and feed.gaps == 0


async def test_upstream_disconnects_are_survived_and_health_says_degraded(tmp_path):
    port = free_port()
    async with upstream(tmp_path, [bbo(100000.0, 100001.0)], port=port) as (up, _, up_ts), \
            live_venue(port, markets=[BTC]) as (server, feed, client):
        await until(lambda: feed.connected, what="connected")
        assert (await client.get("/health")).status == 200
        await up.close_clients()  # the upstream drops us: we reconnect and resubscribe
        await until(lambda: feed.connections >= 2 and feed.connected, what="reconnected")
        await up.close_clients()
        await up_ts.close()  # the upstream goes away
        await until(lambda: not feed.connected, what="down")
        r = await client.get("/health")
        body = await r.json()
        assert r.status == 503 and body["status"] == "degraded" and body["upstream"]["connected"] is False
        await until(lambda: feed.reconnects >= 3, what="retries")
        assert (await client.get("/api/v1/orderBooks")).status == 200  # our venue keeps serving
        async with upstream(tmp_path, [bbo(100020.0, 100021.0)], port=port):  # it comes back
            await until(lambda: feed.connected and server.engine.state[1].bid_px == 1000200,
                        what="following the upstream again")
            assert (await client.get("/health")).status == 200


async def test_upstream_unreachable_at_start_retries_degraded_and_never_crashes():
    dead = free_port()
    port = free_port()
    cfg = VenueSimConfig(source="live", host="127.0.0.1", port=port, fills_file="",
                         upstream_ws_url=f"ws://127.0.0.1:{dead}/stream", upstream_rest_url=f"http://127.0.0.1:{dead}",
                         upstream_reconnect_initial_s=0.05, upstream_reconnect_max_s=0.1, upstream_timeout_s=0.5)
    stop = asyncio.Event()
    task = asyncio.create_task(serve(cfg, stop=stop, symbols=["BTC"]))
    async with aiohttp.ClientSession() as http:
        body: dict[str, Any] = {}
        for _ in range(200):
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(f"http://127.0.0.1:{port}/health") as r:
                    assert r.status == 503
                    body = await r.json()
                    break
            await asyncio.sleep(0.02)
        assert body["status"] == "degraded" and body["source"] == "live"
    await asyncio.sleep(0.2)
    assert not task.done()
    stop.set()
    await asyncio.wait_for(task, 5)


async def test_snapshot_trades_are_not_applied_and_gaps_resubscribe():
    engine = MatchingEngine([BTC])
    applied: list[Any] = []
    feed = LiveFeed(engine, [BTC], applied.append, "ws://unused")
    feed.start()
    trade = {"trade_id": 5, "price": "100000.0", "size": "0.1", "is_maker_ask": True, "timestamp": 1}
    await feed.handle(orjson.dumps({"type": "subscribed/trade", "channel": "trade:1", "trades": [trade]}))
    assert feed.replayed == 0 and engine.state[1].last_trade_price == 0
    await feed.handle(orjson.dumps({"type": "update/trade", "channel": "trade:1",
                                    "trades": [trade, {**trade, "trade_id": 6, "price": "100001.0"}]}))
    assert feed.replayed == 1 and engine.state[1].last_trade_price == 100001.0  # 5 was seen already

    book = {"type": "subscribed/order_book", "channel": "order_book:1",
            "order_book": {"bids": [{"price": "100.0", "size": "1"}], "asks": [{"price": "101.0", "size": "1"}],
                           "nonce": 10, "begin_nonce": 0}, "timestamp": 1}
    await feed.handle(orjson.dumps(book))
    assert engine.state[1].bid_px == 1000

    class FakeWs:
        sent: list[str] = []

        async def send(self, s: str) -> None:
            self.sent.append(s)

    ws = FakeWs()
    gap = {"type": "update/order_book", "channel": "order_book:1",
           "order_book": {"bids": [], "asks": [{"price": "100.5", "size": "1"}], "nonce": 13, "begin_nonce": 12}}
    await feed.handle(orjson.dumps(gap), ws)
    assert feed.gaps == 1
    assert [orjson.loads(s)["type"] for s in ws.sent] == ["unsubscribe", "subscribe"]
    assert engine.state[1].ask_px == 1010  # the gapped update was not applied
    await feed.handle(b"not json")
    assert feed.dead_frames == 1


async def test_the_live_source_has_no_tx_path():
    feed = LiveFeed(MatchingEngine([BTC]), [BTC], lambda u: None, "ws://unused")

    class FakeWs:
        async def send(self, s: str) -> None:
            raise AssertionError("must not be sent")

    for typ in ("jsonapi/sendtx", "jsonapi/sendtxbatch", "sendTx"):
        with pytest.raises(UpstreamSendRefused):
            await feed._send(FakeWs(), {"type": typ, "data": {}})


def test_live_source_refuses_lockstep_and_the_state_file():
    with pytest.raises(ValidationError, match="lockstep"):
        VenueSimConfig(source="live", lockstep=True)
    with pytest.raises(ValidationError, match="state_path"):
        VenueSimConfig(source="live", state_path="var/state.json")
    assert VenueSimConfig().source == "recording"
