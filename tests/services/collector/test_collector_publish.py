"""The collector's publish while Redis is unreachable: retried with backoff (``/health``
degraded meanwhile), and a publish whose answer was lost is not repeated when it was written."""

from __future__ import annotations

from redis.exceptions import ConnectionError as RedisConnectionError

from services.collector.client import CollectorClient
from services.collector.config import CollectorConfig
from shared.bus import Bus
from shared.events import Trade
from shared.lighter_ws.engine import FeedEngine
from shared.markets import KNOWN_MARKETS
from shared.outage import BusLink


def trade(i: int) -> Trade:
    return Trade(id=f"t{i}", ts_event=i, source="collector", market="BTC", price=100_000.0, size=0.001, taker_side="buy",
                 trade_id=str(i))


async def test_publish_waits_for_redis_and_never_publishes_twice(redis_client, namespace):
    bus = Bus(redis_client, namespace)
    stream = bus.streams.trade("BTC")
    link = BusLink("collector-unit", base_s=0.01, cap_s=0.02)
    client = CollectorClient("ws://127.0.0.1:1/stream", FeedEngine([KNOWN_MARKETS["BTC"]], namespace), bus,
                             CollectorConfig(), link=link)
    real = bus.publish_many
    script = ["refused", "refused", "written-answer-lost"]
    degraded: list[str] = []

    async def flaky(routed):
        step = script.pop(0) if script else "ok"
        if step == "refused":
            degraded.append(link.health({"status": "ok"})["status"])
            raise RedisConnectionError("Connection refused")
        await real(routed)
        if step == "written-answer-lost":
            raise RedisConnectionError("Connection closed by server.")

    bus.publish_many = flaky  # type: ignore[method-assign]
    await client.publish([(stream, trade(1)), (stream, trade(2))])
    assert [d.event.id for d in await bus.read_all(stream)] == ["t1", "t2"]  # once, in order
    assert degraded == ["ok", "degraded"] and link.up and client.published == 2
