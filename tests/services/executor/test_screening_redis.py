"""The executor's consumer against a real Redis with bad entries written straight into its
streams (book, control, intent): each lands in ``{ns}:dlq`` with its reason and never reaches the
engine; the good ones around them are processed (a trend target becomes an IOC sent to the
venue); a stale target is refused by the engine (``OrderRejected`` "stale intent") and not
stored; the start-up read of the intent stream skips what the screening refuses."""

from __future__ import annotations

from dlq_kit import builtins, dead_letters, reasons_by_entry, xadd_raw
from executor_kit import ACCT, BTC, ETH, T0, S, make_engine, of
from pydantic import SecretStr

from services.executor.config import ExecutorConfig
from services.executor.nonces import NonceManager
from services.executor.runner import ExecutorService
from services.executor.signer import SignedTx
from services.executor.venue import SendResult
from shared.config import StackConfig
from shared.events import (
    Bbo,
    Control,
    Fill,
    OrderAccepted,
    OrderRejected,
    QuoteIntent,
    RestingOrders,
    StopLossIntent,
    TargetPosition,
)


class FakeSigner:
    def sign(self, cmd, nonce: int) -> SignedTx:
        return SignedTx(14 if cmd.kind == "create" else 15, f"{cmd.kind}:{cmd.client_order_index}:{nonce}", "", nonce)


class FakeVenue:
    """Takes every tx; records what was sent."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def next_nonce(self) -> int:
        return 10

    async def send_tx(self, tx_type: int, tx_info: str) -> SendResult:
        self.sent.append(tx_info)
        return SendResult(True, 200, "", "h", ("h",), 99)

    async def send_tx_batch(self, tx_types: list[int], tx_infos: list[str]) -> SendResult:
        self.sent += tx_infos
        return SendResult(True, 200, "", "h0", tuple(f"h{k}" for k in range(len(tx_infos))), 98)


def service(redis, namespace: str) -> tuple[ExecutorService, FakeVenue]:
    cfg = StackConfig(namespace=namespace, account_index=ACCT, markets=["BTC", "ETH"],
                      services={"executor": {"http_port": 0, "max_intent_age_ms": 60_000},
                                "strategy-trend": {"strategy": "trend"}, "maker": {"strategy": "maker"}})
    svc = ExecutorService(cfg, cfg.section("executor", ExecutorConfig), SecretStr("x"), redis)
    venue = FakeVenue()
    svc.rest = venue  # type: ignore[assignment]
    svc.signer = FakeSigner()  # type: ignore[assignment]
    svc.nonces = NonceManager(venue.next_nonce)
    svc.engine = make_engine(max_intent_age_ms=60_000)
    svc.screener.markets.update({"BTC": BTC, "ETH": ETH})  # what _load_markets adds from the venue
    return svc, venue


def bbo(i: int, t: float, bid: float = 115_000.0, ask: float = 115_001.0, market: str = "BTC") -> Bbo:
    return Bbo(id=f"b{i}", ts_event=T0 + int(t * S), source="collector", market=market, bid_px=bid, bid_sz=1.0,
               ask_px=ask, ask_sz=1.0)


def target(i: int, strategy: str, tgt: float, t: float, market: str = "BTC") -> TargetPosition:
    return TargetPosition(id=f"tp{i}", ts_event=T0 + int(t * S), source=strategy, strategy=strategy, market=market,
                          target=tgt, max_slippage_bps=10.0)


async def test_bad_entries_are_dead_lettered_good_ones_traded(redis_client, namespace):
    svc, venue = service(redis_client, namespace)
    r, st = redis_client, svc.bus.streams
    book, control, intent = st.book("BTC"), st.control, st.intent(ACCT)
    expect: dict[tuple[str, str], str] = {}

    async def bad(stream: str, entry, reason: str) -> None:
        expect[(stream, await xadd_raw(r, stream, entry))] = reason

    await xadd_raw(r, book, bbo(1, 200.0))
    await bad(book, bbo(90, 200.0, bid=1.0, ask=1e12), "bad-price: ask_px 1000000000000.0 is above BTC's largest price")
    await bad(book, bbo(91, 200.0, bid=4_000.0, ask=4_000.5, market="ETH"), "wrong-market: a bbo of 'ETH' on")
    await bad(book, bbo(92, 200.0, bid=0.01, ask=0.02), "bad-price: bid_px 0.01 is below one tick")
    await bad(control, bbo(93, 200.0), "wrong-stream: a bbo event does not belong on")
    await bad(control, builtins(Control(id="c1", ts_event=T0, command="kill"), command="explode"),
              "invalid event: Invalid enum value 'explode'")
    await bad(intent, Fill(id="f1", ts_event=T0 + 200 * S, fill_id="x", strategy="trend", market="BTC", side="buy",
                           price=115_000.0, size=1.0), "wrong-stream: a fill event does not belong on")
    await bad(intent, target(90, "ghost", 0.001, 200.0),
              "unknown-strategy: 'ghost' is not a strategy of the config (known: maker, trend)")
    await bad(intent, target(91, "trend", 1e12, 200.0), "bad-size: target 1000000000000.0 is beyond BTC's largest order")
    await bad(intent, target(92, "trend", 0.001, 200.0, market="DOGE"), "unknown-market: 'DOGE'")
    await bad(intent, QuoteIntent(id="q1", ts_event=T0 + 200 * S, strategy="maker", market="BTC", bid_px=114_000.0,
                                  bid_sz=-0.001), "bad-size: bid_sz -0.001 is negative")
    await bad(intent, RestingOrders(id="ro1", ts_event=T0 + 200 * S, strategy="maker", market="BTC",
                                    orders=[("sell", 116_000.0, 1e15)]), "bad-size: orders[0] size")
    await bad(intent, StopLossIntent(id="sl1", ts_event=T0 + 200 * S, strategy="trend", market="BTC", side="sell",
                                     trigger_price=-1.0, size=0.001), "bad-price: trigger_price -1.0 is not positive")
    await bad(intent, builtins(target(93, "trend", 0.001, 200.0), target="NaN"), "invalid event: Expected `float`")
    await xadd_raw(r, intent, target(1, "trend", 0.001, 201.0))  # good: traded
    await xadd_raw(r, intent, target(2, "maker", 0.002, 80.0))  # 121 s old: stale, refused by the engine

    await svc.loop.consumer.start()
    for _ in range(3):
        batch = await svc.loop.consumer.fetch()
        if batch:
            await svc.loop.step(batch)
    got = reasons_by_entry(await dead_letters(r, namespace))
    assert set(got) == set(expect)
    for key, reason in expect.items():
        assert got[key].startswith(reason), (got[key], reason)
    # the good target went to the venue (one IOC buy of 0.001 BTC), nothing of the bad ones
    assert len(venue.sent) == 1 and venue.sent[0].startswith("create:")
    execs = [d.event for d in await svc.bus.read_all(st.exec(ACCT))]
    (acc,) = of(execs, OrderAccepted)
    assert (acc.strategy, acc.side, acc.size) == ("trend", "buy", 0.001)
    (rej,) = of(execs, OrderRejected)
    assert rej.strategy == "maker" and rej.reason.startswith("stale intent: ts_event 121.0s before")
    e = svc.engine
    assert e.strats.get(("maker", "BTC")) is None or e.strats[("maker", "BTC")].target is None
    assert e.bbo["BTC"] == (115_000.0, 115_001.0)
    assert (await r.xpending(intent, "executor"))["pending"] == 0


async def test_start_up_read_of_the_intent_stream_skips_what_the_screening_refuses(redis_client, namespace):
    svc, _ = service(redis_client, namespace)
    r, st = redis_client, svc.bus.streams
    intent = st.intent(ACCT)
    await xadd_raw(r, intent, target(1, "trend", 0.001, 100.0))
    await xadd_raw(r, intent, target(2, "ghost", 0.5, 101.0))  # an unknown strategy
    # a target stamped years ahead would move the restore window past every real intent
    await xadd_raw(r, intent, builtins(target(3, "trend", 0.002, 0.0), ts_event=T0 * 2))
    await xadd_raw(r, intent, target(4, "maker", 1e13, 102.0))  # beyond BTC's largest order
    await r.xadd(st.control, {b"event": b"{}"})
    await xadd_raw(r, st.control, Control(id="k1", ts_event=T0 + 103 * S, command="pause", target="maker"))
    read = await svc._latest_intents()
    assert [ev.id for ev in read] == ["tp1"]
    assert [ev.id for _, ev in await svc._control_entries()] == ["k1"]
