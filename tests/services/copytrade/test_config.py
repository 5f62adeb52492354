"""The copytrade section: seed 004's documented defaults, a bad value names its field, the API key
comes only from the environment."""

from __future__ import annotations

import pytest

from services.copytrade.config import CopytradeConfig
from shared.config import ConfigError, StackConfig


def test_defaults_are_seed_004s_documented_ones():
    c = CopytradeConfig()
    assert (c.scaling_factor, c.stop_loss_ratio, c.max_slippage_bps, c.max_retries, c.retry_interval_s, c.http_port) == (
        0.8, 0.05, 100.0, 3, 5.0, 9109)


def test_a_bad_value_stops_start_up_naming_the_field():
    cfg = StackConfig(services={"copytrade": {"scaling_factor": -1}})
    with pytest.raises(ConfigError, match="services.copytrade.scaling_factor"):
        cfg.section("copytrade", CopytradeConfig)
    with pytest.raises(ConfigError, match="api_key"):
        StackConfig(services={"copytrade": {"api_key": "x"}}).section("copytrade", CopytradeConfig)


def test_the_api_key_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv("COPYTRADE_API_KEY", raising=False)
    assert CopytradeConfig().api_key() is None
    monkeypatch.setenv("COPYTRADE_API_KEY", "s3cret")
    assert CopytradeConfig().api_key() == "s3cret"
    monkeypatch.setenv("OTHER_KEY", "k2")
    assert CopytradeConfig(api_key_env="OTHER_KEY").api_key() == "k2"
