"""An existing ledger database of schema version 1 (tests/fixtures/ledger: made by the version-1
code) gets the reason columns: the read-only ``pnl`` refuses it and says how to migrate,
``lighter-stack ledger-migrate`` (or the ledger service's start) migrates it once, old rows keep
an empty reason, new fills store theirs and the FIFO state continues where it was."""

import sqlite3
from pathlib import Path

import pytest
from rich.console import Console
from sqlalchemy import select, text
from typer.testing import CliRunner

from lighter_stack.cli import app
from services.ledger.models import SCHEMA_VERSION, SchemaVersionRow
from services.ledger.report import migrate_command, pnl_command, recent_trades
from services.ledger.store import LedgerStore, SchemaError, upgrade_database
from shared.events import Fill

V1_DUMP = Path(__file__).resolve().parents[2] / "fixtures" / "ledger" / "ledger_schema_v1.sql"
T0 = 1_757_894_400_000_000_000
H = 3_600_000_000_000


@pytest.fixture
def v1_url(tmp_path) -> str:
    """A SQLite file restored from the version-1 dump: fills f0..f3 (trend/BTC), trades +9.90 and
    -5.00, one open lot of 1 BTC long at 100."""
    path = tmp_path / "ledger.db"
    con = sqlite3.connect(path)
    con.executescript(V1_DUMP.read_text())
    con.close()
    return f"sqlite:///{path}"


def _columns(url: str, table: str) -> set[str]:
    con = sqlite3.connect(url.removeprefix("sqlite:///"))
    try:
        return {r[1] for r in con.execute(f"PRAGMA table_info({table})")}
    finally:
        con.close()


def test_pnl_refuses_a_version_1_database_and_says_how_to_migrate(v1_url):
    assert "reason" not in _columns(v1_url, "fills")
    with pytest.raises(SchemaError, match="older than this code .*ledger-migrate"):
        LedgerStore(v1_url, create=False)
    con = Console(record=True, width=240)
    assert pnl_command(v1_url, None, None, 5, None, console=con) == 1
    assert "ledger-migrate" in con.export_text()
    assert "reason" not in _columns(v1_url, "fills")  # read-only: nothing altered


def test_ledger_migrate_command_brings_version_1_to_current_once(v1_url):
    con = Console(record=True, width=240)
    assert migrate_command(v1_url, console=con) == 0
    assert f"schema version 1 -> {SCHEMA_VERSION}" in con.export_text()
    assert "reason" in _columns(v1_url, "fills") and "exit_reason" in _columns(v1_url, "closed_trades")
    con = Console(record=True, width=240)
    assert migrate_command(v1_url, console=con) == 0
    assert "nothing to do" in con.export_text()
    st = LedgerStore(v1_url, create=False)
    with st.db.connect() as c:
        assert sorted(c.scalars(select(SchemaVersionRow.version))) == list(range(1, SCHEMA_VERSION + 1))
    st.close()
    # the old trades read back with an empty exit reason, shown as "-"
    assert [(r["pnl_usd"], r["exit_reason"]) for r in recent_trades(v1_url, 5)] == [
        (pytest.approx(-5.0), ""), (pytest.approx(9.9), "")]


def test_cli_ledger_migrate_and_a_missing_file(v1_url, tmp_path):
    runner = CliRunner()
    r = runner.invoke(app, ["ledger-migrate", "--db-url", v1_url])
    assert r.exit_code == 0 and f"-> {SCHEMA_VERSION}" in r.output
    missing = tmp_path / "nope.db"
    r = runner.invoke(app, ["ledger-migrate", "--db-url", f"sqlite:///{missing}"])
    assert r.exit_code == 1 and "no ledger database" in r.output and not missing.exists()


def test_service_start_migrates_and_continues_the_fifo_state_with_reasons(v1_url):
    """What the ledger service does at start (``LedgerStore(url)``): migrate, rebuild the open lot
    from the old rows, and close it with a new fill that carries a reason."""
    st = LedgerStore(v1_url)
    assert st.schema_version == SCHEMA_VERSION
    e = st.rebuild_engine()
    assert e.position("trend", "BTC") == pytest.approx(1.0)  # buy 2 @ 100, sell 1 @ 95
    res = st.record(e, [Fill(id="e4", ts_event=T0 + 4 * H, fill_id="f4", strategy="trend", market="BTC",
                             side="sell", price=108.0, size=1.0, venue_trade_id="v4", reason="take profit")])
    assert [(c.entry_fill_id, c.pnl_usd, c.exit_reason) for c in res.closed] == [("f2", pytest.approx(8.0), "take profit")]
    with st.db.connect() as c:
        assert c.execute(text("SELECT fill_id, reason FROM fills ORDER BY id")).all() == [
            ("f0", ""), ("f1", ""), ("f2", ""), ("f3", ""), ("f4", "take profit")]
    st.close()
    assert [r["exit_reason"] for r in recent_trades(v1_url, 5)] == ["take profit", "", ""]


def test_upgrade_database_on_an_empty_url_creates_the_current_schema(tmp_path):
    assert upgrade_database(f"sqlite:///{tmp_path}/new.db") == (None, SCHEMA_VERSION)
