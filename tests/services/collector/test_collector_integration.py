"""The collector against a tiny fake Lighter (REST + WS on loopback) and a real Redis.

The fake WS server sends ``connected`` and a ping, answers subscribes with real-shaped frames,
injects a malformed frame and a nonce gap, expects the unsubscribe + subscribe, serves a fresh
snapshot, then drops the connection to force a reconnect.
"""

from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from websockets.asyncio.server import serve

from services.collector.config import CollectorConfig
from services.collector.runner import run_collector
from shared.bus import Bus, Streams
from shared.config import StackConfig, VenueConfig
from shared.events import Bbo, BookDelta, BookSnapshot, MarketStats, Trade
from shared.markets import KNOWN_MARKETS
from shared.redis_util import free_port

SAMPLES = Path(__file__).resolve().parents[2] / "fixtures" / "lighter-samples"


def sample(name: str) -> dict:
    return json.loads((SAMPLES / name).read_text())


def book_frame(mid: int, nonce: int, begin: int, bids, asks, snapshot: bool = False) -> str:
    msg = copy.deepcopy(sample("ws_order_book_subscribed.json" if snapshot else "ws_order_book_update.json"))
    msg["channel"] = f"order_book:{mid}"
    ob = msg["order_book"]
    ob.update(nonce=nonce, begin_nonce=begin,
              bids=[{"price": p, "size": s} for p, s in bids], asks=[{"price": p, "size": s} for p, s in asks])
    ob["last_updated_at"] = msg["last_updated_at"] = 1_757_971_320_000_000 + nonce
    return json.dumps(msg)


class FakeLighter:
    """Loopback Lighter stand-in: REST ``orderBookDetails`` and WS ``/stream``."""

    def __init__(self, rest_failures: int = 1, markets=("ETH", "BTC")) -> None:
        self.rest_failures = rest_failures
        self.rest_calls = 0
        self.markets = markets
        self.connections = 0
        self.received: list[tuple[int, dict]] = []
        self.book_subs: dict[tuple[int, int], int] = {}

    # REST ----------------------------------------------------------------------------------
    async def details(self, _req: web.Request) -> web.Response:
        self.rest_calls += 1
        if self.rest_calls <= self.rest_failures:
            return web.Response(status=503, text="warming up")
        body = {"code": 200, "order_book_details": [KNOWN_MARKETS[s].to_lighter() for s in self.markets],
                "spot_order_book_details": []}
        return web.json_response(body)

    # WS ------------------------------------------------------------------------------------
    async def handler(self, ws) -> None:
        self.connections += 1
        conn = self.connections
        await ws.send(json.dumps({"type": "connected", "session_id": f"s{conn}"}))
        await ws.send(json.dumps({"type": "ping"}))
        async for raw in ws:
            msg = json.loads(raw)
            self.received.append((conn, msg))
            typ, ch = msg.get("type"), msg.get("channel", "")
            if typ == "ping":
                await ws.send(json.dumps({"type": "pong"}))
            elif typ == "unsubscribe":
                await ws.send(json.dumps({"type": "unsubscribed", "channel": ch.replace("/", ":")}))
            elif typ == "subscribe":
                name, _, mid = ch.partition("/")
                if name == "order_book":
                    if await self.order_book(ws, conn, int(mid)):
                        return
                elif name == "trade":
                    t = sample("ws_trade_update.json")
                    t["channel"] = f"trade:{mid}"
                    t["trades"][0]["market_id"] = int(mid)
                    t["trades"][0]["trade_id"] = t["trades"][0]["trade_id_str"] = f"7{mid}"
                    t["type"] = "subscribed/trade"
                    await ws.send(json.dumps(t))
                elif name == "market_stats":
                    s = sample("ws_market_stats_update.json")
                    s["channel"] = f"market_stats:{mid}"
                    s["market_stats"]["market_id"] = int(mid)
                    await ws.send(json.dumps(s))

    async def order_book(self, ws, conn: int, mid: int) -> bool:
        """Send this subscription's script; True = close the connection afterwards."""
        n = self.book_subs[(conn, mid)] = self.book_subs.get((conn, mid), 0) + 1
        if mid != 0:  # BTC: a snapshot is enough
            await ws.send(book_frame(mid, 10, 0, [("115000.0", "0.50000")], [("115000.1", "0.20000")], snapshot=True))
            return False
        if conn == 1 and n == 1:
            await ws.send(book_frame(0, 100, 0, [("4500.00", "1.0000"), ("4499.00", "2.0000")],
                                     [("4501.00", "1.5000")], snapshot=True))
            await ws.send(book_frame(0, 101, 100, [("4500.50", "0.5000")], []))  # new best bid
            await ws.send(book_frame(0, 102, 101, [("4500.50", "0.0000")], []))  # deleted again
            await ws.send("{not json")  # malformed: DLQ, origin ws
            bad = json.loads(book_frame(0, 103, 102, [("abc", "1")], []))
            await ws.send(json.dumps(bad))  # invalid level: DLQ, origin order_book:0
            await ws.send(book_frame(0, 151, 150, [("4400.00", "9.0000")], []))  # GAP: 150 != 102
            await ws.send(book_frame(0, 152, 151, [("4300.00", "9.0000")], []))  # ignored until snapshot
            return False
        if conn == 1 and n == 2:  # the resubscribe after the gap
            await ws.send(book_frame(0, 300, 0, [("4510.00", "1.0000")], [("4511.00", "1.0000")], snapshot=True))
            await ws.send(book_frame(0, 301, 300, [], [("4510.50", "0.2500")]))
            await asyncio.sleep(0.3)  # let the client see everything, then drop the connection
            await ws.close()
            return True
        await ws.send(book_frame(0, 500, 0, [("4520.00", "1.0000")], [("4521.00", "1.0000")], snapshot=True))
        return False


async def wait_for(cond, timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        if await cond():
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


@pytest.fixture
async def fake():
    f = FakeLighter()
    app = web.Application()
    app.router.add_get("/api/v1/orderBookDetails", f.details)
    runner = web.AppRunner(app)
    await runner.setup()
    rest_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", rest_port).start()
    ws_port = free_port()
    async with serve(f.handler, "127.0.0.1", ws_port):
        f.rest_url, f.ws_url = f"http://127.0.0.1:{rest_port}", f"ws://127.0.0.1:{ws_port}/stream"
        yield f
    await runner.cleanup()


def stack_cfg(fake: FakeLighter, namespace: str, http_port: int = 0) -> StackConfig:
    return StackConfig(namespace=namespace, venue=VenueConfig(rest_url=fake.rest_url, ws_url=fake.ws_url),
                       markets=["BTC", "ETH"],
                       services={"collector": {"http_port": http_port, "reconnect_initial_s": 0.05,
                                               "reconnect_max_s": 0.2, "ping_interval_s": 0.3,
                                               "healthy_after_s": 0.0}})


async def test_collector_end_to_end(fake, redis_url, redis_client, namespace):
    port = free_port()
    cfg = stack_cfg(fake, namespace, http_port=port)
    ccfg = cfg.section("collector", CollectorConfig)
    stop = asyncio.Event()
    task = asyncio.create_task(run_collector(cfg, ccfg, redis_url, stop))
    bus = Bus(redis_client, namespace)
    st = Streams(namespace)

    async def eth_book():
        return [d.event for d in await bus.read_all(st.book("ETH"))]

    async def reconnected_snapshot():
        return any(isinstance(e, BookSnapshot) and e.nonce == 500 for e in await eth_book())

    try:
        await wait_for(reconnected_snapshot)
        await wait_for(lambda: _async(any(m.get("type") == "ping" for _, m in fake.received)))
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/health") as r:
                health = await r.json()
                assert r.status == 200 and health["status"] == "ok"
            async with http.get(f"http://127.0.0.1:{port}/metrics") as r:
                metrics = await r.text()
    finally:
        stop.set()
        assert await asyncio.wait_for(task, 10) == 0

    # REST retried after the 503
    assert fake.rest_calls == 2
    # protocol: subscribes after connected, pong to the server's ping, resubscribe after the gap
    c1 = [m for c, m in fake.received if c == 1]
    subs1 = [m["channel"] for m in c1 if m["type"] == "subscribe"]
    assert subs1[:6] == ["order_book/0", "trade/0", "market_stats/0", "order_book/1", "trade/1", "market_stats/1"]
    assert {"type": "pong"} in c1
    i_unsub = c1.index({"type": "unsubscribe", "channel": "order_book/0"})
    assert c1[i_unsub + 1] == {"type": "subscribe", "channel": "order_book/0"}
    # reconnect: a second connection that subscribes everything again
    assert fake.connections >= 2
    assert [m["channel"] for c, m in fake.received if c == 2 and m["type"] == "subscribe"][:3] == \
        ["order_book/0", "trade/0", "market_stats/0"]

    # the ETH book stream: snapshots, applied deltas, derived BBOs; gap and post-gap deltas absent
    evs = await eth_book()
    kinds = [(type(e).__name__, getattr(e, "nonce", None)) for e in evs]
    assert [k for k in kinds if k[0] != "Bbo"] == [
        ("BookSnapshot", 100), ("BookDelta", 101), ("BookDelta", 102),
        ("BookSnapshot", 300), ("BookDelta", 301), ("BookSnapshot", 500)]
    assert all(e.source == "collector" and e.market == "ETH" for e in evs)
    bbos = [e for e in evs if isinstance(e, Bbo)]
    assert [(b.bid_px, b.ask_px) for b in bbos] == [
        (4500.0, 4501.0), (4500.5, 4501.0), (4500.0, 4501.0),  # snapshot, new best bid, deleted
        (4510.0, 4511.0), (4510.0, 4510.5), (4520.0, 4521.0)]
    snap = evs[0]
    assert snap.bids == [(4500.0, 1.0), (4499.0, 2.0)] and snap.ts_event == (1_757_971_320_000_000 + 100) * 1000
    assert evs[1].ts_recv > 0 and isinstance(evs[2], BookDelta)

    btc = [d.event for d in await bus.read_all(st.book("BTC"))]
    assert isinstance(btc[0], BookSnapshot) and isinstance(btc[1], Bbo)
    # trades: the subscribe of each connection resends the trade; published once
    trades = [d.event for d in await bus.read_all(st.trade("ETH"))]
    assert len(trades) == 1 and isinstance(trades[0], Trade) and trades[0].trade_id == "70"
    stats = [d.event for d in await bus.read_all(st.stats("ETH"))]
    assert stats and all(isinstance(s, MarketStats) and s.mark_price == 2064.47 for s in stats)

    # dead letters: raw frame + reason + origin channel + service
    dlq = await redis_client.xrange(st.dlq)
    entries = [{k.decode(): v.decode() for k, v in f.items()} for _, f in dlq]
    assert len(entries) == 2
    assert entries[0]["raw"] == "{not json" and "invalid JSON" in entries[0]["reason"]
    assert entries[0]["stream"] == "ws" and entries[0]["service"] == "collector"
    assert entries[1]["stream"] == "order_book:0" and "bids[0].price 'abc'" in entries[1]["reason"]

    assert "lighter_stack_collector_book_gaps_total" in metrics
    assert "lighter_stack_collector_reconnects_total" in metrics
    assert 'lighter_stack_collector_messages_total{channel="order_book"}' in metrics
    assert "lighter_stack_dead_letters_total" in metrics
    assert health["book_gaps"] == 1 and health["dead_letters"] == 2


async def _async(value):
    return value


async def test_unknown_market_exits_2(fake, redis_url, namespace):
    fake.rest_failures = 0
    fake.markets = ("ETH",)
    cfg = stack_cfg(fake, namespace)
    code = await asyncio.wait_for(run_collector(cfg, cfg.section("collector", CollectorConfig), redis_url,
                                                asyncio.Event()), 10)
    assert code == 2


async def test_stop_while_venue_down(redis_url, namespace):
    dead = f"http://127.0.0.1:{free_port()}"
    cfg = StackConfig(namespace=namespace, venue=VenueConfig(rest_url=dead, ws_url=dead.replace("http", "ws")),
                      services={"collector": {"http_port": 0, "reconnect_initial_s": 0.05}})
    stop = asyncio.Event()
    task = asyncio.create_task(run_collector(cfg, cfg.section("collector", CollectorConfig), redis_url, stop))
    await asyncio.sleep(0.3)
    stop.set()
    assert await asyncio.wait_for(task, 5) == 0


def test_config_defaults_and_validation():
    from shared.config import ConfigError

    c = CollectorConfig()
    assert (c.http_port, c.ping_interval_s, c.markets) == (9101, 30.0, None)
    assert c.resolved_markets(StackConfig(markets=["ETH"])) == ["ETH"]
    assert CollectorConfig(markets=["BTC"]).resolved_markets(StackConfig()) == ["BTC"]
    with pytest.raises(ConfigError, match="services.collector.http_port"):
        StackConfig(services={"collector": {"http_port": "x"}}).section("collector", CollectorConfig)
