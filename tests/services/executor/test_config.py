"""Executor config section: defaults and error messages naming the field."""

import pytest

from services.executor.config import ExecutorConfig
from shared.config import ConfigError, StackConfig


def test_defaults():
    c = StackConfig().section("executor", ExecutorConfig)
    assert c.http_port == 9103 and c.position_limit("BTC") == 0.01 and c.position_limit("ETH") == 0.2
    assert c.notional_limit("BTC") == 2000 and c.default_slippage_bps == 10


def test_unlisted_market_is_bounded_by_the_notional_default_only():
    c = StackConfig().section("executor", ExecutorConfig)
    assert c.position_limit("PAXG") == 1e12 and c.notional_limit("PAXG") == 2000  # notional binds
    refuse = ExecutorConfig(default_max_position=0)  # explicit 0: no trading where not listed
    assert refuse.position_limit("PAXG") == 0.0 and refuse.position_limit("BTC") == 0.01
    assert ExecutorConfig(default_max_position=3).position_limit("PAXG") == 3.0


def test_bad_value_names_the_field():
    cfg = StackConfig(services={"executor": {"max_position": {"BTC": "lots"}}})
    with pytest.raises(ConfigError, match=r"services\.executor\.max_position\.BTC"):
        cfg.section("executor", ExecutorConfig)


def test_key_resolution(monkeypatch):
    from services.executor.runner import resolve_key

    monkeypatch.delenv("LIGHTER_API_PRIVATE_KEY", raising=False)
    paper = StackConfig()
    assert len(resolve_key(paper, ExecutorConfig()).get_secret_value()) >= 80  # throwaway key
    with pytest.raises(ConfigError):
        resolve_key(paper, ExecutorConfig(paper_key="env"))
    with pytest.raises(ConfigError, match="LIGHTER_STACK_LIVE"):
        resolve_key(StackConfig(mode="live"), ExecutorConfig())
    monkeypatch.setenv("LIGHTER_API_PRIVATE_KEY", "0x" + "ab" * 40)
    k = resolve_key(paper, ExecutorConfig())
    assert "ab" * 40 not in repr(k)
