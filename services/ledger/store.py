"""Ledger persistence: fills and closed trades in a SQL database through SQLAlchemy.

:meth:`LedgerStore.record` writes a batch of fills in **one** transaction: fills whose
``fill_id`` is already stored (or repeated in the batch) are skipped, every new fill is inserted
with the closed trades the FIFO engine derives from it. If the transaction fails, the engine's
lots are restored to what they were, so memory never runs ahead of the database.

:meth:`LedgerStore.rebuild_engine` recreates the FIFO state at start by replaying the ``fills``
table ordered by ``(ts_event, id)`` (``id`` = insertion order).

SQLite (the default) runs with ``journal_mode=WAL`` and ``synchronous=NORMAL``; the pragmas are
applied only when the dialect is SQLite, so any other SQLAlchemy URL (PostgreSQL) works as is.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import Engine, create_engine, event, func, insert, inspect, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.pool import StaticPool

from services.ledger.config import ensure_sqlite_dir
from services.ledger.engine import ClosedTrade, LedgerEngine
from services.ledger.models import (
    MIGRATIONS,
    SCHEMA_VERSION,
    Base,
    ClosedTradeRow,
    FillRow,
    SchemaVersionRow,
)
from shared.events import Fill

log = logging.getLogger(__name__)

_ID_CHUNK = 500  # bound on the number of bind parameters of one IN (...) query


class SchemaError(RuntimeError):
    """The database's schema version is newer than this code, or the ledger tables are missing."""


def make_db_engine(db_url: str, create_dirs: bool = True) -> Engine:
    """A SQLAlchemy engine for ``db_url``.

    File-backed SQLite gets its folder created (when ``create_dirs``), WAL journaling,
    ``synchronous=NORMAL`` and a 30 s busy timeout; in-memory SQLite shares one connection
    across threads. Other dialects are used as configured.

    Raises:
        sqlalchemy.exc.ArgumentError: a malformed URL.
        ModuleNotFoundError: the URL's DB driver is not installed.
    """
    url = make_url(db_url)
    if not url.drivername.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
    if create_dirs:
        ensure_sqlite_dir(db_url)
    memory = not url.database or url.database == ":memory:"
    kwargs: dict = {"connect_args": {"check_same_thread": False, "timeout": 30}}
    if memory:
        kwargs["poolclass"] = StaticPool
    eng = create_engine(url, **kwargs)

    @event.listens_for(eng, "connect")
    def _sqlite_pragmas(dbapi_conn, _record) -> None:  # pragma: no branch - trivial
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    return eng


def migrate(db: Engine) -> int:
    """Create missing tables and bring the schema to :data:`SCHEMA_VERSION`.

    A fresh database gets the current schema and one ``schema_version`` row; an older one runs
    ``MIGRATIONS[v]`` for each missing version in one transaction (see ``models.py``).

    Returns:
        The schema version now in the database.

    Raises:
        SchemaError: the database records a version newer than this code.
    """
    Base.metadata.create_all(db)
    for attempt in range(2):
        try:
            with db.begin() as conn:
                current = conn.scalar(select(func.max(SchemaVersionRow.version)))
                if current is None:
                    conn.execute(insert(SchemaVersionRow.__table__).values(
                        version=SCHEMA_VERSION, applied_at=time.time_ns(), description="initial schema"))
                    return SCHEMA_VERSION
                if current > SCHEMA_VERSION:
                    raise SchemaError(f"ledger database schema version {current} is newer than this code "
                                      f"({SCHEMA_VERSION}); upgrade lighter-stack")
                for v in range(current + 1, SCHEMA_VERSION + 1):
                    log.warning("migrating ledger schema %d -> %d", v - 1, v)
                    MIGRATIONS[v](conn)
                    conn.execute(insert(SchemaVersionRow.__table__).values(
                        version=v, applied_at=time.time_ns(), description=f"migration to {v}"))
                return SCHEMA_VERSION
        except IntegrityError:  # another process initialised it at the same moment
            if attempt:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def stored_version(db: Engine) -> int | None:
    """The schema version recorded in ``db`` (``None``: no ``schema_version`` table or no row);
    creates nothing."""
    if "schema_version" not in set(inspect(db).get_table_names()):
        return None
    with db.connect() as conn:
        return conn.scalar(select(func.max(SchemaVersionRow.version)))


def check_schema(db: Engine) -> int:
    """The schema version of an existing ledger database, without creating or altering anything.

    Raises:
        SchemaError: the ledger tables are missing, the version is newer than this code, or it
            is older (the message says how to migrate: ``lighter-stack ledger-migrate``, or start
            the ledger service, which migrates at start).
    """
    tables = set(inspect(db).get_table_names())
    missing = {t for t in Base.metadata.tables if t not in tables}
    if missing:
        raise SchemaError(f"not a ledger database (missing tables: {', '.join(sorted(missing))})")
    v = stored_version(db)
    if v is None or v > SCHEMA_VERSION:
        raise SchemaError(f"unsupported ledger schema version {v}")
    if v < SCHEMA_VERSION:
        raise SchemaError(f"ledger database schema version {v} is older than this code ({SCHEMA_VERSION}): "
                          f"run `lighter-stack ledger-migrate` (same --db-url) or start the ledger service once")
    return v


def upgrade_database(db_url: str) -> tuple[int | None, int]:
    """Create or migrate the ledger database at ``db_url`` to :data:`SCHEMA_VERSION` (what the
    ledger service does at start), for ``lighter-stack ledger-migrate``.

    Returns:
        ``(version before, version now)``; ``before`` is ``None`` for a database without ledger
        tables (they are created).

    Raises:
        SchemaError: the database is newer than this code.
        sqlalchemy.exc.SQLAlchemyError: the database failed (nothing is half-migrated: the steps
            run in one transaction).
    """
    db = make_db_engine(db_url)
    try:
        before = stored_version(db)
        return before, migrate(db)
    finally:
        db.dispose()


def fill_row(fill: Fill) -> dict:
    """The ``fills`` row of a fill event."""
    return {"fill_id": fill.fill_id, "event_id": fill.id, "ts_event": fill.ts_event, "ts_recv": fill.ts_recv,
            "source": fill.source, "strategy": fill.strategy, "market": fill.market, "side": fill.side,
            "price": fill.price, "size": fill.size, "fee": fill.fee, "liquidity": fill.liquidity,
            "client_order_index": fill.client_order_index, "venue_trade_id": fill.venue_trade_id,
            "reason": fill.reason}


def row_to_fill(row) -> Fill:
    """A fill event from a ``fills`` row (for rebuilding state)."""
    return Fill(id=row.event_id, ts_event=row.ts_event, ts_recv=row.ts_recv, source=row.source,
                fill_id=row.fill_id, strategy=row.strategy, market=row.market, side=row.side,
                price=row.price, size=row.size, fee=row.fee, liquidity=row.liquidity,
                client_order_index=row.client_order_index, venue_trade_id=row.venue_trade_id, reason=row.reason)


def closed_row(ct: ClosedTrade) -> dict:
    """The ``closed_trades`` row of a closed trade."""
    return {"strategy": ct.strategy, "market": ct.market, "side": ct.side, "size": ct.size,
            "entry_price": ct.entry_price, "exit_price": ct.exit_price, "entry_ts": ct.entry_ts,
            "exit_ts": ct.exit_ts, "entry_fill_id": ct.entry_fill_id, "exit_fill_id": ct.exit_fill_id,
            "seq": ct.seq, "entry_fee_usd": ct.entry_fee_usd, "exit_fee_usd": ct.exit_fee_usd,
            "gross_pnl_usd": ct.gross_pnl_usd, "pnl_usd": ct.pnl_usd, "pnl_pct": ct.pnl_pct,
            "exit_reason": ct.exit_reason}


@dataclass(slots=True)
class RecordResult:
    """Outcome of :meth:`LedgerStore.record`: the fills inserted, the fill ids skipped as
    already stored (or repeated in the batch), and the trades the inserted fills closed."""

    inserted: list[Fill] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    closed: list[ClosedTrade] = field(default_factory=list)


class LedgerStore:
    """The ledger database.

    Args:
        db_url: any SQLAlchemy URL (``sqlite:///var/ledger.db`` by default in the service).
        create: create missing tables and run migrations (the service); ``False`` only checks
            that the schema is there (read-only tools).

    Raises:
        SchemaError: see :func:`migrate` / :func:`check_schema`.
    """

    def __init__(self, db_url: str, create: bool = True) -> None:
        self.db_url = db_url
        self.db = make_db_engine(db_url, create_dirs=create)
        self.schema_version = migrate(self.db) if create else check_schema(self.db)

    @property
    def safe_url(self) -> str:
        """The URL with any password hidden (for logs and /health)."""
        return make_url(self.db_url).render_as_string(hide_password=True)

    def close(self) -> None:
        """Release the connection pool."""
        self.db.dispose()

    # -- writes -----------------------------------------------------------------------------

    def record(self, engine: LedgerEngine, fills: Sequence[Fill]) -> RecordResult:
        """Insert new fills and their closed trades in one transaction, applying them to
        ``engine`` in order; known fill ids are skipped (idempotent).

        On any error the transaction is rolled back, ``engine`` is restored to its state before
        the call and the exception propagates.

        Raises:
            services.ledger.engine.InvalidFill: a fill the engine cannot book (validate first).
            sqlalchemy.exc.SQLAlchemyError: the database failed (e.g. IntegrityError when another
                writer inserted the same fill meanwhile; the caller may rebuild and retry).
        """
        result = RecordResult()
        if not fills:
            return result
        snap = None
        try:
            with self.db.begin() as conn:
                known = self._known(conn, {f.fill_id for f in fills})
                fill_rows: list[dict] = []
                closed_rows: list[dict] = []
                for f in fills:
                    if f.fill_id in known:
                        result.duplicates.append(f.fill_id)
                        continue
                    known.add(f.fill_id)
                    if snap is None:
                        snap = engine.snapshot({(x.strategy, x.market) for x in fills})
                    closed = engine.apply_fill(f)
                    result.inserted.append(f)
                    result.closed.extend(closed)
                    fill_rows.append(fill_row(f))
                    closed_rows.extend(closed_row(c) for c in closed)
                if fill_rows:
                    conn.execute(insert(FillRow.__table__), fill_rows)
                if closed_rows:
                    conn.execute(insert(ClosedTradeRow.__table__), closed_rows)
        except BaseException:
            if snap is not None:
                engine.restore(snap)
            raise
        return result

    @staticmethod
    def _known(conn, ids: Iterable[str]) -> set[str]:
        ids = list(ids)
        known: set[str] = set()
        for i in range(0, len(ids), _ID_CHUNK):
            chunk = ids[i:i + _ID_CHUNK]
            known.update(conn.scalars(select(FillRow.fill_id).where(FillRow.fill_id.in_(chunk))))
        return known

    # -- reads ------------------------------------------------------------------------------

    def rebuild_engine(self, engine: LedgerEngine | None = None) -> LedgerEngine:
        """Replay every stored fill, ordered by ``(ts_event, id)``, into ``engine`` (a fresh
        :class:`LedgerEngine` when ``None``) and return it.

        Logs a warning when the replay closes a different number of trades than stored (fills
        that arrived out of ``ts_event`` order were booked in arrival order).
        """
        engine = engine or LedgerEngine()
        derived = 0
        q = select(FillRow).order_by(FillRow.ts_event, FillRow.id)
        with self.db.connect() as conn:
            for row in conn.execution_options(yield_per=5000).execute(q):
                derived += len(engine.apply_fill(row_to_fill(row)))
            stored = conn.scalar(select(func.count()).select_from(ClosedTradeRow)) or 0
        if derived != stored:
            log.warning("ledger rebuild closed %d trades but %d are stored: fills arrived out of "
                        "ts_event order; open lots follow ts_event order", derived, stored)
        log.info("ledger state rebuilt from %d fills: %d open lots", engine.fills_applied, engine.lot_count())
        return engine

    def fill_count(self) -> int:
        """Number of stored fills."""
        with self.db.connect() as conn:
            return conn.scalar(select(func.count()).select_from(FillRow)) or 0

    def fill_ids(self) -> list[str]:
        """Every stored fill id in insertion order."""
        with self.db.connect() as conn:
            return list(conn.scalars(select(FillRow.fill_id).order_by(FillRow.id)))

    def closed_trades(self) -> list[ClosedTrade]:
        """Every stored closed trade, in insertion order."""
        cols = [c.name for c in ClosedTradeRow.__table__.columns if c.name != "id"]
        with self.db.connect() as conn:
            rows = conn.execute(select(ClosedTradeRow).order_by(ClosedTradeRow.id)).mappings().all()
        return [ClosedTrade(**{c: r[c] for c in cols}) for r in rows]

    def realized_pnl_by_strategy(self) -> dict[str, float]:
        """Sum of ``pnl_usd`` of closed trades per strategy (USD)."""
        with self.db.connect() as conn:
            rows = conn.execute(select(ClosedTradeRow.strategy, func.sum(ClosedTradeRow.pnl_usd))
                                .group_by(ClosedTradeRow.strategy)).all()
        return {s: float(v or 0.0) for s, v in rows}
