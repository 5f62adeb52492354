"""The pnl report and ledger_stats on a hand-built set of trades."""

import pytest
from rich.console import Console

from services.ledger.models import SCHEMA_VERSION
from services.ledger.report import ledger_stats, pnl_command, pnl_stats, recent_trades
from services.ledger.store import LedgerStore
from shared.events import Fill

T0 = 1_757_894_400_000_000_000  # 2025-09-15 00:00:00 UTC
H = 3_600_000_000_000


def fill(k: int, strategy: str, market: str, side: str, price: float, size: float, fee: float = 0.0,
         liquidity: str = "taker", vtid: str | None = None) -> Fill:
    """Fill number ``k`` at T0 + k hours."""
    return Fill(id=f"e{k}", ts_event=T0 + k * H, fill_id=f"f{k}", strategy=strategy, market=market, side=side,
                price=price, size=size, fee=fee, liquidity=liquidity,
                venue_trade_id=("" if liquidity == "internal" else f"v{k}") if vtid is None else vtid)


# trend/BTC: +10 (+10%), -5 (-5%), 0 (neither), short +20 (+5%)
# maker/ETH: -2 (-20%), +2 (+10%)
TRADES = [
    fill(0, "trend", "BTC", "buy", 100.0, 1.0), fill(1, "trend", "BTC", "sell", 110.0, 1.0),
    fill(2, "trend", "BTC", "buy", 100.0, 1.0), fill(3, "trend", "BTC", "sell", 95.0, 1.0),
    fill(4, "trend", "BTC", "buy", 100.0, 1.0), fill(5, "trend", "BTC", "sell", 100.0, 1.0),
    fill(6, "trend", "BTC", "sell", 200.0, 2.0), fill(7, "trend", "BTC", "buy", 190.0, 2.0),
    fill(8, "maker", "ETH", "buy", 10.0, 1.0), fill(9, "maker", "ETH", "sell", 8.0, 1.0),
    fill(10, "maker", "ETH", "buy", 10.0, 2.0), fill(11, "maker", "ETH", "sell", 11.0, 2.0),
]


@pytest.fixture
def url(tmp_path):
    u = f"sqlite:///{tmp_path}/ledger.db"
    st = LedgerStore(u)
    st.record(st.rebuild_engine(), TRADES)
    st.close()
    return u


def test_stats_per_strategy_and_total(url):
    s = pnl_stats(url)
    assert s["as_of_ns"] == T0 + 11 * H and s["since_ns"] is None
    trend, maker, total = s["strategies"]["trend"], s["strategies"]["maker"], s["total"]
    assert list(s["strategies"]) == ["maker", "trend"]
    assert (trend["trades"], trend["wins"], trend["losses"]) == (4, 2, 1)
    assert trend["win_rate_pct"] == pytest.approx(50.0)
    assert trend["pnl_usd"] == pytest.approx(25.0) and trend["pnl_pct"] == pytest.approx(10.0)
    assert trend["avg_win_usd"] == pytest.approx(15.0) and trend["avg_loss_usd"] == pytest.approx(-5.0)
    assert trend["best_usd"] == pytest.approx(20.0) and trend["worst_usd"] == pytest.approx(-5.0)
    assert trend["avg_pnl_usd"] == pytest.approx(6.25)
    assert trend["best_pct"] == pytest.approx(10.0) and trend["worst_pct"] == pytest.approx(-5.0)
    assert (maker["trades"], maker["wins"], maker["losses"]) == (2, 1, 1)
    assert maker["pnl_usd"] == pytest.approx(0.0) and maker["pnl_pct"] == pytest.approx(-10.0)
    assert (total["trades"], total["wins"], total["losses"]) == (6, 3, 2)
    assert total["win_rate_pct"] == pytest.approx(50.0)
    assert total["pnl_usd"] == pytest.approx(25.0) and total["pnl_pct"] == pytest.approx(0.0)
    assert total["avg_win_usd"] == pytest.approx(32.0 / 3) and total["avg_loss_usd"] == pytest.approx(-3.5)
    assert total["best_usd"] == pytest.approx(20.0) and total["worst_usd"] == pytest.approx(-5.0)


def test_strategy_and_market_filters(url):
    s = pnl_stats(url, strategy="trend")
    assert list(s["strategies"]) == ["trend"] and s["total"]["trades"] == 4
    assert s["total"]["pnl_usd"] == pytest.approx(25.0)
    assert pnl_stats(url, market="ETH")["total"]["trades"] == 2
    assert pnl_stats(url, strategy="trend", market="ETH")["total"]["trades"] == 0
    empty = pnl_stats(url, strategy="nobody")["total"]
    assert empty["trades"] == 0 and empty["win_rate_pct"] == 0.0 and empty["best_usd"] is None


def test_since_hours_is_relative_to_latest_fill_or_now_ns(url):
    # latest fill at T0+11h; 2.5h back = T0+8.5h: the exits at 9h and 11h
    s = pnl_stats(url, since_hours=2.5)
    assert s["since_ns"] == T0 + 11 * H - int(2.5 * H)
    assert s["total"]["trades"] == 2 and list(s["strategies"]) == ["maker"]
    s = pnl_stats(url, since_hours=4.5)                        # exits at 7h, 9h, 11h
    assert s["total"]["trades"] == 3 and s["total"]["pnl_usd"] == pytest.approx(20.0)
    assert pnl_stats(url, since_hours=2.5, now_ns=T0 + 30 * H)["total"]["trades"] == 0
    assert pnl_stats(url, since_hours=100.0)["total"]["trades"] == 6


def test_recent_trades_newest_first(url):
    rec = recent_trades(url, 3)
    assert [r["exit_ts"] for r in rec] == [T0 + 11 * H, T0 + 9 * H, T0 + 7 * H]
    assert rec[0]["strategy"] == "maker" and rec[0]["pnl_usd"] == pytest.approx(2.0)
    assert rec[2]["side"] == "short" and rec[2]["entry_price"] == 200.0 and rec[2]["exit_price"] == 190.0
    assert [r["exit_ts"] for r in recent_trades(url, 10, strategy="trend")] == [T0 + k * H for k in (7, 5, 3, 1)]
    assert recent_trades(url, 0) == []
    assert len(recent_trades(url, 10, since_hours=2.5)) == 2


def test_pnl_command_prints_tables(url):
    con = Console(record=True, width=220)
    assert pnl_command(url, None, None, 2, None, console=con) == 0
    out = con.export_text()
    assert "TOTAL" in out and "trend" in out and "maker" in out and "50.00" in out and "+25.00" in out
    assert "2 most recent closed trades" in out and "2025-09-15 11:00:00" in out
    con = Console(record=True, width=220)
    assert pnl_command(url, "trend", 1.0, 5, None, console=con) == 0  # window: exits >= 10h: none
    assert "no closed trades" in con.export_text()


def test_pnl_command_on_missing_db(tmp_path):
    con = Console(record=True, width=200)
    assert pnl_command(f"sqlite:///{tmp_path}/nope.db", None, None, 10, None, console=con) == 1
    assert "no ledger database" in con.export_text()
    assert not (tmp_path / "nope.db").exists()


def test_ledger_stats(tmp_path):
    u = f"sqlite:///{tmp_path}/l.db"
    st = LedgerStore(u)
    fills = [
        fill(0, "a", "BTC", "buy", 100.0, 0.3, fee=0.01, vtid="T1"),   # one venue trade split between a and b
        fill(1, "b", "BTC", "buy", 100.0, 0.2, fee=0.01, vtid="T1"),
        fill(2, "a", "BTC", "sell", 110.0, 0.3, fee=0.02, vtid="T2"),
        fill(3, "a", "ETH", "buy", 10.0, 1.0, liquidity="internal"),
        fill(4, "b", "ETH", "sell", 10.0, 1.0, liquidity="internal"),
        fill(5, "b", "ETH", "buy", 11.0, 0.5, fee=0.005, liquidity="maker", vtid="T3"),
    ]
    st.record(st.rebuild_engine(), fills)
    s = ledger_stats(u)
    assert s["fills"] == 6 and s["internal_fills"] == 2 and s["venue_fills"] == 3
    assert s["fills_by_liquidity"] == {"taker": 3, "internal": 2, "maker": 1}
    assert s["venue_fills_by_market"] == {"BTC": 2, "ETH": 1}
    assert s["venue_fill_size_total"] == {"BTC": pytest.approx(0.8), "ETH": pytest.approx(0.5)}
    assert s["closed_trades"] == 2
    # a: long 0.3 BTC 100 -> 110 = 3.0 - 0.01 - 0.02; b: short 0.5 ETH 10 -> 11 = -0.5 - 0.005
    assert s["realized_pnl_usd_by_strategy"] == {"a": pytest.approx(2.97), "b": pytest.approx(-0.505)}
    assert s["realized_pnl_usd"] == pytest.approx(2.465)
    assert s["fees_usd"] == pytest.approx(0.045) and s["fees_usd_by_strategy"]["b"] == pytest.approx(0.015)
    assert s["positions"] == {"a": {"ETH": 1.0}, "b": {"BTC": 0.2, "ETH": -0.5}}
    assert s["last_fill_ts_event"] == T0 + 5 * H and s["schema_version"] == SCHEMA_VERSION
