"""Executor runner end to end: real Redis, the real SDK signer, and a Lighter-compatible venue.

venue-sim (``services.venue_sim``) was still being written when this test was made, so the venue
here is a small fake Lighter server defined in this file (aiohttp): ``nextNonce``,
``orderBookDetails``, ``account``, ``accountActiveOrders``, ``sendTx`` (nonce checking, IOC
matching against one fixed ask/bid level, cancel-all) and WS ``/stream`` with the account
channels (``account_all_trades`` before ``account_all_orders``, then ``account_all_positions``).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time

import pytest
from aiohttp import WSMsgType, web

from services.executor.config import ExecutorConfig
from services.executor.runner import ExecutorService, resolve_key
from shared.bus import Bus
from shared.config import StackConfig, VenueConfig
from shared.events import (
    Bbo,
    Control,
    Fill,
    OrderAccepted,
    OrderCanceled,
    OrderRejected,
    PositionSnapshot,
    RiskState,
    TargetPosition,
)
from shared.markets import MarketInfo
from shared.redis_util import free_port

ACCT = 1001
KEY = 4
BTC = MarketInfo(symbol="BTC", market_id=1, size_decimals=5, price_decimals=1, min_base_amount=0.0002,
                 min_quote_amount=10.0, taker_fee=0.0002)
ETH = MarketInfo(symbol="ETH", market_id=0, size_decimals=4, price_decimals=2, min_base_amount=0.005,
                 min_quote_amount=10.0)


class FakeLighter:
    """Just enough Lighter for the executor."""

    def __init__(self) -> None:
        self.nonce = 5
        self.txs: list[tuple[int, dict]] = []
        self.ask = (1150010, 50)  # price ticks, lots available (0.0005 BTC)
        self.bid = (1149990, 50)
        self.position = 0  # lots, signed
        self.resting = [{"order_index": 281474976710700, "client_order_index": 9, "market_index": 1,
                         "status": "open", "remaining_base_amount": "0.00100", "price": "100000.0"}]
        self.sockets: list[web.WebSocketResponse] = []
        self.trade_id = 9000
        self.auth_seen: list[str] = []
        self.pubkey = ""  # registered by the executor's ChangePubKey (paper mode)

    def app(self) -> web.Application:
        app = web.Application()
        r = app.router
        r.add_get("/api/v1/nextNonce", self.next_nonce)
        r.add_get("/api/v1/orderBookDetails", self.details)
        r.add_get("/api/v1/account", self.account)
        r.add_get("/api/v1/accountActiveOrders", self.active)
        r.add_post("/api/v1/sendTx", self.send_tx)
        r.add_get("/api/v1/apikeys", self.apikeys)
        r.add_get("/stream", self.ws)
        return app

    async def next_nonce(self, req: web.Request) -> web.Response:
        assert req.query["account_index"] == str(ACCT) and req.query["api_key_index"] == str(KEY)
        return web.json_response({"code": 200, "nonce": self.nonce})

    async def apikeys(self, _req: web.Request) -> web.Response:
        keys = [{"account_index": ACCT, "api_key_index": KEY, "nonce": self.nonce, "public_key": self.pubkey}]
        return web.json_response({"code": 200, "api_keys": keys if self.pubkey else []})

    async def details(self, _req: web.Request) -> web.Response:
        return web.json_response({"code": 200, "order_book_details": [BTC.to_lighter(), ETH.to_lighter()]})

    def _pos(self) -> dict:
        return {"market_id": 1, "symbol": "BTC", "sign": -1 if self.position < 0 else 1,
                "position": BTC.size_str(abs(self.position)), "avg_entry_price": "115001.0"}

    async def account(self, req: web.Request) -> web.Response:
        assert req.query["by"] == "index" and req.query["value"] == str(ACCT)
        return web.json_response({"code": 200, "accounts": [{"index": ACCT, "account_index": ACCT, "collateral": "1000.000000",
                                                             "positions": [self._pos()]}]})

    async def active(self, req: web.Request) -> web.Response:
        self.auth_seen.append(req.headers.get("Authorization", ""))
        if not req.headers.get("Authorization"):
            return web.json_response({"code": 20001, "message": "auth required"}, status=400)
        mid = int(req.query["market_id"])
        return web.json_response({"code": 200, "orders": [o for o in self.resting if o["market_index"] == mid]})

    async def send_tx(self, req: web.Request) -> web.Response:
        form = await req.post()
        tx_type, info = int(form["tx_type"]), json.loads(form["tx_info"])
        if info["Nonce"] != self.nonce or info["AccountIndex"] != ACCT or info["ApiKeyIndex"] != KEY:
            return web.json_response({"code": 21104, "message": "invalid nonce"}, status=400)
        self.nonce += 1
        if tx_type == 8:  # ChangePubKey: the paper executor registers its key (L1Sig not checked here)
            self.pubkey = base64.b64decode(info["PubKey"]).hex()
            return web.json_response({"code": 200, "message": "ok", "tx_hash": "0" * 80,
                                      "predicted_execution_time_ms": int(time.time() * 1000)})
        self.txs.append((tx_type, info))
        if tx_type == 16:
            self.resting.clear()
        elif tx_type == 14:
            asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(self._match(info)))
        return web.json_response({"code": 200, "message": "ok", "tx_hash": f"{len(self.txs):080x}",
                                  "predicted_execution_time_ms": int(time.time() * 1000)})

    async def _match(self, o: dict) -> None:
        is_ask = bool(o["IsAsk"])
        px, avail = self.bid if is_ask else self.ask
        crosses = o["Price"] <= px if is_ask else o["Price"] >= px
        filled = min(o["BaseAmount"], avail) if crosses else 0
        now_ms = int(time.time() * 1000)
        if filled:
            self.trade_id += 1
            self.position += -filled if is_ask else filled
            t = {"trade_id": self.trade_id, "trade_id_str": str(self.trade_id), "type": "trade", "market_id": 1,
                 "size": BTC.size_str(filled), "price": BTC.price_str(px),
                 "usd_amount": f"{BTC.int_to_size(filled) * BTC.int_to_price(px):.6f}",
                 "ask_account_id": ACCT if is_ask else 77, "bid_account_id": 77 if is_ask else ACCT,
                 "ask_client_id": o["ClientOrderIndex"] if is_ask else 0,
                 "bid_client_id": 0 if is_ask else o["ClientOrderIndex"],
                 "is_maker_ask": not is_ask, "taker_fee": 200, "maker_fee": 0, "timestamp": now_ms}
            await self._push({"type": "update/account_all_trades", "channel": f"account_all_trades:{ACCT}",
                              "trades": {"1": [t]}})
        rest = o["BaseAmount"] - filled
        status = "filled" if rest == 0 else "canceled-not-enough-liquidity"
        await self._push({"type": "update/account_all_orders", "channel": f"account_all_orders:{ACCT}",
                          "orders": {"1": [{"client_order_index": o["ClientOrderIndex"],
                                            "order_index": 281474976710800 + o["ClientOrderIndex"] % 1000,
                                            "market_index": 1, "status": status,
                                            "remaining_base_amount": BTC.size_str(rest),
                                            "updated_at": now_ms}]}})
        await self._push({"type": "update/account_all_positions", "channel": f"account_all_positions:{ACCT}",
                          "positions": {"1": self._pos()}})

    async def _push(self, msg: dict) -> None:
        for ws in list(self.sockets):
            if not ws.closed:
                await ws.send_str(json.dumps(msg))

    async def ws(self, req: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(req)
        await ws.send_str(json.dumps({"type": "connected", "session_id": "s1"}))
        subs = 0
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            m = json.loads(msg.data)
            if m.get("type") == "ping":
                await ws.send_str(json.dumps({"type": "pong"}))
            elif m.get("type") == "subscribe":
                assert m.get("auth", "").split(":")[1] == str(ACCT)
                ch = m["channel"].replace("/", ":")
                kind = ch.split(":")[0]
                payload = {"account_all_orders": {"orders": {}}, "account_all_trades": {"trades": {}},
                           "account_all_positions": {"positions": {"1": self._pos()}}}[kind]
                await ws.send_str(json.dumps({"type": f"subscribed/{kind}", "channel": ch, **payload}))
                subs += 1
                if subs == 3:
                    self.sockets.append(ws)
        return ws


async def _wait_for(bus: Bus, stream: str, pred, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        evs = [d.event for d in await bus.read_all(stream) if d.event is not None]
        got = pred(evs)
        if got:
            return evs
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out; stream has {[type(e).__name__ for e in evs]}")


@pytest.fixture
async def fake_venue():
    fake = FakeLighter()
    runner = web.AppRunner(fake.app())
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield fake, port
    await runner.cleanup()


async def test_executor_end_to_end(fake_venue, redis_client, redis_url, namespace, monkeypatch):
    fake, port = fake_venue
    monkeypatch.delenv("LIGHTER_API_PRIVATE_KEY", raising=False)
    cfg = StackConfig(namespace=namespace, redis_url=redis_url, markets=["BTC", "ETH"],
                      venue=VenueConfig(rest_url=f"http://127.0.0.1:{port}", ws_url=f"ws://127.0.0.1:{port}/stream"),
                      services={"executor": {"http_port": 0, "reconcile_retry_s": 0.2, "cancel_scope": "all"}})
    ecfg = cfg.section("executor", ExecutorConfig)
    svc = ExecutorService(cfg, ecfg, resolve_key(cfg, ecfg), redis_client)
    task = asyncio.create_task(svc.run())
    bus = Bus(redis_client, namespace)
    exec_stream = bus.streams.exec(ACCT)
    try:
        # starts halted, reconciles (cancel_scope all: cancels the resting order with a cancel-all), then runs
        await _wait_for(bus, exec_stream, lambda evs: any(isinstance(e, RiskState) and e.state == "running"
                                                          for e in evs))
        evs = [d.event for d in await bus.read_all(exec_stream)]
        assert isinstance(evs[0], RiskState) and evs[0].state == "halted"
        assert [t for t, _ in fake.txs] == [16] and fake.resting == []
        assert fake.auth_seen and all(a.split(":")[1] == str(ACCT) for a in fake.auth_seen)

        # another client used the key: our next send hits 21104, resyncs and retries
        fake.nonce += 3
        ts = time.time_ns()
        await bus.publish(bus.streams.book("BTC"), [Bbo(id="b1", ts_event=ts, source="test", market="BTC",
                                                        bid_px=114999.0, bid_sz=1.0, ask_px=115001.0, ask_sz=0.0005)])
        await asyncio.sleep(0.7)
        intents = [TargetPosition(id="tA", ts_event=ts + 1, source="A", strategy="A", market="BTC", target=0.002),
                   TargetPosition(id="tB", ts_event=ts + 2, source="B", strategy="B", market="BTC", target=-0.001)]
        await bus.publish(bus.streams.intent(ACCT), intents)

        evs = await _wait_for(bus, exec_stream,
                              lambda evs: any(isinstance(e, OrderCanceled) for e in evs))
        acc = [e for e in evs if isinstance(e, OrderAccepted)]
        fills = [e for e in evs if isinstance(e, Fill)]
        assert len(acc) == 1 and acc[0].side == "buy" and acc[0].time_in_force == "ioc"
        venue_fills = [f for f in fills if f.liquidity != "internal"]
        internal = [f for f in fills if f.liquidity == "internal"]
        # the venue had 0.0005 at the ask: a partial fill, attributed FIFO, then the IOC rest canceled
        assert sum(f.size for f in venue_fills) == pytest.approx(0.0005)
        assert all(f.venue_trade_id == "9001" and f.client_order_index == acc[0].client_order_index
                   for f in venue_fills)
        assert venue_fills[0].fee == pytest.approx(0.0005 * 115001.0 * 200 / 1e6)
        if internal:  # both intents in one batch: 0.001 crossed internally, 0.001 sent
            assert sorted((f.strategy, f.side, f.size) for f in internal) == [("A", "buy", 0.001),
                                                                               ("B", "sell", 0.001)]
            assert acc[0].size == pytest.approx(0.001) and acc[0].strategy == "A"
        (oc,) = [e for e in evs if isinstance(e, OrderCanceled)]
        assert oc.reason == "canceled-not-enough-liquidity" and oc.remaining == pytest.approx(acc[0].size - 0.0005)
        snaps = [e for e in evs if isinstance(e, PositionSnapshot)]
        assert snaps[-1].account_position == pytest.approx(0.0005)
        tx14 = [info for t, info in fake.txs if t == 14]
        assert len(tx14) == 1 and tx14[0]["TimeInForce"] == 0 and tx14[0]["OrderExpiry"] == 0
        assert tx14[0]["Price"] == BTC.price_to_int(115001.0 * 1.001, "down")
        assert svc.nonces.resyncs >= 1
        # a malformed input goes to the dead-letter stream
        await redis_client.xadd(bus.streams.intent(ACCT), {b"event": b"{not json"})
        dlq = None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not dlq:
            dlq = await redis_client.xrange(bus.streams.dlq)
            await asyncio.sleep(0.05)
        assert dlq and dlq[0][1][b"raw"] == b"{not json" and dlq[0][1][b"service"] == b"executor"

        # an engine bug on one event dead-letters that event only; its batch neighbour is processed
        real = svc.engine._on_control

        def poisoned(ev, *a, **kw):
            if ev.reason == "poison":
                raise RuntimeError("engine bug")
            return real(ev, *a, **kw)

        monkeypatch.setattr(svc.engine, "_on_control", poisoned)
        await bus.publish(bus.streams.control, [
            Control(id="c-poison", ts_event=ts + 3, command="pause", target="A", reason="poison"),
            Control(id="c-ok", ts_event=ts + 4, command="pause", target="B", reason="maintenance")])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(dlq) < 2:
            dlq = await redis_client.xrange(bus.streams.dlq)
            await asyncio.sleep(0.05)
        assert len(dlq) == 2 and b"engine error: RuntimeError: engine bug" in dlq[1][1][b"reason"]
        assert b"c-poison" in dlq[1][1][b"raw"]
        assert svc.engine._paused("B") and not svc.engine._paused("A")
    finally:
        svc.stop()
        code = await asyncio.wait_for(task, 15)
    assert code == 0
    # shutdown cancels the account's resting orders (cancel_scope all: cancel-all), keeps the position
    assert fake.txs[-1][0] == 16 and fake.position == 50


# ---------------------------------------------------------------------------------------------
# The same flow against the real venue-sim (services.venue_sim), when it is importable.
# ---------------------------------------------------------------------------------------------


async def test_executor_against_venue_sim(venue_executor):
    t0 = time.time_ns()
    bbos = [Bbo(id=f"r{i}", ts_event=t0 + i * 1_000_000_000, source="rec", market=m, bid_px=px - 1.0, bid_sz=1.0,
                ask_px=px, ask_sz=1.0)
            for i in range(120) for m, px in (("BTC", 115001.0), ("ETH", 4500.01))]
    h = await venue_executor(bbos, ["BTC", "ETH"])
    ts = time.time_ns()
    await h.bus.publish(h.bus.streams.book("BTC"), [Bbo(id="b1", ts_event=ts, source="test", market="BTC",
                                                        bid_px=115000.0, bid_sz=1.0, ask_px=115001.0, ask_sz=1.0)])
    await asyncio.sleep(0.7)
    await h.bus.publish(h.bus.streams.intent(ACCT), [
        TargetPosition(id="vA", ts_event=ts + 1, source="A", strategy="A", market="BTC", target=0.002),
        TargetPosition(id="vB", ts_event=ts + 2, source="B", strategy="B", market="BTC", target=-0.001)])
    evs = await h.wait_for(lambda evs: any(isinstance(e, Fill) and e.venue_trade_id for e in evs))
    acc = [e for e in evs if isinstance(e, OrderAccepted)]
    assert acc and acc[0].side == "buy" and acc[0].time_in_force == "ioc"
    fills = [e for e in evs if isinstance(e, Fill) and e.venue_trade_id]
    assert fills[0].strategy == "A" and fills[0].liquidity == "taker"
    assert fills[0].client_order_index == acc[0].client_order_index


async def test_dust_from_a_partial_fill_is_closed_on_venue_sim(venue_executor):
    """The ETH touch shows 0.0014 (below Lighter's 0.005 minimum): an entry of 0.005 fills 0.0014 and
    the rest is canceled. The exit must still trade the 0.0014 (reduce-only at the minimum size,
    clamped by the venue), leaving the venue position at zero."""
    t0 = time.time_ns()
    bbos = [Bbo(id=f"r{i}", ts_event=t0 + i * 1_000_000_000, source="rec", market="ETH", bid_px=4500.0, bid_sz=1.0,
                ask_px=4500.01, ask_sz=0.0014) for i in range(120)]
    h = await venue_executor(bbos, ["ETH"], venue={"depth": {"enabled": False}})  # partial fill at the touch
    ts = time.time_ns()
    await h.bus.publish(h.bus.streams.book("ETH"), [Bbo(id="e1", ts_event=ts, source="test", market="ETH",
                                                        bid_px=4500.0, bid_sz=1.0, ask_px=4500.01, ask_sz=0.0014)])
    await asyncio.sleep(0.5)
    await h.bus.publish(h.bus.streams.intent(ACCT), [
        TargetPosition(id="in", ts_event=ts + 1, source="A", strategy="A", market="ETH", target=0.005)])
    await h.wait_for(lambda evs: any(isinstance(e, OrderCanceled) for e in evs))
    await h.bus.publish(h.bus.streams.intent(ACCT), [
        TargetPosition(id="out", ts_event=ts + 2, source="A", strategy="A", market="ETH", target=0.0)])
    evs = await h.wait_for(lambda evs: sum(isinstance(e, Fill) for e in evs) >= 2)
    fills = [e for e in evs if isinstance(e, Fill)]
    assert [(f.side, f.size) for f in fills] == [("buy", 0.0014), ("sell", 0.0014)]
    assert not [e for e in evs if isinstance(e, OrderRejected)]
    assert (await h.account_positions()).get(0, 0.0) == 0.0
