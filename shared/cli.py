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


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
