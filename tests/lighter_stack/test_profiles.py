"""Market profiles: the rules reproduce seed 001's SOL profile, round to the market's lot,
respect the venue minimums, refuse a too small balance; the written YAML layers into a valid
stack config the maker and hedger load; metadata from the bundled table, a file or a URL."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from lighter_stack.cli import app
from lighter_stack.profiles import (
    ProfileError,
    derive_profile,
    load_metadata_file,
    market_info,
    parse_order_book_details,
)
from services.hedger.config import load_section
from shared.config import DEFAULT_CONFIG, load_config
from shared.markets import MarketInfo

SAMPLE = Path(__file__).resolve().parents[1] / "fixtures" / "lighter-samples" / "http_order_book_details.json"
ETH_PAYLOAD = {"code": 200, "order_book_details": [{
    "symbol": "ETH", "market_id": 0, "min_base_amount": "0.0050", "min_quote_amount": "10.000000",
    "supported_size_decimals": 4, "supported_price_decimals": 2, "size_decimals": 4, "price_decimals": 2,
    "taker_fee": "0.0000", "maker_fee": "0.0000", "last_trade_price": 2361.31}]}


def test_seed_sol_profile_is_reproduced():
    info, mid = market_info("sol", mid=173.0)
    p = derive_profile(info, mid, 30.0)
    assert (p.size_min, p.size, p.size_max) == (0.061, 0.064, 0.072)
    assert p.notional_floor_usd == 10.5
    assert p.inventory_soft_cap == 0.1 and p.max_position_units == 0.3 and p.max_inventory_notional_usd == 50.0
    assert (p.hedger_trigger_units, p.hedger_target_units, p.hedger_max_clip_units) == (0.05, 0.02, 0.1)
    assert p.hedger_min_clip_units == 0.061 and p.tick == 0.001 and p.lot == 0.001


def test_sizes_on_the_lot_and_above_the_venue_minimums():
    m = MarketInfo(symbol="BTC", market_id=1, size_decimals=5, price_decimals=1, min_base_amount=0.0002,
                   min_quote_amount=10.0)
    for mid in (20_000.0, 60_000.0, 115_497.05):
        p = derive_profile(m, mid, 1000.0)
        for x in (p.size_min, p.size, p.size_max, p.inventory_soft_cap, p.hedger_trigger_units, p.hedger_max_clip_units):
            assert round(x / p.lot) * p.lot == pytest.approx(x, abs=1e-12)
        assert m.check_amount(p.size_min, mid * 0.96) is None  # clears 10 USD even 4 % lower
        assert p.size_min >= 0.0002
        assert p.size_min <= p.size <= p.size_max
        assert p.hedger_target_units < p.hedger_trigger_units
        assert p.hedger_min_clip_units <= p.hedger_max_clip_units
    # at 20 000 USD the notional floor (10.5 USD) binds, not min_base_amount: ceil(0.000525) on 1e-5 lots
    assert derive_profile(m, 20_000.0, 1000.0).size_min == 0.00053


def test_small_balance_and_bad_inputs_refused():
    info, _ = market_info("SOL", mid=173.0)
    with pytest.raises(ProfileError, match="balance of at least 11 USD"):
        derive_profile(info, 173.0, 5.0)
    with pytest.raises(ProfileError, match="mid"):
        derive_profile(info, 0.0, 30.0)
    with pytest.raises(ProfileError, match="not in"):
        market_info("DOGE")
    with pytest.raises(ProfileError, match="pass --mid"):
        market_info("SOL")  # no SOL data bundled


def test_bundled_mid_from_recording():
    info, mid = market_info("ETH")
    assert info.market_id == 0 and mid > 1000  # last BBO mid of the bundled 2025-09-15 recording


def test_order_book_details_parsing_and_files(tmp_path):
    table = parse_order_book_details(ETH_PAYLOAD)
    info, price = table["ETH"]
    assert info.size_decimals == 4 and info.min_base_amount == 0.005 and price == 2361.31
    with pytest.raises(ProfileError, match="not an orderBookDetails"):
        parse_order_book_details({"code": 200})
    f = tmp_path / "obd.json"
    f.write_text(json.dumps(ETH_PAYLOAD))
    assert load_metadata_file(f)["ETH"][1] == 2361.31
    assert market_info("ETH", metadata=SAMPLE)[0].price_decimals == 2  # the real captured payload


def test_url_source_over_loopback():
    body = json.dumps(ETH_PAYLOAD).encode()

    class H(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server API
            ok = self.path.startswith("/api/v1/orderBookDetails")
            self.send_response(200 if ok else 404)
            self.end_headers()
            self.wfile.write(body if ok else b"{}")

        def log_message(self, *a):
            pass

    srv = HTTPServer(("127.0.0.1", 0), H)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        info, mid = market_info("ETH", url=f"http://127.0.0.1:{srv.server_port}")
        assert info.symbol == "ETH" and mid == 2361.31
    finally:
        srv.shutdown()
        srv.server_close()
    with pytest.raises(ProfileError, match="cannot read"):
        market_info("ETH", url=f"http://127.0.0.1:{srv.server_port}")


def test_cli_writes_a_profile_that_layers_into_a_valid_config(tmp_path):
    out = tmp_path / "SOL.yaml"
    res = CliRunner().invoke(app, ["profile", "--symbol", "SOL", "--balance-usd", "30", "--mid", "173",
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output
    frag = yaml.safe_load(out.read_text())
    assert frag["services"]["hedger"]["markets"]["SOL"] == {
        "trigger_units": 0.05, "target_units": 0.02, "max_clip_units": 0.1, "min_clip_units": 0.061}
    assert frag["services"]["maker"]["sizes"]["SOL"] == {"min_size": 0.061, "max_size": 0.072, "size_step": 0.001}
    from lighter_stack.registry import config_sections

    cfg = load_config([DEFAULT_CONFIG, out], environ={}, sections=config_sections())  # no unknown key
    h = load_section(cfg)
    assert h.markets["SOL"].min_clip_units == 0.061
    ex = cfg.services["executor"]
    assert ex["max_position"]["SOL"] == 0.3 and ex["max_position"]["BTC"] == 0.01  # merged, not replaced
    try:
        from services.maker.config import SECTION, MakerConfig
    except ImportError:  # the maker package is written in parallel
        return
    mk = cfg.section(SECTION, MakerConfig)
    assert mk.soft_inventory["SOL"] == 0.1 and mk.sizes["SOL"].max_size == 0.072
    bad = CliRunner().invoke(app, ["profile", "--symbol", "SOL", "--balance-usd", "30", "--out", str(out)])
    assert bad.exit_code == 2 and "pass --mid" in bad.output
