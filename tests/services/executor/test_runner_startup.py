"""Executor start-up (live-mode safety): nothing is signed before reconciliation succeeded; a
failed, timed-out or malformed query (account, positions, collateral, active orders, nonce)
halts it -- never read as "no positions" -- and what it will trade with is logged and served on
/health. Protective stops left by a previous run are adopted, not canceled nor duplicated, and a
stop fill from while it was down is attributed. Against a scripted venue on loopback (real REST
client) and real Redis."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import pytest
from account_venue_kit import AccountVenue, order_json, position_json
from executor_kit import ACCT, BTC, MS, T0, S, lighter_trade

from services.executor.config import ExecutorConfig
from services.executor.runner import ExecutorService
from services.executor.signer import Signer, generate_key
from services.venue_sim.crypto import public_key_of
from shared.config import StackConfig, VenueConfig
from shared.events import (
    Bbo,
    Fill,
    OrderAccepted,
    OrderRejected,
    PositionMismatch,
    PositionSnapshot,
    RiskState,
    TargetPosition,
)


class _Feed:
    """The account feed, already subscribed."""

    def __init__(self) -> None:
        self.connected = asyncio.Event()
        self.connected.set()


@pytest.fixture
async def venue():
    v = await AccountVenue(ACCT).start()
    v.positions = [position_json(1, "BTC", 0.002, 115000.0)]
    v.orders = {1: [order_json(1, 4242, 90001, is_ask=False, remaining="0.00100", price="114000.0")]}
    yield v
    await v.stop()


async def _service(venue: AccountVenue, redis_client, redis_url: str, namespace: str, history=(),
                   **executor: Any) -> tuple[ExecutorService, list]:
    cfg = StackConfig(namespace=namespace, redis_url=redis_url, markets=["BTC"],
                      venue=VenueConfig(rest_url=venue.url, ws_url="ws://127.0.0.1:1/stream"),
                      services={"executor": {"http_port": 0, "reconcile_retry_s": 30, "reconcile_timeout_s": 0.5,
                                             "cancel_scope": "all", **executor}})
    ecfg = cfg.section("executor", ExecutorConfig)
    key = generate_key()
    venue.api_keys[cfg.api_key_index] = public_key_of(key.get_secret_value())  # registered before (setup-api-key)
    svc = ExecutorService(cfg, ecfg, key, redis_client)
    if history:
        await svc.bus.publish(svc.exec_stream, list(history))
    svc.signer = await Signer.create(venue.url, ACCT, cfg.api_key_index, cfg.venue.chain_id, svc._key)
    svc._key = None
    signed: list = []
    real_sign = svc.signer.sign

    def sign(cmd, nonce):  # noqa: ANN001, ANN202
        signed.append(cmd)
        return real_sign(cmd, nonce)

    svc.signer.sign = sign  # type: ignore[method-assign]
    await svc._build_engine({"BTC": BTC})
    svc.feed = _Feed()  # type: ignore[assignment]
    return svc, signed


async def _reconcile(svc: ExecutorService, timeout: float = 10.0) -> None:
    """Run the reconciliation loop until it succeeded or failed once."""
    task = asyncio.create_task(svc._reconcile_loop())
    deadline = time.monotonic() + timeout
    while not task.done() and not svc.engine.reconcile_reason.startswith("reconciliation failed"):
        assert time.monotonic() < deadline, "reconciliation neither succeeded nor failed"
        await asyncio.sleep(0.02)
    svc.stop()
    await task


async def _close(svc: ExecutorService) -> None:
    await svc.rest.close()
    await svc.signer.close()


def _account(**fields: Any) -> dict[str, Any]:
    acct = {"code": 0, "index": ACCT, "account_index": ACCT, "collateral": "1000.000000",
            "positions": [position_json(1, "BTC", 0.002)]}
    acct.update(fields)
    return {"code": 200, "total": 1, "accounts": [{k: v for k, v in acct.items() if v is not None}]}


FAILURES = {
    "account 500": ("account", (500, {"code": 500, "message": "internal error"})),
    "account timeout": ("account", ("sleep", 2.0)),
    "account not JSON": ("account", (200, "<html>maintenance</html>")),
    "no accounts list": ("account", (200, {"code": 200})),
    "account without positions": ("account", (200, _account(positions=None))),
    "positions not a list": ("account", (200, _account(positions={"1": position_json(1, "BTC", 0.002)}))),
    "malformed position": ("account", (200, _account(positions=[{"market_id": 1, "position": "abc", "sign": 1}]))),
    "position without size": ("account", (200, _account(positions=[{"market_id": 1, "sign": 1}]))),
    "position without market": ("account", (200, _account(positions=[{"position": "0.00200", "sign": 1}]))),
    "no collateral": ("account", (200, _account(collateral=None))),
    "another account": ("account", (200, _account(index=77, account_index=77))),
    "unknown account": ("account", (200, {"code": 200, "total": 0, "accounts": []})),
    "active orders 503": ("accountActiveOrders", (503, "Service Unavailable")),
    "active orders without list": ("accountActiveOrders", (200, {"code": 200})),
    "active order without index": ("accountActiveOrders", (200, {"code": 200, "orders": [{"client_order_index": 5}]})),
    "active orders timeout": ("accountActiveOrders", ("sleep", 2.0)),
    "nonce 502": ("nextNonce", (502, "Bad Gateway")),
}


@pytest.mark.parametrize("case", sorted(FAILURES))
async def test_a_failed_or_malformed_query_halts_and_nothing_is_signed(case, venue, redis_client, redis_url, namespace):
    path, answer = FAILURES[case]
    venue.script[path] = answer
    svc, signed = await _service(venue, redis_client, redis_url, namespace)
    try:
        await _reconcile(svc)
        e = svc.engine
        assert e.state == "halted" and e.reconcile_reason.startswith("reconciliation failed"), e.reconcile_reason
        assert signed == [] and venue.txs == []  # the resting order was not canceled either
        health = svc.health()
        assert health["reconciled"] is False and health["risk_state"] == "halted"
        states = [d.event for d in await svc.bus.read_all(svc.exec_stream) if isinstance(d.event, RiskState)]
        assert states[-1].state == "halted" and states[-1].reason.startswith("reconciliation failed")
        # intents arriving meanwhile are refused, nothing is signed
        e.on_event(Bbo(id="b", ts_event=T0, market="BTC", bid_px=115000.0, bid_sz=1.0, ask_px=115001.0, ask_sz=1.0))
        outs = e.on_event(TargetPosition(id="t", ts_event=T0 + 1, strategy="A", market="BTC", target=0.001))
        assert [o for o in outs if isinstance(o, OrderRejected)] and e.take_commands() == []
    finally:
        await _close(svc)


async def test_a_healthy_venue_reconciles_and_the_start_up_summary_is_logged_and_served(
        venue, redis_client, redis_url, namespace, caplog):
    with caplog.at_level(logging.INFO, logger="executor"):
        svc, signed = await _service(venue, redis_client, redis_url, namespace,
                                     max_position={"BTC": 0.05}, max_notional_usd={"BTC": 3000})
        try:
            await _reconcile(svc)
            e = svc.engine
            assert e.state == "running" and e.account_pos["BTC"] == 0.002
            assert [c.kind for c in signed] == ["cancel_all"]  # cancel_scope all: after the reads
            health = svc.health()
            start = health["startup"]
            assert (start["account_index"], start["api_key_index"], start["markets"]) == (ACCT, 4, {"BTC": 1})
            assert start["limits"] == {"BTC": {"max_position": 0.05, "max_notional_usd": 3000.0}}
            assert start["rate_budget"]["per_minute"] == 60 and start["rate_budget"]["tier"] == "standard"
            assert health["account"]["collateral"] == 1000.0 and health["reconciled"] is True
            assert "private" not in json.dumps(health).lower()
        finally:
            await _close(svc)
    logged = [r.getMessage() for r in caplog.records if r.getMessage().startswith("executor start-up: ")]
    summary = json.loads(logged[0].split(": ", 1)[1])
    assert summary["account_index"] == ACCT and summary["api_key_index"] == 4
    assert summary["limits"]["BTC"]["max_position"] == 0.05 and summary["rate_budget"]["per_minute"] == 60
    assert any("reconciled: account 1001 collateral 1000.0" in r.getMessage() for r in caplog.records)


PROTECT = {"enabled": True, "default_distance_bps": 200}


def _protected_history() -> list:
    """The exec stream of a run where A held 0.002 BTC with protective stop 555 and grid a quote 556."""
    return [
        PositionSnapshot(id="ps", ts_event=T0, source="executor", strategy="A", market="BTC", position=0.002,
                         avg_entry_price=115000.0, account_position=0.002),
        OrderAccepted(id="acc555", ts_event=T0, source="executor", strategy="A/protective-stop", market="BTC",
                      client_order_index=555, side="sell", price=111568.0, size=0.002, order_type="stop-loss",
                      time_in_force="ioc", reduce_only=True),
        OrderAccepted(id="acc556", ts_event=T0, source="executor", strategy="grid", market="BTC",
                      client_order_index=556, side="buy", price=114000.0, size=0.001, time_in_force="post_only"),
    ]


async def test_protective_stops_of_the_previous_run_are_adopted_not_canceled_nor_duplicated(
        venue, redis_client, redis_url, namespace):
    venue.orders = {1: [
        order_json(1, 555, 70555, is_ask=True, remaining="0.00200", price="111568.0", type_="stop-loss",
                   trigger="112700.0", reduce_only=True),
        order_json(1, 556, 70556, is_ask=False, remaining="0.00100", price="114000.0"),
        order_json(1, 9, 70009, is_ask=False, remaining="0.00100", price="113000.0"),  # another bot's
    ]}
    svc, signed = await _service(venue, redis_client, redis_url, namespace, history=_protected_history(),
                                 cancel_scope="own", protective_stop=PROTECT)
    try:
        await _reconcile(svc)
        e = svc.engine
        assert e.state == "running"
        assert [(t, d.get("Index")) for t, d in venue.txs] == [(15, 70556)]  # only grid's quote
        assert svc.health()["account"]["protective_stops_adopted"] == [555]
        e.on_event(Bbo(id="b", ts_event=T0 + 10, market="BTC", bid_px=115000.0, bid_sz=1.0, ask_px=115001.0,
                       ask_sz=1.0))
        assert e.take_commands() == []  # the adopted stop covers A's 0.002: none placed
        (live,) = svc.health()["protective_stops"]["live"]
        assert (live["client_order_index"], live["strategy"], live["trigger"]) == (555, "A", 112700.0)
        await svc._shutdown()  # positions are kept, and so is their protection
        assert 70555 not in [d.get("Index") for t, d in venue.txs if t == 15]
        assert all(t != 16 for t, _ in venue.txs)
    finally:
        await _close(svc)


async def test_with_cancel_scope_all_the_old_stop_goes_and_a_new_one_is_placed(
        venue, redis_client, redis_url, namespace):
    venue.orders = {1: [order_json(1, 555, 70555, is_ask=True, remaining="0.00200", price="111568.0",
                                   type_="stop-loss", trigger="112700.0", reduce_only=True)]}
    svc, signed = await _service(venue, redis_client, redis_url, namespace, history=_protected_history(),
                                 protective_stop=PROTECT)
    try:
        await _reconcile(svc)
        assert [t for t, _ in venue.txs] == [16]
        e = svc.engine
        e.on_event(Bbo(id="b", ts_event=T0 + 10, market="BTC", bid_px=115000.0, bid_sz=1.0, ask_px=115001.0,
                       ask_sz=1.0))
        (c,) = e.take_commands()
        assert (c.order_type, c.side, c.size, c.reduce_only) == ("stop-loss", "sell", 200, True)
    finally:
        await _close(svc)


async def test_a_stop_fill_while_down_is_attributed_from_the_first_trade_snapshot(
        venue, redis_client, redis_url, namespace):
    venue.positions = []  # the stop closed A's position while the executor was down
    venue.orders = {}
    svc, _signed = await _service(venue, redis_client, redis_url, namespace, history=_protected_history(),
                                  protective_stop=PROTECT)
    try:
        await _reconcile(svc)
        fired = lighter_trade(31337, 555, "0.00200", "112650.0", side="sell")
        # another bot's trade from before our first order: history, only marked seen
        old = lighter_trade(31338, 8888, "0.00100", "112650.0", timestamp_ms=T0 // MS - 60_000)
        await svc._on_feed("trades", {"type": "subscribed/account_all_trades", "trades": {"1": [fired, old]}})
        fills = [d.event for d in await svc.bus.read_all(svc.exec_stream) if isinstance(d.event, Fill)]
        assert [(f.strategy, f.side, f.size, f.reason) for f in fills] == [("A", "sell", 0.002, "protective-stop")]
        assert svc.engine.position("A", "BTC") == 0.0 and svc.engine.account_pos["BTC"] == 0.0
        assert ("31338", "buy") in svc.engine.seen_trades
    finally:
        await _close(svc)


def _events(svc: ExecutorService) -> Any:
    async def read() -> list:
        return [d.event for d in await svc.bus.read_all(svc.exec_stream)]
    return read()


async def test_fills_made_while_down_are_recovered_from_the_trade_history_exactly_once(
        venue, redis_client, redis_url, namespace):
    """The previous run's grid quote 556 filled twice and an unknown order traded while the
    executor was down; the REST trade history (two pages) gives them back at reconciliation, the
    trade feed's first snapshot repeats them: one Fill per trade side, no mismatch."""
    history = [*_protected_history(),
               Fill(id="f0", ts_event=T0 + S, source="executor", fill_id="x", strategy="A", market="BTC", side="buy",
                    price=115000.0, size=0.002, venue_trade_id="100", client_order_index=77)]
    t0 = (T0 + S) // MS
    known = [lighter_trade(100, 77, "0.00200", "115000.0", timestamp_ms=t0)]  # on the exec stream already
    missed = [lighter_trade(101 + i, 556, "0.00050", "114000.0", maker=True, timestamp_ms=t0 + 1000 * (i + 1))
              for i in range(2)]
    foreign = lighter_trade(110, 8888, "0.00010", "114500.0", timestamp_ms=t0 + 5000)
    older = [lighter_trade(200 + i, 9999, "0.00010", "114500.0", side="sell", timestamp_ms=t0 - 1000 * (i + 1))
             for i in range(150)]  # the account's trades before the last known fill: pages not needed
    venue.trades = [*older, *known, *missed, foreign]
    venue.positions = [position_json(1, "BTC", 0.0031, 115000.0)]  # A 0.002 + grid 0.001 + unknown 0.0001
    venue.orders = {}
    svc, _signed = await _service(venue, redis_client, redis_url, namespace, history=history)
    try:
        assert svc.engine.recovery_since_ns() == T0 + S  # the newest venue fill on the exec stream
        await _reconcile(svc)
        assert svc.engine.state == "running"
        assert venue.requests.count("trades") == 1  # the first page reached back past the last known fill
        fills = [e for e in await _events(svc) if isinstance(e, Fill)][1:]
        assert [(f.venue_trade_id, f.strategy, f.side, f.size, f.liquidity) for f in fills] == [
            ("101", "grid", "buy", 0.0005, "maker"), ("102", "grid", "buy", 0.0005, "maker"),
            ("110", "_unattributed", "buy", 0.0001, "taker")]
        assert fills[2].reason == ("recovered after a restart; unattributed: client order index 8888 is not an "
                                   "order of this executor")
        assert svc.engine.position("grid", "BTC") == 0.001 and svc.engine.account_pos["BTC"] == 0.0031
        n = len(await _events(svc))
        snapshot = {"type": "subscribed/account_all_trades", "trades": {"1": [*known, *missed, foreign]}}
        await svc._on_feed("trades", snapshot)  # the same trades again: nothing
        assert len(await _events(svc)) == n
        evs = await _events(svc)
        assert not [e for e in evs if isinstance(e, PositionMismatch) and e.mismatch]
        # the rest of the page: older trades of an unknown order, only marked seen
        assert svc.engine.recovered_fills == {"attributed": 2, "unattributed": 1, "seen": 96}
    finally:
        await _close(svc)


async def test_a_lost_fill_shows_as_a_position_mismatch_and_a_gauge(venue, redis_client, redis_url, namespace):
    from services.executor.metrics import POSITION_MISMATCH

    venue.positions = [position_json(1, "BTC", 0.0025, 115000.0)]  # A holds 0.002: 0.0005 unexplained
    venue.orders = {}
    svc, _signed = await _service(venue, redis_client, redis_url, namespace, history=_protected_history())
    try:
        await _reconcile(svc)
        (mis,) = [e for e in await _events(svc) if isinstance(e, PositionMismatch)]
        assert (mis.market, mis.mismatch, mis.account_position, mis.strategies_position) == ("BTC", True, 0.0025, 0.002)
        assert mis.difference == pytest.approx(0.0005) and mis.positions == {"A": 0.002}
        assert POSITION_MISMATCH.labels("BTC")._value.get() == pytest.approx(0.0005)
        # the venue's position report agrees again: resolved, gauge back to 0
        await svc._on_feed("positions", {"type": "update/account_all_positions",
                                         "positions": {"1": position_json(1, "BTC", 0.002)}})
        last = [e for e in await _events(svc) if isinstance(e, PositionMismatch)][-1]
        assert (last.mismatch, last.difference) == (False, 0.0)
        assert POSITION_MISMATCH.labels("BTC")._value.get() == 0.0
    finally:
        await _close(svc)


@pytest.mark.parametrize("answer", [(503, "Service Unavailable"), (200, {"code": 200}),
                                    (200, {"code": 200, "trades": ["x"]})])
async def test_an_unreadable_trade_history_halts(answer, venue, redis_client, redis_url, namespace):
    venue.script["trades"] = answer
    svc, _signed = await _service(venue, redis_client, redis_url, namespace, history=_protected_history())
    try:
        await _reconcile(svc)
        e = svc.engine
        assert e.state == "halted" and "GET trades" in e.reconcile_reason, e.reconcile_reason
    finally:
        await _close(svc)


async def test_the_reads_come_before_any_signature(venue, redis_client, redis_url, namespace):
    svc, signed = await _service(venue, redis_client, redis_url, namespace)
    try:
        await _reconcile(svc)
        first_send = min(i for i, r in enumerate(venue.requests) if r.startswith("sendTx"))
        assert {"nextNonce", "account", "accountActiveOrders"} <= set(venue.requests[:first_send])
    finally:
        await _close(svc)


async def test_the_positions_applied_are_read_after_the_cancels_with_the_trade_history(
        venue, redis_client, redis_url, namespace):
    """Our quote 556 fills after the first account read, before its cancel: the positions the
    engine takes are read again, under the I/O lock with the trade history, so they include that
    fill and agree with the strategies (no PositionMismatch)."""
    venue.positions = [position_json(1, "BTC", 0.002, 115000.0)]
    svc, _signed = await _service(venue, redis_client, redis_url, namespace, history=_protected_history())
    read = svc.rest.account_state
    calls = 0

    async def account_state(acct: int):  # noqa: ANN202
        nonlocal calls
        calls += 1
        state = await read(acct)
        if calls == 1:  # the grid's bid fills right after this read
            venue.positions = [position_json(1, "BTC", 0.003, 115000.0)]
            venue.trades = [lighter_trade(300, 556, "0.00100", "114000.0", maker=True,
                                          timestamp_ms=(T0 + 2 * S) // MS)]
        return state

    svc.rest.account_state = account_state  # type: ignore[method-assign]
    try:
        await _reconcile(svc)
        assert calls == 2 and svc.engine.account_pos["BTC"] == 0.003
        assert svc.engine.position("grid", "BTC") == 0.001 and svc.engine.position_mismatch() == {}
        assert not [e for e in await _events(svc) if isinstance(e, PositionMismatch)]
    finally:
        await _close(svc)
