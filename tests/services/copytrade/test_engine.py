"""Copy-trade sizing (seed 004): ratio x total assets x scaling, floored to the lot; close;
adjust; the stop-loss trigger."""

from __future__ import annotations

import pytest
from copytrade_kit import BTC

from services.copytrade.engine import plan_adjust, plan_trade, stop_trigger

KW = {"scaling_factor": 0.8, "stop_loss_ratio": 0.05, "imf": 0.3333}


def test_long_size_is_total_assets_times_ratio_times_scaling_floored_to_the_lot() -> None:
    # 10_000 x 0.5 x 0.8 = 4000 USD at 100_000 -> 0.04 BTC exactly; at 99_999 -> 0.0400004 -> 0.04000
    p = plan_trade("long", 0.5, 0.0, 0.0, 10_000.0, 99_999.0, BTC, **KW)
    assert p.target == pytest.approx(0.04) and p.delta == pytest.approx(0.04)
    p = plan_trade("long", 0.123457, 0.0, 0.0, 10_000.0, 100_000.0, BTC, **KW)
    assert p.target == pytest.approx(0.00987)  # 987.656 USD -> 0.00987656 floored to 5 decimals


def test_short_adds_to_the_current_position_and_close_targets_zero() -> None:
    p = plan_trade("short", 0.5, -0.01, 100_000.0, 10_000.0, 100_000.0, BTC, **KW)
    assert p.target == pytest.approx(-0.05) and p.delta == pytest.approx(-0.04)
    c = plan_trade("close", 0.0, -0.05, 100_000.0, 10_000.0, 100_000.0, BTC, **KW)
    assert c.target == 0.0 and c.delta == pytest.approx(0.05) and c.stop_trigger is None
    assert plan_trade("close", 0.0, 0.0, 0.0, 10_000.0, 1.0, BTC, **KW).skipped


def test_below_the_market_minimum_is_skipped_not_traded() -> None:
    p = plan_trade("long", 0.001, 0.0, 0.0, 10_000.0, 100_000.0, BTC, **KW)  # 8 USD < 10 USD minimum
    assert p.skipped and p.target == 0.0 and p.delta == 0.0


def test_stop_loss_only_after_opening_or_adding_and_on_the_losing_side() -> None:
    p = plan_trade("long", 0.5, 0.0, 0.0, 10_000.0, 100_000.0, BTC, **KW)
    assert p.stop_trigger == pytest.approx(100_000 * (1 - 0.3333 * 0.05), abs=0.1)
    s = plan_trade("short", 0.5, 0.0, 0.0, 10_000.0, 100_000.0, BTC, **KW)
    assert s.stop_trigger == pytest.approx(100_000 * (1 + 0.3333 * 0.05), abs=0.1)
    reduce = plan_trade("short", 0.1, 0.04, 100_000.0, 10_000.0, 100_000.0, BTC, **KW)
    assert reduce.stop_trigger is None  # reducing keeps the old stop
    assert stop_trigger(100.0, 1, 0.05, 30.0, BTC) == pytest.approx(95.0)  # IMF x ratio >= 1: fallback


def test_adjust_increase_and_decrease_by_a_fraction_of_the_position() -> None:
    inc = plan_adjust("increase", 0.25, -0.04, 100_000.0, 100_000.0, BTC, 0.05, 0.3333)
    assert inc.target == pytest.approx(-0.05) and inc.stop_trigger is not None
    dec = plan_adjust("decrease", 0.5, -0.04, 100_000.0, 100_000.0, BTC, 0.05, 0.3333)
    assert dec.target == pytest.approx(-0.02) and dec.stop_trigger is None
    assert plan_adjust("decrease", 1.0, 0.04, 1.0, 100_000.0, BTC, 0.05, 0.3333).target == 0.0
    assert plan_adjust("increase", 0.5, 0.0, 0.0, 100_000.0, BTC, 0.05, 0.3333).skipped


def test_a_non_positive_price_raises() -> None:
    with pytest.raises(ValueError, match="price"):
        plan_trade("long", 0.5, 0.0, 0.0, 10_000.0, 0.0, BTC, **KW)
