"""Exit reasons in the ledger: a fill's ``reason`` is stored with it, each closed trade keeps the
reason of the fill that closed it, ``lighter-stack pnl`` shows them in the recent trades and the
average PnL per trade in the stats; ``--since-hours`` counts back from now."""

import time

import pytest
from rich.console import Console
from sqlalchemy import select
from typer.testing import CliRunner

from lighter_stack.cli import app
from services.ledger.engine import LedgerEngine
from services.ledger.models import ClosedTradeRow, FillRow
from services.ledger.report import pnl_command, pnl_stats, recent_trades
from services.ledger.store import LedgerStore, row_to_fill
from shared.events import Fill

T0 = 1_757_894_400_000_000_000  # 2025-09-15 00:00:00 UTC
H = 3_600_000_000_000


def fill(k: int, side: str, price: float, size: float, reason: str = "", strategy: str = "trend",
         ts: int | None = None) -> Fill:
    """Fill number ``k`` at T0 + k hours (or at ``ts``)."""
    return Fill(id=f"e{k}", ts_event=T0 + k * H if ts is None else ts, fill_id=f"f{k}", strategy=strategy,
                market="BTC", side=side, price=price, size=size, venue_trade_id=f"v{k}", reason=reason)


# two long lots, one sell closes both (take profit), a flip-through-zero short closed by a stop,
# then a maker quote fill (no reason) closed by a flatten
FILLS = [
    fill(0, "buy", 100.0, 1.0, "entry long rsi=28.10"), fill(1, "buy", 102.0, 1.0, "entry long rsi=27.00"),
    fill(2, "sell", 110.0, 3.0, "take profit"),        # closes 2 lots, opens a 1.0 short at 110
    fill(3, "buy", 115.0, 1.0, "stop"),                # closes the short: -5
    fill(4, "buy", 100.0, 0.5, strategy="maker"), fill(5, "sell", 99.0, 0.5, "flatten", strategy="maker"),
]


def test_engine_closed_trades_carry_the_closing_fills_reason():
    e = LedgerEngine()
    closed = [c for f in FILLS for c in e.apply_fill(f)]
    assert [(c.entry_fill_id, c.exit_fill_id, c.exit_reason) for c in closed] == [
        ("f0", "f2", "take profit"), ("f1", "f2", "take profit"), ("f2", "f3", "stop"), ("f4", "f5", "flatten")]
    # the entry's reason is not the exit reason: f2 opened the short with "take profit" but "stop" closed it
    assert closed[2].side == "short" and closed[2].pnl_usd == pytest.approx(-5.0)


@pytest.fixture
def url(tmp_path):
    u = f"sqlite:///{tmp_path}/ledger.db"
    st = LedgerStore(u)
    st.record(st.rebuild_engine(), FILLS)
    st.close()
    return u


def test_store_keeps_fill_reasons_and_exit_reasons_and_rebuilds_with_them(url):
    st = LedgerStore(url)
    with st.db.connect() as c:
        assert dict(c.execute(select(FillRow.fill_id, FillRow.reason)).all()) == {f.fill_id: f.reason for f in FILLS}
        assert c.execute(select(ClosedTradeRow.exit_fill_id, ClosedTradeRow.exit_reason)
                         .order_by(ClosedTradeRow.id)).all() == [
            ("f2", "take profit"), ("f2", "take profit"), ("f3", "stop"), ("f5", "flatten")]
    assert [c.exit_reason for c in st.closed_trades()] == ["take profit", "take profit", "stop", "flatten"]
    # the FIFO state rebuilt from the rows gives the same closed trades, reasons included
    fresh = LedgerEngine()
    with st.db.connect() as c:
        rows = [row_to_fill(r) for r in c.execute(select(FillRow).order_by(FillRow.id))]
    assert rows == FILLS
    assert [c for f in rows for c in fresh.apply_fill(f)] == st.closed_trades()
    st.close()


def test_recent_trades_and_pnl_command_show_exit_reasons_and_average_pnl(url):
    rec = recent_trades(url, 10)
    assert [(r["exit_fill_id"], r["exit_reason"]) for r in rec] == [
        ("f5", "flatten"), ("f3", "stop"), ("f2", "take profit"), ("f2", "take profit")]
    s = pnl_stats(url)["total"]
    # +10 +8 -5 -0.5 over 4 trades
    assert s["trades"] == 4 and s["avg_pnl_usd"] == pytest.approx(12.5 / 4)
    con = Console(record=True, width=240)
    assert pnl_command(url, None, None, 10, None, console=con) == 0
    out = con.export_text()
    assert "avg PnL USD" in out and "exit reason" in out
    rows = {ln.split("│")[1].strip(): ln for ln in out.splitlines() if ln.count("│") > 5}
    assert "+3.1250" in rows["TOTAL"]                          # 12.5 USD / 4 trades
    assert "+4.3333" in rows["trend"] and "-0.5000" in rows["maker"]  # 13 / 3 and -0.5 / 1
    recent_rows = [ln for ln in out.splitlines() if ln.count("│") > 5 and "2025-09-15" in ln]
    assert [ln.split("│")[-2].strip() for ln in recent_rows] == ["flatten", "stop", "take profit", "take profit"]


def test_a_reason_with_rich_markup_is_printed_verbatim(tmp_path):
    u = f"sqlite:///{tmp_path}/l.db"
    st = LedgerStore(u)
    st.record(st.rebuild_engine(), [fill(0, "buy", 1.0, 1.0), fill(1, "sell", 2.0, 1.0, "signal [red]x[/red]")])
    st.close()
    con = Console(record=True, width=240)
    assert pnl_command(u, None, None, 5, None, console=con) == 0
    assert "signal [red]x[/red]" in con.export_text()


def test_cli_since_hours_counts_back_from_now(tmp_path):
    """Trades that closed 3 h and 30 h ago (wall clock); the newest fill is 3 h old. ``--since-hours 5``
    keeps the first only; counted from the newest fill it would also keep only it, so the window
    is also checked at 2 h: from now nothing, from the newest fill (``--from-last-fill``) one."""
    now = time.time_ns()
    u = f"sqlite:///{tmp_path}/l.db"
    st = LedgerStore(u)
    st.record(st.rebuild_engine(), [
        fill(0, "buy", 100.0, 1.0, ts=now - 31 * H), fill(1, "sell", 90.0, 1.0, "stop", ts=now - 30 * H),
        fill(2, "buy", 100.0, 1.0, ts=now - 4 * H), fill(3, "sell", 120.0, 1.0, "take profit", ts=now - 3 * H)])
    st.close()
    runner = CliRunner()

    def trades(*args: str) -> str:
        r = runner.invoke(app, ["pnl", "--db-url", u, "--recent", "5", *args], env={"COLUMNS": "240"})
        assert r.exit_code == 0, r.output
        return r.output

    out = trades("--since-hours", "5")
    assert "take profit" in out and "stop" not in out
    assert "1 most recent closed trades" in out
    assert "no closed trades" in trades("--since-hours", "2")
    assert "1 most recent closed trades" in trades("--since-hours", "2", "--from-last-fill")
    assert "2 most recent closed trades" in trades()
    help_text = runner.invoke(app, ["pnl", "--help"], env={"COLUMNS": "240"}).output
    assert "counted back from now" in help_text
