"""The ledger store on a real PostgreSQL (the docker compose setup), when one is reachable:
``LEDGER_TEST_PG_URL`` or the local server on 127.0.0.1:5432 (user postgres)."""

import os
import uuid

import pytest
import sqlalchemy as sa

from services.ledger.report import ledger_stats
from services.ledger.store import LedgerStore
from shared.events import Fill

pytest.importorskip("psycopg")
ADMIN_URL = os.environ.get("LEDGER_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


@pytest.fixture
def pg_url():
    try:
        admin = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 2})
        with admin.connect() as c:
            c.execute(sa.text("select 1"))
    except Exception as exc:  # no server here: nothing to test against
        pytest.skip(f"no PostgreSQL reachable at {ADMIN_URL}: {type(exc).__name__}")
    name = f"ledger_test_{uuid.uuid4().hex[:8]}"
    with admin.connect() as c:
        c.execute(sa.text(f"create database {name}"))
    yield ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    with admin.connect() as c:
        c.execute(sa.text(f"drop database if exists {name} with (force)"))
    admin.dispose()


def _fill(i: int, side: str, price: float) -> Fill:
    return Fill(id=f"e{i}", ts_event=i, fill_id=f"f{i}", strategy="trend", market="BTC", side=side, price=price,
                size=0.001, fee=0.0001, venue_trade_id=str(i))


def test_ledger_on_postgresql_is_idempotent_and_rebuilds(pg_url):
    store = LedgerStore(pg_url)
    engine = store.rebuild_engine()
    fills = [_fill(0, "buy", 100.0), _fill(1, "sell", 110.0), _fill(2, "buy", 105.0)]
    first = store.record(engine, fills)
    again = store.record(engine, fills)
    assert (len(first.inserted), len(first.closed)) == (3, 1)
    assert (len(again.inserted), len(again.duplicates)) == (0, 3)
    stats = ledger_stats(pg_url)
    assert stats["venue_fills"] == 3
    assert stats["realized_pnl_usd"] == pytest.approx(0.01 - 0.0002)  # (110-100)*0.001 minus both fees
    assert store.rebuild_engine().lot_count() == 1
    store.close()


def test_version_1_database_on_postgresql_gets_the_reason_columns(pg_url):
    """A version-1 ledger on PostgreSQL (made here by dropping the version-2 columns and marking
    it version 1, with a fill and a closed trade written by version 1's columns): ``ledger-migrate``
    adds the columns with empty reasons; new fills store theirs."""
    from services.ledger.models import SCHEMA_VERSION
    from services.ledger.report import migrate_command, recent_trades

    store = LedgerStore(pg_url)
    store.record(store.rebuild_engine(), [_fill(0, "buy", 100.0), _fill(1, "sell", 110.0)])
    with store.db.begin() as c:
        c.execute(sa.text("ALTER TABLE fills DROP COLUMN reason"))
        c.execute(sa.text("ALTER TABLE closed_trades DROP COLUMN exit_reason"))
        c.execute(sa.text("UPDATE schema_version SET version = 1"))  # a fresh database has one row
    store.close()
    with pytest.raises(Exception, match="older than this code"):
        LedgerStore(pg_url, create=False)
    assert migrate_command(pg_url) == 0
    store = LedgerStore(pg_url)
    assert store.schema_version == SCHEMA_VERSION
    store.record(store.rebuild_engine(), [Fill(id="e2", ts_event=2, fill_id="f2", strategy="trend", market="BTC",
                                               side="buy", price=105.0, size=0.001, venue_trade_id="2"),
                                          Fill(id="e3", ts_event=3, fill_id="f3", strategy="trend", market="BTC",
                                               side="sell", price=104.0, size=0.001, venue_trade_id="3",
                                               reason="stop")])
    store.close()
    assert [r["exit_reason"] for r in recent_trades(pg_url, 5)] == ["stop", ""]
