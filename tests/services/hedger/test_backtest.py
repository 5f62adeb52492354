"""maker + hedger on the bundled real recording (paper config), in process with the executor
and the venue matching engine: the hedger trades, every hedge fill shrinks the maker+hedger
exposure it lands on and moves the hedge toward, never past, flat, and at the end the executor
holds no standing target for the hedger beyond its position (the engine test covers
determinism)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

import lighter_stack.backtest.runner as backtest_runner
from lighter_stack.backtest.runner import run_backtest
from shared.config import DEFAULT_CONFIG
from shared.importers import BUNDLED_RECORDING


def _outside(hedge: float, maker: float) -> float:
    """How far ``hedge`` lies outside the interval between 0 and ``-maker`` (base units)."""
    lo, hi = min(0.0, -maker), max(0.0, -maker)
    return max(lo - hedge, hedge - hi, 0.0)


def test_maker_and_hedger_on_the_bundled_recording(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    runs: list[backtest_runner.Backtest] = []

    class Kept(backtest_runner.Backtest):
        def __init__(self, *a, **kw) -> None:
            super().__init__(*a, **kw)
            runs.append(self)

    monkeypatch.setattr(backtest_runner, "Backtest", Kept)
    s1 = run_backtest(BUNDLED_RECORDING, ["maker", "hedger"], DEFAULT_CONFIG, tmp_path / "a")
    assert s1["total"]["fills"] > 0
    pos: dict[str, dict[str, float]] = {}
    hedges = 0
    lot = {"BTC": 1e-5, "ETH": 1e-4}
    with open(tmp_path / "a" / "fills.csv") as fh:
        for r in csv.DictReader(fh):
            p = pos.setdefault(r["market"], {"maker": 0.0, "hedger": 0.0})
            before, h_before = p["maker"] + p["hedger"], p["hedger"]
            p[r["strategy"]] += float(r["size"]) * (1 if r["side"] == "buy" else -1)
            if r["strategy"] == "hedger":
                hedges += 1
                tol = lot[r["market"]] / 2
                after = p["maker"] + p["hedger"]
                assert abs(after) <= abs(before) + tol, (r, before, after)
                # never past flat: the hedge moves toward [0, -maker inventory], never away from it
                assert _outside(p["hedger"], p["maker"]) <= _outside(h_before, p["maker"]) + tol, r
    assert hedges > 0, "the hedger never traded on the bundled recording"
    # nothing left standing: every cross that did not fill completely was re-stated as the
    # position, so no later rebalance of the market can trade a forgotten hedge
    ex = runs[0].executor
    held = {m: (st.target, st.position) for (who, m), st in ex.strats.items() if who == "hedger"}
    assert held, "the executor never got a target from the hedger"
    for m, (target, position) in held.items():
        assert target is not None and target == pytest.approx(position, abs=1e-9), (m, target, position)
