"""End-to-end: a shortened demo (the first minutes of the real recording) through every service
as its own OS process, over a real Redis and venue-sim."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.e2e
def test_short_demo_trades_and_ledger_matches_venue(tmp_path, redis_url):
    env = dict(os.environ, REDIS_URL=redis_url, LIGHTER_STACK_DATA=str(tmp_path))
    cmd = [sys.executable, "-m", "lighter_stack.cli", "demo", "--minutes", "40", "--speed", "150", "--timeout", "240"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=420)
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    assert lines, f"no output; stderr:\n{proc.stderr[-3000:]}"
    summary = json.loads(lines[-1])
    ns = summary.get("namespace", "")
    if ns.startswith("paper-demo-"):  # the run's own namespace on the shared Redis: drop it
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=f"{ns}:*"))
        if keys:
            client.delete(*keys)
        client.close()
    assert proc.returncode == 0, f"{summary}\n{proc.stderr[-3000:]}"
    assert summary["orders"] > 0 and summary["fills"] > 0
    assert summary["ledger_fills"] == summary["venue_fills"] > 0
    assert summary["quantities_match"] is True
    # the stack keeps within Lighter's limits on the venue's (wall) clock: no tx request and no
    # read (the whole stack's, on the shared loopback IP) refused with 23000
    assert summary["rate_limited"] == 0 and summary["reads_rate_limited"] == 0
    assert 0 < summary["reads_max_per_min"] <= 60 and summary["max_requests_per_min"] <= 60
    for key in ("events", "intents", "orders", "fills", "ledger_fills", "venue_fills", "pnl_usd"):
        assert key in summary
