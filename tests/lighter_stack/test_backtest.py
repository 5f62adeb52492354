"""In-process backtests: outputs, determinism, the three input kinds, errors, netting."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from lighter_stack.backtest import strategies as registry
from lighter_stack.backtest.data import DataError, load_data, symbol_from_filename
from lighter_stack.backtest.runner import run_backtest
from shared.config import StackConfig
from shared.events import Bbo, Event, TargetPosition, child

REPO = Path(__file__).resolve().parents[2]
RECORDING = REPO / "data" / "recordings" / "lighter-2025-09-15-btc-eth.jsonl.gz"
CSV_DIR = REPO / "data" / "lighter_djienne_collector_2025-09-15"
SOL_KLINES = REPO / "tests" / "fixtures" / "bybit_linear_SOLUSDT_1m_2025-05-30" / "SOLUSDT_1m.csv"


def _outputs_ok(out: Path) -> dict:
    for name in ("fills.csv", "summary.json", "report.html", "equity.png", "drawdown.png", "trades.png",
                 "pnl_buckets.png"):
        assert (out / name).is_file(), name
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "<img" in html
    assert "<h2>PnL attribution</h2>" in html and "by volatility/trend bucket" in html
    summary = json.loads((out / "summary.json").read_text())
    for key in ("trades", "win_rate_pct", "pnl_usd", "realized_pnl_usd", "unrealized_pnl_usd", "fees_usd",
                "max_drawdown_usd", "max_drawdown_pct", "sharpe", "exposure_time_pct", "turnover_usd"):
        assert key in summary["total"], key
    # the PnL split (docs/pnl-attribution.md) of every strategy and the account adds up to its FIFO PnL
    for stats in (summary["total"], *summary["per_strategy"].values()):
        split = stats["pnl_split"]
        assert split["fills"] == stats["fills"]
        assert split["total_usd"] == pytest.approx(
            split["spread_capture_usd"] + split["inventory_pnl_usd"] - split["fees_usd"], abs=2e-6)
        assert split["fifo_pnl_usd"] == stats["pnl_usd"] and abs(split["identity_residual_usd"]) <= 2e-6
        assert len(split["buckets"]) == 9 and set(split["adverse_selection_bps"]) == {"all", "maker"}
    return summary


def test_trend_on_recording_writes_outputs_and_is_deterministic(tmp_path):
    s1 = run_backtest(RECORDING, ["trend", "ema-cross"], None, tmp_path / "a")
    s2 = run_backtest(RECORDING, ["trend", "ema-cross"], None, tmp_path / "b")
    summary = _outputs_ok(tmp_path / "a")
    assert summary["data"]["events"] == 1751
    assert set(summary["per_strategy"]) == {"trend", "ema-cross"}
    fills_a = (tmp_path / "a" / "fills.csv").read_bytes()
    assert fills_a == (tmp_path / "b" / "fills.csv").read_bytes()
    assert fills_a.startswith(b"ts,strategy,market,side,price,size,fee,liquidity,venue_trade_id,fill_id\n")
    assert s1["total"]["fills"] == s2["total"]["fills"] == fills_a.count(b"\n") - 1
    assert (tmp_path / "a" / "summary.json").read_bytes() == (tmp_path / "b" / "summary.json").read_bytes()


def test_csv_folder_input(tmp_path):
    data = tmp_path / "csv"
    data.mkdir()
    for name in ("prices_ETH.csv", "trades_ETH.csv"):
        shutil.copy(CSV_DIR / name, data / name)
    s = run_backtest(data, ["ema-cross"], None, tmp_path / "out")
    _outputs_ok(tmp_path / "out")
    assert s["data"]["kind"] == "csv-folder" and s["data"]["markets"] == ["ETH"]
    assert s["data"]["events"] > 500
    assert s["total"]["fills"] > 0


def test_klines_input(tmp_path):
    lines = SOL_KLINES.read_text().splitlines()[:2001]
    f = tmp_path / "SOLUSDT_1m.csv"
    f.write_text("\n".join(lines) + "\n")
    cfg = tmp_path / "bt.yaml"
    cfg.write_text("services:\n  strategy-trend:\n    sizes:\n      SOL: {min_size: 0.1, max_size: 0.5, size_step: 0.01}\n"
                   "  executor:\n    max_position: {SOL: 5}\n")
    s = run_backtest(f, ["trend", "ema-cross"], cfg, tmp_path / "out")
    _outputs_ok(tmp_path / "out")
    assert s["data"]["kind"] == "klines" and s["data"]["markets"] == ["SOL"]
    assert s["data"]["events"] == 2000 * 8
    assert s["total"]["fills"] > 0
    assert s["per_strategy"]["trend"]["fills"] > 0


def test_symbol_from_filename():
    assert symbol_from_filename(Path("SOLUSDT_1m.csv")) == "SOL"
    assert symbol_from_filename(Path("klines-BTCUSDC.csv")) == "KLINES"
    assert symbol_from_filename(Path("ETH.csv")) == "ETH"


def test_broken_files_name_file_and_line(tmp_path):
    k = tmp_path / "SOLUSDT_1m.csv"
    k.write_text("timestamp,open,high,low,close,volume\n2025-05-30 16:41:00+00:00,1,2,0.5,1.5,10\n"
                 "2025-05-30 16:42:00+00:00,1,oops,0.5,1.5,10\n")
    with pytest.raises(DataError, match=r"SOLUSDT_1m\.csv:3:"):
        run_backtest(k, ["ema-cross"], None, tmp_path / "o1")
    bad_header = tmp_path / "x.csv"
    bad_header.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(DataError, match=r"x\.csv:1:"):
        load_data(bad_header)
    folder = tmp_path / "csv"
    folder.mkdir()
    (folder / "prices_ETH.csv").write_text("timestamp,bid_price,bid_size,ask_price,ask_size\n"
                                           "2025-09-15T21:00:00,1,1,2,1\n2025-09-15T21:00:01,x,1,2,1\n")
    with pytest.raises(DataError, match=r"prices_ETH\.csv:3:"):
        load_data(folder)
    with pytest.raises(DataError, match="no such file"):
        load_data(tmp_path / "missing.jsonl.gz")
    with pytest.raises(DataError, match="unknown input kind"):
        (tmp_path / "y.txt").write_text("x")
        load_data(tmp_path / "y.txt")


class _Fixed:
    """Test strategy: at the first BTC Bbo after ``after_ns`` from the start, target ``target``."""

    def __init__(self, name: str, target: float, after_ns: int = 60 * 10**9) -> None:
        self.name, self.target, self.after = name, target, after_ns
        self.start: int | None = None
        self.sent = False

    def on_event(self, ev: Event) -> list[Event]:
        if not isinstance(ev, Bbo) or ev.market != "BTC" or self.sent:
            return []
        self.start = ev.ts_event if self.start is None else self.start
        if ev.ts_event - self.start < self.after:
            return []
        self.sent = True
        return [TargetPosition(**child(ev, self.name, 0), strategy=self.name, market="BTC", target=self.target,
                               reference_price=ev.mid)]


def test_two_strategies_share_one_account_netted(tmp_path, monkeypatch):
    monkeypatch.setitem(registry.REGISTRY, "t-long", lambda cfg: _Fixed("t-long", 0.001))
    monkeypatch.setitem(registry.REGISTRY, "t-short", lambda cfg: _Fixed("t-short", -0.0004))
    s = run_backtest(RECORDING, ["trend", "t-long", "t-short"], None, tmp_path / "out",
                     stack_cfg=StackConfig())
    per = s["per_strategy"]
    assert per["t-long"]["final_position"]["BTC"] == pytest.approx(0.001)
    assert per["t-short"]["final_position"]["BTC"] == pytest.approx(-0.0004)
    # the opposite intents of one event crossed internally; only the net went to the venue
    assert per["t-short"]["internal_fills"] == 1
    assert s["total"]["final_position"]["BTC"] == pytest.approx(0.0006)
    rows = (tmp_path / "out" / "fills.csv").read_text().splitlines()[1:]
    venue = [r for r in rows if ",internal," not in r]
    assert venue and all(",t-long," in r for r in venue)
    assert s["executor"]["orders_accepted"] == 1


def test_unknown_strategy_is_a_clear_error(tmp_path):
    with pytest.raises(registry.StrategyNotAvailable, match="strategy nope not available"):
        run_backtest(RECORDING, ["nope"], None, tmp_path / "o")
    monkeypatch_free = dict(registry.REGISTRY)
    try:
        registry.register("ghost", "services.no_such_package.engine:make_engine")
        with pytest.raises(registry.StrategyNotAvailable, match="strategy ghost not available"):
            registry.resolve("ghost")
    finally:
        registry.REGISTRY.clear()
        registry.REGISTRY.update(monkeypatch_free)


@pytest.mark.parametrize("strategy", ["trend", "renko", "grid"])
def test_each_strategy_backtests_the_bundled_recording_with_the_paper_config_deterministically(tmp_path, strategy):
    from shared.config import DEFAULT_CONFIG

    s1 = run_backtest(RECORDING, [strategy], DEFAULT_CONFIG, tmp_path / "a")
    run_backtest(RECORDING, [strategy], DEFAULT_CONFIG, tmp_path / "b")
    _outputs_ok(tmp_path / "a")
    assert s1["total"]["fills"] > 0, f"{strategy} never traded on the bundled recording"
    for name in ("fills.csv", "summary.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
