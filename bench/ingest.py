"""Collector ingest: events per second into Redis, against raw pipelined XADD of the same entries.

Prints figures, never fails on them (target: ingest >= 50 % of raw; docs/performance.md).

Frames: a synthetic Lighter WS session shaped like the real samples
(``tests/fixtures/lighter-samples/ws_order_book_*.json``, ``ws_trade_update.json``) for BTC and
ETH: a book snapshot per market, then ``--frames`` frames, two book updates (contiguous nonces,
one to three changed levels near the touch) for each trade frame (one trade), all encoded to
bytes before timing. Each measurement runs on a private Redis (``EmbeddedRedis``) in a fresh
namespace:

- ``ingest_events_per_s``: the collector's own loop, ``CollectorClient.consume`` over the frames
  (the WS connection replaced by an iterable that has every frame ready, i.e. a saturated
  socket): a reader task stamps and queues the frames, the publishing loop takes those waiting
  (at most ``max_batch_frames``, 200), decodes, parses, applies them to the gap-checked books,
  derives the Bbos and publishes their events in one MULTI/EXEC; events published / wall seconds;
- ``ingest_per_frame_events_per_s``: ``CollectorClient.handle`` frame by frame (one MULTI/EXEC
  round trip per frame: the collector's behaviour when frames arrive one at a time, and its
  throughput before batching);
- ``parse_events_per_s``: the same frames through ``FeedEngine.on_frame`` only (no Redis):
  the parser's share;
- ``raw_xadd_events_per_s``: the very entries the collector wrote (same streams, same bytes),
  ``XADD`` in pipelines of ``--pipeline`` (1,000) commands without MULTI: the Redis floor;
- ``raw_xadd_per_frame_events_per_s``: the same entries, one MULTI/EXEC round trip per frame's
  events, as the collector publishes: the floor of its publishing pattern.

Each events/s figure is the best of ``--repeat`` (5) rounds; each round runs all four back to
back, and ``ingest_vs_raw`` is the **median over the rounds** of that round's ingest / raw ratio
(the machine's load moves both within a round alike, so the ratio is steadier than the ratio of
two bests). ``*_cpu`` figures divide by CPU seconds instead of wall seconds: this process's
(``time.process_time``) plus the Redis server's (``INFO cpu``) during the run, so other work on a
shared machine hardly moves them; ``ingest_vs_raw_cpu`` is their median ratio. Last line: one
JSON object.
Run: ``python bench/ingest.py [--frames 30000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import orjson
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchkit.stack import machine, print_figures, redis_version  # noqa: E402

from services.collector.client import CollectorClient  # noqa: E402
from services.collector.config import CollectorConfig  # noqa: E402
from shared.bus import EVENT_FIELD, Bus  # noqa: E402
from shared.config import REPO_ROOT  # noqa: E402
from shared.events import encode  # noqa: E402
from shared.lighter_ws.engine import FeedEngine  # noqa: E402
from shared.markets import KNOWN_MARKETS  # noqa: E402
from shared.redis_util import EmbeddedRedis, async_client  # noqa: E402

SAMPLES = REPO_ROOT / "tests" / "fixtures" / "lighter-samples"
MARKETS = [KNOWN_MARKETS["BTC"], KNOWN_MARKETS["ETH"]]


def _sample(name: str) -> dict:
    return json.loads((SAMPLES / name).read_text())


def make_frames(n: int) -> list[bytes]:
    """A snapshot per market, then ``n`` frames: per market in turn, two book updates then one
    trade (see the module docstring)."""
    snap_t, upd_t, trade_t = (_sample(f) for f in ("ws_order_book_subscribed.json", "ws_order_book_update.json",
                                                   "ws_trade_update.json"))
    mids = {"BTC": 115000.0, "ETH": 4500.0}
    ticks = {"BTC": 0.1, "ETH": 0.01}
    nonce = {m.symbol: 1000 for m in MARKETS}
    frames: list[bytes] = []
    t_us = 1_757_971_320_000_000
    for m in MARKETS:
        s = copy.deepcopy(snap_t)
        mid, tick = mids[m.symbol], ticks[m.symbol]
        s["channel"] = f"order_book:{m.market_id}"
        s["order_book"].update(nonce=nonce[m.symbol], begin_nonce=0,
                               bids=[{"price": f"{mid - tick * (k + 1):.2f}", "size": "1.0000"} for k in range(20)],
                               asks=[{"price": f"{mid + tick * (k + 1):.2f}", "size": "1.0000"} for k in range(20)])
        frames.append(orjson.dumps(s))
    trade_id = 10**10
    i = 0
    while len(frames) < n + len(MARKETS):
        m = MARKETS[(i // 3) % len(MARKETS)]
        mid, tick = mids[m.symbol], ticks[m.symbol]
        t_us += 500
        if i % 3 < 2:
            u = copy.deepcopy(upd_t)
            u["channel"] = f"order_book:{m.market_id}"
            k = i % 5
            side = "bids" if i % 2 else "asks"
            px = mid - tick * (k + 1) if side == "bids" else mid + tick * (k + 1)
            levels = [{"price": f"{px:.2f}", "size": f"{(i % 7) * 0.5:.4f}"}]
            if i % 4 == 0:
                levels.append({"price": f"{px + (tick if side == 'asks' else -tick):.2f}", "size": "2.0000"})
            u["order_book"].update(bids=levels if side == "bids" else [], asks=levels if side == "asks" else [],
                                   begin_nonce=nonce[m.symbol], nonce=nonce[m.symbol] + 1 + i % 3,
                                   last_updated_at=t_us)
            u["last_updated_at"] = t_us
            nonce[m.symbol] = u["order_book"]["nonce"]
            frames.append(orjson.dumps(u))
        else:
            tr = copy.deepcopy(trade_t)
            tr["channel"] = f"trade:{m.market_id}"
            trade_id += 1
            tr["trades"][0].update(trade_id=trade_id, trade_id_str=str(trade_id), market_id=m.market_id,
                                   price=f"{mid:.2f}", timestamp=t_us // 1000)
            frames.append(orjson.dumps(tr))
        i += 1
    return frames


def _redis_cpu(url: str) -> float:
    info = redis.Redis.from_url(url).info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def cpu_timed(url: str, fn, *args):
    """Run ``fn(*args)`` (a coroutine function) with ``asyncio.run``; returns (its result, CPU
    seconds of this process plus the Redis server)."""
    c0, r0 = time.process_time(), _redis_cpu(url)
    res = asyncio.run(fn(*args))
    return res, time.process_time() - c0 + _redis_cpu(url) - r0


def parse_only(frames: list[bytes]) -> tuple[int, float]:
    """(events, seconds) of ``FeedEngine.on_frame`` over ``frames``."""
    eng = FeedEngine(MARKETS, "bench")
    t0 = time.perf_counter()
    n = 0
    for i, raw in enumerate(frames):
        n += len(eng.on_frame(raw, i).routed)
    return n, time.perf_counter() - t0


class _Ready:
    """The frames as an async iterable with every frame ready (a saturated connection)."""

    def __init__(self, frames: list[bytes]) -> None:
        self.frames = frames

    async def __aiter__(self):
        for raw in self.frames:
            yield raw


async def collector_ingest(url: str, frames: list[bytes], batched: bool
                           ) -> tuple[int, float, list[list[tuple[str, bytes]]]]:
    """(events, seconds, per-frame published entries) of the collector's loop into Redis:
    ``consume`` (batched) or ``handle`` per frame."""
    ns = f"bench-ingest-{uuid.uuid4().hex[:8]}"
    redis = async_client(url)
    try:
        bus = Bus(redis, ns)
        client = CollectorClient("ws://127.0.0.1:1/unused", FeedEngine(MARKETS, ns), bus, CollectorConfig())
        t0 = time.perf_counter()
        if batched:
            await client.consume(_Ready(frames))
        else:
            for raw in frames:
                await client.handle(raw)
        dt = time.perf_counter() - t0
        if client.dead_letters:
            raise RuntimeError(f"{client.dead_letters} frames dead-lettered: the synthetic session is wrong")
        eng = FeedEngine(MARKETS, ns)  # the same entries again, per frame, for the raw runs
        per_frame = [[(s, encode(e)) for s, e in eng.on_frame(raw, i).routed] for i, raw in enumerate(frames)]
        n = client.published
        await _drop(redis, ns)
        return n, dt, per_frame
    finally:
        await redis.aclose()


async def _drop(redis, ns: str) -> None:
    keys = [k async for k in redis.scan_iter(match=f"{ns}:*")]
    for i in range(0, len(keys), 500):
        await redis.delete(*keys[i:i + 500])


async def raw_xadd(url: str, per_frame: list[list[tuple[str, bytes]]], pipeline: int,
                   per_frame_multi: bool) -> tuple[int, float]:
    """(entries, seconds) of XADD of the collector's entries: pipelines of ``pipeline`` commands,
    or one MULTI/EXEC per frame (``per_frame_multi``). Stream names get a fresh namespace."""
    ns = f"bench-raw-{uuid.uuid4().hex[:8]}"
    redis = async_client(url)
    try:
        frames = [[(f"{ns}:{s.split(':', 1)[1]}", b) for s, b in entries] for entries in per_frame]
        n = sum(len(f) for f in frames)
        t0 = time.perf_counter()
        if per_frame_multi:
            for entries in frames:
                if not entries:
                    continue
                pipe = redis.pipeline(transaction=True)
                for s, b in entries:
                    pipe.xadd(s, {EVENT_FIELD: b}, maxlen=500_000, approximate=True)
                await pipe.execute()
        else:
            flat = [e for f in frames for e in f]
            for i in range(0, len(flat), pipeline):
                pipe = redis.pipeline(transaction=False)
                for s, b in flat[i:i + pipeline]:
                    pipe.xadd(s, {EVENT_FIELD: b}, maxlen=500_000, approximate=True)
                await pipe.execute()
        dt = time.perf_counter() - t0
        await _drop(redis, ns)
        return n, dt
    finally:
        await redis.aclose()


def main() -> None:
    ap = argparse.ArgumentParser(description="collector ingest vs raw pipelined XADD")
    ap.add_argument("--frames", type=int, default=30_000)
    ap.add_argument("--pipeline", type=int, default=1000, help="XADD commands per raw pipeline")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    load_before = machine()["loadavg"]
    frames = make_frames(args.frames)
    best: dict[str, float] = {}
    ratios: list[float] = []
    cpu_ratios: list[float] = []

    def keep(key: str, n: int, dt: float) -> float:
        best[key] = max(best.get(key, 0.0), round(n / dt, 1))
        return n / dt

    with EmbeddedRedis() as server:
        for _ in range(args.repeat):
            keep("parse_events_per_s", *parse_only(frames))
            (n, dt, per_frame), cpu_i = cpu_timed(server.url, collector_ingest, server.url, frames, True)
            ingest = keep("ingest_events_per_s", n, dt)
            cpu_ingest = keep("ingest_events_per_cpu_s", n, cpu_i)
            (n_raw, dt_raw), cpu_r = cpu_timed(server.url, raw_xadd, server.url, per_frame, args.pipeline, False)
            raw = keep("raw_xadd_events_per_s", n_raw, dt_raw)
            cpu_raw = keep("raw_xadd_events_per_cpu_s", n_raw, cpu_r)
            ratios.append(ingest / raw)
            cpu_ratios.append(cpu_ingest / cpu_raw)
            keep("ingest_per_frame_events_per_s", *asyncio.run(collector_ingest(server.url, frames, batched=False))[:2])
            keep("raw_xadd_per_frame_events_per_s", *asyncio.run(raw_xadd(server.url, per_frame, args.pipeline, True)))
        rv = redis_version(server.url)
    sizes = [len(b) for f in per_frame for _, b in f]
    figures = {
        **best,
        "ingest_vs_raw": round(float(np.median(ratios)), 3),
        "ingest_vs_raw_rounds": [round(r, 3) for r in ratios],
        "ingest_vs_raw_cpu": round(float(np.median(cpu_ratios)), 3),
        "ingest_vs_raw_cpu_rounds": [round(r, 3) for r in cpu_ratios],
        "target_met": float(np.median(ratios)) >= 0.5,
        "frames": len(frames), "events": n, "events_per_frame": round(n / len(frames), 2),
        "mean_entry_bytes": round(sum(sizes) / len(sizes), 1), "pipeline": args.pipeline,
        "machine": {**machine(), "loadavg_before": load_before, "redis": rv},
    }
    print_figures(figures)


if __name__ == "__main__":
    main()
