"""The collector's publishing loop batches the frames that are waiting (``CollectorClient.consume``):
same events in the same order as frame-by-frame handling, fewer Redis transactions under load,
a lone frame published at once, a connection error raised after the frames before it."""

from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path

import pytest

from services.collector.client import CollectorClient
from services.collector.config import CollectorConfig
from shared.bus import Bus, Streams
from shared.lighter_ws.engine import FeedEngine
from shared.markets import KNOWN_MARKETS

SAMPLES = Path(__file__).resolve().parents[2] / "fixtures" / "lighter-samples"


def frames(n: int) -> list[str]:
    """An ETH snapshot, ``n`` contiguous updates moving the best ask, and one malformed frame."""
    snap = json.loads((SAMPLES / "ws_order_book_subscribed.json").read_text())
    upd = json.loads((SAMPLES / "ws_order_book_update.json").read_text())
    out = [json.dumps(snap)]
    nonce = snap["order_book"]["nonce"]
    for i in range(n):
        u = copy.deepcopy(upd)
        u["order_book"].update(begin_nonce=nonce, nonce=nonce + 1, bids=[],
                               asks=[{"price": "2325.00", "size": f"{i + 1}.0000"}])
        nonce += 1
        out.append(json.dumps(u))
    out.insert(5, "{not json")
    return out


class Frames:
    """An async iterable of frames (a stand-in for the connection), optionally failing at the end."""

    def __init__(self, items: list[str], error: Exception | None = None, gap_s: float = 0.0) -> None:
        self.items, self.error, self.gap_s = items, error, gap_s

    async def __aiter__(self):
        for raw in self.items:
            if self.gap_s:
                await asyncio.sleep(self.gap_s)
            yield raw
        if self.error is not None:
            raise self.error


def client(redis_client, namespace: str, max_batch: int = 200) -> tuple[CollectorClient, list[int]]:
    bus = Bus(redis_client, namespace)
    c = CollectorClient("ws://unused", FeedEngine(KNOWN_MARKETS.values(), namespace), bus,
                        CollectorConfig(max_batch_frames=max_batch))
    sizes: list[int] = []
    publish = bus.publish_many

    async def counting(routed):
        sizes.append(len(routed))
        await publish(routed)

    bus.publish_many = counting  # type: ignore[method-assign]
    return c, sizes


async def test_waiting_frames_share_transactions_and_keep_their_order(redis_client, namespace):
    raws = frames(60)
    ref = FeedEngine(KNOWN_MARKETS.values(), namespace)
    expected = [ev for i, raw in enumerate(raws) for _, ev in ref.on_frame(raw, i).routed]
    c, sizes = client(redis_client, namespace, max_batch=16)
    await c.consume(Frames(raws))
    got = [d.event for d in await c.bus.read_all(Streams(namespace).book("ETH"))]
    assert [(type(e).__name__, e.id) for e in got] == [(type(e).__name__, e.id) for e in expected]
    assert sum(sizes) == len(expected) == c.published
    assert len(sizes) < len(raws) / 2  # all frames were waiting: batches, at most 16 frames each
    dlq = await redis_client.xrange(Streams(namespace).dlq)
    assert len(dlq) == 1 and b"invalid JSON" in dlq[0][1][b"reason"]
    assert c.frames == len(raws) and c.dead_letters == 1


async def test_a_lone_frame_is_published_at_once(redis_client, namespace):
    c, sizes = client(redis_client, namespace)
    await c.consume(Frames(frames(3)[:2], gap_s=0.05))  # snapshot, then one update 50 ms later
    assert sizes == [2, 2]  # BookSnapshot + Bbo, then BookDelta + Bbo: one transaction each


async def test_connection_error_is_raised_after_the_frames_before_it(redis_client, namespace):
    c, sizes = client(redis_client, namespace)
    with pytest.raises(ConnectionResetError):
        await c.consume(Frames(frames(4), error=ConnectionResetError("gone")))
    assert c.frames == 6 and sum(sizes) == c.published == 10  # snapshot + 4 updates, each with a Bbo
