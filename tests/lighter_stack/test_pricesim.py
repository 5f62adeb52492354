"""The seeded price simulator: determinism, tick grid, regimes, jumps, trades, recording format."""

from __future__ import annotations

import hashlib

import msgspec
import numpy as np
import pytest

from lighter_stack.pricesim import SIM_MARKET, SimParams, simulate, simulate_path, write_simulated
from shared.events import Bbo, Trade
from shared.markets import MarketInfo
from shared.recording import read_recording

FAST = SimParams(duration_s=1800.0)


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_same_seed_gives_byte_identical_file_and_other_seed_differs(tmp_path):
    a, b, c = tmp_path / "a.jsonl.gz", tmp_path / "b.jsonl.gz", tmp_path / "c.jsonl.gz"
    assert write_simulated(a, FAST, seed=2) == write_simulated(b, FAST, seed=2) > 0
    write_simulated(c, FAST, seed=3)
    assert sha(a) == sha(b)
    assert sha(a) != sha(c)


def test_recording_reads_back_with_header_and_sorted_events(tmp_path):
    p = tmp_path / "sim.jsonl.gz"
    n = write_simulated(p, FAST, seed=5)
    header, events = read_recording(p)
    evs = list(events)
    assert len(evs) == n
    assert header.markets == [SIM_MARKET] and header.market("SIM") == SIM_MARKET
    assert "seed=5" in header.source and "pricesim" in header.notes
    ts = [e.ts_event for e in evs]
    assert ts == sorted(ts)
    assert {type(e) for e in evs} == {Bbo, Trade}
    assert len({e.id for e in evs}) == n  # unique ids
    assert evs == simulate(FAST, seed=5)[1]


def test_prices_on_tick_grid_sizes_on_lots_and_bid_below_ask():
    m = MarketInfo(symbol="XYZ", market_id=7, size_decimals=2, price_decimals=3,
                   min_base_amount=0.05, min_quote_amount=1.0)
    params = SimParams(market=m, start_price=2.5, duration_s=900.0, spread_ticks=2, spread_jitter_ticks=3,
                       trade_size_median=0.02)
    header, events = simulate(params, seed=11)
    assert header.markets == [m]
    bbos = [e for e in events if isinstance(e, Bbo)]
    trades = [e for e in events if isinstance(e, Trade)]
    assert len(bbos) == 900 * 4 and trades
    for e in bbos:
        assert e.market == "XYZ"
        for px in (e.bid_px, e.ask_px):
            assert m.int_to_price(m.price_to_int(px)) == px
        for sz in (e.bid_sz, e.ask_sz):
            assert sz > 0 and m.int_to_size(m.size_to_int(sz, "nearest")) == sz
        spread = m.price_to_int(e.ask_px) - m.price_to_int(e.bid_px)
        assert e.bid_px < e.ask_px and 2 <= spread <= 5
    for t in trades:
        assert t.size >= m.min_base_amount and m.int_to_size(m.size_to_int(t.size, "nearest")) == t.size
    assert {t.taker_side for t in trades} == {"buy", "sell"}


def test_trades_hit_the_quote_in_force_and_rate_is_poisson():
    params = SimParams(duration_s=1800.0, trade_rate_per_s=3.0)
    _, events = simulate(params, seed=1)
    last: Bbo | None = None
    n = 0
    for e in events:
        if isinstance(e, Bbo):
            last = e
        else:
            assert last is not None and last.ts_event <= e.ts_event < last.ts_event + 250_000_000
            assert e.price == (last.ask_px if e.taker_side == "buy" else last.bid_px)
            n += 1
    expected = 3.0 * 1800
    assert abs(n - expected) < 5 * expected**0.5


def test_regimes_switch_and_change_volatility_measurably():
    params = SimParams(duration_s=6 * 3600.0, vol_bps=(3.0, 20.0), switch_prob_per_min=(0.05, 0.05),
                       jump_prob_per_min=0.0, trend_bps_per_min=0.0)
    path = simulate_path(params, seed=8)
    r = np.diff(np.log(path.mid))
    reg = path.regime[1:]
    assert np.count_nonzero(np.diff(path.regime)) >= 5  # switches happen
    per_min = np.sqrt(60_000 / params.bbo_interval_ms)
    vol = [np.std(r[reg == i]) * per_min * 1e4 for i in (0, 1)]
    assert vol[0] == pytest.approx(3.0, rel=0.05) and vol[1] == pytest.approx(20.0, rel=0.05)


def test_jumps_occur_with_the_given_size():
    params = SimParams(duration_s=4 * 3600.0, jump_prob_per_min=0.2, jump_bps=50.0, vol_bps=(2.0,),
                       switch_prob_per_min=(0.0,))
    path = simulate_path(params, seed=4)
    jumps = path.jump[path.jump != 0]
    assert 30 <= len(jumps) <= 70  # ~48 expected
    assert np.mean(np.abs(jumps)) * 1e4 == pytest.approx(50.0, rel=0.35)
    assert (jumps > 0).any() and (jumps < 0).any()
    # the jumps are in the mid: without them the step returns are pure diffusion (+ tiny drift)
    r = np.diff(np.log(path.mid))
    sigma_step = 2e-4 * np.sqrt(params.bbo_interval_ms / 60_000)
    assert np.max(np.abs(r - path.jump[1:])) < 6 * sigma_step
    assert np.max(np.abs(r)) > 10 * sigma_step


def test_trend_drift_moves_the_price():
    params = SimParams(duration_s=3600.0, vol_bps=(0.0,), switch_prob_per_min=(0.0,), jump_prob_per_min=0.0,
                       trend_bps_per_min=2.0, trend_switch_prob_per_min=0.1)
    path = simulate_path(params, seed=3)
    assert set(np.unique(path.trend)) <= {-1, 0, 1} and len(np.unique(path.trend)) >= 2
    r = np.diff(np.log(path.mid)) * 1e4 / (params.bbo_interval_ms / 60_000)  # bps/min per step
    np.testing.assert_allclose(r, 2.0 * path.trend[1:], atol=1e-6)


def test_start_price_and_params_in_header():
    params = SimParams(start_price=3750.0, duration_s=60.0)
    path = simulate_path(params, seed=0)
    assert path.mid[0] == 3750.0 and len(path.mid) == 240
    header, _ = simulate(params, seed=0)
    notes = header.notes.split("params: ", 1)[1]
    assert msgspec.json.decode(notes, type=SimParams) == params


@pytest.mark.parametrize("bad", [
    {"start_price": 0.0}, {"duration_s": 0.0}, {"spread_ticks": 0}, {"bbo_size_base": (2.0, 1.0)},
    {"vol_bps": (1.0, 2.0), "switch_prob_per_min": (0.1,)}, {"jump_prob_per_min": 1.5},
    {"trade_rate_per_s": -1.0},
])
def test_bad_params_raise(bad):
    with pytest.raises(ValueError, match="SimParams"):
        simulate(SimParams(**bad), seed=0)


def test_simulate_command_is_deterministic_and_rejects_bad_parameters(tmp_path):
    from typer.testing import CliRunner

    from lighter_stack.cli import app

    a, b = tmp_path / "a.jsonl.gz", tmp_path / "b.jsonl.gz"
    for path in (a, b):
        res = CliRunner().invoke(app, ["simulate", "--out", str(path), "--seed", "3", "--minutes", "5"])
        assert res.exit_code == 0, res.output
    assert a.read_bytes() == b.read_bytes()
    bad = CliRunner().invoke(app, ["simulate", "--out", str(a), "--start-price", "-1"])
    assert bad.exit_code == 2 and "start_price" in bad.output
