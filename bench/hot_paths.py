"""Benchmark of the walking skeleton's hot paths; prints figures, never fails on speed.

- event encode + decode (msgspec JSON) per second;
- strategy-trend engine: BBO events per second over the bundled recording, replayed in a loop
  with shifted timestamps;
- venue matching engine: market-data events per second;
- Redis Streams: events per second published and consumed through a consumer group with atomic
  commit (REDIS_URL, else the bundled redis-server).

Last line: one JSON object with the figures. Run: ``make bench`` or ``python bench/hot_paths.py``.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import time

import msgspec

from services.strategy_trend.config import TrendConfig
from services.strategy_trend.engine import TrendEngine
from shared.bus import Bus, Consumer
from shared.config import REPO_ROOT
from shared.events import Bbo, decode, encode
from shared.recording import read_recording
from shared.redis_util import EmbeddedRedis, async_client, redis_reachable
from shared.venue.matching import MatchingEngine

RECORDING = REPO_ROOT / "data" / "recordings" / "lighter-2025-09-15-btc-eth.jsonl.gz"
TARGET_EVENTS = 200_000


def _events(n: int) -> tuple[list, list[Bbo]]:
    header, evs = read_recording(RECORDING)
    base = list(evs)
    span = base[-1].ts_event - base[0].ts_event + 1_000_000_000
    out = []
    k = 0
    while len(out) < n:
        for ev in base:
            out.append(msgspec.structs.replace(ev, ts_event=ev.ts_event + k * span, id=f"{ev.id}-{k}"))
        k += 1
    return header.markets, out[:n]


def _rate(n: int, seconds: float) -> float:
    return round(n / seconds, 1) if seconds > 0 else float("inf")


def bench_codec(events: list) -> float:
    t0 = time.perf_counter()
    for ev in events:
        decode(encode(ev))
    return _rate(len(events), time.perf_counter() - t0)


def bench_trend(events: list) -> float:
    bbos = [e for e in events if isinstance(e, Bbo)]
    eng = TrendEngine(TrendConfig(vol_min_bps=0.5), ["BTC", "ETH"])
    t0 = time.perf_counter()
    for ev in bbos:
        eng.on_event(ev)
    return _rate(len(bbos), time.perf_counter() - t0)


def bench_matching(markets: list, events: list) -> float:
    eng = MatchingEngine(markets)
    t0 = time.perf_counter()
    for ev in events:
        eng.on_market_data(ev)
    return _rate(len(events), time.perf_counter() - t0)


async def bench_bus(url: str, events: list) -> tuple[float, float]:
    redis = async_client(url)
    bus = Bus(redis, f"bench-{os.getpid()}")
    stream = bus.streams.book("BENCH")
    t0 = time.perf_counter()
    for i in range(0, len(events), 500):
        await bus.publish(stream, events[i:i + 500])
    pub = _rate(len(events), time.perf_counter() - t0)
    c = Consumer(bus, [stream], "bench", "c1", block_ms=10, batch=500)
    await c.start()
    t0, n = time.perf_counter(), 0
    while n < len(events):
        batch = await c.fetch()
        n += len(batch)
        await c.commit(batch, [])
    con = _rate(n, time.perf_counter() - t0)
    await redis.delete(stream)
    await redis.aclose()
    return pub, con


def main() -> None:
    markets, events = _events(TARGET_EVENTS)
    figures = {"events": len(events), "codec_events_per_s": bench_codec(events),
               "trend_bbo_events_per_s": bench_trend(events), "matching_events_per_s": bench_matching(markets, events)}
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    server = None
    if not redis_reachable(url):
        server = EmbeddedRedis().start()
        url = server.url
    try:
        pub, con = asyncio.run(bench_bus(url, events[:50_000]))
    finally:
        if server:
            server.stop()
    figures.update(bus_publish_events_per_s=pub, bus_consume_commit_events_per_s=con,
                   peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1))
    for k, v in figures.items():
        print(f"{k:>34}: {v:,}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
