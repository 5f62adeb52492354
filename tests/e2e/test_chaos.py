"""The chaos suite: the paper demo on the bundled recording while every service is killed with
SIGKILL and restarted, Redis is shut down and restarted from its AOF, and venue-sim's faults are
on for a while; then nothing may be lost or doubled (``lighter_stack/chaos.py``)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lighter_stack.chaos import INVARIANTS

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.chaos
def test_chaos_run_loses_and_doubles_nothing(tmp_path):
    env = dict(os.environ, LIGHTER_STACK_DATA=str(tmp_path))
    env.pop("REDIS_URL", None)  # the run starts its own Redis (AOF on) so that it can restart it
    cmd = [sys.executable, "-m", "lighter_stack.cli", "chaos", "--speed", "8",
           "--kills", "2", "--redis-restarts", "1", "--timeout", "900"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=1500)
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    assert lines, f"no output; stderr:\n{proc.stderr[-3000:]}"
    summary = json.loads(lines[-1])
    assert "error" not in summary, f"{summary}\n{proc.stderr[-5000:]}"
    for key in INVARIANTS:
        assert summary[key] == 0, f"{key} = {summary[key]}: {summary}\n{proc.stderr[-3000:]}"
    assert summary["kills"] >= 2 * 10 and summary["redis_restarts"] == 1
    assert summary["fills"] > 0 and summary["ledger_fills"] == summary["venue_fills"]
    assert proc.returncode == 0, f"{summary}\n{proc.stderr[-3000:]}"
