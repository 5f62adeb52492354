"""venue-sim's audit log (``services/venue_sim/audit.py``, config ``audit_file``): every change
of the published book with its nonce, and every accepted create order with its client order
index -- what the chaos suite checks the stack against."""

from __future__ import annotations

import asyncio
import json
import time

from aiohttp.test_utils import TestClient, TestServer
from venue_tx import order, register, signed

from services.venue_sim.config import VenueSimConfig
from services.venue_sim.runner import build
from shared.events import Bbo
from shared.markets import MarketInfo
from shared.recording import RecordingHeader, write_recording

BTC = MarketInfo(symbol="BTC", market_id=1, size_decimals=5, price_decimals=1, min_base_amount=0.0002,
                 min_quote_amount=10)
MS = 1_000_000


async def test_audit_log_has_every_published_book_by_nonce_and_every_accepted_order(tmp_path):
    t0 = time.time_ns()
    events = [Bbo(id=f"b{k}", ts_event=t0 + k * 50 * MS, market="BTC", bid_px=100000.0 + k, bid_sz=0.5,
                  ask_px=100000.5 + k, ask_sz=0.5) for k in range(3)]
    rec = tmp_path / "r.jsonl.gz"
    write_recording(rec, RecordingHeader(markets=[BTC]), events)
    audit = tmp_path / "audit" / "venue-audit.jsonl"
    server, replay, app = build(VenueSimConfig(recording=str(rec), fills_file="", speed=1.0, audit_file=str(audit)))
    register(server)
    task = asyncio.create_task(replay.run())
    try:
        async with TestClient(TestServer(app)) as client:
            expiry = int(time.time() * 1000) + 28 * 24 * 3600 * 1000
            for nonce, coi in enumerate((7, 8)):
                info = signed(14, order(AccountIndex=1001, ApiKeyIndex=4, Nonce=nonce, MarketIndex=1,
                                        ClientOrderIndex=coi, BaseAmount=1000, Price=999000, IsAsk=0, Type=0,
                                        TimeInForce=2, ReduceOnly=0, TriggerPrice=0, OrderExpiry=expiry,
                                        ExpiredAt=0))
                r = await client.post("/api/v1/sendTx", data={"tx_type": "14", "tx_info": info})
                assert r.status == 200, await r.text()
            # a refused tx (nonce out of step) is not an accepted order
            r = await client.post("/api/v1/sendTx", data={"tx_type": "14", "tx_info": info})
            assert r.status == 400
            for _ in range(100):
                if replay.state == "finished" and not server.engine.pending_count():
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)  # the makers' speed bump (200 ms)
    finally:
        replay.stop()
        await asyncio.wait_for(task, 2)
        server.close()
    recs = [json.loads(line) for line in audit.read_text().splitlines()]
    orders = [r for r in recs if r["k"] == "order"]
    assert [(r["acct"], r["coi"], r["m"]) for r in orders] == [(1001, 7, 1), (1001, 8, 1)]
    books = [r for r in recs if r["k"] == "book"]
    # nonces count up by one per published change, and each record is the whole book then
    assert [b["n"] for b in books] == list(range(1, len(books) + 1))
    # best first: the recorded touch, then the synthetic depth ladder behind it
    assert books[0]["b"][0] == [1000000, 50000] and books[0]["a"][0] == [1000005, 50000]
    assert all(a[0] > b[0] for a, b in zip(books[0]["b"], books[0]["b"][1:], strict=False))
    last = books[-1]
    assert server.book_levels[1] == ({p: s for p, s in last["b"]}, {p: s for p, s in last["a"]})
    assert last["b"][0] == [1000020, 50000] and any(p == 999000 and s >= 1000 for p, s in last["b"])  # our resting bid is public
