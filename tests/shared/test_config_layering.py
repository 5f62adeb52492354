"""Config layering: several files (a base and market profiles) merge key by key."""

from __future__ import annotations

import os

import pytest

from shared.config import ConfigError, load_config, merge_trees


def _write(tmp_path, name: str, text: str):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_merge_trees_recursive_case_insensitive_and_replacing():
    base = {"markets": ["BTC"], "services": {"strategy-grid": {"sizes": {"SOL": 0.1}, "http_port": 1}}}
    over = {"markets": ["SOL"], "services": {"strategy_grid": {"sizes": {"sol": 0.2, "BTC": 0.3}}}}
    out = merge_trees(base, over)
    assert out["markets"] == ["SOL"]  # lists replace
    assert out["services"] == {"strategy-grid": {"sizes": {"SOL": 0.2, "BTC": 0.3}, "http_port": 1}}


def test_profile_layered_over_base_then_env(tmp_path):
    base = _write(tmp_path, "base.yaml", "markets: [BTC]\nservices:\n  hedger:\n    cooldown_s: 3\n"
                  "    markets: {BTC: {trigger_units: 0.004, target_units: 0.001, max_clip_units: 0.004}}\n")
    prof = _write(tmp_path, "sol.yaml", "services:\n  hedger:\n    markets:\n      SOL: {trigger_units: 0.06}\n")
    cfg = load_config([base, prof], environ={"LS_SERVICES__HEDGER__COOLDOWN_S": "4"})
    h = cfg.services["hedger"]
    assert h["cooldown_s"] == 4  # env last
    assert h["markets"]["BTC"]["trigger_units"] == 0.004  # base kept
    assert h["markets"]["SOL"] == {"trigger_units": 0.06}  # profile added
    # the same through LIGHTER_STACK_PROFILES (os.pathsep-separated), after the given file
    other = _write(tmp_path, "btc.yaml", "services: {hedger: {markets: {btc: {trigger_units: 0.005}}}}\n")
    cfg = load_config(base, environ={"LIGHTER_STACK_PROFILES": os.pathsep.join([str(prof), str(other)])})
    h = cfg.services["hedger"]
    assert h["markets"]["SOL"]["trigger_units"] == 0.06
    assert h["markets"]["BTC"] == {"trigger_units": 0.005, "target_units": 0.001, "max_clip_units": 0.004}


def test_bad_profile_is_named(tmp_path):
    base = _write(tmp_path, "base.yaml", "markets: [BTC]\n")
    with pytest.raises(ConfigError, match="missing.yaml"):
        load_config([base, tmp_path / "missing.yaml"], environ={})
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config([base, _write(tmp_path, "list.yaml", "- 1\n")], environ={})
