"""shared.strategy_runner helpers that need no bus: running totals -> counter increments."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from shared.strategy_runner import CounterTotals


def test_counter_totals_count_only_the_growth_per_counter_and_labels():
    reg = CollectorRegistry()
    a = Counter("t_a_total", "a", ["market"], registry=reg)
    b = Counter("t_b_total", "b", ["market", "kind"], registry=reg)
    totals = CounterTotals()
    assert totals.count(a, 3, "BTC") == 3
    assert totals.count(a, 3, "BTC") == 0          # same total: nothing new
    assert totals.count(a, 5, "BTC") == 2
    assert totals.count(a, 1, "ETH") == 1          # other labels start from 0
    assert totals.count(b, 5, "BTC", "x") == 5     # other counter, same market: its own total
    assert totals.count(a, 4, "BTC") == 0          # a total that went down counts nothing
    assert reg.get_sample_value("t_a_total", {"market": "BTC"}) == 5
    assert reg.get_sample_value("t_a_total", {"market": "ETH"}) == 1
    assert reg.get_sample_value("t_b_total", {"market": "BTC", "kind": "x"}) == 5
