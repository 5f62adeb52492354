"""Fuzzing every consumer (hypothesis): batches of hostile entries -- junk bytes, events of every
type with malformed, huge, negative, NaN and unknown-market values, on any of the consumer's input
streams -- mixed with good ones go through the consumer's real ``ConsumerLoop.step`` (its
screening, its engine, its after-commit hook; only Redis and the venue are stand-ins):

- nothing raises;
- every bad entry is dead-lettered with a reason, and no engine ever fails on an entry the
  screening let through (no ``engine error`` dead letter);
- every good entry is processed (not dead-lettered);
- every output encodes and passes the screening of the consumer that reads it next (a strategy's
  intents the executor's, the executor's exec events the ledger's): no consumer turns hostile
  input into well-typed nonsense for the next one.

The real-Redis counterparts are ``tests/services/*/test_screening_redis.py``."""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hostile_events import ANY_EVENT, T0, FakeConsumer, S, delivery, plausible, raw_entries
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from lighter_stack import registry
from services.executor.config import ExecutorConfig
from services.executor.engine import Engine as ExecutorEngine
from services.executor.nonces import NonceManager
from services.executor.runner import ExecutorService
from services.executor.signer import SignedTx
from services.executor.venue import SendResult
from services.ledger.runner import LedgerService
from services.ledger.store import LedgerStore
from services.maker import calibrator as maker_calibrator
from services.notifier.config import NotifierConfig
from services.notifier.runner import NotifierService
from shared.bus import Bus, Delivery, _decode_entry
from shared.config import REPO_ROOT, StackConfig, load_config
from shared.events import Bbo, Control, Event, Fill, ModelParams, TargetPosition, Trade
from shared.markets import KNOWN_MARKETS
from shared.screening import STREAM_EVENTS, Screener, stream_kind
from shared.service import ConsumerLoop

NS = "fz"
ACCT = 1001
DEFAULT_MID = {"BTC": 100_000.0, "ETH": 4_000.0}
KINDS = ["strategy-trend", "strategy-renko", "strategy-grid", "maker", "hedger", "executor", "ledger", "notifier"]
# FUZZ_EXAMPLES=2000 for a long run (the fast tier keeps the whole fuzz set under a minute)
FUZZ = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "60")), deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large])


def stack() -> StackConfig:
    env = {"LS_NAMESPACE": NS, "LS_SERVICES__MAKER__CALIBRATION_THREAD": "false"}
    return load_config(REPO_ROOT / "config" / "paper.yaml", environ=env, sections=registry.config_sections())


class FakeSigner:
    def sign(self, cmd: Any, nonce: int) -> SignedTx:
        return SignedTx(14, f"{cmd.kind}:{cmd.client_order_index}:{nonce}", "", nonce)


class FakeVenue:
    async def next_nonce(self) -> int:
        return 10

    async def send_tx(self, tx_type: int, tx_info: str) -> SendResult:
        return SendResult(True, 200, "", "h", ("h",), 99)

    async def send_tx_batch(self, tx_types: list[int], tx_infos: list[str]) -> SendResult:
        return SendResult(True, 200, "", "h0", tuple(f"h{k}" for k in range(len(tx_infos))), 98)


@dataclass
class Harness:
    """One consumer with a fake Redis consumer and its own event loop."""

    loop: ConsumerLoop
    inputs: list[str]
    screener: Screener
    next_screener: Screener  # the screening of whoever reads this consumer's outputs
    aio: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)
    k: int = 0
    cleanup: list[Callable[[], Any]] = field(default_factory=list)


def make_harness(kind: str, tmp: Path) -> Harness:
    cfg = stack()
    bus = Bus(None, NS)  # type: ignore[arg-type]  # never touched: the consumer is a fake
    intents = Screener(NS, cfg.screening, strategies=cfg.strategy_names())
    execs = Screener(NS, cfg.screening)
    if kind == "executor":
        ecfg = cfg.section("executor", ExecutorConfig)
        svc = ExecutorService(cfg, ecfg, SecretStr("x"), redis=None)
        venue = FakeVenue()
        svc.rest, svc.signer = venue, FakeSigner()  # type: ignore[assignment]
        svc.nonces = NonceManager(venue.next_nonce)
        svc.engine = ExecutorEngine(ecfg, dict(KNOWN_MARKETS), ACCT, next_client_order_index=100)
        svc.screener.markets.update(KNOWN_MARKETS)
        h = Harness(svc.loop, svc.inputs, svc.screener, execs)

        async def publish(stream: str, events: list[Event]) -> list[str]:  # the venue's answers, published
            for ev in events:
                msgspec.json.encode(ev)
            h.loop.consumer.outputs += [(stream, ev) for ev in events]  # type: ignore[attr-defined]
            return []

        svc.bus.publish = publish  # type: ignore[method-assign]
    elif kind == "ledger":
        store = LedgerStore(f"sqlite:///{tmp}/ledger.db")
        svc = LedgerService(bus, store, ACCT)
        h = Harness(svc.loop, [svc.stream], svc.screener, execs, cleanup=[store.close])
    elif kind == "notifier":
        svc = NotifierService(bus, ACCT, NotifierConfig(), None)
        h = Harness(svc.loop, svc.streams, svc.screener, execs)
    else:
        build = registry.load(f"{registry.SERVICES[kind].runner}:build")
        runner, _engine = build(cfg, bus, consumer="fuzz")
        h = Harness(runner.loop, runner.inputs, runner.screener, intents)
    h.loop.consumer = FakeConsumer()  # type: ignore[assignment]
    return h


@pytest.fixture(scope="module")
def harnesses():
    made: dict[str, Harness] = {}
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as mp:
        # the maker's calibration is a GARCH fit: stubbed here (its own tests cover it)
        mp.setattr(maker_calibrator, "_default_calibrate", _stub_calibrate)
        yield lambda kind: made.setdefault(kind, make_harness(kind, Path(tmp)))
        for h in made.values():
            for fn in h.cleanup:
                fn()
            h.aio.close()


def _stub_calibrate(bbos, trades, market, ccfg, *, strategy, order_size, cause, source) -> ModelParams:
    return _params(market.symbol if hasattr(market, "symbol") else str(market), cause.ts_event, f"cal-{cause.id}",
                   strategy, source)


def _params(market: str, ts: int, pid: str, strategy: str = "maker", source: str = "maker") -> ModelParams:
    mid = DEFAULT_MID.get(market, 100.0)
    return ModelParams(id=pid, ts_event=ts, source=source, strategy=strategy, market=market, sigma=20.0, A=1.0, k=0.005,
                       gamma=0.01, tick_size=0.1 if market == "BTC" else 0.01, mid=mid, interval_s=1.0,
                       window_start=ts - 900 * S, window_end=ts)


def plausible_on(h: Harness, stream: str) -> st.SearchStrategy[Event]:
    """Events a correct writer could put on ``stream`` (edge values included): most pass the
    screening, so the engine behind it is fuzzed too."""
    kind = stream_kind(NS, stream)
    what, key = kind if kind is not None else ("exec", "")
    markets = [key] if what in ("book", "trade", "stats") else ["BTC", "ETH"]
    # around the markets' usual mids (hypothesis needs the same strategies in every example: not
    # the screener's moving reference; a plausible top far from it is simply dead-lettered)
    return st.sampled_from(markets).flatmap(lambda m: st.sampled_from(STREAM_EVENTS[what]).flatmap(
        lambda cls: plausible(cls, m, DEFAULT_MID.get(m, 100.0))))


def good_event(h: Harness, stream: str, i: int) -> Event | None:
    """A sane event for ``stream`` at the harness's clock (prices at the screener's reference)."""
    kind = stream_kind(NS, stream)
    if kind is None:
        return None
    t = T0 + h.k * S
    eid = f"good-{h.k}-{i}"
    what, key = kind
    if what in ("book", "trade"):
        mid = h.screener.mids.get(key, DEFAULT_MID.get(key, 100.0))
        if what == "trade":
            return Trade(id=eid, ts_event=t, market=key, trade_id=eid, price=mid, size=0.01, taker_side="buy")
        return Bbo(id=eid, ts_event=t, market=key, bid_px=mid * 0.99995, bid_sz=1.0, ask_px=mid * 1.00005, ask_sz=1.0)
    if what == "exec":
        mid = h.screener.mids.get("BTC", DEFAULT_MID["BTC"])
        return Fill(id=eid, ts_event=t, fill_id=f"fill-{eid}", strategy="trend" if i % 2 else "maker", market="BTC",
                    side="buy" if h.k % 2 else "sell", price=mid, size=0.0002, liquidity="taker")
    if what == "intent":
        return TargetPosition(id=eid, ts_event=t, strategy="trend", market="BTC", target=0.0002 * (h.k % 3 - 1))
    if what == "params":
        return _params("BTC", t, eid, strategy=key)
    if what == "control":
        return Control(id=eid, ts_event=t, command="resume", target="*")
    return None


@pytest.mark.parametrize("kind", KINDS)
@FUZZ
@given(data=st.data())
def test_a_consumer_dead_letters_every_bad_entry_and_processes_every_good_one(kind, data, harnesses):
    h: Harness = harnesses(kind)
    h.k += 1
    goods: list[Delivery] = []
    for i, stream in enumerate(h.inputs):
        ev = good_event(h, stream, i)
        if ev is not None:
            goods.append(delivery(stream, f"{h.k}-{i}", ev))
    others = data.draw(st.lists(st.one_of(
        st.tuples(ANY_EVENT, st.sampled_from(h.inputs), st.booleans()),
        st.tuples(raw_entries(), st.sampled_from(h.inputs), st.just(None)),
        st.sampled_from(h.inputs).flatmap(lambda s: st.tuples(plausible_on(h, s), st.just(s), st.just(True)))),
        max_size=8), label="others")
    batch = list(goods)
    for j, (entry, stream, wire) in enumerate(others):
        eid = f"{h.k}-{100 + j}"
        if wire is None:
            batch.append(_decode_entry(stream, eid, {b"event": entry}))
        else:
            batch.append(delivery(stream, eid, entry, wire=wire))
    consumer: FakeConsumer = h.loop.consumer  # type: ignore[assignment]
    outputs_before = len(consumer.outputs)
    assert h.aio.run_until_complete(h.loop.step(batch)) is True
    for d in batch:
        if d.event is None:
            assert d.error, d  # undecodable: a dead letter with its reason
        if d.error is not None:
            assert not d.error.startswith("engine error"), (d.event, d.error)  # screened input never breaks an engine
    for d in goods:
        assert d.error is None, (d.event, d.error)
    dead = {id(d) for d, _ in consumer.dead}
    assert all(id(d) in dead for d in batch if d.error is not None)
    for stream, ev in consumer.outputs[outputs_before:]:
        msgspec.json.encode(ev)
        why = h.next_screener.reason(ev, stream)
        assert why is None or why.startswith("price-band"), (ev, why)
