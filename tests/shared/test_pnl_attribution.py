"""PnL attribution: split values and signs, the identity with FIFO PnL, buckets, markouts, orders,
the pnl-split command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from lighter_stack.backtest.data import load_data
from lighter_stack.backtest.report import read_fills_csv
from lighter_stack.backtest.runner import run_backtest
from lighter_stack.cli import app
from services.ledger.engine import LedgerEngine
from services.ledger.store import LedgerStore
from shared.config import DEFAULT_CONFIG, load_config
from shared.events import Bbo, Fill, OrderAccepted, OrderCanceled, Trade
from shared.pnl_attribution import (
    BUCKETS,
    MidPath,
    PnlAttribution,
    attribute,
    attribute_all,
    classify,
    mid_paths,
    order_stats,
)

REPO = Path(__file__).resolve().parents[2]
RECORDING = REPO / "data" / "recordings" / "lighter-2025-09-15-btc-eth.jsonl.gz"
S = 1_000_000_000
T0 = 1_757_894_400 * S


def bbo(t_s: float, mid: float, market: str = "BTC", half: float = 1.0) -> Bbo:
    ts = T0 + int(t_s * S)
    return Bbo(id=f"b{ts}", ts_event=ts, market=market, bid_px=mid - half, bid_sz=1.0, ask_px=mid + half, ask_sz=1.0)


def fill(t_s: float, side: str, price: float, size: float = 1.0, fee: float = 0.0, liquidity: str = "maker",
         strategy: str = "maker", market: str = "BTC", coi: int = 0) -> Fill:
    ts = T0 + int(t_s * S)
    fid = f"f{ts}{side}{strategy}"
    return Fill(id=fid, ts_event=ts, fill_id=fid, strategy=strategy, market=market, side=side,  # type: ignore[arg-type]
                price=price, size=size, fee=fee, liquidity=liquidity, client_order_index=coi)  # type: ignore[arg-type]


def test_buy_below_mid_then_mid_rises_spread_inventory_fees_exact():
    events = [bbo(0, 100.0), bbo(2, 102.0), bbo(4, 104.0)]
    paths, _ = mid_paths(events)
    fills = [fill(1, "buy", 99.5, fee=0.25), fill(3, "sell", 102.5, fee=0.125)]
    sp = attribute(fills, paths)
    # buy 0.5 below mid 100, sell 0.5 above mid 102: spread capture 1.0
    assert sp["spread_capture_usd"] == 1.0
    # held 1 BTC while the mid went 100 -> 102; flat for 102 -> 104
    assert sp["inventory_pnl_usd"] == 2.0
    assert sp["fees_usd"] == 0.375
    assert sp["total_usd"] == 2.625
    # FIFO: (102.5 - 99.5) x 1 - fees
    assert sp["total_usd"] == pytest.approx(3.0 - 0.375)
    assert sp["fills"] == sp["maker_fills"] == 2
    assert sp["by_market"]["BTC"]["total_usd"] == 2.625


def test_signs_sell_below_mid_and_short_into_a_rally_lose():
    paths, _ = mid_paths([bbo(0, 100.0), bbo(2, 101.0)])
    sp = attribute([fill(1, "sell", 99.0, liquidity="taker")], paths)
    assert sp["spread_capture_usd"] == -1.0  # sold 1 below the mid
    assert sp["inventory_pnl_usd"] == -1.0  # short 1 while the mid rose 1
    assert sp["total_usd"] == -2.0
    assert sp["maker_fills"] == 0


def test_fill_at_a_mid_change_is_measured_against_the_mid_before_it():
    # the Bbo at t=1 s is what the fill reacted to: mid at fill = 100, and the position rides the change to 98
    paths, _ = mid_paths([bbo(0, 100.0), bbo(1, 98.0)])
    sp = attribute([fill(1, "buy", 99.0)], paths)
    assert sp["spread_capture_usd"] == 1.0
    assert sp["inventory_pnl_usd"] == -2.0
    assert sp["total_usd"] == -1.0 == 98.0 - 99.0


def test_trade_sets_the_mid_only_before_the_first_bbo():
    tr = Trade(id="t1", ts_event=T0, market="BTC", trade_id="1", price=50.0, size=1.0, taker_side="buy")
    tr2 = Trade(id="t2", ts_event=T0 + 3 * S, market="BTC", trade_id="2", price=70.0, size=1.0, taker_side="buy")
    paths, _ = mid_paths([tr, bbo(2, 60.0), tr2])
    assert paths["BTC"].mid.tolist() == [50.0, 60.0]
    assert paths["BTC"].end_ns == T0 + 3 * S


def _fifo_pnl(fills: list[Fill], last_mid: dict[str, float]) -> dict[str, float]:
    """Realized + unrealized at the last mid, per strategy, from the ledger's FIFO engine."""
    eng = LedgerEngine()
    out: dict[str, float] = {}
    for f in fills:
        for ct in eng.apply_fill(f):
            out[ct.strategy] = out.get(ct.strategy, 0.0) + ct.pnl_usd
    for (s, m), _ in eng.positions().items():
        for lot in eng.open_lots(s, m):
            out[s] = out.get(s, 0.0) + lot.direction * (last_mid[m] - lot.price) * lot.size - lot.fee_per_unit * lot.size
    return out


def test_identity_with_fifo_realized_plus_unrealized_on_a_real_backtest(tmp_path):
    cfg = load_config(DEFAULT_CONFIG, environ={"LS_SERVICES__BACKTEST__MAKER_FEE": "0.0002",
                                                "LS_SERVICES__BACKTEST__TAKER_FEE": "0.0005"})
    summary = run_backtest(RECORDING, ["grid", "trend"], None, tmp_path / "out", stack_cfg=cfg)
    fills = read_fills_csv(tmp_path / "out" / "fills.csv")
    assert len(fills) > 10 and sum(f.fee for f in fills) > 0
    paths, _ = mid_paths(load_data(RECORDING).events())
    fifo = _fifo_pnl(fills, {m: float(p.mid[-1]) for m, p in paths.items()})
    for name in ("grid", "trend"):
        sp = attribute(fills, paths, strategy=name)
        assert sp["fills"] > 0
        assert sp["spread_capture_usd"] + sp["inventory_pnl_usd"] - sp["fees_usd"] == pytest.approx(sp["total_usd"], abs=2e-6)
        assert sp["total_usd"] == pytest.approx(fifo[name], abs=1e-5), name
        # the backtest's own split agrees, and its residual against the recorder's FIFO PnL is ~0
        own = summary["per_strategy"][name]["pnl_split"]
        assert own["total_usd"] == pytest.approx(sp["total_usd"], abs=1e-6)
        assert abs(own["identity_residual_usd"]) <= 2e-6
        # bucket and market tables add up to the totals
        for key in ("spread_capture_usd", "inventory_pnl_usd", "fees_usd"):
            assert sum(b[key] for b in sp["buckets"].values()) == pytest.approx(sp[key], abs=1e-5)
            assert sum(b[key] for b in sp["by_market"].values()) == pytest.approx(sp[key], abs=1e-5)
        assert sum(b["fills"] for b in sp["buckets"].values()) == sp["fills"]
        assert sum(b["time_share_pct"] for b in sp["buckets"].values()) == pytest.approx(100.0, abs=1e-3)


def _regime_path() -> tuple[list[Bbo], MidPath]:
    # flat 100 until 62 s, +20 bps at 62 s, -8 bps at 200 s; data ends at 300 s
    events = [bbo(0, 100.0), bbo(62, 100.2), bbo(200, 100.2 * (1 - 0.0008)), bbo(300, 100.2 * (1 - 0.0008))]
    paths, _ = mid_paths(events)
    return events, paths["BTC"]


def test_bucket_assignment_on_a_built_mid_path():
    _, path = _regime_path()
    reg = classify(path)
    assert reg.grid[1] - reg.grid[0] == 5 * S and reg.grid[-1] == T0 + 300 * S

    def at(t_s: float) -> str:
        return BUCKETS[int(reg.bucket_at(np.asarray([T0 + int(t_s * S)]))[0])]

    assert at(30) == "low/flat"
    assert at(65) == "low/flat"  # the 65 s sample (first to see the jump) is in force only after 65 s
    # 20 bps jump: the EWMA starts at the change itself (seed quirk) -> mid band; +20 bps in 45 s -> up
    assert reg.vol_bps[13] == pytest.approx(20.0, rel=1e-9) and reg.trend_bps[13] == pytest.approx(20.0, rel=1e-9)
    assert at(66) == "mid/up"
    assert at(110) == "mid/up"  # the 105 s sample still looks back to 60 s
    assert at(111) == "mid/flat"  # the 110 s sample looks back to 65 s: no change
    # 45 s half-life: 20 bps decays below 6 bps after 16 samples of 5 s (t = 145 s)
    assert at(146) == "low/flat" and at(145) == "mid/flat"
    assert at(201) == "low/down"  # -8 bps in 45 s
    assert at(246) == "low/flat"
    shares = reg.time_ns() / (300 * S) * 100
    assert shares.sum() == pytest.approx(100.0)
    assert shares[BUCKETS.index("mid/up")] == pytest.approx(45 / 3)


def test_fill_and_inventory_go_to_the_bucket_in_force():
    events, _ = _regime_path()
    paths, _ = mid_paths(events)
    # buy 1 at 70 s (mid/up) 0.1 below the mid, hold through the -8 bps move at 200 s (low/down)
    sp = attribute([fill(70, "buy", 100.1, fee=0.01)], paths)
    b = sp["buckets"]
    assert b["mid/up"]["fills"] == 1
    assert b["mid/up"]["spread_capture_usd"] == pytest.approx(0.1)
    assert b["mid/up"]["fees_usd"] == pytest.approx(0.01)
    assert b["low/flat"]["inventory_pnl_usd"] == pytest.approx(-100.2 * 0.0008)  # the change at 200 s: sample 195
    assert sp["by_volatility"]["mid"]["fills"] == 1 and sp["by_trend"]["up"]["fills"] == 1
    assert sp["buckets"]["low/flat"]["time_share_pct"] > sp["buckets"]["mid/up"]["time_share_pct"] > 0


def test_adverse_selection_sign_and_horizon():
    events = [bbo(0, 100.0), bbo(10.5, 99.9), bbo(15, 100.3), bbo(30, 100.3)]
    paths, _ = mid_paths(events)
    # buy at 10 s, mid falls 10 bps within 1 s: against us (+10); by 10 s it rose 30 bps: in our favour (-30)
    buy = attribute([fill(10, "buy", 99.99)], paths)["adverse_selection_bps"]
    assert buy["all"]["1s"] == pytest.approx(10.0) and buy["maker"]["1s"] == pytest.approx(10.0)
    assert buy["all"]["10s"] == pytest.approx(-30.0)
    # a sell at the same time: mirror signs; a taker fill is not in the maker average
    sell = attribute([fill(10, "sell", 100.01, liquidity="taker")], paths)["adverse_selection_bps"]
    assert sell["all"]["1s"] == pytest.approx(-10.0) and sell["all"]["10s"] == pytest.approx(30.0)
    assert sell["maker"]["1s"] is None and sell["maker"]["n_1s"] == 0
    # 25 s: 1 s is observable, 10 s runs past the end of the data (30 s)
    late = attribute([fill(25, "buy", 100.3)], paths)["adverse_selection_bps"]["all"]
    assert late["n_1s"] == 1 and late["1s"] == 0.0 and late["n_10s"] == 0 and late["10s"] is None


def test_order_fill_ratios_count_shared_orders_per_strategy():
    def acc(coi: int, strategy: str = "maker", tif: str = "post_only") -> OrderAccepted:
        return OrderAccepted(id=f"o{coi}", ts_event=T0, strategy=strategy, market="BTC", client_order_index=coi,
                             side="buy", price=100.0, size=1.0, time_in_force=tif)

    orders = [acc(1), acc(1), acc(2), acc(3, "maker,grid"), acc(4, tif="ioc"), acc(5, "grid")]
    fills = [fill(1, "buy", 99.0, coi=1), fill(2, "buy", 99.0, coi=1), fill(3, "buy", 99.0, coi=4, liquidity="taker"),
             fill(4, "buy", 99.0, coi=3, liquidity="taker")]
    st = order_stats(fills, orders, "maker")
    assert st["orders_accepted"] == 4  # 1 (twice), 2, 3 (shared), 4
    assert st["orders_filled"] == 3 and st["fill_ratio"] == 0.75
    assert st["resting_orders_accepted"] == 3 and st["resting_orders_maker_filled"] == 1
    assert st["maker_fill_ratio"] == pytest.approx(1 / 3, abs=1e-4)
    paths, _ = mid_paths([bbo(0, 100.0)])
    assert attribute(fills, paths)["orders"] is None


def test_missing_market_is_noted_not_a_crash():
    paths, _ = mid_paths([bbo(0, 100.0)])
    sp = attribute([fill(1, "buy", 10.0, market="ETH"), fill(1, "buy", 99.0)], paths)
    assert sp["notes"] == ["ETH: no mid in the data, its 1 fills are left out of the split"]
    assert sp["spread_capture_usd"] == 1.0 and set(sp["by_market"]) == {"BTC"}


def _last_json(output: str) -> dict:
    return json.loads(output.strip().splitlines()[-1])


def test_pnl_split_command_from_fills_csv_and_from_a_ledger(tmp_path):
    summary = run_backtest(RECORDING, ["grid", "trend"], DEFAULT_CONFIG, tmp_path / "bt")
    fills_csv = tmp_path / "bt" / "fills.csv"
    runner = CliRunner()
    r = runner.invoke(app, ["pnl-split", "--data", str(RECORDING), "--fills", str(fills_csv), "--strategy", "grid"])
    assert r.exit_code == 0, r.output
    out = _last_json(r.output)
    assert set(out["pnl_split"]) == {"total", "grid"}
    assert out["pnl_split"]["grid"]["total_usd"] == pytest.approx(summary["per_strategy"]["grid"]["pnl_usd"], abs=2e-6)
    assert "by volatility/trend bucket" in r.output

    url = f"sqlite:///{tmp_path}/ledger.db"
    store = LedgerStore(url)
    store.record(store.rebuild_engine(), read_fills_csv(fills_csv))
    store.close()
    r = runner.invoke(app, ["pnl-split", "--data", str(RECORDING), "--fills", url])
    assert r.exit_code == 0, r.output
    out = _last_json(r.output)
    assert set(out["pnl_split"]) == {"total", "grid", "trend"}
    assert out["fills_used"] == summary["total"]["fills"]
    assert out["pnl_split"]["total"]["total_usd"] == pytest.approx(summary["total"]["pnl_usd"], abs=2e-6)

    bad = runner.invoke(app, ["pnl-split", "--data", str(RECORDING), "--fills", str(tmp_path / "nope.csv")])
    assert bad.exit_code == 2


def test_maker_backtest_reports_its_split_orders_and_markouts(tmp_path):
    s = run_backtest(RECORDING, ["maker"], DEFAULT_CONFIG, tmp_path / "out")
    sp = s["per_strategy"]["maker"]["pnl_split"]
    assert sp["fills"] > 0 and sp["maker_fills"] == sp["fills"]  # post-only quotes only
    orders = sp["orders"]
    assert orders["resting_orders_accepted"] == orders["orders_accepted"] >= orders["orders_filled"] > 0
    assert 0 < orders["maker_fill_ratio"] <= 1
    assert sp["adverse_selection_bps"]["maker"]["n_1s"] == sp["fills"]
    assert abs(sp["identity_residual_usd"]) <= 2e-6
    assert "maker: by volatility/trend bucket" in (tmp_path / "out" / "report.html").read_text()


def test_online_accumulator_agrees_with_the_batch_replay_and_keeps_no_mid_history():
    # a random walk of 20 min with fills arriving after market data stamped after them (the
    # backtest venue stamps trades in whole ms), a fill before the first mid, shared orders,
    # cancels, and markouts left pending at the end
    rng = np.random.default_rng(7)
    events: list = []
    fills: list[Fill] = []
    orders: list[OrderAccepted] = []
    live = PnlAttribution()
    f0 = fill(-1, "buy", 100.0, size=0.3, strategy="grid", coi=1)
    o0 = OrderAccepted(id="o1", ts_event=T0 - 2 * S, strategy="grid,maker", market="BTC", client_order_index=1,
                       side="buy", price=100.0, size=0.3, time_in_force="post_only")
    live.on_event(o0)
    live.on_event(f0)
    orders.append(o0)
    fills.append(f0)
    mid, coi = 100.0, 1
    for k in range(2400):
        t_s = k * 0.5 + 0.0003
        mid = round(mid * (1 + rng.normal(0, 4e-4)), 2)
        ev = bbo(t_s, mid)
        if k % 7 == 3:  # a fill produced with this Bbo, stamped in the ms before it, arrives first
            coi += 1
            side = "buy" if rng.random() < 0.5 else "sell"
            strat = "maker" if k % 2 else "grid"
            acc = OrderAccepted(id=f"o{coi}", ts_event=ev.ts_event, strategy=strat, market="BTC",
                                client_order_index=coi, side=side, price=mid, size=0.5,  # type: ignore[arg-type]
                                time_in_force="ioc" if k % 5 == 0 else "post_only")
            # stamped in the ms before this Bbo, or (every other one) before the one before it
            f = fill(t_s - (0.0003 if k % 14 == 3 else 1.0002), side, mid + (-0.05 if side == "buy" else 0.05), size=0.2, fee=0.001,
                     liquidity="maker" if k % 3 else "taker", strategy=strat, coi=coi)
            live.on_event(acc)
            live.on_event(f)
            if k % 4 == 0:
                live.on_event(OrderCanceled(id=f"c{coi}", ts_event=ev.ts_event, strategy=strat, market="BTC",
                                            client_order_index=coi, remaining=0.3, reason="canceled"))
            orders.append(acc)
            fills.append(f)
        live.on_event(ev)
        events.append(ev)
        assert len(live.markets["BTC"].mq) <= 3  # mid changes of the last lag_s only
    online = live.results(["grid", "maker"])
    paths, _ = mid_paths(events)
    batch = attribute_all(fills, paths, ["grid", "maker"], orders)
    assert live.late_fills == 0
    assert online == batch
    assert online["total"]["fills"] == len(fills) and online["maker"]["orders"]["orders_accepted"] > 0
    assert online["total"]["adverse_selection_bps"]["all"]["n_10s"] < len(fills)  # the last ones ran past the end
    assert online["total"]["total_usd"] == pytest.approx(online["total"]["spread_capture_usd"]
                                                         + online["total"]["inventory_pnl_usd"]
                                                         - online["total"]["fees_usd"], abs=2e-6)
