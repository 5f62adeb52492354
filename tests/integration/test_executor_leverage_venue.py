"""Executor start-up sets the configured leverage and margin mode per market on venue-sim
(``updateLeverage`` tx 20 through the executor's signer and nonce path); a leverage above the
market's maximum or a venue refusal stops start-up (exit code 2) with a message naming the
market; a bad config value names its field."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import pytest
from aiohttp import web

from services.executor.config import ExecutorConfig
from services.executor.leverage import LeverageError, leverage_plan
from services.executor.runner import ExecutorService, resolve_key
from services.executor.signer import Signer, generate_key
from services.venue_sim.config import VenueSimConfig
from services.venue_sim.runner import build
from shared.config import ConfigError, StackConfig, VenueConfig
from shared.events import Bbo
from shared.markets import MarketInfo
from shared.recording import RecordingHeader, write_recording

BTC = MarketInfo(symbol="BTC", market_id=1, size_decimals=5, price_decimals=1, min_base_amount=0.0002,
                 min_quote_amount=10.0)
ETH = MarketInfo(symbol="ETH", market_id=0, size_decimals=4, price_decimals=2, min_base_amount=0.005,
                 min_quote_amount=10.0)
T0 = 1_757_894_400_000_000_000
ACCT = 1001


async def _venue(tmp_path):
    evs = []
    for i in range(200):
        ts = T0 + i * 100_000_000
        evs.append(Bbo(id=f"b{i}", ts_event=ts, market="BTC", bid_px=115000.0, bid_sz=0.5, ask_px=115000.5,
                       ask_sz=0.5))
        evs.append(Bbo(id=f"e{i}", ts_event=ts, market="ETH", bid_px=4500.0, bid_sz=2.0, ask_px=4500.01, ask_sz=2.0))
    rec = tmp_path / "rec.jsonl.gz"
    write_recording(rec, RecordingHeader(markets=[BTC, ETH], source="test"), evs)
    server, replay, app = build(VenueSimConfig(recording=str(rec), fills_file="", speed=1.0), ACCT)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    task = asyncio.create_task(replay.run())

    async def close():
        replay.stop()
        await asyncio.wait_for(task, 5)
        await runner.cleanup()
        server.close()

    return server, port, close


def _stack(port: int, namespace: str, redis_url: str, leverage: dict) -> StackConfig:
    return StackConfig(namespace=namespace, redis_url=redis_url, markets=["BTC", "ETH"],
                       venue=VenueConfig(rest_url=f"http://127.0.0.1:{port}", ws_url=f"ws://127.0.0.1:{port}/stream"),
                       services={"executor": {"http_port": 0, "reconcile_retry_s": 0.3, "leverage": leverage}})


async def _account(port: int) -> dict:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{port}/api/v1/account", params={"by": "index", "value": ACCT}) as r:
            return (await r.json())["accounts"][0]


async def _run(cfg: StackConfig, redis_client) -> tuple[ExecutorService, asyncio.Task]:
    ecfg = cfg.section("executor", ExecutorConfig)
    svc = ExecutorService(cfg, ecfg, resolve_key(cfg, ecfg), redis_client)
    return svc, asyncio.create_task(svc.run())


async def test_start_up_sets_leverage_and_margin_mode(tmp_path, redis_client, redis_url, namespace, monkeypatch):
    monkeypatch.delenv("LIGHTER_API_PRIVATE_KEY", raising=False)
    server, port, close = await _venue(tmp_path)
    try:
        cfg = _stack(port, namespace, redis_url, {"BTC": {"leverage": 5, "margin_mode": "isolated"},
                                                  "ETH": {"leverage": 10}})
        svc, task = await _run(cfg, redis_client)
        async with asyncio.timeout(20):
            while not (svc.engine is not None and svc.engine.reconciled):
                assert not task.done(), task.result()
                await asyncio.sleep(0.05)
        acct = await _account(port)
        pos = {p["symbol"]: p for p in acct["positions"]}
        assert (pos["BTC"]["initial_margin_fraction"], pos["BTC"]["margin_mode"]) == ("20.00", 1)
        assert (pos["ETH"]["initial_margin_fraction"], pos["ETH"]["margin_mode"]) == ("10.00", 0)
        assert server.margin_book.get(ACCT, 1).imf == 2000
        svc.stop()
        assert await asyncio.wait_for(task, 15) == 0
    finally:
        await close()


async def test_venue_refusal_stops_start_up(tmp_path, redis_client, redis_url, namespace, monkeypatch, caplog):
    monkeypatch.delenv("LIGHTER_API_PRIVATE_KEY", raising=False)
    server, port, close = await _venue(tmp_path)
    try:
        server.engine.position(ACCT, 1).size = 100  # the account holds BTC: no margin mode change
        cfg = _stack(port, namespace, redis_url, {"BTC": {"leverage": 5, "margin_mode": "isolated"}})
        svc, task = await _run(cfg, redis_client)
        with caplog.at_level(logging.ERROR, logger="executor"):
            assert await asyncio.wait_for(task, 20) == 2
        assert svc.engine is None  # nothing built, nothing traded
        msg = " ".join(r.getMessage() for r in caplog.records)
        assert "start-up failed" in msg and "BTC 5x isolated" in msg and "21613" in msg
        assert server.margin_book.get(ACCT, 1).mode == 0
    finally:
        await close()


async def test_leverage_above_the_markets_maximum_stops_start_up(tmp_path, redis_client, redis_url, namespace,
                                                                 monkeypatch, caplog):
    monkeypatch.delenv("LIGHTER_API_PRIVATE_KEY", raising=False)
    server, port, close = await _venue(tmp_path)
    try:
        cfg = _stack(port, namespace, redis_url, {"BTC": {"leverage": 60}})
        _svc, task = await _run(cfg, redis_client)
        with caplog.at_level(logging.ERROR, logger="executor"):
            assert await asyncio.wait_for(task, 20) == 2
        assert "services.executor.leverage.BTC.leverage: 60x is above BTC's maximum 50x" in caplog.text
        assert server.tx_requests == 0
    finally:
        await close()


def test_plan_refuses_an_untraded_market():
    ecfg = ExecutorConfig(leverage={"SOL": {"leverage": 3}})
    with pytest.raises(LeverageError, match="services.executor.leverage.SOL: not a traded market"):
        leverage_plan(ecfg.leverage, {"BTC": BTC})
    step = leverage_plan(ExecutorConfig(leverage={"BTC": {"leverage": 3}}).leverage, {"BTC": BTC})[0]
    assert (step.imf, step.mode) == (3333, 0)  # int(10000 / 3), as the SDK's update_leverage


@pytest.mark.parametrize(("value", "field"), [
    ({"BTC": {"leverage": 0}}, "services.executor.leverage.BTC.leverage"),
    ({"BTC": {"leverage": "high"}}, "services.executor.leverage.BTC.leverage"),
    ({"BTC": {"leverage": 5, "margin_mode": "portfolio"}}, "services.executor.leverage.BTC.margin_mode"),
    ({"BTC": {"leverage": 5, "mode": "cross"}}, "services.executor.leverage.BTC.mode"),
    ({"BTC": 5}, "services.executor.leverage.BTC"),
])
def test_bad_leverage_config_names_the_field(value, field):
    cfg = StackConfig(markets=["BTC"], services={"executor": {"leverage": value}})
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        cfg.section("executor", ExecutorConfig)


async def test_signer_signs_update_leverage_offline():
    signer = await Signer.create("http://127.0.0.1:9", ACCT, 4, 304, generate_key())
    try:
        tx = signer.sign_update_leverage(1, 2000, 1, nonce=7)
        assert tx.tx_type == 20 and tx.nonce == 7
        assert '"InitialMarginFraction":2000' in tx.tx_info and '"MarginMode":1' in tx.tx_info
    finally:
        await signer.close()
