"""The stack home: config/ and data/ are found from LIGHTER_STACK_HOME wherever the package is installed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from shared.config import HOME_ENV, SOURCE_ROOT, stack_home


def test_stack_home_defaults_to_the_checkout_and_follows_the_variable(tmp_path: Path) -> None:
    assert stack_home({}) == SOURCE_ROOT.resolve()
    assert stack_home({HOME_ENV: ""}) == SOURCE_ROOT.resolve()
    assert stack_home({HOME_ENV: str(tmp_path)}) == tmp_path.resolve()


def test_a_fresh_process_finds_config_and_recording_under_the_home(tmp_path: Path) -> None:
    # a copy of config/ and data/recordings elsewhere: the default config and venue-sim's relative
    # recording path resolve there, not next to the code
    (tmp_path / "config").mkdir()
    shutil.copy(SOURCE_ROOT / "config" / "paper.yaml", tmp_path / "config" / "paper.yaml")
    code = (
        "from shared.config import DEFAULT_CONFIG, load_config\n"
        "from services.venue_sim.config import resolve_path\n"
        "cfg = load_config(DEFAULT_CONFIG, environ={})\n"
        "print(DEFAULT_CONFIG)\n"
        "print(resolve_path(cfg.services['venue-sim']['recording']))\n"
    )
    env = {**os.environ, HOME_ENV: str(tmp_path)}
    env.pop("LIGHTER_STACK_CONFIG", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=SOURCE_ROOT, capture_output=True,
                         text=True, check=True).stdout.split("\n")
    assert out[0] == str(tmp_path.resolve() / "config" / "paper.yaml")
    assert out[1] == str(tmp_path.resolve() / "data" / "recordings" / "lighter-2025-09-15-btc-eth.jsonl.gz")
