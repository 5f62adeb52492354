"""The ``lighter-stack`` command: runs any service and the tools.

``lighter-stack run <service>`` starts one service (the same command docker compose runs);
``demo``, ``pnl`` and ``import-csv`` are tools. Every service lives in ``services/<name>/`` and
exposes ``main(cfg: StackConfig) -> int`` in its ``runner`` module.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from lighter_stack import registry
from shared.config import PRIVATE_KEY_ENV, ConfigError, load_config

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="lighter-stack: an event-sourced trading system for the Lighter perp DEX.")

SERVICES = registry.SERVICES

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="YAML config (default: LIGHTER_STACK_CONFIG or config/paper.yaml)")]


@app.command()
def run(service: Annotated[str, typer.Argument(help=f"one of: {', '.join(SERVICES)}")], config: ConfigOpt = None,
        profile: Annotated[list[Path] | None, typer.Option(
            "--profile", help="config file layered over --config, e.g. a market profile (repeatable; "
            "also LIGHTER_STACK_PROFILES)")] = None) -> None:
    """Run one service in the foreground until SIGTERM/SIGINT."""
    if service not in SERVICES:
        typer.echo(f"unknown service {service!r}; choose one of: {', '.join(SERVICES)}", err=True)
        raise typer.Exit(2)
    try:
        # every section is checked, not only this service's: one typo anywhere stops every service
        cfg = load_config([config, *profile] if profile else config, sections=registry.config_sections())
        cfg.require_live_allowed()
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    runner = importlib.import_module(SERVICES[service].runner)
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
    lockstep: Annotated[bool, typer.Option("--lockstep", help="deterministic replay: venue-sim waits until every service is idle before each recorded event (same fills as lighter-stack backtest)")] = False,
    copytrade: Annotated[bool, typer.Option("--copytrade", help="also run the copy-trade API and trade through it during the replay (fills attributed to copytrade)")] = False,
    config: ConfigOpt = None,
) -> None:
    """Paper-trade the bundled real Lighter recording with every service as its own process;
    check that the ledger's fills equal venue-sim's; print PnL and a JSON summary line."""
    from lighter_stack import demo as demo_mod

    opts = demo_mod.DemoOptions(minutes=minutes, speed=speed, timeout_s=timeout, config=config,
                                lockstep=lockstep, copytrade=copytrade)
    if recording:
        opts.recording = recording
    raise typer.Exit(demo_mod.main(opts))


@app.command()
def chaos(
    minutes: Annotated[float | None, typer.Option(help="replay only the first N minutes of the recording (default: all)")] = None,
    speed: Annotated[float, typer.Option(help="simulated seconds per wall second")] = 8.0,
    seed: Annotated[int, typer.Option(help="seed of the fault plan")] = 7,
    kills: Annotated[int, typer.Option(help="SIGKILLs of each service (venue-sim excluded)")] = 2,
    redis_restarts: Annotated[int, typer.Option(help="Redis shutdowns (AOF on) and restarts")] = 1,
    venue_faults: Annotated[str | None, typer.Option(help="venue-sim fault plan (JSON body of POST /sim/fault) for a window of the run; default: every kind (docs/chaos.md); '{}' = none")] = None,
    venue_restarts: Annotated[int, typer.Option(help="venue-sim restarts from its state file")] = 1,
    timeout: Annotated[float, typer.Option(help="give up after this many seconds of replay")] = 900.0,
    config: ConfigOpt = None,
) -> None:
    """The paper demo under faults: kill -9 and restart each service in turn, restart Redis,
    inject venue-sim faults; then check that nothing was lost or doubled (last line: JSON)."""
    from lighter_stack import chaos as chaos_mod
    from lighter_stack.demo import DemoOptions

    opts = chaos_mod.ChaosOptions(demo=DemoOptions(minutes=minutes, speed=speed, timeout_s=timeout, config=config),
                                  seed=seed, kills_per_service=kills, redis_restarts=redis_restarts,
                                  venue_restarts=venue_restarts)
    if venue_faults is not None:
        opts.venue_faults = json.loads(venue_faults)
    raise typer.Exit(chaos_mod.main(opts))


@app.command()
def pnl(
    strategy: Annotated[str | None, typer.Option(help="only this strategy")] = None,
    since_hours: Annotated[float | None, typer.Option(
        "--since-hours", help="only trades closed in the last N hours, counted back from now (the wall clock; "
                              "see --from-last-fill)")] = None,
    from_last_fill: Annotated[bool, typer.Option(
        "--from-last-fill", help="count --since-hours back from the newest fill in the ledger instead of now "
                                 "(for a ledger filled by a replay or backtest)")] = False,
    recent: Annotated[int, typer.Option(help="show the N most recent closed trades")] = 10,
    market: Annotated[str | None, typer.Option(help="only this market (symbol)")] = None,
    db_url: Annotated[str | None, typer.Option("--db-url", help="ledger database URL (default: LEDGER_DB_URL, then the ledger's configured db_url)")] = None,
) -> None:
    """Realized FIFO PnL per strategy from the ledger: trades, win rate, PnL %, USD, average PnL
    per trade, best/worst; then the most recent closed trades with their exit reason.

    ``--since-hours`` counts back from now (wall clock); ``--from-last-fill`` counts back from the
    newest fill in the ledger instead (replayed data)."""
    import time

    from services.ledger.report import pnl_command

    now_ns = None if from_last_fill else time.time_ns()
    raise typer.Exit(pnl_command(db_url, strategy, since_hours, recent, market, now_ns=now_ns))


@app.command("ledger-migrate")
def ledger_migrate(
    db_url: Annotated[str | None, typer.Option("--db-url", help="ledger database URL (default: LEDGER_DB_URL, then the ledger's configured db_url)")] = None,
) -> None:
    """Bring an existing ledger database (SQLite or PostgreSQL) to this version's schema, as the
    ledger service does at start; prints the schema version before and after."""
    from services.ledger.report import migrate_command

    raise typer.Exit(migrate_command(db_url))


@app.command("pnl-split")
def pnl_split(
    data: Annotated[Path, typer.Option(help="market data the fills traded on: recording, Parquet archive, CSV folder "
                                            "or klines CSV")],
    fills: Annotated[str, typer.Option(help="ledger database URL or *.db file, or a backtest fills.csv")],
    strategy: Annotated[list[str] | None, typer.Option(help="only this strategy (repeatable; default: all)")] = None,
) -> None:
    """PnL split of recorded fills: spread capture, inventory PnL and fees, by volatility/trend
    bucket, with adverse selection (docs/pnl-attribution.md); rich tables, then one JSON line."""
    from lighter_stack.pnl_split_tool import pnl_split_command

    raise typer.Exit(pnl_split_command(data, fills, strategy or None))


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
def record(
    out: Annotated[Path, typer.Option(help="archive folder (Parquet, one file per stream and UTC hour)")],
    namespace: Annotated[str | None, typer.Option(help="namespace to archive (default: the config's)")] = None,
    config: ConfigOpt = None,
) -> None:
    """Archive what Redis holds now of a namespace's streams (md, intent, exec, control, params,
    dlq) to Parquet; run again to add only what is new (docs/replay.md). The recorder service
    does this continuously."""
    from lighter_stack.archive_tool import record_command

    raise typer.Exit(record_command(namespace, out, config))


@app.command()
def replay(
    source: Annotated[Path, typer.Argument(help="recording (*.jsonl.gz) or Parquet archive folder")],
    namespace: Annotated[str | None, typer.Option(help="namespace to publish into; must have no keys yet "
                                                        "(default: replay-<8 hex>)")] = None,
    speed: Annotated[float, typer.Option(help="x recorded pace (1 = as recorded); 0 = as fast as possible")] = 0.0,
    only: Annotated[list[str] | None, typer.Option(
        "--only", help="archive: only stream keys starting with this (repeatable; e.g. md, control)")] = None,
    to_recording: Annotated[Path | None, typer.Option(
        "--to-recording", help="instead write the archive's market data as a recording for venue-sim")] = None,
    start: Annotated[str | None, typer.Option(help="archive: only entries written at or after this UTC time "
                                                    "(2026-12-05 or 2026-12-05T14:00)")] = None,
    end: Annotated[str | None, typer.Option(help="archive: only entries written before this UTC time")] = None,
    progress: Annotated[bool, typer.Option(help="progress bar on a terminal")] = True,
    config: ConfigOpt = None,
) -> None:
    """Re-publish a recording or a Parquet archive into a new namespace in bus order, at xN or
    full speed (docs/replay.md); or convert an archive to a recording venue-sim replays."""
    from lighter_stack.archive_tool import replay_command

    raise typer.Exit(replay_command(source, namespace, speed, only, to_recording, config, progress, start, end))


@app.command()
def indicators(
    csv: Annotated[Path, typer.Option("--csv", help="OHLCV CSV: timestamp,open,high,low,close,volume or Binance klines")],
    out: Annotated[Path, typer.Option("--out", help="CSV to write, one column per indicator")],
) -> None:
    """Compute sma_20, ema_8, ema_21, rsi_14, Bollinger(20, 2), atr_14 and ao_5_34 for every bar
    (empty during warm-up); the values match TA-Lib (see docs/indicators.md)."""
    from lighter_stack.indicator_tool import OhlcvFormatError, run_indicators

    try:
        rows = run_indicators(csv, out)
    except (OhlcvFormatError, OSError) as exc:
        typer.echo(f"indicators failed: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"wrote {rows} rows to {out}")


@app.command()
def backtest(
    data: Annotated[Path, typer.Option(help="recording (*.jsonl.gz), Parquet archive folder, top-of-book+trades CSV "
                                            "folder, or OHLCV klines CSV")],
    strategy: Annotated[list[str], typer.Option(help="strategy to run (repeatable: several share one account)")],
    out: Annotated[Path, typer.Option(help="output folder: fills.csv, summary.json, report.html, PNGs")],
    config: Annotated[Path | None, typer.Option("--config", "-c", help="YAML config (default: config/paper.yaml)")] = None,
    progress: Annotated[bool, typer.Option(help="progress bar on a terminal")] = True,
) -> None:
    """Run strategies in process on recorded data with the venue-sim matching engine, the
    executor and the ledger (the same engines as live); deterministic."""
    from lighter_stack.backtest.runner import backtest_command
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
    venue-sim and backtests; other parameters: lighter_stack/pricesim.py."""
    from lighter_stack.pricesim import SimParams, write_simulated

    try:
        params = SimParams(duration_s=minutes * 60.0, start_price=start_price)
        n = write_simulated(out, params, seed)
    except ValueError as exc:
        typer.echo(f"simulate failed: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"wrote {n} events to {out}")


@app.command()
def calibrate(
    data: Annotated[Path, typer.Option(help="recording (*.jsonl.gz), Parquet archive folder or top-of-book+trades "
                                            "CSV folder")],
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
    from lighter_stack.calibrate_tool import calibrate_command

    raise typer.Exit(calibrate_command(data, market, config, out, publish, strategy, order_size))


@app.command()
def profile(
    symbol: Annotated[str, typer.Option(help="market symbol, e.g. SOL")],
    balance_usd: Annotated[float, typer.Option("--balance-usd", help="account balance the inventory caps are sized on, USD")],
    out: Annotated[Path | None, typer.Option(help="profile file to write (default: profiles/<SYMBOL>.yaml)")] = None,
    mid: Annotated[float | None, typer.Option(help="mid price, USD (default: from --url or the bundled recording)")] = None,
    url: Annotated[str | None, typer.Option(help="venue-sim or Lighter REST base URL to read orderBookDetails from")] = None,
    metadata: Annotated[Path | None, typer.Option(help="orderBookDetails JSON file or recording to read the market from")] = None,
    sizing_multiplier: Annotated[float, typer.Option(help="quote size = size_min x this (seed 1.05)")] = 1.05,
    max_leverage: Annotated[float, typer.Option(help="inventory notional cap = balance x this (seed 50/30)")] = 1.67,
) -> None:
    """Derive a market's maker/hedger sizes, notional floor, lot and tick from its metadata, a mid
    and a balance; write a config profile to layer with --profile (docs/profiles.md)."""
    from lighter_stack.profiles import (
        ProfileError,
        ProfileOptions,
        derive_profile,
        market_info,
        write_profile,
    )

    try:
        info, px = market_info(symbol, url=url, metadata=metadata, mid=mid)
        prof = derive_profile(info, px, balance_usd,
                              ProfileOptions(sizing_multiplier=sizing_multiplier, max_leverage=max_leverage))
    except ProfileError as exc:
        typer.echo(f"profile failed: {exc}", err=True)
        raise typer.Exit(2) from None
    path = out or Path("profiles") / f"{prof.symbol}.yaml"
    write_profile(prof, path)
    typer.echo(f"wrote {path}: {prof.symbol} size {prof.size:g} [{prof.size_min:g}, {prof.size_max:g}], "
               f"soft cap {prof.inventory_soft_cap:g}, hedger trigger {prof.hedger_trigger_units:g} / target "
               f"{prof.hedger_target_units:g} / clip {prof.hedger_max_clip_units:g}, caps {prof.max_position_units:g} "
               f"{prof.symbol} / {prof.max_inventory_notional_usd:g} USD (mid {px:g})")


@app.command()
def status(
    host: Annotated[str, typer.Option(help="host the services' /health ports are on")] = "127.0.0.1",
    namespace: Annotated[str | None, typer.Option(help="stream namespace (default: the config's)")] = None,
    db_url: Annotated[str | None, typer.Option("--db-url", help="ledger database URL (default: LEDGER_DB_URL, then the ledger's configured db_url)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object instead of tables")] = False,
    timeout: Annotated[float, typer.Option(help="seconds to wait for each service and the venue")] = 2.0,
    config: ConfigOpt = None,
) -> None:
    """One view of the running stack: each service's health and restarts, consumer lag and last
    event per stream, positions per strategy and at the venue, today's PnL, guard and control
    state (docs/runbook.md). A service that is down shows as down."""
    from lighter_stack.status_tool import status_command

    raise typer.Exit(status_command(config, host, namespace, db_url, as_json, timeout))


@app.command()
def control(
    command: Annotated[str, typer.Argument(help="kill | resume | pause | flatten")],
    strategy: Annotated[str | None, typer.Argument(help="strategy name (pause, flatten; resume of one strategy)")] = None,
    all_: Annotated[bool, typer.Option("--all", help="every strategy (flatten --all also closes the account position no strategy holds)")] = False,
    reason: Annotated[str, typer.Option(help="free text, shown in the executor's state and logs")] = "",
    namespace: Annotated[str | None, typer.Option(help="stream namespace (default: the config's)")] = None,
    config: ConfigOpt = None,
) -> None:
    """Publish an operator command on {ns}:control for the executor: kill, resume [STRATEGY],
    pause STRATEGY, flatten STRATEGY|--all (docs/runbook.md)."""
    from lighter_stack.control_tool import control_command

    raise typer.Exit(control_command(command, strategy, all_, reason, config, namespace))


def _venue_defaults(config: Path | None) -> Any:
    try:
        return load_config(config)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None


UrlOpt = Annotated[str | None, typer.Option("--url", help="venue REST base URL (default: the config's venue.rest_url)")]
KeyIndexOpt = Annotated[int | None, typer.Option("--api-key-index", help="API key index (default: the config's api_key_index)")]


@app.command("setup-api-key")
def setup_api_key(
    url: UrlOpt = None,
    api_key_index: KeyIndexOpt = None,
    account_index: Annotated[int | None, typer.Option("--account-index", help="the account to register for (default: the lowest index the wallet owns)")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="write LIGHTER_API_PRIVATE_KEY (and the indexes) to this file, mode 0600")] = None,
    show_private_key: Annotated[bool, typer.Option("--show-private-key", help="print the new private key")] = False,
    timeout: Annotated[float, typer.Option(help="seconds to wait until apikeys reports the key")] = 30.0,
    config: ConfigOpt = None,
) -> None:
    """Generate an API key and register it (ChangePubKey signed by the wallet key in
    LIGHTER_L1_PRIVATE_KEY) for the wallet's account; print account index, key index, public key
    (docs/runbook.md, live set-up)."""
    import asyncio

    from lighter_stack.setup_tool import SetupError, l1_key_from_env, write_secret_file
    from lighter_stack.setup_tool import setup_api_key as run_setup

    cfg = _venue_defaults(config)
    url = url or cfg.venue.rest_url
    index = cfg.api_key_index if api_key_index is None else api_key_index
    try:
        reg = asyncio.run(run_setup(url, l1_key_from_env(url), index, cfg.venue.chain_id, account_index, timeout,
                                    echo=typer.echo))
    except SetupError as exc:
        typer.echo(f"setup-api-key failed: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"account_index: {reg.account_index}\napi_key_index: {reg.api_key_index}\npublic_key: {reg.public_key}")
    if out is not None:
        write_secret_file(out, [f"# lighter-stack setup-api-key: account {reg.account_index}, key {reg.api_key_index}",
                                f"LS_ACCOUNT_INDEX={reg.account_index}", f"LS_API_KEY_INDEX={reg.api_key_index}",
                                f"LIGHTER_API_PRIVATE_KEY={reg.private_key.get_secret_value()}"])
        typer.echo(f"private key written to {out} (mode 0600)")
    if show_private_key:
        typer.echo(f"private_key: {reg.private_key.get_secret_value()}")
    if out is None and not show_private_key:
        typer.echo("the private key was not saved: rerun with --out FILE or --show-private-key", err=True)


@app.command("check-keys")
def check_keys(
    url: UrlOpt = None,
    api_key_index: KeyIndexOpt = None,
    account_index: Annotated[int | None, typer.Option("--account-index", help="default: the config's account_index")] = None,
    market: Annotated[str, typer.Option(help="market of the test order")] = "BTC",
    config: ConfigOpt = None,
) -> None:
    """Check LIGHTER_API_PRIVATE_KEY: sign offline; where the venue answers, check_client, then
    place and cancel a minimum-size post-only buy far below the market. One line per step."""
    import asyncio

    from lighter_stack.setup_tool import check_keys as run_check

    cfg = _venue_defaults(config)
    key = cfg.private_key()
    if key is None:
        typer.echo(f"{PRIVATE_KEY_ENV} is not set", err=True)
        raise typer.Exit(2)
    failed = asyncio.run(run_check(url or cfg.venue.rest_url, key,
                                   cfg.account_index if account_index is None else account_index,
                                   cfg.api_key_index if api_key_index is None else api_key_index,
                                   cfg.venue.chain_id, market, echo=typer.echo))
    raise typer.Exit(1 if failed else 0)


@app.command()
def account(
    url: UrlOpt = None,
    account_index: Annotated[int | None, typer.Option("--account-index", help="default: the config's account_index")] = None,
    api_key_index: KeyIndexOpt = None,
    trades: Annotated[bool, typer.Option("--trades", help="compare the venue's trade history with the ledger's fills")] = False,
    db_url: Annotated[str | None, typer.Option("--db-url", help="ledger database URL (default: LEDGER_DB_URL, then the ledger's configured db_url)")] = None,
    config: ConfigOpt = None,
) -> None:
    """The account at the venue: collateral, positions, open orders (REST); --trades also
    compares the venue's trades with the ledger's fills and prints the differences (exit 1 when
    they differ). The auth token is made from LIGHTER_API_PRIVATE_KEY when set."""
    import asyncio

    from lighter_stack.account_tool import account_report

    cfg = _venue_defaults(config)
    raise typer.Exit(asyncio.run(account_report(
        url or cfg.venue.rest_url, cfg.account_index if account_index is None else account_index, cfg.private_key(),
        cfg.api_key_index if api_key_index is None else api_key_index, cfg.venue.chain_id, trades, db_url,
        echo=typer.echo)))


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
