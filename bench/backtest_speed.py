"""Speed and memory of in-process backtests (``lighter_stack.backtest``); prints figures, never fails on them.

Speed: the bundled BTC+ETH recording (1,751 top-of-book and trade events over ~1 h) is looped
with shifted timestamps (each loop starts 1 s after the previous one ended; event ids
re-derived per loop) to at least ``--events`` (default 300,000) events, built in memory before
timing. Then, for each strategy, full backtests (matching engine + executor engine + strategy +
ledger/recorder, without writing the output files) are timed and the best of ``--repeat``
(default 3) runs is reported as events per second of the process's CPU time (one core; not
slowed by other processes on a shared machine; ``wall_events_per_s`` has the wall-clock
figures):

- ``trend``: strategy-trend (``services.strategy_trend.engine.make_engine``);
- ``renko``: strategy-renko (skipped, value ``null`` with a note, when not importable);
- ``ema_cross``: the tiny EMA-cross reference strategy (``lighter_stack.backtest.ema_cross``);
- ``maker``: the market maker (``services.maker.engine.make_engine``), over the bundled hour
  itself, not the looped data (``maker_events``): its cost is set by its calibrations, one per
  market every ``recalibrate_s`` (300 s) of event time, so events per second depend on how many
  events an hour of event time holds, not on how many hours are run; looping would only
  multiply the run time (about 150 s per looped run). ``maker_events_per_s`` is the whole
  backtest with the calibrations inline, as ``lighter-stack backtest`` runs them (arch, scipy
  imported before timing). ``maker_quoting_events_per_s`` is the same backtest with each
  calibration's ``ModelParams`` replayed from a first run (same fills, checked): what the
  quoting path costs once calibration is off it, as in the live service (a worker thread).
  ``maker_calibrations`` and ``maker_calibration_ms`` (mean CPU ms each) say where the rest goes.

Memory: ``peak_rss_mb`` is this process's peak (it holds the looped events). To see whether
memory grows with the run, two child processes stream ``--events`` and 10 x ``--events``
looped events (generated on the fly, never held) through a trend backtest and report their
peak RSS (``stream_peak_rss_mb``) with the fills and equity samples they kept. ``--no-memory``
skips them.

Last line: one JSON object ``{"trend_events_per_s", "renko_events_per_s",
"ema_cross_events_per_s", "maker_events_per_s", "maker_quoting_events_per_s", "peak_rss_mb",
"stream_peak_rss_mb", ...}``.
Run: ``python bench/backtest_speed.py``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lighter_stack.backtest import strategies as registry  # noqa: E402
from lighter_stack.backtest.data import load_data  # noqa: E402
from lighter_stack.backtest.engine import Backtest  # noqa: E402
from services.executor.config import ExecutorConfig  # noqa: E402
from shared.config import StackConfig  # noqa: E402
from shared.events import Event, derive_id  # noqa: E402

RECORDING = REPO / "data" / "recordings" / "lighter-2025-09-15-btc-eth.jsonl.gz"


def _looped(target: int) -> tuple[list, Iterator[Event]]:
    """The recording's markets and a generator of ``target`` looped events (see the module
    docstring)."""
    md = load_data(RECORDING)
    base = list(md.events())
    span = base[-1].ts_event - base[0].ts_event + 10**9

    def gen() -> Iterator[Event]:
        n = 0
        for k in itertools.count():
            for e in base:
                if n >= target:
                    return
                n += 1
                yield e if k == 0 else msgspec.structs.replace(e, ts_event=e.ts_event + k * span,
                                                               id=derive_id(e.id, k))

    return md.markets, gen()


def looped_events(target: int) -> tuple[list, list]:
    """The recording's markets and at least ``target`` looped events (whole loops), in memory."""
    per_loop = sum(1 for _ in load_data(RECORDING).events())
    markets, gen = _looped(-(-target // per_loop) * per_loop)
    return markets, list(gen)


def _backtest(name: str, markets: list) -> Backtest:
    cfg = StackConfig(markets=[m.symbol for m in markets])
    eng = registry.make(name, cfg)
    return Backtest(markets, {str(getattr(eng, "name", name)): eng}, cfg.section("executor", ExecutorConfig),
                    account=cfg.account_index)


def time_strategy(name: str, markets: list, events: list, repeat: int = 1) -> tuple[float, float, int]:
    """Best events per CPU second and per wall-clock second of ``repeat`` full backtests of
    ``name`` over ``events``, and the fills of one."""
    best_cpu = best_wall = 0.0
    fills = 0
    for _ in range(max(1, repeat)):
        bt = _backtest(name, markets)
        c0, w0 = time.process_time(), time.perf_counter()
        bt.run(events)
        cpu, wall = time.process_time() - c0, time.perf_counter() - w0
        best_cpu = max(best_cpu, len(events) / max(cpu, 1e-9))
        best_wall = max(best_wall, len(events) / wall)
        fills = len(bt.recorder.fills)
    return best_cpu, best_wall, fills


def time_maker(repeat: int = 3) -> dict[str, object]:
    """The maker over the bundled hour (module docstring): best events per CPU second with its
    calibrations inline and with them replayed, the fills, the calibrations and their mean CPU
    time (ms).

    Raises:
        RuntimeError: the replayed run's fills differ from the inline run's.
    """
    md = load_data(RECORDING)
    events = list(md.events())
    made: dict[str, object] = {}
    cpu_in_fit = [0.0]

    def bt_with(calibrate: object) -> Backtest:
        cfg = StackConfig(markets=[m.symbol for m in md.markets])
        eng = registry.make("maker", cfg)
        eng.calibrator.calibrate = calibrate
        return Backtest(md.markets, {eng.name: eng}, cfg.section("executor", ExecutorConfig), account=cfg.account_index)

    def recording(*args: object, **kwargs: object) -> object:
        c0 = time.process_time()
        try:
            p = calibrate(*args, **kwargs)
        finally:
            cpu_in_fit[0] += time.process_time() - c0
        made[kwargs["cause"].id] = p  # type: ignore[attr-defined]
        return p

    def replaying(*_args: object, **kwargs: object) -> object:
        return made[kwargs["cause"].id]  # type: ignore[attr-defined]

    from shared.calibration import calibrate

    bt_with(None).run(events)  # imports arch/scipy and warms the caches: not timed
    best = {"inline": 0.0, "replayed": 0.0}
    fills: dict[str, list] = {}
    for _ in range(max(1, repeat)):
        for mode, fn in (("inline", recording), ("replayed", replaying)):
            cpu_in_fit[0] = 0.0
            bt = bt_with(fn)
            c0 = time.process_time()
            bt.run(events)
            cpu = time.process_time() - c0
            best[mode] = max(best[mode], len(events) / max(cpu, 1e-9))
            fills[mode] = [(f.ts_event, f.market, f.side, f.price, f.size) for f in bt.recorder.fills]
            if mode == "inline":
                fit_ms = cpu_in_fit[0] * 1e3
    if fills["inline"] != fills["replayed"]:
        raise RuntimeError("maker: replayed calibrations gave other fills than inline ones")
    return {"maker_events": len(events), "maker_events_per_s": round(best["inline"]),
            "maker_quoting_events_per_s": round(best["replayed"]), "maker_fills": len(fills["inline"]),
            "maker_calibrations": len(made), "maker_calibration_ms": round(fit_ms / max(1, len(made)), 1)}


def _stream_run(n: int) -> None:
    """Child process: stream ``n`` looped events through a trend backtest; print one JSON line."""
    markets, gen = _looped(n)
    bt = _backtest("trend", markets)
    bt.run(gen)
    print(json.dumps({"events": bt.events, "fills": len(bt.recorder.fills), "equity_samples": len(bt.recorder.sample_t),
                      "peak_rss_mb": _peak_rss_mb()}))


def _peak_rss_mb() -> float:
    """This process's peak RSS in MB: ``VmHWM`` (Linux; reset by exec, unlike ``ru_maxrss``,
    which a child inherits from its parent), else ``ru_maxrss``."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _stream_rss(n: int) -> dict[str, object]:
    proc = subprocess.run([sys.executable, __file__, "--stream-run", str(n)], capture_output=True, text=True,
                          check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=300_000)
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per strategy (the best is reported)")
    ap.add_argument("--no-memory", action="store_true", help="skip the streamed memory runs")
    ap.add_argument("--stream-run", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.stream_run:
        _stream_run(args.stream_run)
        return
    markets, events = looped_events(args.events)
    print(f"events: {len(events)} (bundled recording looped), best of {args.repeat}", file=sys.stderr)
    res: dict[str, object] = {"events": len(events)}
    wall: dict[str, object] = {}
    for name, key in (("trend", "trend_events_per_s"), ("renko", "renko_events_per_s"),
                      ("ema-cross", "ema_cross_events_per_s")):
        try:
            eps, eps_wall, fills = time_strategy(name, markets, events, args.repeat)
        except registry.StrategyNotAvailable as exc:
            res[key] = None
            res[f"{key.split('_events')[0]}_note"] = str(exc)
            print(f"{name}: skipped ({exc})", file=sys.stderr)
            continue
        res[key] = round(eps)
        res[f"{key.split('_events')[0]}_fills"] = fills
        wall[key] = round(eps_wall)
        print(f"{name}: {eps:,.0f} events/s (CPU), {eps_wall:,.0f} (wall), {fills} fills", file=sys.stderr)
    res["wall_events_per_s"] = wall
    mk = time_maker(args.repeat)
    res.update(mk)
    print(f"maker (bundled hour, {mk['maker_events']} events): {mk['maker_events_per_s']:,} events/s (CPU), "
          f"{mk['maker_quoting_events_per_s']:,} with its {mk['maker_calibrations']} calibrations replayed "
          f"({mk['maker_calibration_ms']} ms CPU each), {mk['maker_fills']} fills", file=sys.stderr)
    res["peak_rss_mb"] = _peak_rss_mb()
    if not args.no_memory:
        runs = [_stream_rss(n) for n in (args.events, 10 * args.events)]
        res["stream_peak_rss_mb"] = {str(r["events"]): r["peak_rss_mb"] for r in runs}
        res["stream_fills"] = {str(r["events"]): r["fills"] for r in runs}
        for r in runs:
            print(f"trend streamed over {r['events']:,} events: peak RSS {r['peak_rss_mb']} MB, {r['fills']} fills, "
                  f"{r['equity_samples']} equity samples", file=sys.stderr)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
