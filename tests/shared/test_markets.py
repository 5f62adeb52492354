"""Integer scaling and minimum amounts (Lighter API reference, section 2)."""

import json
from pathlib import Path

import pytest

from shared.markets import MarketInfo

SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "reference" / "lighter-samples"
ETH = MarketInfo(symbol="ETH", market_id=0, size_decimals=4, price_decimals=2, min_base_amount=0.005, min_quote_amount=10.0)
BTC = MarketInfo(symbol="BTC", market_id=1, size_decimals=5, price_decimals=1, min_base_amount=0.0002, min_quote_amount=10.0)


def test_scaling_matches_the_venue_docs_example():
    assert ETH.size_to_int(0.1) == 1000 and ETH.price_to_int(3000.0) == 300000
    assert ETH.price_str(300000) == "3000.00" and ETH.size_str(50) == "0.0050"
    assert BTC.price_str(1153032) == "115303.2" and BTC.size_str(216) == "0.00216"


@pytest.mark.parametrize("price, rounding, ticks", [
    (4510.495, "down", 451049), (4510.495, "up", 451050), (4510.491, "nearest", 451049), (0.1 + 0.2, "down", 30),
])
def test_price_rounding_modes(price, rounding, ticks):
    assert ETH.price_to_int(price, rounding) == ticks


def test_size_rounds_down_to_the_lot_by_default():
    assert ETH.size_to_int(0.00999) == 99
    assert BTC.size_to_int(0.0003) == 30  # no binary-float surprise (0.0003*1e5 = 29.999...)


def test_minimum_amount_checks_name_the_limit():
    assert "min_base_amount" in ETH.check_amount(0.004, 4500.0)
    assert "min_quote_amount" in BTC.check_amount(0.0002, 40000.0)
    assert ETH.check_amount(0.005, 4500.0) is None


def test_from_lighter_reads_the_real_order_book_details_sample():
    d = json.loads((SAMPLES / "http_order_book_details.json").read_text())["order_book_details"][0]
    m = MarketInfo.from_lighter(d)
    assert (m.symbol, m.market_id, m.size_decimals, m.price_decimals) == ("ETH", 0, 4, 2)
    assert m.min_base_amount == 0.005 and m.min_quote_amount == 10.0 and m.taker_fee == 0.0
    assert MarketInfo.from_lighter(m.to_lighter()) == m
