"""Executor restart: the operator's kill/pause/flatten survive it. The runner reads the control
stream (real Redis; also entries the consumer group acked already, or not yet) together with the
intent stream and folds them into the engine before trading."""

from __future__ import annotations

from services.executor.config import ExecutorConfig
from services.executor.engine import Engine
from services.executor.runner import ExecutorService
from services.executor.signer import generate_key
from shared.bus import Bus, Consumer
from shared.config import StackConfig
from shared.events import Bbo, Control, OrderRejected, PositionSnapshot, RiskState, TargetPosition
from shared.markets import MarketInfo

ACCT = 1001
BTC = MarketInfo(symbol="BTC", market_id=1, size_decimals=5, price_decimals=1, min_base_amount=0.0002,
                 min_quote_amount=10.0)
T0 = 1_757_973_376_000_000_000
S = 1_000_000_000


def _cfg(redis_url: str, namespace: str) -> tuple[StackConfig, ExecutorConfig]:
    cfg = StackConfig(namespace=namespace, redis_url=redis_url, markets=["BTC"],
                      services={"executor": {"http_port": 0, "max_intent_age_ms": 60_000}})
    return cfg, cfg.section("executor", ExecutorConfig)


def _target(strategy: str, tgt: float, t: int) -> TargetPosition:
    return TargetPosition(id=f"tp-{strategy}-{t}", ts_event=t, source=strategy, strategy=strategy, market="BTC",
                          target=tgt, max_slippage_bps=10.0)


def _control(command: str, t: int, target: str = "*", reason: str = "") -> Control:
    return Control(id=f"c-{command}-{target}-{t}", ts_event=t, source="operator", command=command,  # type: ignore[arg-type]
                   target=target, reason=reason)


def _bbo(t: int) -> Bbo:
    return Bbo(id=f"b-{t}", ts_event=t, source="collector", market="BTC", bid_px=115000.0, bid_sz=1.0,
               ask_px=115001.0, ask_sz=1.0)


async def _publish(bus: Bus, stream: str, events: list, consume: bool) -> None:
    ids: list[str] = []
    for ev in events:  # one XADD each: entry ids give the arrival order across streams
        ids += await bus.publish(stream, [ev])
    # entries of two streams in the same server ms are ordered control-last by the restore (the
    # safe tie-break); wait for the next ms so the next call's entries are unambiguously later
    last_ms = int(str(ids[-1]).split("-")[0])
    while True:
        sec, usec = await bus.redis.time()
        if sec * 1000 + usec // 1000 > last_ms:
            break
    if consume:  # the previous executor consumed and acked them
        consumer = Consumer(bus, [stream], "executor", "executor-old")
        await consumer.start()
        got = await consumer.fetch()
        await consumer.commit(got, [], "executor")


async def _restart(redis_client, cfg, ecfg, history=()) -> tuple[ExecutorService, Engine, list]:
    """A new executor's start-up as far as the state goes: exec history folded, streams restored,
    reconciled. Returns the service, its engine and the events set_reconciled published."""
    svc = ExecutorService(cfg, ecfg, generate_key(), redis_client)
    await svc.rest.close()
    engine = Engine(ecfg, {"BTC": BTC}, ACCT, next_client_order_index=100, reconciled=False)
    engine.restore(history)
    svc.engine = engine
    await svc._restore_from_streams()
    outs = engine.set_reconciled(True, ts_ns=T0 + 100 * S)
    return svc, engine, outs


async def test_kill_survives_a_restart_and_no_order_goes_out(redis_client, redis_url, namespace):
    cfg, ecfg = _cfg(redis_url, namespace)
    bus = Bus(redis_client, namespace)
    await _publish(bus, bus.streams.intent(ACCT), [_target("A", 0.001, T0)], consume=True)
    await _publish(bus, bus.streams.control, [_control("kill", T0 + S, reason="drill")], consume=True)
    _svc, engine, outs = await _restart(redis_client, cfg, ecfg)
    (rs,) = [e for e in outs if isinstance(e, RiskState)]
    assert (rs.state, rs.reason) == ("halted", "kill switch: drill")
    assert engine.restored_controls == 1 and engine.control_summary() == "killed (kill switch: drill)"
    # the standing target from before the kill is not re-pursued; a new one is refused, nothing is sent
    assert engine.restored_intents() == []
    engine.on_event(_bbo(T0 + 101 * S))
    outs = engine.on_event(_target("A", 0.002, T0 + 102 * S))
    (rej,) = [e for e in outs if isinstance(e, OrderRejected)]
    assert "halted: kill switch: drill" in rej.reason
    assert engine.take_commands() == []


async def test_kill_issued_while_down_is_honoured_and_not_applied_twice(redis_client, redis_url, namespace):
    cfg, ecfg = _cfg(redis_url, namespace)
    bus = Bus(redis_client, namespace)
    await _publish(bus, bus.streams.control, [_control("kill", T0 + S)], consume=False)  # not consumed yet
    svc, engine, _ = await _restart(redis_client, cfg, ecfg)
    assert engine.state == "halted" and engine.killed == "kill switch"
    # the group delivers the entry now: the runner drops it as already seen (no second fold)
    consumer = Consumer(bus, [bus.streams.control], "executor", "executor-new")
    await consumer.start()
    (d,) = await consumer.fetch()
    assert d.event is not None and d.event.id in svc.seen
    # were it applied again, it would only repeat the (harmless) cancel-all: the state is unchanged
    outs = engine.on_event(d.event)
    assert not [e for e in outs if isinstance(e, RiskState)]
    assert [c.kind for c in engine.take_commands()] == ["cancel_all"]
    assert engine.state == "halted"


async def test_kill_then_resume_restarts_running(redis_client, redis_url, namespace):
    cfg, ecfg = _cfg(redis_url, namespace)
    bus = Bus(redis_client, namespace)
    await _publish(bus, bus.streams.control, [_control("kill", T0 + S), _control("resume", T0 + 2 * S)],
                   consume=True)
    await _publish(bus, bus.streams.intent(ACCT), [_target("A", 0.001, T0 + 90 * S)], consume=True)
    _svc, engine, outs = await _restart(redis_client, cfg, ecfg)
    assert engine.state == "running" and engine.control_summary() == "running"
    assert [e.state for e in outs if isinstance(e, RiskState)] == ["running"]
    engine.on_event(_bbo(T0 + 101 * S))  # the target sent after the resume is re-pursued
    (c,) = engine.take_commands()
    assert (c.kind, c.tif, c.side, c.size) == ("create", "ioc", "buy", 100)


async def test_pause_of_one_strategy_survives_a_restart(redis_client, redis_url, namespace):
    cfg, ecfg = _cfg(redis_url, namespace)
    bus = Bus(redis_client, namespace)
    await _publish(bus, bus.streams.intent(ACCT), [_target("A", 0.001, T0)], consume=True)
    await _publish(bus, bus.streams.control, [_control("pause", T0 + S, target="A")], consume=True)
    await _publish(bus, bus.streams.intent(ACCT), [_target("B", 0.0003, T0 + 2 * S)], consume=True)
    _svc, engine, _ = await _restart(redis_client, cfg, ecfg)
    assert engine.state == "running" and engine.paused == {"A"}
    engine.on_event(_bbo(T0 + 30 * S))  # B's standing target is pursued, A's (before the pause) is not
    (c,) = engine.take_commands()
    assert (c.side, c.size) == ("buy", 30)
    assert engine.on_event(_target("A", 0.002, T0 + 31 * S)) == [] and engine.take_commands() == []


async def test_flatten_in_progress_is_resumed_after_a_restart(redis_client, redis_url, namespace):
    cfg, ecfg = _cfg(redis_url, namespace)
    bus = Bus(redis_client, namespace)
    await _publish(bus, bus.streams.intent(ACCT), [_target("A", 0.001, T0)], consume=True)
    await _publish(bus, bus.streams.control, [_control("flatten", T0 + S)], consume=True)
    # the previous run filled A's entry and then stopped before the flatten's close traded
    history = [PositionSnapshot(id="ps1", ts_event=T0, source="executor", strategy="A", market="BTC",
                                position=0.001, avg_entry_price=115001.0, account_position=0.001)]
    _svc, engine, outs = await _restart(redis_client, cfg, ecfg, history)
    engine.set_account_position("BTC", 0.001)
    assert engine.state == "reducing" and engine.control_summary() == "flattening"
    assert [e.state for e in outs if isinstance(e, RiskState)] == ["reducing"]
    engine.on_event(_bbo(T0 + 200 * S))  # long after max_intent_age_ms: a flatten does not go stale
    (c,) = engine.take_commands()
    assert (c.side, c.size, c.reduce_only) == ("sell", 100, True)
