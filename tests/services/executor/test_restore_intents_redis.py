"""Executor restart: the runner reads the intent stream (real Redis) for the strategies' standing
wishes -- also entries the executor's consumer group has acked already -- and the engine
re-pursues them at the first market data; stale ones are not restored."""

from __future__ import annotations

from services.executor.config import ExecutorConfig
from services.executor.engine import Engine
from services.executor.runner import ExecutorService
from services.executor.signer import generate_key
from shared.bus import Bus, Consumer
from shared.config import StackConfig
from shared.events import Bbo, CancelIntent, QuoteIntent, RestingOrders, TargetPosition
from shared.markets import MarketInfo

ACCT = 1001
BTC = MarketInfo(symbol="BTC", market_id=1, size_decimals=5, price_decimals=1, min_base_amount=0.0002,
                 min_quote_amount=10.0)
ETH = MarketInfo(symbol="ETH", market_id=0, size_decimals=4, price_decimals=2, min_base_amount=0.005,
                 min_quote_amount=10.0)
T0 = 1_757_973_376_000_000_000
S = 1_000_000_000


def _target(strategy: str, tgt: float, t: int, market: str = "BTC") -> TargetPosition:
    return TargetPosition(id=f"tp-{strategy}-{t}", ts_event=t, source=strategy, strategy=strategy, market=market,
                          target=tgt, max_slippage_bps=10.0)


async def test_restart_restores_latest_wishes_from_acked_intents(redis_client, redis_url, namespace):
    cfg = StackConfig(namespace=namespace, redis_url=redis_url, markets=["BTC", "ETH"],
                      services={"executor": {"http_port": 0, "max_intent_age_ms": 60_000}})
    ecfg = cfg.section("executor", ExecutorConfig)
    bus = Bus(redis_client, namespace)
    stream = bus.streams.intent(ACCT)
    t = T0 + 1000 * S
    history = [
        _target("OLD", 0.003, t - 200 * S),  # 2 minutes before the newest intent: stale
        _target("A", 0.002, t - 30 * S),
        QuoteIntent(id="q1", ts_event=t - 25 * S, source="mm", strategy="mm", market="BTC",
                    bid_px=114000.0, bid_sz=0.0002, ask_px=116000.0, ask_sz=0.0002),
        RestingOrders(id="g1", ts_event=t - 20 * S, source="grid", strategy="grid", market="BTC",
                      orders=[("buy", 113000.0, 0.0002)]),
        _target("A", 0.001, t - 10 * S),  # A's latest
        CancelIntent(id="c1", ts_event=t - 5 * S, source="grid", strategy="grid", market="BTC"),
        _target("B", 0.01, t - 3 * S, market="ETH"),
    ]
    await bus.publish(stream, history)
    # the previous executor consumed and acked all of them
    consumer = Consumer(bus, [stream], "executor", "executor-old")
    await consumer.start()
    got = await consumer.fetch()
    assert len(got) == len(history)
    await consumer.commit(got, [], "executor")

    svc = ExecutorService(cfg, ecfg, generate_key(), redis_client)
    try:
        read = await svc._latest_intents(chunk=2)  # several XREVRANGE pages
    finally:
        await svc.rest.close()
    assert [e.id for e in read] == [e.id for e in history[1:]]  # back to 60 s before the newest

    engine = Engine(ecfg, {"BTC": BTC, "ETH": ETH}, ACCT, next_client_order_index=100, reconciled=False)
    assert engine.restore_intents(read) == 3  # A/BTC, mm/BTC, B/ETH (grid withdrew its set)
    engine.set_reconciled(True, ts_ns=t)
    # the first BTC quote: A's target is pursued (IOC), mm's quotes placed; nothing for OLD or grid
    engine.on_event(Bbo(id="b1", ts_event=t + S, source="collector", market="BTC", bid_px=115000.0, bid_sz=1.0,
                        ask_px=115001.0, ask_sz=1.0))
    cmds = engine.take_commands()
    assert sorted((c.tif, c.side, c.size, c.price) for c in cmds) == [
        ("ioc", "buy", 100, 1151160), ("post_only", "buy", 20, 1140000), ("post_only", "sell", 20, 1160000)]
    # B's ETH target waits for ETH's first quote, which comes 2 minutes later: stale, not traded
    engine.on_event(Bbo(id="b2", ts_event=t + 120 * S, source="collector", market="ETH", bid_px=2500.0,
                        bid_sz=1.0, ask_px=2500.1, ask_sz=1.0))
    assert engine.take_commands() == []
    assert engine.restored_intents() == []
    # a re-read finds the consumer group untouched: nothing pending, nothing new delivered
    assert (await redis_client.xpending(stream, "executor"))["pending"] == 0
