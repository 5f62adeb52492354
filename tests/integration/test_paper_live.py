"""Paper trading on live market data (docs/modes.md), the whole path on loopback: an upstream
venue-sim plays Lighter (it replays a flat BTC book, 115000.0 / 115001.0, and speaks Lighter's
WS/REST); venue-sim in ``source: live`` follows it; the collector reads the same upstream feed
(its ``ws_url``/``rest_url`` override ``venue.*``) and publishes the market data; the real
executor (real SDK signer, its key registered on our venue-sim) trades a target position on our
venue-sim. The fill is at the upstream's ask, and nothing reached the upstream."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from services.collector.config import CollectorConfig
from services.collector.runner import run_collector
from services.venue_sim.config import VenueSimConfig
from services.venue_sim.runner import serve
from shared.events import Bbo, Fill, PositionSnapshot, TargetPosition
from shared.markets import MarketInfo
from shared.recording import RecordingHeader, write_recording
from shared.redis_util import free_port

ACCT = 1001
S = 1_000_000_000
BTC = MarketInfo(symbol="BTC", market_id=1, size_decimals=5, price_decimals=1, min_base_amount=0.0002,
                 min_quote_amount=10.0)
ETH = MarketInfo(symbol="ETH", market_id=0, size_decimals=4, price_decimals=2, min_base_amount=0.005,
                 min_quote_amount=10.0)


async def _status(port: int) -> dict:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/sim/status") as r:
        return await r.json()


async def test_paper_on_live_data_trades_against_the_upstream_market_and_sends_it_nothing(
        venue_executor, tmp_path, redis_url, namespace):
    t0 = time.time_ns()
    rec = tmp_path / "upstream.jsonl.gz"
    write_recording(rec, RecordingHeader(markets=[BTC, ETH], source="test"),
                    [Bbo(id=f"u{i}", ts_event=t0 + i * S, source="rec", market="BTC", bid_px=115000.0, bid_sz=1.0,
                         ask_px=115001.0, ask_sz=1.0) for i in range(300)])
    up_port = free_port()
    up_stop = asyncio.Event()
    up_task = asyncio.create_task(serve(VenueSimConfig(host="127.0.0.1", port=up_port, recording=str(rec), speed=1.0,
                                                       fills_file="", depth={"enabled": False}), 1001, up_stop))
    stop_collector = asyncio.Event()
    collector = None
    try:
        await asyncio.sleep(0.3)
        upstream = {"source": "live", "upstream_ws_url": f"ws://127.0.0.1:{up_port}/stream",
                    "upstream_rest_url": f"http://127.0.0.1:{up_port}", "upstream_reconnect_initial_s": 0.1}
        h = await venue_executor([], ["BTC"], venue=upstream)
        assert (await _status(h.port))["source"] == "live"
        ccfg = CollectorConfig(http_port=0, ws_url=upstream["upstream_ws_url"],
                               rest_url=upstream["upstream_rest_url"])
        collector = asyncio.create_task(run_collector(h.cfg, ccfg, redis_url, stop_collector))
        await h.wait_for(lambda evs: "BTC" in h.svc.engine.bbo, timeout=15)  # the upstream's book, via the collector
        assert h.svc.engine.bbo["BTC"] == (115000.0, 115001.0)

        await h.bus.publish(h.bus.streams.intent(ACCT), [TargetPosition(
            id="t1", ts_event=time.time_ns(), source="A", strategy="A", market="BTC", target=0.002)])
        evs = await h.wait_for(lambda evs: any(isinstance(e, PositionSnapshot) and e.strategy == "A"
                                               and e.position == pytest.approx(0.002) for e in evs))
        fills = [e for e in evs if isinstance(e, Fill)]
        assert fills and all(f.price == 115001.0 and f.side == "buy" for f in fills)
        assert (await h.account_positions()).get(1) == pytest.approx(0.002)

        ours, up = await _status(h.port), await _status(up_port)
        assert ours["fills"] == len(fills) and ours["accounts"][str(ACCT)]["txs"] >= 1
        assert up["fills"] == 0 and up["pending_txs"] == 0
        assert all(a["txs"] == 0 and a["requests"] == 0 for a in up["accounts"].values())
        assert ours["upstream"]["connected"] and ours["events_replayed"] >= 1
    finally:
        stop_collector.set()
        if collector is not None:
            assert await asyncio.wait_for(collector, 10) == 0
        up_stop.set()
        await asyncio.wait_for(up_task, 10)
