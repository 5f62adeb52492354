"""venue-sim's injected faults (docs/venue-sim.md "Faults"), each observed the way a client sees it:
dropped, duplicated and reordered book deltas (and the client's gap check on ``begin_nonce``
catching them, a resubscribing client ending with the venue's book), delayed and duplicated
account messages, WebSocket disconnects, HTTP 429/23000 and 5xx, spurious 21104 that keep the
nonce, the tx that executes but is never answered; the ``/sim/fault`` endpoints (counts, bad
input -> 400, arming), the config section, determinism given a seed, and the no-fault default.

The venue is strict: txs are signed with the test key, registered on the built server
(``venue_tx``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import aiohttp
import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient, TestServer
from pydantic import ValidationError
from venue_tx import order, register, signed

from services.venue_sim.config import VenueSimConfig
from services.venue_sim.faults import FAULT_KINDS, FaultInjector, FaultPlan, unit
from services.venue_sim.runner import build
from shared.events import Bbo
from shared.lighter_ws.book import BookBuilder, Status
from shared.lighter_ws.parse import parse_order_book
from shared.markets import MarketInfo
from shared.recording import RecordingHeader, write_recording

BTC = MarketInfo(symbol="BTC", market_id=1, size_decimals=5, price_decimals=1, min_base_amount=0.0002,
                 min_quote_amount=10)
T0 = 1_757_894_400_000_000_000
MS = 1_000_000
ACCT, KEY = 1001, 4
GTT_MS = 28 * 24 * 3600 * 1000


def bbos(n: int) -> list[Bbo]:
    """``n`` recorded tops of book 10 ms apart, each moving the bid (every one changes the book)."""
    return [Bbo(id=f"b{k}", ts_event=T0 + k * 10 * MS, market="BTC", bid_px=100000.0 - (k % 5) * 0.5, bid_sz=0.5,
                ask_px=100000.5, ask_sz=0.5) for k in range(n)]


def bid_info(nonce: int, coi: int) -> str:
    """A signed post-only bid far below the market (rests)."""
    return signed(14, order(AccountIndex=ACCT, ApiKeyIndex=KEY, Nonce=nonce, MarketIndex=1, ClientOrderIndex=coi,
                            BaseAmount=1000, Price=500000, IsAsk=0, Type=0, TimeInForce=2, ReduceOnly=0,
                            TriggerPrice=0, OrderExpiry=int(time.time() * 1000) + GTT_MS, ExpiredAt=0))


@contextlib.asynccontextmanager
async def venue(tmp_path, events=None, **cfg):
    """venue-sim on a recording of ``events`` (one Bbo by default), its replay running, the test key
    registered; yields ``(server, client)``."""
    rec = tmp_path / "r.jsonl.gz"
    write_recording(rec, RecordingHeader(markets=[BTC]), events if events is not None else bbos(1))
    server, replay, app = build(VenueSimConfig(recording=str(rec), fills_file="", **cfg))
    register(server)
    task = asyncio.create_task(replay.run())
    try:
        async with TestClient(TestServer(app)) as client:
            yield server, client
    finally:
        replay.stop()
        await asyncio.wait_for(task, 2)


async def connect(client, *channels: str):
    ws = await client.ws_connect("/stream", autoping=False)
    assert (await ws.receive_json())["type"] == "connected"
    for ch in channels:
        await ws.send_json({"type": "subscribe", "channel": ch})
        assert (await ws.receive_json())["type"].startswith("subscribed/")
    return ws


async def drain(ws, quiet: float = 0.4) -> list[dict]:
    """Messages until ``quiet`` seconds pass without one; a close ends the list with
    ``{"_closed": <type>}``."""
    out: list[dict] = []
    while True:
        try:
            msg = await asyncio.wait_for(ws.receive(), quiet)
        except TimeoutError:
            return out
        if msg.type != WSMsgType.TEXT:
            out.append({"_closed": msg.type, "code": ws.close_code})
            return out
        out.append(json.loads(msg.data))


async def send_tx(client, info: str, tx_type: int = 14, **kw):
    return await client.post("/api/v1/sendTx", data={"tx_type": str(tx_type), "tx_info": info}, **kw)


async def next_nonce(client) -> int:
    r = await client.get("/api/v1/nextNonce", params={"account_index": ACCT, "api_key_index": KEY})
    return (await r.json())["nonce"]


async def book_run(tmp_path, n: int, **plan):
    """Replay ``n`` book changes to one order_book subscriber with ``plan``; returns (server, updates)."""
    async with venue(tmp_path, bbos(n), speed=0, autostart=False, faults=plan) as (server, client):
        ws = await connect(client, "order_book/1")
        await client.post("/sim/start")
        msgs = await drain(ws)
        await ws.close()
        return server, [m for m in msgs if m.get("type") == "update/order_book"]


def faulted(seed: int, kind: str, p: float, nonces) -> set[int]:
    """The deltas (by nonce) the injector decides ``kind`` for: its documented rule, recomputed."""
    return {k for k in nonces if unit(seed, kind, (1, k)) < p}


# ---------------------------------------------------------------- off by default


def test_default_plan_is_all_off_and_the_injector_idle():
    plan = VenueSimConfig().faults
    assert all(getattr(plan, k) == 0 for k in FAULT_KINDS)
    f = FaultInjector(plan)
    assert not f.ws_active and not f.tx_active
    assert not any(f.roll(k, 1) for k in FAULT_KINDS)
    assert f.opportunities == dict.fromkeys(FAULT_KINDS, 0) and not any(f.injected.values())


async def test_without_faults_every_delta_arrives_once_in_order(tmp_path):
    server, ups = await book_run(tmp_path, 40)
    nonces = [u["order_book"]["nonce"] for u in ups]
    assert nonces == list(range(1, server.book_nonce[1] + 1)) and len(nonces) >= 39
    assert all(u["order_book"]["begin_nonce"] == u["order_book"]["nonce"] - 1 for u in ups)
    assert server.faults.injected == dict.fromkeys(server.faults.injected, 0)


# ---------------------------------------------------------------- book deltas


async def test_dropped_deltas_are_the_seeds_and_the_client_sees_the_gaps(tmp_path):
    server, ups = await book_run(tmp_path, 80, seed=11, book_drop=0.25)
    total = server.book_nonce[1]
    dropped = faulted(11, "book_drop", 0.25, range(1, total + 1))
    assert 0 < len(dropped) == server.faults.injected["book_drop"]
    got = [u["order_book"]["nonce"] for u in ups]
    assert got == [k for k in range(1, total + 1) if k not in dropped]
    assert server.faults.opportunities["book_drop"] == total
    # the venue's chain is intact (begin_nonce = nonce - 1), so a client's continuity check sees
    # exactly the deltas that follow a dropped one
    prev = 0  # the snapshot's nonce (subscribed before the start)
    for u in ups:
        ob = u["order_book"]
        assert ob["begin_nonce"] == ob["nonce"] - 1
        assert (ob["begin_nonce"] != prev) == (ob["begin_nonce"] in dropped)
        prev = ob["nonce"]


async def test_duplicated_and_reordered_deltas(tmp_path):
    server, ups = await book_run(tmp_path, 60, seed=3, book_duplicate=0.2)
    total = server.book_nonce[1]
    dup = faulted(3, "book_duplicate", 0.2, range(1, total + 1))
    got = [u["order_book"]["nonce"] for u in ups]
    assert got == [k for k in range(1, total + 1) for _ in range(2 if k in dup else 1)]
    assert 0 < len(dup) == server.faults.injected["book_duplicate"]

    server, ups = await book_run(tmp_path, 60, seed=5, book_reorder=0.2)
    expected, held = [], None  # the documented rule: held back, sent right after the next delta
    for k in range(1, server.book_nonce[1] + 1):
        if held is None and unit(5, "book_reorder", (1, k)) < 0.2:
            held = k
            continue
        expected += [k] if held is None else [k, held]
        held = None
    assert [u["order_book"]["nonce"] for u in ups] == expected
    swaps = sum(1 for i in range(len(expected) - 1) if expected[i] > expected[i + 1])
    assert swaps > 0 and server.faults.injected["book_reorder"] == swaps + (held is not None)
    assert server.faults.held == (held is not None)


async def test_a_client_that_resubscribes_on_gaps_ends_with_the_venues_book(tmp_path):
    """The collector's BookBuilder on the faulted feed: every drop, duplicate and swap is a gap it
    detects; resubscribing gives a fresh snapshot, so its book ends equal to the venue's."""
    async with venue(tmp_path, bbos(120), speed=0, autostart=False,
                     faults={"seed": 9, "book_drop": 0.1, "book_duplicate": 0.1, "book_reorder": 0.1}) as (server, client):
        ws = await connect(client)
        await ws.send_json({"type": "subscribe", "channel": "order_book/1"})
        builder = BookBuilder("BTC")
        await client.post("/sim/start")
        while True:
            try:
                msg = await asyncio.wait_for(ws.receive_json(), 0.5)
            except TimeoutError:
                break
            if msg.get("type") not in ("subscribed/order_book", "update/order_book"):
                continue
            res = builder.apply(parse_order_book(msg, 0))
            if res.status is Status.GAP:
                await ws.send_json({"type": "unsubscribe", "channel": "order_book/1"})
                await ws.send_json({"type": "subscribe", "channel": "order_book/1"})
        await ws.close()
        injected = sum(server.faults.injected[k] for k in ("book_drop", "book_duplicate", "book_reorder"))
        assert injected > 3 and builder.gaps >= 1
        bids, asks = server.book_levels[1]
        assert builder.bids == {BTC.int_to_price(p): BTC.int_to_size(s) for p, s in bids.items()}
        assert builder.asks == {BTC.int_to_price(p): BTC.int_to_size(s) for p, s in asks.items()}


# ---------------------------------------------------------------- account messages


async def test_account_message_delayed_comes_after_the_next_one_and_duplicate_twice(tmp_path):
    async with venue(tmp_path, faults={"account_delay_ms": 700}) as (server, client):
        ws = await connect(client, f"account_all/{ACCT}")
        r = await client.post("/sim/fault/once", json={"kind": "account_delay"})
        assert (await r.json())["armed"] == {"account_delay": 1}
        assert (await send_tx(client, bid_info(0, 1))).status == 200
        assert (await send_tx(client, bid_info(1, 2))).status == 200
        first = await asyncio.wait_for(ws.receive_json(), 2)
        t = time.monotonic()
        second = await asyncio.wait_for(ws.receive_json(), 2)
        assert time.monotonic() - t >= 0.3  # both executed together; the delayed one came 700 ms later
        cois = [m["orders"]["1"][0]["client_order_index"] for m in (first, second)]
        assert cois == [2, 1]  # order 1's update arrived after order 2's
        assert server.faults.injected["account_delay"] == 1 and server.faults.held == 0

        await client.post("/sim/fault/once", json={"kind": "account_duplicate"})
        assert (await send_tx(client, bid_info(2, 3))).status == 200
        msgs = await drain(ws)
        assert len(msgs) == 2 and msgs[0] == msgs[1] and msgs[0]["orders"]["1"][0]["client_order_index"] == 3
        assert server.faults.injected["account_duplicate"] == 1


async def test_account_duplicates_counted_per_message(tmp_path):
    async with venue(tmp_path, faults={"seed": 2, "account_duplicate": 0.5}) as (server, client):
        ws = await connect(client, f"account_all/{ACCT}")
        for k in range(8):
            assert (await send_tx(client, bid_info(k, k + 1))).status == 200
        msgs = await drain(ws, 0.6)
        assert len(msgs) == 8 + server.faults.injected["account_duplicate"]
        assert server.faults.opportunities["account_duplicate"] == 8
        assert sorted({m["orders"]["1"][0]["client_order_index"] for m in msgs}) == list(range(1, 9))


# ---------------------------------------------------------------- disconnects


async def test_ws_disconnect_now_and_by_probability(tmp_path):
    async with venue(tmp_path, bbos(30), speed=0, autostart=False) as (server, client):
        a = await connect(client, "height")
        b = await connect(client, "height")
        r = await client.post("/sim/fault/once", json={"kind": "ws_disconnect"})
        assert (await r.json())["injected"]["ws_disconnect"] == 2
        for ws in (a, b):  # abort: no close frame, the connection is just gone
            assert (await asyncio.wait_for(ws.receive(), 2)).type in (WSMsgType.CLOSED, WSMsgType.ERROR, WSMsgType.CLOSE)
        await client.post("/sim/fault", json={"ws_disconnect": 1.0, "ws_disconnect_mode": "close"})
        c = await connect(client, "order_book/1")
        await client.post("/sim/start")
        msgs = await drain(c)
        assert msgs[-1]["_closed"] in (WSMsgType.CLOSE, WSMsgType.CLOSED) and c.close_code == 1001
        assert not [m for m in msgs if m.get("type") == "update/order_book"]  # cut on its first update
        assert server.faults.injected["ws_disconnect"] == 3


# ---------------------------------------------------------------- REST and tx path


async def test_rate_limit_and_5xx_answers_process_nothing(tmp_path):
    async with venue(tmp_path, faults={"rate_limit": 1.0}) as (server, client):
        r = await send_tx(client, bid_info(0, 1))
        assert r.status == 429 and await r.json() == {"code": 23000, "message": "too many requests"}
        assert await next_nonce(client) == 0  # reads are out of the default scope (tx)
        ws = await connect(client)
        await ws.send_json({"type": "jsonapi/sendtx", "data": {"id": "q", "tx_type": 14, "tx_info": bid_info(0, 1)}})
        assert await ws.receive_json() == {"type": "jsonapi/sendtx", "id": "q", "code": 23000,
                                           "message": "too many requests"}
        assert server.faults.injected["rate_limit"] == 2 and server.nonces.get((ACCT, KEY), 0) == 0

        await client.post("/sim/fault", json={"rate_limit": 0, "http_5xx": 1.0, "http_5xx_statuses": [502, 503]})
        r = await send_tx(client, bid_info(0, 1))
        assert r.status in (502, 503) and (await r.text()).startswith(str(r.status))
        assert server.nonces.get((ACCT, KEY), 0) == 0
        r = await client.get("/api/v1/orderBooks")
        assert r.status == 200  # scope tx
        await client.post("/sim/fault", json={"http_scope": "api"})
        r = await client.get("/api/v1/orderBooks")
        assert r.status in (502, 503)
        assert (await client.get("/sim/status")).status == 200  # venue-sim's own endpoints never fault
        assert server.faults.injected["http_5xx"] == 2
        reads = server.meter.read_status()["127.0.0.1"]
        assert reads["requests"] == 2  # nextNonce and the first orderBooks: injected answers are not metered


async def test_nonce_reject_keeps_the_nonce_and_the_retry_passes(tmp_path):
    async with venue(tmp_path) as (server, client):
        await client.post("/sim/fault/once", json={"kind": "nonce_reject", "count": 2})
        r = await send_tx(client, bid_info(0, 1))
        assert r.status == 400 and await r.json() == {"code": 21104, "message": "invalid nonce"}
        assert await next_nonce(client) == 0
        ws = await connect(client)
        await ws.send_json({"type": "jsonapi/sendtx", "data": {"id": "n", "tx_type": 14, "tx_info": bid_info(0, 1)}})
        assert (await ws.receive_json())["code"] == 21104
        r = await send_tx(client, bid_info(0, 1))
        assert r.status == 200 and await next_nonce(client) == 1
        assert server.faults.injected["nonce_reject"] == 2 and server.faults.armed["nonce_reject"] == 0


async def test_tx_timeout_executes_the_tx_and_never_answers(tmp_path):
    async with venue(tmp_path, faults={"tx_timeout": 1.0, "tx_timeout_ms": 150}) as (server, client):
        with pytest.raises(aiohttp.ServerDisconnectedError):  # connection closed after 150 ms
            await send_tx(client, bid_info(0, 1))
        assert await next_nonce(client) == 1  # ... but the tx was executed
        await client.post("/sim/fault", json={"tx_timeout_ms": 3000})
        t = time.monotonic()
        with pytest.raises(asyncio.TimeoutError):  # a client that gives up first
            await send_tx(client, bid_info(1, 2), timeout=aiohttp.ClientTimeout(total=0.5))
        assert time.monotonic() - t < 2.5 and await next_nonce(client) == 2
        await client.post("/sim/fault", json={"tx_timeout_ms": 150})
        await client.post("/sim/fault", json={"tx_timeout_answer": "504"})
        r = await send_tx(client, bid_info(2, 3))
        assert r.status == 504 and await next_nonce(client) == 3
        ws = await connect(client)
        await ws.send_json({"type": "jsonapi/sendtx", "data": {"id": "w", "tx_type": 14, "tx_info": bid_info(3, 4)}})
        assert await drain(ws, 0.3) == []  # no reply
        await asyncio.sleep(0.3)  # the speed bump
        assert sorted(o.client_order_index for o in server.engine.active_orders(ACCT)) == [1, 2, 3, 4]
        assert server.faults.injected["tx_timeout"] == 4
        r = await send_tx(client, "{", tx_type=14)  # a refused tx is answered at once
        assert r.status == 400


# ---------------------------------------------------------------- /sim/fault, config, counts, determinism


async def test_sim_fault_endpoint_validates_merges_counts_and_clears(tmp_path):
    async with venue(tmp_path, faults={"seed": 4, "book_drop": 0.5}) as (server, client):
        body = await (await client.get("/sim/fault")).json()
        assert body["plan"]["seed"] == 4 and body["plan"]["book_drop"] == 0.5
        assert set(body["injected"]) == set(FAULT_KINDS) | {"restart"}
        for bad, field in (({"book_drop": 2}, "book_drop"), ({"nope": 1}, "nope"),
                           ({"http_5xx_statuses": [404]}, "http_5xx_statuses"),
                           ({"tx_timeout_answer": "hang"}, "tx_timeout_answer")):
            r = await client.post("/sim/fault", json=bad)
            assert r.status == 400, bad
            assert [f["field"] for f in (await r.json())["fields"]] == [field]
        for raw in ("not json", "[1, 2]"):
            r = await client.post("/sim/fault", data=raw, headers={"Content-Type": "application/json"})
            assert r.status == 400 and "JSON object" in (await r.json())["error"]
        r = await client.post("/sim/fault/once", json={"kind": "book_teleport"})
        assert r.status == 400 and (await r.json())["fields"][0]["field"] == "kind"
        r = await client.post("/sim/fault/once", json={"kind": "restart"})
        assert r.status == 400  # no state file: a restart would lose the venue
        assert server.faults.plan.book_drop == 0.5  # bad input changed nothing
        r = await client.post("/sim/fault", json={"nonce_reject": 1.0})
        assert (await r.json())["plan"]["book_drop"] == 0.5  # merged
        assert (await send_tx(client, bid_info(0, 1))).status == 400
        status = await (await client.get("/sim/status")).json()
        assert status["faults"]["nonce_reject"] == 1
        metrics = await (await client.get("/metrics")).text()
        assert 'lighter_stack_venue_faults_total{kind="nonce_reject"}' in metrics
        body = await (await client.delete("/sim/fault")).json()
        assert body["plan"] == FaultPlan(seed=4).model_dump() and body["injected"]["nonce_reject"] == 1
        assert not server.faults.tx_active and not server.faults.ws_active
        assert (await send_tx(client, bid_info(0, 1))).status == 200


def test_config_section_sets_the_plan_and_refuses_unknown_keys():
    cfg = VenueSimConfig.model_validate({"faults": {"seed": 8, "book_drop": 0.1, "tx_timeout": 0.05}})
    assert cfg.faults.seed == 8 and cfg.faults.book_drop == 0.1 and cfg.faults.tx_timeout == 0.05
    with pytest.raises(ValidationError, match="book_dorp"):
        VenueSimConfig.model_validate({"faults": {"book_dorp": 0.1}})
    with pytest.raises(ValidationError, match="nonce_reject"):
        VenueSimConfig.model_validate({"faults": {"nonce_reject": -0.1}})


async def test_same_seed_same_faults_other_seed_other_faults(tmp_path):
    async def pattern(seed: int) -> list[bool]:
        async with venue(tmp_path, faults={"seed": seed, "nonce_reject": 0.5}) as (server, _):
            out = []
            for k in range(30):
                try:
                    server.send_tx(14, bid_info(server.nonces.get((ACCT, KEY), 0), k + 1))
                    out.append(True)
                except Exception:
                    out.append(False)
            assert out.count(False) == server.faults.injected["nonce_reject"]
            return out

    a, b, c = await pattern(1), await pattern(1), await pattern(2)
    assert a == b and a != c and 0 < a.count(False) < 30
