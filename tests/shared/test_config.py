"""Configuration: defaults, env overrides, errors that name the field, live-mode opt-in."""

import pytest
from pydantic import BaseModel

from shared.config import ConfigError, load_config


def _write(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_bundled_paper_config_loads_in_paper_mode():
    cfg = load_config(environ={})
    assert cfg.mode == "paper" and cfg.ns == "paper"
    assert cfg.venue.rest_url.startswith("http://127.0.0.1")


def test_env_overrides_nested_keys_and_service_names_with_hyphens(tmp_path):
    p = _write(tmp_path, "services:\n  strategy-trend:\n    http_port: 1\n")
    cfg = load_config(p, environ={"LS_VENUE__REST_URL": "http://venue-sim:8090",
                                  "LS_SERVICES__STRATEGY_TREND__HTTP_PORT": "9102",
                                  "LS_NAMESPACE": "replay-1", "REDIS_URL": "redis://r:6379/0"})
    assert cfg.venue.rest_url == "http://venue-sim:8090"
    assert cfg.services["strategy-trend"]["http_port"] == 9102
    assert cfg.ns == "replay-1" and cfg.redis_url == "redis://r:6379/0"


def test_bad_top_level_value_names_the_field(tmp_path):
    p = _write(tmp_path, "mode: paper\naccount_index: -3\n")
    with pytest.raises(ConfigError, match=r"account_index"):
        load_config(p, environ={})
    with pytest.raises(ConfigError, match=r"unknown_key"):
        load_config(_write(tmp_path, "unknown_key: 1\n"), environ={})


def test_bad_service_section_names_the_field(tmp_path):
    class Section(BaseModel):
        speed: float = 1.0

    cfg = load_config(_write(tmp_path, "services:\n  venue-sim:\n    speed: fast\n"), environ={})
    with pytest.raises(ConfigError, match=r"services\.venue-sim\.speed"):
        cfg.section("venue-sim", Section)


def test_unreadable_or_invalid_yaml_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml", environ={})
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(_write(tmp_path, "a: [1\n"), environ={})


def test_live_mode_needs_explicit_flag_and_key(tmp_path, monkeypatch):
    cfg = load_config(_write(tmp_path, "mode: live\n"), environ={})
    monkeypatch.delenv("LIGHTER_STACK_LIVE", raising=False)
    monkeypatch.delenv("LIGHTER_API_PRIVATE_KEY", raising=False)
    with pytest.raises(ConfigError, match="LIGHTER_STACK_LIVE"):
        cfg.require_live_allowed()
    monkeypatch.setenv("LIGHTER_STACK_LIVE", "yes")
    with pytest.raises(ConfigError, match="LIGHTER_API_PRIVATE_KEY"):
        cfg.require_live_allowed()
    monkeypatch.setenv("LIGHTER_API_PRIVATE_KEY", "ab" * 40)
    cfg.require_live_allowed()
    assert "abab" not in repr(cfg.private_key()) and "abab" not in str(cfg.private_key())


def test_env_override_reaches_a_section_missing_from_the_file(tmp_path):
    class Section(BaseModel):
        http_port: int = 1

    cfg = load_config(_write(tmp_path, "mode: paper\n"), environ={"LS_SERVICES__STRATEGY_TREND__HTTP_PORT": "9102"})
    assert cfg.section("strategy-trend", Section).http_port == 9102
