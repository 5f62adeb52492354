"""Executor dead-man switch (``dead_man_switch_s``, off by default): a scheduled cancel-all
(tx 16, TimeInForce SCHEDULED=1, Time = now + T ms) kept armed while the executor is alive and
reconciled, aborted (TimeInForce ABORT=2) on a clean shutdown; T within Lighter's 5 min .. 15
days. Signed by the real SDK signer, sent to a scripted venue on loopback."""

from __future__ import annotations

import asyncio
import time

import pytest
from account_venue_kit import AccountVenue
from executor_kit import ACCT, BTC
from pydantic import ValidationError

from services.executor.config import ExecutorConfig
from services.executor.runner import ExecutorService
from services.executor.signer import Signer, generate_key
from shared.config import StackConfig, VenueConfig


def test_off_by_default_and_only_lighters_range_is_accepted():
    assert ExecutorConfig().dead_man_switch_s == 0
    assert ExecutorConfig(dead_man_switch_s=300).dead_man_switch_s == 300
    assert ExecutorConfig(dead_man_switch_s=15 * 24 * 3600).dead_man_switch_s == 15 * 24 * 3600
    for bad in (60, 299, 15 * 24 * 3600 + 1, -1):
        with pytest.raises(ValidationError):
            ExecutorConfig(dead_man_switch_s=bad)


@pytest.fixture
async def armed_service(redis_client, redis_url, namespace):
    venue = await AccountVenue(ACCT).start()
    cfg = StackConfig(namespace=namespace, redis_url=redis_url, markets=["BTC"],
                      venue=VenueConfig(rest_url=venue.url, ws_url="ws://127.0.0.1:1/stream"),
                      services={"executor": {"http_port": 0, "dead_man_switch_s": 600, "cancel_on_shutdown": False}})
    ecfg = cfg.section("executor", ExecutorConfig)
    svc = ExecutorService(cfg, ecfg, generate_key(), redis_client)
    svc.signer = await Signer.create(venue.url, ACCT, cfg.api_key_index, cfg.venue.chain_id, svc._key)
    svc._key = None
    await svc._build_engine({"BTC": BTC})
    yield svc, venue
    await svc.rest.close()
    await svc.signer.close()
    await venue.stop()


async def test_arm_sends_a_scheduled_cancel_all_and_shutdown_aborts_it(armed_service):
    svc, venue = armed_service
    used = svc.engine.budget_used()
    before = int(time.time() * 1000)
    assert await svc.dead_man.arm()
    (tx_type, info), = venue.txs
    assert tx_type == 16 and info["TimeInForce"] == 1
    assert before + 600_000 <= info["Time"] <= int(time.time() * 1000) + 600_000
    assert svc.engine.budget_used() == used + 1  # charged to the request budget
    assert svc.health()["dead_man_switch"]["armed_until_ms"] == info["Time"]
    await svc._shutdown()
    assert [(t, d["TimeInForce"], d["Time"]) for t, d in venue.txs[1:]] == [(16, 2, 0)]
    assert svc.dead_man.armed_until_ms == 0


async def test_nothing_is_armed_before_reconciliation_and_a_refused_refresh_is_counted(armed_service):
    svc, venue = armed_service
    stop = asyncio.Event()
    task = asyncio.create_task(svc.dead_man.run(stop))
    await asyncio.sleep(0.3)
    assert venue.txs == []  # halted: not reconciled yet
    venue.script["sendTx"] = (400, {"code": 21500, "message": "refused"})
    assert not await svc.dead_man.arm()
    status = svc.dead_man.status()
    assert status["failures"] == 1 and status["last_error"].startswith("21500") and status["armed_until_ms"] == 0
    del venue.script["sendTx"]
    svc.engine.set_reconciled(True)
    for _ in range(100):
        if venue.txs:
            break
        await asyncio.sleep(0.02)
    stop.set()
    await task
    assert [(t, d["TimeInForce"]) for t, d in venue.txs] == [(16, 1)]
    await svc._shutdown()  # armed: aborted
    assert [(t, d["TimeInForce"]) for t, d in venue.txs] == [(16, 1), (16, 2)]
