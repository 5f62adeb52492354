"""Named strategy instances in the config: ``services.<strategy>.instances`` + ``LS_INSTANCE``."""

from __future__ import annotations

import pytest

from lighter_stack.registry import config_sections
from services.executor.config import ExecutorConfig
from services.strategy_trend.config import TrendConfig
from shared.config import ConfigError, StackConfig, check_sections, load_config

TWO = {"strategy-trend": {"take_profit_bps": 9.0, "instances": {
    "trend-eth": {"markets": ["ETH"], "http_port": 9112},
    "trend-btc": {"markets": ["BTC"], "take_profit_bps": 12.0}}}}


def test_an_instance_is_the_section_with_its_keys_over_it_and_its_name_as_strategy():
    cfg = StackConfig(services=TWO)
    base = cfg.section("strategy-trend", TrendConfig)
    assert (base.strategy, base.markets, base.take_profit_bps, base.http_port) == ("trend", None, 9.0, 9102)
    eth = cfg.model_copy(update={"instance": "trend-eth"}).section("strategy-trend", TrendConfig)
    assert (eth.strategy, eth.markets, eth.take_profit_bps, eth.http_port) == ("trend-eth", ["ETH"], 9.0, 9112)
    btc = cfg.model_copy(update={"instance": "trend-btc"}).section("strategy-trend", TrendConfig)
    assert (btc.strategy, btc.markets, btc.take_profit_bps) == ("trend-btc", ["BTC"], 12.0)
    assert cfg.instance_names("strategy-trend") == ["trend-eth", "trend-btc"]
    assert cfg.instance_names("strategy-renko") == []


def test_no_instances_gives_the_section_unchanged():
    plain = {"strategy-trend": {"take_profit_bps": 9.0}}
    assert (StackConfig(services=plain).section("strategy-trend", TrendConfig)
            == TrendConfig.model_validate(plain["strategy-trend"]))
    # an instance name that this section does not list: the section itself (another service's instance)
    other = StackConfig(services=plain, instance="renko-sol").section("strategy-trend", TrendConfig)
    assert other.strategy == "trend"


def test_ls_instance_and_instance_keys_come_from_the_environment(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("services:\n  strategy-trend:\n    instances:\n      trend-eth: {markets: [ETH]}\n")
    cfg = load_config(f, environ={"LS_INSTANCE": "trend-eth",
                                  "LS_SERVICES__STRATEGY_TREND__INSTANCES__TREND_ETH__HTTP_PORT": "9122"},
                      sections=config_sections())
    assert cfg.instance == "trend-eth"
    t = cfg.section("strategy-trend", TrendConfig)
    assert (t.strategy, t.markets, t.http_port) == ("trend-eth", ["ETH"], 9122)


def test_a_bad_key_in_an_instance_is_refused_with_its_path():
    cfg = StackConfig(services={"strategy-trend": {"instances": {"trend-eth": {"markts": ["ETH"]}}}})
    with pytest.raises(ConfigError, match=r"services\.strategy-trend\.instances\.trend-eth\.markts: unknown key"):
        check_sections(cfg, config_sections())
    cfg = StackConfig(services={"strategy-trend": {"instances": {"trend-eth": {"take_profit_bps": -1}}}})
    with pytest.raises(ConfigError, match=r"services\.strategy-trend\.instances\.trend-eth\.take_profit_bps"):
        cfg.section("strategy-trend", TrendConfig)
    with pytest.raises(ConfigError, match=r"services\.strategy-trend\.instances: must be a mapping"):
        StackConfig(services={"strategy-trend": {"instances": ["trend-eth"]}}).section("strategy-trend", TrendConfig)


def test_a_service_without_a_strategy_has_no_instances():
    cfg = StackConfig(services={"executor": {"instances": {"x": {}}}})
    with pytest.raises(ConfigError, match=r"services\.executor\.instances: unknown key"):
        cfg.section("executor", ExecutorConfig)


def test_the_executor_knows_every_instance_name_and_the_base_names():
    cfg = load_config(None, environ={"LS_INSTANCE": "trend-eth"}, sections=config_sections())
    assert "trend-eth" not in cfg.strategy_names()
    cfg = StackConfig(services=TWO, instance="trend-eth")
    check_sections(cfg, config_sections())
    names = cfg.strategy_names()
    assert {"trend", "trend-eth", "trend-btc", "renko", "grid", "maker", "hedger", "copytrade"} <= names
    assert StackConfig(services=TWO).strategy_names() >= {"trend-eth", "trend-btc"}  # built in code, no check


def test_an_instance_made_only_from_the_environment_is_named_by_its_key():
    # environment variable names have no '-': the key (and so the strategy name) is trend_eth
    cfg = load_config(None, environ={"LS_INSTANCE": "trend-eth",
                                     "LS_SERVICES__STRATEGY_TREND__INSTANCES__TREND_ETH__MARKETS": "[ETH]"},
                      sections=config_sections())
    t = cfg.section("strategy-trend", TrendConfig)
    assert (t.strategy, t.markets) == ("trend_eth", ["ETH"])
