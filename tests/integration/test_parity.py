"""Parity: one recording through the Redis bus and through the in-process backtest gives the same
fills, event for event.

The bus run is the demo's (``lighter_stack.demo``: venue-sim, collector, strategy-trend, strategy-grid,
executor and ledger as separate OS processes on a real Redis) with venue-sim in lockstep; the
in-process run is ``lighter-stack backtest`` (``lighter_stack.backtest.runner.run_backtest``) on the same
slice and config. Ids differ between the two (the live executor numbers its orders from the wall
clock), so fills are compared on ``(ts_event, strategy, market, side, price, size, liquidity)``.

Cases: trend + grid; trend + renko + grid (several target strategies: the executor's lockstep
barrier must hand their intents of one event to the engine as one batch, in the backtest's
strategy order; renko makes no fill on this slice); and all five strategies of the demo,
maker and hedger included (the maker's quotes need venue-sim's public channels to carry the
recording only, our own fills included, and a jitter keyed on event time, not on draw order).
"""

from __future__ import annotations

import asyncio
import csv
from pathlib import Path

import pytest

from lighter_stack.backtest.report import iso_ns
from lighter_stack.backtest.runner import run_backtest
from lighter_stack.demo import Demo, DemoOptions, slice_recording
from shared.bus import Bus
from shared.events import Bbo
from shared.recording import read_recording
from shared.redis_util import async_client

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "config" / "paper.yaml"
# 20 minutes of the bundled recording from 21:05 UTC (576 events): trend takes and closes
# positions (taker fills), the grid's resting orders fill (maker fills).
START_MIN, MINUTES = 9.0, 20.0
CASES = {
    "trend+grid": ["trend", "grid"],
    "trend+renko+grid": ["trend", "renko", "grid"],
    # the whole demo line-up: the maker's quotes (A-S from its own calibration, seeded jitter)
    # and the hedger's crosses must match too
    "all five": ["trend", "renko", "grid", "maker", "hedger"],
}

FillKey = tuple[str, str, str, str, str, str, str]
Quote = tuple[int, str, float, float, float, float]


def _quote(b: Bbo) -> Quote:
    return (b.ts_event, b.market, b.bid_px, b.bid_sz, b.ask_px, b.ask_sz)


async def _bus_quotes_and_cleanup(redis_url: str, ns: str, markets: list[str]) -> tuple[list[Quote], list[bytes]]:
    """The Bbo events the collector published (what strategies and executor saw) and the reasons
    of the run's dead letters, then delete the run's streams."""
    redis = async_client(redis_url)
    try:
        bus = Bus(redis, ns)
        quotes = [_quote(d.event) for m in markets for d in await bus.read_all(bus.streams.book(m))
                  if isinstance(d.event, Bbo)]
        dead = [fields[b"reason"] for _, fields in await redis.xrange(bus.streams.dlq)]
        keys = [k async for k in redis.scan_iter(match=f"{ns}:*")]
        if keys:
            await redis.delete(*keys)
        return sorted(quotes), dead
    finally:
        await redis.aclose()


def _backtest_fills(recording: Path, strategies: list[str], out: Path) -> list[FillKey]:
    run_backtest(recording, strategies, CONFIG, out)
    with open(out / "fills.csv", newline="", encoding="utf-8") as fh:
        return [(r["ts"], r["strategy"], r["market"], r["side"], r["price"], r["size"], r["liquidity"])
                for r in csv.DictReader(fh)]


@pytest.mark.e2e
@pytest.mark.parity
@pytest.mark.parametrize("case", list(CASES))
def test_bus_and_backtest_give_identical_fills(case, tmp_path, redis_url, recording_path, monkeypatch):
    strategies = CASES[case]
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("LIGHTER_STACK_DATA", str(tmp_path))
    rec = slice_recording(recording_path, tmp_path / "slice.jsonl.gz", MINUTES, START_MIN)
    expected = _backtest_fills(rec, strategies, tmp_path / "backtest")
    assert len(expected) >= 3, expected

    demo = Demo(DemoOptions(recording=rec, lockstep=True, workdir=tmp_path / "demo", timeout_s=240,
                            config=CONFIG, strategies=[s if s in ("maker", "hedger") else f"strategy-{s}" for s in strategies]))
    summary = asyncio.run(demo.run())
    header, events = read_recording(rec)
    recorded = sorted(_quote(e) for e in events if isinstance(e, Bbo))
    quotes, dead = asyncio.run(_bus_quotes_and_cleanup(redis_url, summary["namespace"],
                                                       [m.symbol for m in header.markets]))
    # market data lines up: the bus carried exactly the recorded quotes (ns timestamps included)
    assert quotes == recorded
    assert dead == []  # the input screening let every real entry of the run through
    got = [(iso_ns(f.ts_event), f.strategy, f.market, f.side, repr(f.price), repr(f.size), f.liquidity)
           for f in demo.fills]
    assert summary["ledger_fills"] == summary["venue_fills"] == len(got), summary
    assert got == expected, "\n".join(
        f"{'  ' if a == b else '!!'} bus {a}\n   backtest {b}"
        for a, b in zip(got + [None] * len(expected), expected + [None] * len(got), strict=False)
        if a is not None or b is not None)
