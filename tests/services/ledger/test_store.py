"""The ledger store: one transaction per batch, idempotency by fill id, rebuild after restart,
rollback on failure, schema version and migrations, SQLite WAL and default location."""

import pytest
from sqlalchemy import func, select, text

import services.ledger.store as store_mod
from services.ledger.config import LedgerConfig
from services.ledger.engine import LedgerEngine
from services.ledger.models import SCHEMA_VERSION, ClosedTradeRow, FillRow, SchemaVersionRow
from services.ledger.store import LedgerStore, SchemaError
from shared.events import Fill

T0 = 1_757_894_400_000_000_000


def fill(i: int, side: str, price: float, size: float, fee: float = 0.0, strategy: str = "s",
         market: str = "BTC", venue_trade_id: str | None = None) -> Fill:
    return Fill(id=f"e{i}", ts_event=T0 + i * 1_000_000_000, fill_id=f"f{i}", strategy=strategy, market=market,
                side=side, price=price, size=size, fee=fee,
                venue_trade_id=f"v{i}" if venue_trade_id is None else venue_trade_id)


FILLS = [fill(1, "buy", 100.0, 1.0, 0.1), fill(2, "buy", 110.0, 2.0, 0.2), fill(3, "sell", 120.0, 2.5, 0.25),
         fill(4, "sell", 50.0, 1.0, 0.0, market="ETH"), fill(5, "sell", 105.0, 1.5, 0.1),
         fill(6, "buy", 45.0, 0.4, 0.0, market="ETH"), fill(7, "buy", 101.0, 0.25, 0.0)]


@pytest.fixture
def url(tmp_path):
    return f"sqlite:///{tmp_path}/sub/ledger.db"


def _counts(store: LedgerStore) -> tuple[int, int]:
    with store.db.connect() as c:
        return (c.scalar(select(func.count()).select_from(FillRow)),
                c.scalar(select(func.count()).select_from(ClosedTradeRow)))


def test_record_writes_fills_and_closed_trades(url):
    st = LedgerStore(url)
    e = st.rebuild_engine()
    res = st.record(e, FILLS[:3])
    assert [f.fill_id for f in res.inserted] == ["f1", "f2", "f3"] and res.duplicates == []
    assert [(c.entry_fill_id, c.size) for c in res.closed] == [("f1", 1.0), ("f2", 1.5)]
    assert _counts(st) == (3, 2)
    assert st.closed_trades() == res.closed
    assert st.realized_pnl_by_strategy() == {"s": pytest.approx(sum(c.pnl_usd for c in res.closed))}


def test_same_fill_twice_is_one_row_and_same_pnl(url):
    st = LedgerStore(url)
    e = st.rebuild_engine()
    st.record(e, FILLS)
    pnl = st.realized_pnl_by_strategy()
    lots = e.positions()
    again = st.record(e, FILLS)                               # a redelivered batch
    assert again.inserted == [] and again.duplicates == [f.fill_id for f in FILLS]
    f9 = fill(9, "buy", 1.0, 1.0, strategy="other")
    inbatch = st.record(e, [f9, f9])                          # repeated inside a batch
    assert [f.fill_id for f in inbatch.inserted] == ["f9"] and inbatch.duplicates == ["f9"]
    assert _counts(st)[0] == len(FILLS) + 1
    assert st.realized_pnl_by_strategy() == pnl
    assert e.positions() == lots | {("other", "BTC"): 1.0}


def test_state_rebuilt_after_restart_gives_same_results(url):
    a = LedgerStore(url)
    ea = a.rebuild_engine()
    for i in range(0, len(FILLS), 2):                          # several transactions
        a.record(ea, FILLS[i:i + 2])
    a.close()

    b = LedgerStore(url)                                       # "restart"
    eb = b.rebuild_engine()
    assert eb.positions() == ea.positions()
    assert [(lot.fill_id, lot.size, lot.fee_per_unit) for lot in eb.open_lots("s", "BTC")] == \
           [(lot.fill_id, lot.size, lot.fee_per_unit) for lot in ea.open_lots("s", "BTC")]
    more = [fill(20, "sell", 99.0, 1.0, 0.05), fill(21, "buy", 47.0, 0.6, market="ETH")]
    fresh = LedgerEngine()
    expected = [c for f in FILLS + more for c in fresh.apply_fill(f)]
    b.record(eb, more)
    assert b.closed_trades() == expected
    assert eb.positions() == fresh.positions()


def test_failed_transaction_rolls_back_db_and_engine(url, monkeypatch):
    st = LedgerStore(url)
    e = st.rebuild_engine()
    st.record(e, FILLS[:2])
    before = e.positions()

    def boom(_ct):
        raise RuntimeError("disk full")

    monkeypatch.setattr(store_mod, "closed_row", boom)
    with pytest.raises(RuntimeError):
        st.record(e, FILLS[2:4])
    assert _counts(st) == (2, 0)
    assert e.positions() == before and e.fills_applied == 2
    monkeypatch.undo()
    st.record(e, FILLS[2:4])
    assert _counts(st) == (4, 2)


def test_sqlite_wal_schema_version_and_reopen(url):
    st = LedgerStore(url)
    with st.db.connect() as c:
        assert c.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert c.scalars(select(SchemaVersionRow.version)).all() == [SCHEMA_VERSION]  # fresh: one row
    st.close()
    st2 = LedgerStore(url)
    with st2.db.connect() as c:
        assert c.scalars(select(SchemaVersionRow.version)).all() == [SCHEMA_VERSION]
    assert st2.schema_version == SCHEMA_VERSION == 2


def test_newer_database_is_refused(url):
    st = LedgerStore(url)
    with st.db.begin() as c:
        c.execute(SchemaVersionRow.__table__.insert().values(version=99, applied_at=0, description="future"))
    with pytest.raises(SchemaError):
        LedgerStore(url)


def test_migration_hook_runs_missing_versions_once(url, monkeypatch):
    LedgerStore(url).close()
    calls = []

    nxt = SCHEMA_VERSION + 1

    def to_next(conn):
        calls.append(nxt)
        conn.execute(text("ALTER TABLE fills ADD COLUMN note VARCHAR(20) NOT NULL DEFAULT ''"))

    monkeypatch.setattr(store_mod, "SCHEMA_VERSION", nxt)
    monkeypatch.setattr(store_mod, "MIGRATIONS", {nxt: to_next})
    st = LedgerStore(url)
    assert st.schema_version == nxt and calls == [nxt]
    with st.db.connect() as c:
        assert sorted(c.scalars(select(SchemaVersionRow.version))) == [SCHEMA_VERSION, nxt]
        assert "note" in {r[1] for r in c.execute(text("PRAGMA table_info(fills)"))}
    LedgerStore(url)
    assert calls == [nxt]


def test_default_db_url_creates_var_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LEDGER_DB_URL", raising=False)
    cfg = LedgerConfig()
    assert cfg.db_url == "sqlite:///var/ledger.db" and cfg.http_port == 9104 and cfg.group == "ledger"
    st = LedgerStore(cfg.resolved_db_url())
    assert (tmp_path / "var" / "ledger.db").exists()
    st.close()
    monkeypatch.setenv("LEDGER_DB_URL", "sqlite://")
    assert LedgerConfig().resolved_db_url() == "sqlite://"


def test_in_memory_sqlite_works_across_threads():
    import threading

    st = LedgerStore("sqlite://")
    e = LedgerEngine()
    t = threading.Thread(target=st.record, args=(e, FILLS))
    t.start()
    t.join()
    assert st.fill_count() == len(FILLS)
