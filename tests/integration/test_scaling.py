"""Scaling by named instance against a real Redis (docs/runbook.md, "Scaling out"): two
instances of strategy-trend on different markets, a replica of one instance waiting as standby
and taking over when the holder dies, a holder that lost its lease stopping, and the executor's
per-account lock (a second executor refuses to sign and names the holder; fills are attributed
to each instance)."""

from __future__ import annotations

import asyncio
import logging
import time

import aiohttp
import pytest
from dlq_kit import dead_letters

from services.executor.config import ExecutorConfig
from services.executor.runner import ExecutorService, resolve_key
from services.strategy_trend.runner import build, restore_fills
from shared import strategy_runner
from shared.bus import Bus
from shared.config import ConfigError, StackConfig, VenueConfig
from shared.events import Bbo, Event, Fill, PositionSnapshot, TargetPosition
from shared.leases import Lease, lease_key
from shared.redis_util import free_port
from shared.strategy_runner import LeaseLost, restore_then_run, run_strategy

S = 1_000_000_000
T0 = 1_757_899_995 * S
INSTANCES = {"trend-btc": {"markets": ["BTC"]}, "trend-eth": {"markets": ["ETH"]}}


@pytest.fixture(autouse=True)
def _no_signal_handlers(monkeypatch):
    monkeypatch.setattr(strategy_runner, "install_stop_handlers", lambda stop: None)


def _stack(namespace: str, redis_url: str, instance: str | None = None, **trend) -> StackConfig:
    return StackConfig(namespace=namespace, redis_url=redis_url, markets=["BTC", "ETH"], instance=instance,
                       lease_ttl_s=1.0, services={"strategy-trend": {"http_port": 0, "instances": INSTANCES, **trend}})


def _rising(market: str, base: float, n: int = 22) -> list[Bbo]:
    """Mids rising 3 bps a 15 s candle: the trend engine goes long on the 22nd."""
    step, half = base * 3e-4, base * 5e-6
    return [Bbo(id=f"{market}{k}", ts_event=T0 + (k * 15 + 1) * S, source="collector", market=market,
                bid_px=base + step * k - half, bid_sz=1, ask_px=base + step * k + half, ask_sz=1) for k in range(n)]


class _Capture:
    """A ``build`` for :func:`run_strategy` that keeps the runners it built, by strategy name."""

    def __init__(self) -> None:
        self.runners: dict[str, object] = {}

    def __call__(self, cfg, bus):  # noqa: ANN001
        runner, engine = build(cfg, bus)
        self.runners[engine.name] = runner
        return runner, engine


async def _until(cond, what: str, timeout: float = 10.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not await cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_two_instances_of_trend_trade_their_own_markets_under_their_own_names(redis_client, redis_url,
                                                                                    namespace):
    bus = Bus(redis_client, namespace)
    await bus.publish(bus.streams.book("BTC"), _rising("BTC", 100_000.0))
    await bus.publish(bus.streams.book("ETH"), _rising("ETH", 4_000.0))
    cap = _Capture()
    tasks = [asyncio.create_task(run_strategy(_stack(namespace, redis_url, name), redis_url, cap,
                                              restore_then_run(restore_fills))) for name in INSTANCES]
    intents = bus.streams.intent(1001)

    async def both() -> bool:
        return len(await bus.read_all(intents)) >= 2
    try:
        await _until(both, "an intent of each instance")
        for name in INSTANCES:  # each holds its own instance lock
            assert (await redis_client.get(lease_key(namespace, "instance", name))) is not None
    finally:
        for r in cap.runners.values():
            r.stop()
        await asyncio.wait_for(asyncio.gather(*tasks), 10)
    got = sorted((d.event.strategy, d.event.market) for d in await bus.read_all(intents))
    assert got == [("trend-btc", "BTC"), ("trend-eth", "ETH")]
    assert all(isinstance(d.event, TargetPosition) for d in await bus.read_all(intents))
    btc, eth = cap.runners["trend-btc"], cap.runners["trend-eth"]
    assert (btc.consumer.group, eth.consumer.group) == ("trend-btc", "trend-eth")
    assert btc.inputs == [f"{namespace}:md:book:BTC", f"{namespace}:exec:1001"]
    assert eth.inputs == [f"{namespace}:md:book:ETH", f"{namespace}:exec:1001"]
    for name in INSTANCES:  # a clean stop releases the lock: a replica starts at once
        assert await redis_client.get(lease_key(namespace, "instance", name)) is None


async def test_an_instance_the_section_does_not_list_is_refused(redis_url, namespace):
    with pytest.raises(ConfigError, match="instance trend-sol .LS_INSTANCE.: not listed under "
                                          "services.strategy-trend.instances"):
        await run_strategy(_stack(namespace, redis_url, "trend-sol"), redis_url, build, restore_then_run(restore_fills))


async def test_a_replica_waits_as_standby_and_takes_over_when_the_holder_dies(redis_client, redis_url, namespace):
    bus = Bus(redis_client, namespace)
    await bus.publish(bus.streams.book("BTC"), _rising("BTC", 100_000.0))
    key = lease_key(namespace, "instance", "trend-btc")
    holder = Lease(redis_client, key, 1.0, "box-a:7:dead")  # the running replica
    assert await holder.try_acquire()
    keeper = asyncio.create_task(holder.keep(asyncio.Event()))
    port = free_port()
    cap = _Capture()
    task = asyncio.create_task(run_strategy(_stack(namespace, redis_url, "trend-btc", http_port=port), redis_url,
                                            cap, restore_then_run(restore_fills)))
    try:
        await asyncio.sleep(2.5)  # longer than the TTL: the holder renews, the replica waits
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/health") as r:
            body = await r.json()
        assert r.status == 200 and body["status"] == "standby" and body["holder"] == "box-a:7:dead"
        assert body["lock"] == key and await bus.read_all(bus.streams.intent(1001)) == []

        keeper.cancel()  # the holder dies: no renewal, no release
        died = time.monotonic()

        async def took_over() -> bool:
            return (await redis_client.get(key)) not in (None, b"box-a:7:dead")
        await _until(took_over, "the standby to take the lock", 5)
        assert time.monotonic() - died < 2.5  # within the TTL (+ one poll)

        async def traded() -> bool:
            return len(await bus.read_all(bus.streams.intent(1001))) >= 1
        await _until(traded, "the new holder's intent")
        (d,) = await bus.read_all(bus.streams.intent(1001))
        assert (d.event.strategy, d.event.market) == ("trend-btc", "BTC")
    finally:
        keeper.cancel()
        for r in cap.runners.values():
            r.stop()
        await asyncio.wait_for(task, 10)


async def test_a_holder_that_lost_its_lock_stops_acting(redis_client, redis_url, namespace):
    cap = _Capture()
    task = asyncio.create_task(run_strategy(_stack(namespace, redis_url, "trend-eth"), redis_url, cap,
                                            restore_then_run(restore_fills)))
    key = lease_key(namespace, "instance", "trend-eth")

    async def held() -> bool:
        return (await redis_client.get(key)) is not None
    await _until(held, "the instance lock")
    await redis_client.set(key, "box-b:9:beef", px=5000)  # e.g. taken during a long Redis outage
    with pytest.raises(LeaseLost, match="lost to box-b:9:beef"):
        await asyncio.wait_for(task, 5)
    assert cap.runners["trend-eth"].fenced
    assert await redis_client.get(key) == b"box-b:9:beef"  # left to its holder


async def test_a_second_executor_for_the_account_refuses_to_sign_and_names_the_holder(redis_client, redis_url,
                                                                                       namespace, caplog,
                                                                                       monkeypatch):
    monkeypatch.delenv("LIGHTER_API_PRIVATE_KEY", raising=False)
    cfg = StackConfig(namespace=namespace, redis_url=redis_url, markets=["BTC"],
                      venue=VenueConfig(rest_url=f"http://127.0.0.1:{free_port()}"),  # nobody there: never asked
                      services={"executor": {"http_port": 0, "lock_wait_s": 0.5}})
    ecfg = cfg.section("executor", ExecutorConfig)
    first = Lease(redis_client, lease_key(namespace, "executor", 1001), 30.0, "exec-host:1:cafe")
    assert await first.try_acquire()
    svc = ExecutorService(cfg, ecfg, resolve_key(cfg, ecfg), redis_client)
    with caplog.at_level(logging.WARNING):
        assert await asyncio.wait_for(svc.run(), 10) == 3
    assert svc.signer is None and svc.engine is None  # refused before signing anything
    assert any(r.levelno == logging.ERROR and "refuses to sign" in r.getMessage() and "exec-host:1:cafe"
               in r.getMessage() for r in caplog.records)
    assert await first.current_holder() == "exec-host:1:cafe"


def _two_market_recording() -> list[Event]:
    t0 = time.time_ns()
    return [Bbo(id=f"r{m}{i}", ts_event=t0 + i * S, source="rec", market=m, bid_px=bid, bid_sz=1.0, ask_px=bid + 1,
                ask_sz=5.0) for i in range(90) for m, bid in (("BTC", 115000.0), ("ETH", 4000.0))]


async def test_the_executor_attributes_fills_to_each_instance_and_releases_its_lock(venue_executor, redis_client):
    # the config lists the instances: the executor takes their intents and refuses an unlisted one
    h = await venue_executor(_two_market_recording(), ["BTC", "ETH"],
                             services={"strategy-trend": {"instances": INSTANCES}})
    assert h.cfg.strategy_names() >= {"trend-btc", "trend-eth"}
    key = lease_key(h.cfg.ns, "executor", 1001)
    assert (await redis_client.get(key)).decode() == h.svc.account_lock.lease.holder
    now = time.time_ns()
    await h.bus.publish(h.bus.streams.book("BTC"), [Bbo(id="b1", ts_event=now, source="t", market="BTC",
                                                        bid_px=115000.0, bid_sz=1, ask_px=115001.0, ask_sz=5)])
    await h.bus.publish(h.bus.streams.book("ETH"), [Bbo(id="e1", ts_event=now, source="t", market="ETH",
                                                        bid_px=4000.0, bid_sz=1, ask_px=4001.0, ask_sz=5)])
    await h.wait_for(lambda evs: {"BTC", "ETH"} <= set(h.svc.engine.bbo))
    now = time.time_ns()
    await h.bus.publish(h.bus.streams.intent(1001), [
        TargetPosition(id="t1", ts_event=now, source="strategy-trend", strategy="trend-btc", market="BTC",
                       target=0.001),
        TargetPosition(id="t2", ts_event=now, source="strategy-trend", strategy="trend-eth", market="ETH",
                       target=0.01),
        TargetPosition(id="t3", ts_event=now, source="strategy-trend", strategy="trend-sol", market="BTC",
                       target=0.002)])

    def done(evs: list) -> bool:
        snaps = {(e.strategy, e.market): e.position for e in evs if isinstance(e, PositionSnapshot)}
        return snaps.get(("trend-btc", "BTC")) == pytest.approx(0.001) and \
            snaps.get(("trend-eth", "ETH")) == pytest.approx(0.01)
    evs = await h.wait_for(done)
    fills = {(e.strategy, e.market) for e in evs if isinstance(e, Fill)}
    assert fills == {("trend-btc", "BTC"), ("trend-eth", "ETH")}
    letters = await dead_letters(redis_client, h.cfg.ns)
    assert [(x["stream"], x["reason"].split(":")[0]) for x in letters] == [(h.bus.streams.intent(1001),
                                                                              "unknown-strategy")]
    assert "'trend-sol'" in letters[0]["reason"]
    await h.stop_executor()
    assert await redis_client.get(key) is None  # released: the next executor starts at once
    await h.start_executor(timeout=5)
