"""A backtest on the data of a market no config lists (DOGE: not BTC/ETH/SOL) runs without a
config file and trades with each of trend, renko, grid and maker; sizes come from each
strategy's ``notional_usd`` and the market metadata inferred from the data. Dry run of every
strategy: signals are decided, no intent goes out."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lighter_stack.backtest.data import load_data
from lighter_stack.backtest.runner import run_backtest
from lighter_stack.cli import app
from shared.config import StackConfig
from shared.events import CancelIntent, QuoteIntent, RestingOrders, TargetPosition
from tests.support.csv_market import write_csv_market

INTENTS = (TargetPosition, QuoteIntent, RestingOrders, CancelIntent)


@pytest.fixture(scope="module")
def doge(tmp_path_factory) -> Path:
    return write_csv_market(tmp_path_factory.mktemp("csv") / "doge", symbol="DOGE", seed=7)


def _fills(out: Path) -> list[dict[str, str]]:
    with open(out / "fills.csv") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("strategy", ["trend", "renko", "grid", "maker"])
def test_backtest_of_an_unlisted_market_runs_without_config_and_trades(doge, tmp_path, strategy):
    s = run_backtest(doge, [strategy], None, tmp_path / "out")
    assert s["data"]["markets"] == ["DOGE"]
    assert any("inferred" in n and "DOGE" in n for n in s["data"]["notes"])
    assert s["executor"]["fills"] > 0 and s["executor"]["orders_rejected"] == 0
    fills = _fills(tmp_path / "out")
    assert fills and {f["market"] for f in fills} == {"DOGE"} and {f["strategy"] for f in fills} == {strategy}
    lot = load_data(doge, {}).markets[0].lot  # inferred from the sizes in the data
    for f in fills:
        size, price = float(f["size"]), float(f["price"])
        assert abs(size / lot - round(size / lot)) < 1e-6, f  # on the lot
        if strategy != "maker":  # the maker's last clip may be trimmed to the room under its cap
            assert size * price >= 10.0 - 1e-9, f  # at least Lighter's 10 USD minimum
        assert size * price < 250.0, f  # about the 25 USD notional (x2 max for trend/renko)


def test_cli_backtest_of_an_unlisted_market_with_the_default_config(doge, tmp_path):
    # no --config: config/paper.yaml, which lists BTC, ETH and SOL sizes but not DOGE
    res = CliRunner().invoke(app, ["backtest", "--data", str(doge), "--strategy", "grid", "--strategy", "trend",
                                   "--out", str(tmp_path / "out"), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert {f["strategy"] for f in _fills(tmp_path / "out")} == {"grid", "trend"}


@pytest.mark.parametrize("service", ["strategy_trend", "strategy_renko", "strategy_grid", "maker", "hedger"])
def test_dry_run_decides_but_sends_no_intent(doge, service):
    import importlib

    engine_mod = importlib.import_module(f"services.{service}.engine")
    section = {"strategy_trend": "strategy-trend", "strategy_renko": "strategy-renko",
               "strategy_grid": "strategy-grid"}.get(service, service)
    md = load_data(doge, {})
    info = {m.symbol: m for m in md.markets}
    live = engine_mod.make_engine(StackConfig(markets=["DOGE"]), market_info=info)
    dry = engine_mod.make_engine(StackConfig(markets=["DOGE"], services={section: {"dry_run": True}}),
                                 market_info=info)
    sent_live = sent_dry = 0
    dry_positions = set()
    for ev in md.events():
        sent_live += sum(isinstance(o, INTENTS) for o in live.on_event(ev))
        sent_dry += sum(isinstance(o, INTENTS) for o in dry.on_event(ev))
        if service.startswith("strategy_") and service != "strategy_grid":
            dry_positions.add(dry.position("DOGE"))
    assert sent_dry == 0
    if service == "hedger":
        return  # without maker fills there is nothing to hedge, dry or not
    assert sent_live > 0
    st = dry.state("DOGE")
    if service in ("strategy_trend", "strategy_renko"):
        # signals counted, position simulated: entries and the exits that follow them
        assert st["signals"].get("long:entry", 0) + st["signals"].get("short:entry", 0) > 0
        assert sum(n for k, n in st["signals"].items() if not k.endswith(":entry")) > 0
        assert len(dry_positions) > 1 and all(math.isfinite(p) for p in dry_positions)
    elif service == "strategy_grid":
        assert st["wanted_orders"] > 0  # the grid is computed (and counted), not sent
    else:
        assert st["bid_px"] is not None or st["ask_px"] is not None or st["mid"] is not None
