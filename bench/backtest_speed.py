"""Speed of in-process backtests (``shared.backtest``); prints figures, never fails on speed.

The bundled BTC+ETH recording (1,751 events) is looped with shifted timestamps (each loop starts
1 s after the previous one ended; event ids re-derived per loop) to at least ``--events``
(default 300,000) events, built in memory before timing. Then, for each strategy, one full
backtest (matching engine + executor engine + strategy + ledger/recorder, without writing the
output files) is timed and reported as events per second:

- ``trend``: strategy-trend (``services.strategy_trend.engine.make_engine``);
- ``renko``: strategy-renko (skipped, value ``null`` with a note, when not importable);
- ``ema_cross``: the tiny EMA-cross reference strategy (``shared.backtest.ema_cross``).

Last line: one JSON object ``{"trend_events_per_s", "renko_events_per_s",
"ema_cross_events_per_s", "peak_rss_mb", ...}``. Run: ``python bench/backtest_speed.py``.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import msgspec

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from services.executor.config import ExecutorConfig  # noqa: E402
from shared.backtest import strategies as registry  # noqa: E402
from shared.backtest.data import load_data  # noqa: E402
from shared.backtest.engine import Backtest  # noqa: E402
from shared.config import StackConfig  # noqa: E402
from shared.events import derive_id  # noqa: E402

RECORDING = REPO / "data" / "recordings" / "lighter-2025-09-15-btc-eth.jsonl.gz"


def looped_events(target: int) -> tuple[list, list]:
    md = load_data(RECORDING)
    base = list(md.events())
    span = base[-1].ts_event - base[0].ts_event + 10**9
    out = []
    k = 0
    while len(out) < target:
        shift = k * span
        if k == 0:
            out.extend(base)
        else:
            out.extend(msgspec.structs.replace(e, ts_event=e.ts_event + shift, id=derive_id(e.id, k)) for e in base)
        k += 1
    return md.markets, out


def time_strategy(name: str, markets: list, events: list) -> tuple[float, int]:
    cfg = StackConfig(markets=[m.symbol for m in markets])
    eng = registry.make(name, cfg)
    bt = Backtest(markets, {str(getattr(eng, "name", name)): eng}, cfg.section("executor", ExecutorConfig),
                  account=cfg.account_index)
    t0 = time.perf_counter()
    bt.run(events)
    dt = time.perf_counter() - t0
    return len(events) / dt, len(bt.recorder.fills)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=300_000)
    args = ap.parse_args()
    markets, events = looped_events(args.events)
    print(f"events: {len(events)} (bundled recording looped)", file=sys.stderr)
    res: dict[str, object] = {"events": len(events)}
    for name, key in (("trend", "trend_events_per_s"), ("renko", "renko_events_per_s"),
                      ("ema-cross", "ema_cross_events_per_s")):
        try:
            eps, fills = time_strategy(name, markets, events)
        except registry.StrategyNotAvailable as exc:
            res[key] = None
            res[f"{key.split('_events')[0]}_note"] = str(exc)
            print(f"{name}: skipped ({exc})", file=sys.stderr)
            continue
        res[key] = round(eps)
        res[f"{key.split('_events')[0]}_fills"] = fills
        print(f"{name}: {eps:,.0f} events/s, {fills} fills", file=sys.stderr)
    res["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
