"""Integer scaling and minimum amounts (Lighter API reference, section 2)."""

import json
from pathlib import Path

import pytest

from shared.markets import MarketInfo

SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "lighter-samples"
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


def _decimal_reference(x: float, scale: int, rounding: str) -> int:
    from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal

    mode = {"nearest": ROUND_HALF_EVEN, "down": ROUND_FLOOR, "up": ROUND_CEILING}[rounding]
    return int((Decimal(repr(x)) * scale).to_integral_value(mode))


def test_fast_scaling_equals_the_decimal_reading_of_the_shortest_repr():
    """The float fast path of scale_to_int must give exactly Decimal(repr(x)) * scale rounded,
    also on half-ticks and values a hair off an integer (where it defers to Decimal)."""
    import random

    from shared.markets import scale_to_int

    rng = random.Random(7)
    xs = [4510.495, 0.1 + 0.2, 0.0003, 2.675, 1.005, 115303.25, 0.5, 1.5, 2.5, -2.5, -0.0, 0.0, 1e-9, 123456.789]
    for _ in range(2_000):
        d = rng.randint(0, 8)
        xs.append(rng.randint(0, 10**8) / 10 ** rng.randint(0, 9))
        xs.append((rng.randint(0, 10**6) + 0.5) / 10**d)
        xs.append(rng.uniform(-1e5, 1e5))
    for x in xs:
        for d in range(0, 9):
            for rounding in ("nearest", "down", "up"):
                assert scale_to_int(x, 10**d, rounding) == _decimal_reference(x, 10**d, rounding), (x, d, rounding)
    with pytest.raises(ValueError):
        ETH.price_to_int(float("nan"))
    with pytest.raises(OverflowError):
        ETH.size_to_int(float("inf"))


def test_guess_market_follows_lighters_six_significant_digits():
    from shared.markets import KNOWN_MARKETS, guess_market, market_info

    assert [(guess_market("X", px).price_decimals, guess_market("X", px).size_decimals)
            for px in (4500.0, 200.0, 0.25)] == [(2, 4), (3, 3), (6, 0)]  # ETH, SOL, DOGE on Lighter
    g = guess_market("DOGE", 0.25)
    assert g.min_base_amount == g.lot == 1.0 and g.min_quote_amount == 10.0
    with pytest.raises(ValueError, match="mid must be > 0"):
        guess_market("X", 0.0)
    assert market_info("BTC", 1.0) is KNOWN_MARKETS["BTC"]  # known metadata wins over a guess
    given = {"BTC": guess_market("BTC", 100.0)}
    assert market_info("BTC", 1.0, given) is given["BTC"]


def test_margin_fractions_in_files_only_when_not_the_defaults(tmp_path):
    from shared.markets import MARGIN_FIELDS, market_builtins
    from shared.recording import RecordingHeader, read_header, write_recording

    plain = MarketInfo(symbol="BTC", market_id=1, size_decimals=5, price_decimals=1, min_base_amount=0.0002,
                       min_quote_amount=10.0)
    odd = MarketInfo(symbol="X", market_id=9, size_decimals=2, price_decimals=2, min_base_amount=0.01,
                     min_quote_amount=10.0, min_initial_margin_fraction=500)
    assert not set(MARGIN_FIELDS) & set(market_builtins(plain))
    assert market_builtins(odd)["min_initial_margin_fraction"] == 500 and "closeout_margin_fraction" not in \
        market_builtins(odd)
    write_recording(tmp_path / "r.jsonl.gz", RecordingHeader(markets=[plain, odd]), [])
    assert read_header(tmp_path / "r.jsonl.gz").markets == [plain, odd]
