"""Leases in a real Redis (shared/leases.py): one holder, standby takes over after the TTL, a
clean release hands over at once, a holder re-takes its lease after Redis lost it and gives it up
when another process took it."""

from __future__ import annotations

import asyncio
import time

import pytest

from shared.leases import Lease, holder_id, lease_key
from shared.redis_util import EmbeddedRedis, async_client


def test_key_and_holder_format():
    assert lease_key("paper", "instance", "trend-eth") == "paper:lock:instance:trend-eth"
    host, pid, tag = holder_id().rsplit(":", 2)
    assert host and pid.isdigit() and len(tag) == 4 and holder_id() != holder_id()


async def test_one_holder_and_a_clean_release_hands_over_at_once(redis_client, namespace):
    key = lease_key(namespace, "instance", "trend")
    a, b = Lease(redis_client, key, 5.0, "host-a:1:aaaa"), Lease(redis_client, key, 5.0, "host-b:2:bbbb")
    assert await a.try_acquire() and a.confirmed
    assert not await b.try_acquire()
    assert await b.current_holder() == "host-a:1:aaaa"
    assert 4000 < await redis_client.pttl(key) <= 5000
    await a.release()
    t = time.monotonic()
    assert await b.wait(asyncio.Event(), timeout_s=3)
    assert time.monotonic() - t < 1.0 and await b.current_holder() == "host-b:2:bbbb"


async def test_a_standby_takes_over_when_the_holder_stops_renewing(redis_client, namespace):
    key = lease_key(namespace, "instance", "trend")
    ttl = 0.9
    holder, standby = Lease(redis_client, key, ttl, "h:1:aaaa"), Lease(redis_client, key, ttl, "s:2:bbbb")
    assert await holder.try_acquire()
    stop = asyncio.Event()
    keeper = asyncio.create_task(holder.keep(stop))
    seen: list[str] = []
    waiter = asyncio.create_task(standby.wait(asyncio.Event(), on_held_by=seen.append))
    await asyncio.sleep(2.5 * ttl)  # renewed every ttl/3: the standby keeps waiting
    assert not waiter.done() and seen == ["h:1:aaaa"]
    keeper.cancel()  # the holder dies (no renewal, no release)
    died = time.monotonic()
    assert await asyncio.wait_for(waiter, 3 * ttl)
    assert time.monotonic() - died <= ttl + 0.5
    assert await standby.current_holder() == "s:2:bbbb"


async def test_a_waiter_with_a_timeout_gives_up(redis_client, namespace):
    key = lease_key(namespace, "executor", 1001)
    assert await Lease(redis_client, key, 30.0, "x:1:aaaa").try_acquire()
    t = time.monotonic()
    assert not await Lease(redis_client, key, 30.0).wait(asyncio.Event(), timeout_s=0.4)
    assert 0.3 < time.monotonic() - t < 2.0


async def test_the_holder_retakes_a_vanished_key_and_yields_to_a_new_holder(redis_client, namespace):
    key = lease_key(namespace, "instance", "grid")
    ttl = 0.6
    a = Lease(redis_client, key, ttl, "a:1:aaaa")
    assert await a.try_acquire()
    stop = asyncio.Event()
    keeper = asyncio.create_task(a.keep(stop))
    await redis_client.delete(key)  # Redis lost its data
    await asyncio.sleep(ttl)
    assert await a.current_holder() == "a:1:aaaa" and not keeper.done()
    await redis_client.set(key, "b:2:bbbb", px=int(ttl * 1000))  # another process took it
    assert await asyncio.wait_for(keeper, 2 * ttl) == "b:2:bbbb"
    assert a.lost_to == "b:2:bbbb" and not a.held and not a.confirmed
    await a.release()  # not ours: left alone
    assert await a.current_holder() == "b:2:bbbb"


@pytest.mark.parametrize("appendonly", [True, False], ids=["aof", "no-persistence"])
async def test_a_redis_outage_longer_than_the_ttl_is_waited_out_and_the_lease_taken_again(appendonly):
    server = EmbeddedRedis(appendonly=appendonly).start()
    client = async_client(server.url)
    try:
        ttl = 0.9
        lease = Lease(client, "t:lock:instance:trend", ttl, "a:1:aaaa")
        assert await lease.try_acquire()
        stop = asyncio.Event()
        keeper = asyncio.create_task(lease.keep(stop))
        server.shutdown()
        await asyncio.sleep(2 * ttl)  # the key expires meanwhile (or is lost with the data)
        assert not lease.confirmed and not keeper.done()
        server.start()
        deadline = time.monotonic() + 10
        while not lease.confirmed:
            assert time.monotonic() < deadline, "lease not confirmed again"
            await asyncio.sleep(0.05)
        assert await lease.current_holder() == "a:1:aaaa"
        stop.set()
        assert await keeper is None
        await lease.release()
        assert await lease.current_holder() is None
    finally:
        await client.aclose()
        server.stop()


async def test_an_executor_starting_while_redis_is_down_waits_for_it_then_takes_the_account_lock():
    from services.executor.account_lock import AccountLock
    from services.executor.config import ExecutorConfig
    from shared.config import StackConfig

    server = EmbeddedRedis().start()
    server.shutdown()
    client = async_client(server.url)
    try:
        cfg = StackConfig(namespace="t", lease_ttl_s=1.0)
        lock = AccountLock(client, cfg, ExecutorConfig(lock_wait_s=0.3), holder="exec:1:abcd")
        task = asyncio.create_task(lock.acquire(asyncio.Event()))
        await asyncio.sleep(1.0)  # several lock_wait_s: it keeps waiting for Redis, it does not refuse
        assert not task.done()
        server.start()
        assert await asyncio.wait_for(task, 10)
        assert await lock.lease.current_holder() == "exec:1:abcd"
        await lock.release()
    finally:
        await client.aclose()
        server.stop()


async def test_a_strategy_starting_while_redis_is_down_says_starting_then_takes_its_lock():
    import aiohttp

    from shared.redis_util import free_port
    from shared.strategy_runner import stand_by

    server = EmbeddedRedis().start()
    server.shutdown()
    client = async_client(server.url)
    port = free_port()
    try:
        lease = Lease(client, "t:lock:instance:trend", 1.0, "me:1:abcd")
        task = asyncio.create_task(stand_by(lease, asyncio.Event(), port, "strategy-trend"))
        await asyncio.sleep(0.5)
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/health") as r:
            body = await r.json()
        assert r.status == 503 and body["status"] == "starting" and body["holder"] is None
        server.start()
        assert await asyncio.wait_for(task, 10)
        assert await lease.current_holder() == "me:1:abcd"
    finally:
        await client.aclose()
        server.stop()
