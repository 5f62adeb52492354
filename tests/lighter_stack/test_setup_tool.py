"""``lighter-stack setup-api-key``, ``check-keys`` and ``account`` against venue-sim served on a
loopback port (in a thread with its own event loop, so the CLI's ``asyncio.run`` works). Secrets
must not reach the captured output unless asked."""

from __future__ import annotations

import asyncio
import os
import re
import stat
import threading

import pytest
from aiohttp import web
from typer.testing import CliRunner

from lighter_stack.account_tool import compare_trades
from lighter_stack.cli import app
from services.venue_sim.config import AccountSpec, VenueSimConfig
from services.venue_sim.runner import build
from shared.events import Bbo
from shared.markets import MarketInfo
from shared.recording import RecordingHeader, write_recording
from shared.venue.paper_identity import PAPER_L1_ADDRESS, PAPER_L1_PRIVATE_KEY

BTC = MarketInfo(symbol="BTC", market_id=1, size_decimals=5, price_decimals=1, min_base_amount=0.0002,
                 min_quote_amount=10)
T0 = 1_757_894_400_000_000_000
ACCT = 1001


@pytest.fixture
def venue_url(tmp_path):
    rec = tmp_path / "rec.jsonl.gz"
    evs = [Bbo(id=f"b{i}", ts_event=T0 + i * 100_000_000, market="BTC", bid_px=115000.0, bid_sz=0.5,
               ask_px=115000.5, ask_sz=0.5) for i in range(20)]
    write_recording(rec, RecordingHeader(markets=[BTC], source="test"), evs)
    cfg = VenueSimConfig(recording=str(rec), fills_file="", speed=0,
                         accounts=[AccountSpec(index=ACCT, l1_address=PAPER_L1_ADDRESS),
                                   AccountSpec(index=1005, l1_address=PAPER_L1_ADDRESS)])
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    box: dict = {}

    async def main():
        server, replay, app_ = build(cfg, ACCT)
        runner = web.AppRunner(app_, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        box.update(url=f"http://127.0.0.1:{runner.addresses[0][1]}", stop=asyncio.Event(), server=server)
        task = asyncio.create_task(replay.run())
        ready.set()
        await box["stop"].wait()
        replay.stop()
        await asyncio.wait_for(task, 5)
        await runner.cleanup()
        server.close()

    th = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    th.start()
    assert ready.wait(10)
    yield box["url"]
    loop.call_soon_threadsafe(box["stop"].set)
    th.join(10)


def _env(url, **extra):
    env = {"LS_VENUE__REST_URL": url, "LS_VENUE__WS_URL": url.replace("http", "ws") + "/stream"}
    env.update(extra)
    return env


def test_setup_api_key_then_check_keys_then_account(venue_url, tmp_path, monkeypatch):
    monkeypatch.delenv("LIGHTER_API_PRIVATE_KEY", raising=False)
    runner = CliRunner()
    out = tmp_path / "key.env"
    res = runner.invoke(app, ["setup-api-key", "--api-key-index", "6", "--out", str(out)],
                        env=_env(venue_url, LIGHTER_L1_PRIVATE_KEY=PAPER_L1_PRIVATE_KEY))
    assert res.exit_code == 0, res.output
    assert "account_index: 1001" in res.output and "api_key_index: 6" in res.output
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    priv = re.search(r"LIGHTER_API_PRIVATE_KEY=(\S+)", out.read_text()).group(1)
    assert priv.removeprefix("0x") not in res.output and PAPER_L1_PRIVATE_KEY[2:] not in res.output

    res = runner.invoke(app, ["check-keys", "--api-key-index", "6"], env=_env(venue_url, LIGHTER_API_PRIVATE_KEY=priv))
    assert res.exit_code == 0, res.output
    for step in ("OK    offline signing", "OK    check_client", "OK    place", "OK    cancel"):
        assert step in res.output
    assert priv.removeprefix("0x") not in res.output

    res = runner.invoke(app, ["account", "--api-key-index", "6"], env=_env(venue_url, LIGHTER_API_PRIVATE_KEY=priv))
    assert res.exit_code == 0, res.output
    assert "account 1001" in res.output and "collateral 100000.000000 USDC" in res.output

    # --trades: an IOC buy through the ask fills; the (empty) ledger misses it
    from services.ledger.store import LedgerStore

    db = f"sqlite:///{tmp_path / 'ledger.db'}"
    LedgerStore(db).close()
    res = runner.invoke(app, ["account", "--api-key-index", "6", "--trades", "--db-url", db],
                        env=_env(venue_url, LIGHTER_API_PRIVATE_KEY=priv))
    assert res.exit_code == 0 and "venue lists 0; 0 difference(s)" in res.output, res.output


def test_setup_api_key_picks_the_given_account_and_shows_the_key_only_when_asked(venue_url):
    runner = CliRunner()
    res = runner.invoke(app, ["setup-api-key", "--account-index", "1005", "--show-private-key"],
                        env=_env(venue_url, LIGHTER_L1_PRIVATE_KEY=PAPER_L1_PRIVATE_KEY))
    assert res.exit_code == 0, res.output
    assert "account_index: 1005" in res.output and re.search(r"private_key: (0x)?[0-9a-f]{80}", res.output)
    # not the wallet's account; unknown wallet; no key at all
    res = runner.invoke(app, ["setup-api-key", "--account-index", "2000"],
                        env=_env(venue_url, LIGHTER_L1_PRIVATE_KEY=PAPER_L1_PRIVATE_KEY))
    assert res.exit_code == 1 and "not owned" in res.output
    res = runner.invoke(app, ["setup-api-key"], env=_env(venue_url, LIGHTER_L1_PRIVATE_KEY="0x" + "44" * 32))
    assert res.exit_code == 1 and "account not found" in res.output and "44" * 32 not in res.output
    res = runner.invoke(app, ["setup-api-key"], env=_env(venue_url, LIGHTER_L1_PRIVATE_KEY=""))
    assert res.exit_code == 1 and "LIGHTER_L1_PRIVATE_KEY is not set" in res.output


def test_paper_l1_key_is_refused_for_a_remote_venue():
    res = CliRunner().invoke(app, ["setup-api-key", "--url", "https://mainnet.zklighter.elliot.ai"],
                             env={"LIGHTER_L1_PRIVATE_KEY": PAPER_L1_PRIVATE_KEY})
    assert res.exit_code == 1 and "public and worthless" in res.output


def test_check_keys_unregistered_key_fails_and_unreachable_venue_is_offline_only(venue_url):
    key = "ab" * 40
    res = CliRunner().invoke(app, ["check-keys"], env=_env(venue_url, LIGHTER_API_PRIVATE_KEY=key))
    assert res.exit_code == 1 and "FAIL  check_client" in res.output and key not in res.output
    res = CliRunner().invoke(app, ["check-keys", "--url", "http://127.0.0.1:9"], env={"LIGHTER_API_PRIVATE_KEY": key})
    assert res.exit_code == 0 and "OK    offline signing" in res.output and "SKIP  venue" in res.output


def test_compare_trades_reports_each_kind_of_difference():
    venue = [{"trade_id": 1, "market_id": 1, "size": "0.00100", "bid_account_id": ACCT, "timestamp": 1000},
             {"trade_id": 2, "market_id": 1, "size": "0.00200", "ask_account_id": ACCT, "bid_account_id": 9,
              "timestamp": 2000},
             {"trade_id": 3, "market_id": 1, "size": "0.00100", "bid_account_id": ACCT, "timestamp": 3000}]
    ledger = [{"venue_trade_id": "1", "market": "BTC", "side": "buy", "size": 0.0004, "ts_event": 10**9},
              {"venue_trade_id": "1", "market": "BTC", "side": "buy", "size": 0.0006, "ts_event": 10**9},
              {"venue_trade_id": "2", "market": "BTC", "side": "sell", "size": 0.001, "ts_event": 2 * 10**9},
              {"venue_trade_id": "9", "market": "BTC", "side": "buy", "size": 0.001, "ts_event": 25 * 10**8}]
    diffs = compare_trades(ACCT, venue, ledger, {1: "BTC"})
    assert diffs == ["trade 2: venue sell 0.002 BTC, ledger sell 0.001 BTC",
                     "venue trade 3 (buy 0.001 BTC) is not in the ledger",
                     "ledger trade 9 (buy 0.001 BTC) is not listed by the venue"]
    assert compare_trades(ACCT, venue[:1], ledger[:2], {1: "BTC"}) == []
