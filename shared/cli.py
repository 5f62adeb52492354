"""The ``lighter-stack`` command: runs any service and the tools.

``lighter-stack run <service>`` starts one service (the same command docker compose runs);
``demo``, ``pnl`` and ``import-csv`` are tools. Every service lives in ``services/<name>/`` and
exposes ``main(cfg: StackConfig) -> int`` in its ``runner`` module.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Annotated

import typer

from shared.config import ConfigError, load_config

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="lighter-stack: an event-sourced trading system for the Lighter perp DEX.")

# service name (as in services/<name>/ and docker-compose) -> importable package
SERVICES = {
    "venue-sim": "services.venue_sim",
    "collector": "services.collector",
    "strategy-trend": "services.strategy_trend",
    "strategy-renko": "services.strategy_renko",
    "strategy-grid": "services.strategy_grid",
    "maker": "services.maker",
    "executor": "services.executor",
    "ledger": "services.ledger",
}

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="YAML config (default: LIGHTER_STACK_CONFIG or config/paper.yaml)")]


@app.command()
def run(service: Annotated[str, typer.Argument(help=f"one of: {', '.join(SERVICES)}")], config: ConfigOpt = None) -> None:
    """Run one service in the foreground until SIGTERM/SIGINT."""
    if service not in SERVICES:
        typer.echo(f"unknown service {service!r}; choose one of: {', '.join(SERVICES)}", err=True)
        raise typer.Exit(2)
    try:
        cfg = load_config(config)
        cfg.require_live_allowed()
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    runner = importlib.import_module(f"{SERVICES[service]}.runner")
    try:
        code = runner.main(cfg)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    raise typer.Exit(code or 0)


@app.command()
def demo(
    minutes: Annotated[float | None, typer.Option(help="replay only the first N minutes of the recording")] = None,
    speed: Annotated[float, typer.Option(help="simulated seconds per wall second")] = 80.0,
    recording: Annotated[Path | None, typer.Option(help="recording file (default: bundled BTC+ETH 2025-09-15)")] = None,
    timeout: Annotated[float, typer.Option(help="give up after this many seconds of replay")] = 600.0,
    config: ConfigOpt = None,
) -> None:
    """Paper-trade the bundled real Lighter recording with every service as its own process;
    check that the ledger's fills equal venue-sim's; print PnL and a JSON summary line."""
    from shared import demo as demo_mod

    opts = demo_mod.DemoOptions(minutes=minutes, speed=speed, timeout_s=timeout, config=config)
    if recording:
        opts.recording = recording
    raise typer.Exit(demo_mod.main(opts))


@app.command()
def pnl(
    strategy: Annotated[str | None, typer.Option(help="only this strategy")] = None,
    since_hours: Annotated[float | None, typer.Option("--since-hours", help="only trades closed in the last N hours")] = None,
    recent: Annotated[int, typer.Option(help="show the N most recent closed trades")] = 10,
    market: Annotated[str | None, typer.Option(help="only this market (symbol)")] = None,
    db_url: Annotated[str | None, typer.Option("--db-url", help="ledger database URL (default: LEDGER_DB_URL, then the ledger's configured db_url)")] = None,
) -> None:
    """Realized FIFO PnL per strategy from the ledger: trades, win rate, PnL %, USD, best/worst.

    ``--since-hours`` counts back from the newest fill in the ledger (so replayed data reads the
    same as live data)."""
    from services.ledger.report import pnl_command

    raise typer.Exit(pnl_command(db_url, strategy, since_hours, recent, market))


@app.command("import-csv")
def import_csv(
    folder: Annotated[Path, typer.Argument(help="folder with prices_<SYM>.csv and trades_<SYM>.csv")],
    out: Annotated[Path, typer.Option(help="recording to write (*.jsonl.gz)")],
    symbol: Annotated[list[str] | None, typer.Option("--symbol", help="only these symbols (repeatable)")] = None,
) -> None:
    """Turn a top-of-book + trades CSV folder (the djienne collector layout) into a recording."""
    from shared.importers import CsvImportError, write_top_of_book_recording

    try:
        stats = write_top_of_book_recording(folder, out, symbols=symbol or None)
    except CsvImportError as exc:
        typer.echo(f"import failed: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"wrote {out}: {stats.events} events, Bbo {stats.bbo_events}, trades {stats.trade_rows}, "
               f"duplicate tops dropped {stats.bbo_duplicates_dropped}")


@app.command()
def indicators(
    csv: Annotated[Path, typer.Option("--csv", help="OHLCV CSV: timestamp,open,high,low,close,volume or Binance klines")],
    out: Annotated[Path, typer.Option("--out", help="CSV to write, one column per indicator")],
) -> None:
    """Compute sma_20, ema_8, ema_21, rsi_14, Bollinger(20, 2), atr_14 and ao_5_34 for every bar
    (empty during warm-up); the values match TA-Lib (see docs/indicators.md)."""
    from shared.indicator_tool import OhlcvFormatError, run_indicators

    try:
        rows = run_indicators(csv, out)
    except (OhlcvFormatError, OSError) as exc:
        typer.echo(f"indicators failed: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"wrote {rows} rows to {out}")


@app.command()
def backtest(
    data: Annotated[Path, typer.Option(help="recording (*.jsonl.gz), top-of-book+trades CSV folder, or OHLCV klines CSV")],
    strategy: Annotated[list[str], typer.Option(help="strategy to run (repeatable: several share one account)")],
    out: Annotated[Path, typer.Option(help="output folder: fills.csv, summary.json, report.html, PNGs")],
    config: Annotated[Path | None, typer.Option("--config", "-c", help="YAML config (default: config/paper.yaml)")] = None,
    progress: Annotated[bool, typer.Option(help="progress bar on a terminal")] = True,
) -> None:
    """Run strategies in process on recorded data with the venue-sim matching engine, the
    executor and the ledger (the same engines as live); deterministic."""
    from shared.backtest.runner import backtest_command
    from shared.config import DEFAULT_CONFIG

    raise typer.Exit(backtest_command(data, strategy, config or DEFAULT_CONFIG, out, progress))


@app.command()
def simulate(
    out: Annotated[Path, typer.Option(help="recording to write (*.jsonl.gz)")],
    seed: Annotated[int, typer.Option(help="random seed: the same seed gives the same bytes")] = 0,
    minutes: Annotated[float, typer.Option(help="simulated duration")] = 60.0,
    start_price: Annotated[float, typer.Option(help="initial mid, USD")] = 100.0,
) -> None:
    """Write a synthetic recording (random walk with volatility regimes, trends and jumps) for
    venue-sim and backtests; other parameters: shared/pricesim.py."""
    from shared.pricesim import SimParams, write_simulated

    try:
        params = SimParams(duration_s=minutes * 60.0, start_price=start_price)
        n = write_simulated(out, params, seed)
    except ValueError as exc:
        typer.echo(f"simulate failed: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"wrote {n} events to {out}")


@app.command()
def calibrate(
    data: Annotated[Path, typer.Option(help="recording (*.jsonl.gz) or top-of-book+trades CSV folder")],
    market: Annotated[str, typer.Option(help="market symbol, e.g. BTC")],
    config: ConfigOpt = None,
    out: Annotated[Path | None, typer.Option(help="also write the parameters JSON to this file")] = None,
    publish: Annotated[bool, typer.Option(help="append the ModelParams event to {ns}:params:<strategy> on Redis")] = False,
    strategy: Annotated[str | None, typer.Option(help="strategy the parameters are for (default: services.maker.strategy or maker)")] = None,
    order_size: Annotated[float | None, typer.Option("--order-size", help="clip size, base units (backtest PnL in USD)")] = None,
) -> None:
    """Estimate Avellaneda-Stoikov sigma, A, k and gamma of one market from recorded mids and
    trades (docs/calibration.md); the last line is the parameters as one JSON object with units.
    Exit code 0 ok, 1 parameters not usable (problems printed), 2 bad input."""
    from shared.calibration import calibrate_command

    raise typer.Exit(calibrate_command(data, market, config, out, publish, strategy, order_size))


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
