"""Record -> replay -> same intents (issue 9): the bundled recording is published into a namespace,
the trend, renko and grid strategy services (their real runners, in process) trade it, the
namespace is archived to Parquet (``lighter-stack record``), the archive's market data is replayed
into a new namespace (``lighter-stack replay --only md``), the same strategies run there, and
their intents equal the archived ones in every field but the ids and ``ts_recv``."""

from __future__ import annotations

import asyncio
import importlib
import time

import msgspec

from lighter_stack.archive_tool import archive_items, publish_items, record_once, recording_items
from lighter_stack.registry import SERVICES
from shared.archive import iter_rows, key_matcher
from shared.bus import Bus
from shared.config import StackConfig
from shared.events import Event

STRATEGIES = ("strategy-trend", "strategy-renko", "strategy-grid")
IGNORED = {"id", "ts_recv", "causation_id"}


def stack(ns: str) -> StackConfig:
    return StackConfig(namespace=ns, markets=["BTC", "ETH"],
                       services={name: {"http_port": 0} for name in STRATEGIES})


async def run_strategies(redis, ns: str, timeout: float = 60.0) -> None:
    """Run the strategy runners on ``ns`` until each consumed every book event of its markets."""
    cfg = stack(ns)
    bus = Bus(redis, ns)
    runners = []
    for name in STRATEGIES:
        runner, _engine = importlib.import_module(SERVICES[name].runner).build(cfg, bus, consumer="t")
        runners.append(runner)
    want = {}
    for r in runners:
        want[r] = sum([await redis.xlen(s) for s in r.inputs if ":md:book:" in s])
    tasks = [asyncio.create_task(r.run()) for r in runners]
    try:
        deadline = time.monotonic() + timeout
        while any(r.processed < want[r] for r in runners) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert all(r.processed == want[r] for r in runners), {r.service: (r.processed, want[r]) for r in runners}
    finally:
        for r in runners:
            r.stop()
        await asyncio.wait_for(asyncio.gather(*tasks), 10)


def comparable(ev: Event) -> tuple[str, dict]:
    d = msgspec.to_builtins(ev)
    return d["strategy"], {k: v for k, v in d.items() if k not in IGNORED}


def by_strategy(events: list[Event]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for ev in events:
        s, d = comparable(ev)
        out.setdefault(s, []).append(d)
    return out


async def test_record_replay_reproduces_intents(redis_client, namespace, recording_path, tmp_path):
    redis = redis_client
    published = await publish_items(redis, namespace, recording_items(recording_path))
    books = sum([await redis.xlen(f"{namespace}:md:book:{m}") for m in ("BTC", "ETH")])
    assert published > 1000 and books > 500
    await run_strategies(redis, namespace)

    archive = tmp_path / "archive"
    written = await record_once(redis, namespace, archive)
    assert sum(written.values()) == published + await redis.xlen(f"{namespace}:intent:1001")
    assert (await record_once(redis, namespace, archive)) == {s: 0 for s in written}  # nothing new twice

    original = [r.event() for r in iter_rows(archive, key_matcher(["intent"]))]
    kinds = {type(e).__name__ for e in original}
    assert "RestingOrders" in kinds and "TargetPosition" in kinds, kinds

    replay_ns = f"{namespace}-replay"
    try:
        n = await publish_items(redis, replay_ns, archive_items(archive, ["md"]))
        assert n == published
        assert await redis.xlen(f"{replay_ns}:intent:1001") == 0  # intents were not replayed...
        await run_strategies(redis, replay_ns)  # ...the strategies make them again
        again = [d.event for d in await Bus(redis, replay_ns).read_all(f"{replay_ns}:intent:1001")]
        assert by_strategy(again) == by_strategy(original)
        assert len(again) == len(original)
    finally:
        keys = [k async for k in redis.scan_iter(match=f"{replay_ns}:*")]
        if keys:
            await redis.delete(*keys)
