"""The application's config check: every section of the registry (plus ``backtest``) is known,
an unknown section or key anywhere stops ``lighter-stack run`` of any service, naming it."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from lighter_stack.cli import app
from lighter_stack.registry import SERVICES, config_sections
from shared.config import DEFAULT_CONFIG, ConfigError, load_config


def _write(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_known_sections_are_the_registry_plus_backtest():
    assert set(config_sections()) == {*SERVICES, "backtest"}


def test_bundled_config_passes_the_whole_check():
    cfg = load_config(DEFAULT_CONFIG, environ={}, sections=config_sections())
    assert "strategy-trend" in cfg.services


def test_paper_live_profile_passes_the_check_and_points_market_data_at_lighter():
    """config/paper-live.yaml over the base: venue-sim follows Lighter, the collector reads
    Lighter, the executor still trades on venue-sim (venue.*), nothing is live."""
    from services.collector.config import CollectorConfig
    from services.venue_sim.config import VenueSimConfig

    cfg = load_config([DEFAULT_CONFIG, DEFAULT_CONFIG.parent / "paper-live.yaml"], environ={},
                      sections=config_sections())
    vs = cfg.section("venue-sim", VenueSimConfig)
    col = cfg.section("collector", CollectorConfig)
    assert cfg.mode == "paper" and cfg.ns == "paper-live"
    assert vs.source == "live" and vs.upstream_ws_url.startswith("wss://mainnet.zklighter")
    assert col.resolved_ws_url(cfg) == vs.upstream_ws_url and col.resolved_rest_url(cfg) == vs.upstream_rest_url
    assert cfg.venue.rest_url == "http://127.0.0.1:8090"  # orders go to venue-sim
    base = load_config(DEFAULT_CONFIG, environ={})
    assert base.section("collector", CollectorConfig).resolved_ws_url(base) == base.venue.ws_url
    assert base.section("venue-sim", VenueSimConfig).source == "recording"


def test_unknown_service_section_names_it_and_the_known_ones(tmp_path):
    p = _write(tmp_path, "services:\n  strategy-trnd:\n    http_port: 1\n")
    with pytest.raises(ConfigError) as exc:
        load_config(p, environ={}, sections=config_sections())
    msg = str(exc.value)
    assert msg.startswith("config error: services.strategy-trnd: unknown service section (known: backtest, collector,")
    assert "strategy-trend" in msg and "hedger" in msg


def test_unknown_key_in_any_section_names_it_and_the_known_keys(tmp_path):
    p = _write(tmp_path, "services:\n  executor:\n    max_postion: {BTC: 1}\n")
    with pytest.raises(ConfigError) as exc:
        load_config(p, environ={}, sections=config_sections())
    msg = str(exc.value)
    assert msg.startswith("config error: services.executor.max_postion: unknown key (known: ")
    assert "max_position" in msg and "default_max_notional_usd" in msg


@pytest.mark.parametrize(("yaml_text", "where", "known"), [
    ("strategy-trend:\n    sizes: {BTC: {min_size: 0.1, max_sise: 0.2}}",
     "services.strategy-trend.sizes.BTC.max_sise", "max_size, min_size, size_step"),
    ("hedger:\n    markets: {SOL: {trigger_unit: 1}}", "services.hedger.markets.SOL.trigger_unit",
     "max_clip_units, min_clip_units"),
    ("backtest:\n    markets: {DOGE: {size_decimal: 0}}", "DOGE.size_decimal", "size_decimals"),
    ("maker:\n    calibration: {horizn_s: 5}", "calibration", "horizon_s"),
])
def test_nested_models_are_strict_too(tmp_path, yaml_text, where, known):
    p = _write(tmp_path, "services:\n  " + yaml_text + "\n")
    with pytest.raises(ConfigError) as exc:
        load_config(p, environ={}, sections=config_sections())
    assert where in str(exc.value) and known in str(exc.value) and "unknown key" in str(exc.value)


def test_env_spelling_of_a_section_is_the_same_section(tmp_path):
    p = _write(tmp_path, "services:\n  strategy-trend:\n    http_port: 1\n")
    cfg = load_config(p, environ={"LS_SERVICES__STRATEGY_GRID__HTTP_PORT": "9"}, sections=config_sections())
    assert cfg.services["strategy_grid"]["http_port"] == 9
    with pytest.raises(ConfigError, match=r"services\.strategy_gird: unknown service section"):
        load_config(p, environ={"LS_SERVICES__STRATEGY_GIRD__HTTP_PORT": "9"}, sections=config_sections())


@pytest.mark.parametrize("service", ["collector", "strategy-grid"])
def test_run_of_any_service_stops_on_a_typo_in_another_section(tmp_path, service, monkeypatch):
    monkeypatch.delenv("LIGHTER_STACK_PROFILES", raising=False)
    p = _write(tmp_path, "services:\n  strategy-trnd:\n    http_port: 1\n")
    res = CliRunner().invoke(app, ["run", service, "--config", str(p)])
    assert res.exit_code == 2
    assert "config error: services.strategy-trnd: unknown service section (known: " in res.output
    p = _write(tmp_path, "services:\n  maker:\n    max_requotes_per_minute: 3\n")
    res = CliRunner().invoke(app, ["run", service, "--config", str(p)])
    assert res.exit_code == 2 and "services.maker.max_requotes_per_minute: unknown key (known: " in res.output


def test_backtest_stops_on_an_unknown_section(tmp_path):
    from lighter_stack.backtest.runner import run_backtest

    p = _write(tmp_path, "services:\n  backtst:\n    tier: premium\n")
    with pytest.raises(ConfigError, match=r"services\.backtst: unknown service section"):
        run_backtest(tmp_path / "missing", ["trend"], p, tmp_path / "out")
