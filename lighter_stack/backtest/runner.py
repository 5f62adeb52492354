"""``lighter-stack backtest``: run strategies over historical data in process, at full speed.

:func:`run_backtest` loads the data (:mod:`lighter_stack.backtest.data`), builds the strategies from the
registry (:mod:`lighter_stack.backtest.strategies`), runs :class:`lighter_stack.backtest.engine.Backtest` and
writes ``fills.csv``, ``summary.json``, ``equity.png``, ``drawdown.png``, ``trades.png``,
``pnl_buckets.png`` and ``report.html`` into ``out``. :func:`backtest_command` is the CLI entry
(prints a short table).

PnL attribution: a :class:`shared.pnl_attribution.PnlAttribution` runs as a silent extra engine
(it answers nothing) and splits every strategy's fills into spread capture, inventory PnL and
fees, by regime bucket, online as the market data, fills and order acceptances go by (memory
bounded by the fills, not by the number of events). The result is ``pnl_split`` in
``summary.json``'s ``per_strategy.<name>`` and ``total`` (plus ``fifo_pnl_usd`` and
``identity_residual_usd`` = split total - FIFO ``pnl_usd``, which is 0 up to float rounding).

Config (optional ``--config`` YAML, the stack config format): the strategies' sections
(``services.strategy-trend``, ...), ``services.executor`` (limits) and ``services.backtest``
(:class:`BacktestConfig`). The stack's top-level ``markets`` is replaced by the data's markets.
Markets of the data missing from ``services.executor.max_position`` are bounded by the
executor's notional limit only (``default_max_position`` null, the shipped default); when a
config sets ``default_max_position: 0`` (no trading there) they get an unlimited position limit
in the backtest (noted in the summary): the data decides what is traded. The strategies size
markets their config does not list from their ``notional_usd`` and the data's market metadata
(passed as ``market_info``), so a backtest on any market's data runs without a config file.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from lighter_stack.registry import config_sections
from services.executor.config import ExecutorConfig
from shared.config import StackConfig, check_sections, load_config
from shared.pnl_attribution import PnlAttribution
from shared.venue.matching import TIERS

from . import strategies as registry
from .config import BacktestConfig
from .data import load_data
from .engine import Backtest
from .metrics import Recorder
from .metrics import __doc__ as METRICS_DOC
from .report import CHARTS, iso_ns, write_charts, write_fills_csv, write_html, write_summary

__all__ = ["BacktestConfig", "backtest_command", "run_backtest"]

UNLIMITED = 1e12
TAP = "_pnl_attribution_tap"  # the silent engine computing the PnL split online


def _stack_config(config: Path | None) -> StackConfig:
    if config is None:
        return StackConfig()
    return load_config(config, environ={})


def run_backtest(data: Path, strategies: list[str], config: Path | None, out: Path, progress: bool = False,
                 stack_cfg: StackConfig | None = None) -> dict[str, Any]:
    """Run ``strategies`` over ``data`` and write the outputs into ``out``; returns the summary.

    Args:
        data: recording (``*.jsonl.gz``), top-of-book CSV folder, or OHLCV klines CSV.
        strategies: registry names (``trend``, ``renko``, ``grid``, ``ema-cross``, ...), at least one.
        config: stack config YAML (None = built-in defaults; environment overrides are not applied).
        out: output folder (created).
        progress: show a ``rich`` progress bar when stderr is a terminal.
        stack_cfg: an already loaded config (instead of ``config``; tests).

    Raises:
        lighter_stack.backtest.data.DataError: missing or broken data (names file and line).
        lighter_stack.backtest.strategies.StrategyNotAvailable: unknown or unimportable strategy.
        shared.config.ConfigError: invalid config, an unknown section under ``services:`` or an
            unknown key in any section.
        ValueError: no strategy, or two with the same name.
    """
    if not strategies:
        raise ValueError("at least one --strategy is needed")
    cfg = stack_cfg if stack_cfg is not None else _stack_config(config)
    check_sections(cfg, config_sections())  # a typo in any section stops the run, named
    bcfg = cfg.section("backtest", BacktestConfig)
    md = load_data(data, bcfg.market_overrides())
    symbols = [m.symbol for m in md.markets]
    cfg = cfg.model_copy(update={"markets": symbols})
    notes = list(md.notes)
    ecfg = cfg.section("executor", ExecutorConfig)
    if ecfg.default_max_position == 0:
        missing = [s for s in symbols if s not in ecfg.max_position]
        if missing:
            ecfg = ecfg.model_copy(update={"max_position": {**ecfg.max_position, **dict.fromkeys(missing, UNLIMITED)}})
            notes.append(f"executor max_position unlimited for {', '.join(missing)} (not configured)")
    engines: dict[str, Any] = {}
    for name in strategies:
        eng = registry.make(name, cfg, {m.symbol: m for m in md.markets})
        label = str(getattr(eng, "name", name))
        if label in engines:
            raise ValueError(f"strategy {label} given twice")
        engines[label] = eng
    tier = TIERS[bcfg.tier]
    rec = Recorder(md.markets, bcfg.initial_capital_usd, bcfg.equity_sample_s)
    for label in engines:
        rec.add_strategy(label)
    tap = PnlAttribution()
    bt = Backtest(md.markets, {**engines, TAP: tap}, ecfg, account=bcfg.account_index if bcfg.account_index is not None
                  else cfg.account_index, tier=tier, maker_fee=bcfg.maker_fee, taker_fee=bcfg.taker_fee,
                  recorder=rec)
    t0 = time.perf_counter()
    events = md.events()
    if progress and sys.stderr.isatty():
        _run_with_progress(bt, events, md.total)
    else:
        bt.run(events)
    wall = time.perf_counter() - t0

    out.mkdir(parents=True, exist_ok=True)
    summary = _summary(bt, md, list(engines), bcfg, notes)
    _add_pnl_split(summary, tap, list(engines))
    write_fills_csv(out / "fills.csv", rec)
    write_summary(out / "summary.json", summary)
    charts = write_charts(out, rec, summary)
    write_html(out / "report.html", summary, charts)
    summary["_run"] = {"wall_s": round(wall, 3), "events_per_s": round(bt.events / wall) if wall > 0 else None}
    return summary


def _run_with_progress(bt: Backtest, events: Any, total: int | None) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    cols = [TextColumn("backtest"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
    with Progress(*cols, transient=True) as prog:
        task = prog.add_task("events", total=total)
        step = bt.step
        n = 0
        for ev in events:
            step(ev)
            n += 1
            if n % 5000 == 0:
                prog.update(task, completed=n)
        prog.update(task, completed=n)
    bt.finish()


def _summary(bt: Backtest, md: Any, names: list[str], bcfg: BacktestConfig, notes: list[str]) -> dict[str, Any]:
    rec = bt.recorder
    per = {s: rec.stats(s) for s in rec.strategies}
    ec = bt.exec_counts
    return {
        "data": {"path": md.path.name, "kind": md.kind, "markets": [m.symbol for m in md.markets],
                 "events": bt.events, "start": iso_ns(rec.first_ts) if rec.first_ts is not None else None,
                 "end": iso_ns(rec.last_ts) if rec.first_ts is not None else None,
                 "duration_s": round((rec.last_ts - (rec.first_ts or rec.last_ts)) / 1e9, 3), "notes": notes},
        "strategies": names,
        "config": {"account_index": bt.account, "tier": bcfg.tier, "maker_fee": bt.venue.maker_fee,
                   "taker_fee": bt.venue.taker_fee, "initial_capital_usd": bcfg.initial_capital_usd,
                   "equity_sample_s": bcfg.equity_sample_s},
        "total": rec.stats("total"),
        "per_strategy": per,
        "executor": {"orders_accepted": ec.get("OrderAccepted", 0), "orders_rejected": ec.get("OrderRejected", 0),
                     "orders_canceled": ec.get("OrderCanceled", 0), "fills": ec.get("Fill", 0)},
        "outputs": ["fills.csv", "summary.json", "report.html", *CHARTS],
        "definitions": " ".join(METRICS_DOC.split()) if METRICS_DOC else "",
    }


def _add_pnl_split(summary: dict[str, Any], tap: PnlAttribution, names: list[str]) -> None:
    """Put each strategy's (and the account's) PnL split into the summary, next to its FIFO PnL."""
    splits = tap.results(names)
    for name, split in splits.items():
        stats = summary["total"] if name == "total" else summary["per_strategy"][name]
        fifo = stats.get("pnl_usd")
        split["fifo_pnl_usd"] = fifo
        split["identity_residual_usd"] = None if fifo is None else round(split["total_usd"] - fifo, 6) + 0.0
        stats["pnl_split"] = split


def backtest_command(data: Path, strategies: list[str], config: Path | None, out: Path,
                     progress: bool = True) -> int:
    """What ``lighter-stack backtest`` runs: prints a table per strategy; returns the exit code
    (0 ok, 2 bad input/config/strategy)."""
    from rich.console import Console
    from rich.table import Table

    from shared.config import ConfigError
    from shared.recording import RecordingError

    console = Console(stderr=False)
    try:
        s = run_backtest(data, strategies, config, out, progress)
    except (RecordingError, registry.StrategyNotAvailable, ConfigError, ValueError) as exc:
        Console(stderr=True).print(f"[red]backtest: {exc}[/red]")
        return 2
    t = Table(title=f"backtest {', '.join(s['strategies'])} on {s['data']['path']} ({s['data']['events']} events)")
    keys = ("trades", "win_rate_pct", "pnl_usd", "realized_pnl_usd", "unrealized_pnl_usd", "fees_usd",
            "max_drawdown_usd", "max_drawdown_pct", "sharpe", "exposure_time_pct", "turnover_usd")
    t.add_column("")
    cols = ["total", *s["per_strategy"]]
    for c in cols:
        t.add_column(c, justify="right")
    for k in keys:
        t.add_row(k, *(_cell((s["total"] if c == "total" else s["per_strategy"][c]).get(k)) for c in cols))
    console.print(t)
    console.print(_split_table(s, cols))
    run = s.get("_run", {})
    console.print(f"outputs in {out} ({run.get('wall_s')} s, {run.get('events_per_s')} events/s)")
    return 0


def _split_table(s: dict[str, Any], cols: list[str]) -> Any:
    """The PnL split rows (USD, adverse selection bps) per column, as a rich table."""
    from rich.table import Table

    t = Table(title="PnL split (docs/pnl-attribution.md)")
    t.add_column("")
    for c in cols:
        t.add_column(c, justify="right")
    splits = [(s["total"] if c == "total" else s["per_strategy"][c]).get("pnl_split") or {} for c in cols]
    for k in ("spread_capture_usd", "inventory_pnl_usd", "fees_usd", "total_usd", "identity_residual_usd"):
        t.add_row(k, *(_cell(sp.get(k)) for sp in splits))
    for who in ("all", "maker"):
        for h in ("1s", "10s"):
            t.add_row(f"adverse_{who}_{h}_bps", *(_cell((sp.get("adverse_selection_bps") or {}).get(who, {}).get(h))
                                                  for sp in splits))
    t.add_row("maker_fill_ratio", *(_cell((sp.get("orders") or {}).get("maker_fill_ratio")) for sp in splits))
    return t


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    return f"{v:,.4f}" if isinstance(v, float) else str(v)
