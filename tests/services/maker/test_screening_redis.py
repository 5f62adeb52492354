"""A strategy service (the maker: book, trade, exec and params streams) against a real Redis with
bad entries written straight into its streams: each lands in ``{ns}:dlq`` with its reason, none
reaches the engine, and the good entries around them are processed (the maker quotes around the
real mid, never off the 1e12 ask)."""

from __future__ import annotations

import asyncio
from functools import partial

import msgspec
import strategy_kit
from dlq_kit import builtins, dead_letters, reasons_by_entry, xadd_raw
from strategy_kit import T0, S

from services.maker import calibrator as maker_calibrator
from services.maker.runner import build, run_until_stopped
from shared.bus import Bus
from shared.events import Bbo, Fill, ModelParams, QuoteIntent, Trade

stack = partial(strategy_kit.stack, "maker", randomize_bps=0.0)


def bbo(i: int, t: float, bid: float = 99_999.9, ask: float = 100_000.1, market: str = "BTC", **kw) -> Bbo:
    return Bbo(id=f"b{i}", ts_event=T0 + int(t * S), source="collector", market=market, bid_px=bid,
               bid_sz=kw.pop("bid_sz", 1.0), ask_px=ask, ask_sz=kw.pop("ask_sz", 1.0))


def trade(i: int, t: float, price: float, size: float = 0.01) -> Trade:
    return Trade(id=f"t{i}", ts_event=T0 + int(t * S), source="collector", market="BTC", trade_id=str(i),
                 price=price, size=size, taker_side="buy")


def params(pid: str, t: float, strategy: str = "maker", sigma: float = 20.0) -> ModelParams:
    ts = T0 + int(t * S)
    return ModelParams(id=pid, ts_event=ts, source="calibrator", strategy=strategy, market="BTC", sigma=sigma, A=1.0,
                       k=0.005, gamma=0.01, tick_size=0.1, mid=100_000.0, interval_s=1.0, window_start=ts - 900 * S,
                       window_end=ts)


async def test_bad_entries_are_dead_lettered_with_their_reason_and_good_ones_quoted(redis_client, namespace,
                                                                                    monkeypatch, read_stream):
    def stub(bbos, trades, market, ccfg, *, strategy, order_size, cause, source):
        return msgspec.structs.replace(params(f"cal-{cause.id}", (cause.ts_event - T0) / S), source=source)

    monkeypatch.setattr(maker_calibrator, "_default_calibrate", stub)
    cfg = stack(namespace, min_calibration_span_s=10, recalibrate_s=600)
    bus = Bus(redis_client, namespace)
    r, st = redis_client, bus.streams
    book, trades, exec_, pstream = st.book("BTC"), st.trade("BTC"), st.exec(cfg.account_index), st.params("maker")
    expect: dict[tuple[str, str], str] = {}

    async def bad(stream: str, entry, reason: str) -> None:
        expect[(stream, await xadd_raw(r, stream, entry))] = reason

    await xadd_raw(r, book, bbo(1, 0.0))
    await bad(book, bbo(90, 1.0, bid=1.0, ask=1e12), "bad-price: ask_px 1000000000000.0 is above BTC's largest price")
    await bad(book, bbo(91, 1.0, bid=4_000.0, ask=4_000.5, market="ETH"), "wrong-market: a bbo of 'ETH' on")
    await bad(book, Fill(id="f90", ts_event=T0, fill_id="x", strategy="maker", market="BTC", side="buy",
                         price=100_000.0, size=1.0), "wrong-stream: a fill event does not belong on")
    await bad(book, b"not json", "invalid event: JSON is malformed")
    expect[(book, (await r.xadd(book, {b"junk": b"1"})).decode())] = "entry has no 'event' field"
    await bad(book, bbo(92, 2.0, bid=100_000.2, ask=100_000.1), "crossed-book: BTC bid 100000.2 >= ask 100000.1")
    await bad(book, bbo(93, 2.0, bid_sz=-3.0), "bad-size: bid_sz -3.0 is negative")
    await bad(book, builtins(bbo(94, 2.0), ts_event=2**70), "bad-number: ts_event")
    await bad(book, builtins(bbo(95, 2.0), bid_px="99999.9"), "invalid event: Expected `float`, got `str`")
    await bad(book, bbo(96, 3.0, bid=130_000.0, ask=130_000.2), "price-band: BTC mid 130000.1 is 30% from")
    await xadd_raw(r, book, bbo(2, 10.0))
    await xadd_raw(r, trades, trade(1, 5.0, 100_000.0))
    await bad(trades, trade(90, 5.0, 50_000.0), "price-band: BTC trade price 50000 is 50% from")
    await bad(trades, trade(91, 5.0, 100_000.0, size=-1.0), "bad-size: size -1.0 is not positive")
    await bad(exec_, bbo(97, 5.0), "wrong-stream: a bbo event does not belong on")
    await bad(exec_, builtins(strategy_kit.fill(1, "neg", "maker"), size=-0.0002),
              "invalid fill: size must be a finite number > 0, got -0.0002")
    await bad(pstream, params("other", 5.0, strategy="hedger"), "wrong-market: ModelParams of strategy 'hedger'")
    await bad(pstream, params("zero", 5.0, sigma=0.0), "bad-params: ok params of BTC with sigma not > 0")

    runner, engine = build(cfg, bus, consumer="t1")
    task = asyncio.create_task(run_until_stopped(runner, engine, bus, cfg.account_index))
    try:
        intents = await read_stream(bus, st.intent(cfg.account_index), 1)
        for _ in range(100):
            if len(await dead_letters(r, namespace)) >= len(expect):
                break
            await asyncio.sleep(0.05)
    finally:
        runner.stop()
        await asyncio.wait_for(task, 10)
    letters = await dead_letters(r, namespace)
    got = reasons_by_entry(letters)
    assert set(got) == set(expect), letters
    for eid, reason in expect.items():
        assert got[eid].startswith(reason), (got[eid], reason)
    assert {d["service"] for d in letters} == {"maker"}
    q = intents[0]
    assert isinstance(q, QuoteIntent)
    assert q.bid_px is not None and q.ask_px is not None and 99_000 < q.bid_px < 99_999.9 < 100_000.1 < q.ask_px < 101_000
    assert engine.position("BTC") == 0.0  # the negative fill never reached the engine
    assert runner.screener.mids["BTC"] == 100_000.0
    assert runner.loop.dead_letters == len(expect)
