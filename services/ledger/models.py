"""The ledger's SQL schema (SQLAlchemy 2.0 typed declarative tables).

One schema for SQLite and PostgreSQL: only portable column types (``BigInteger`` for
nanosecond timestamps and ids, ``Double`` for USD prices and base-unit sizes, ``String``,
``Text`` for free-form reasons).

Tables:

- ``fills``: every fill event, once (unique ``fill_id``). ``id`` is the insertion order.
  Times are integer **nanoseconds since the Unix epoch, UTC** (``ts_event``, exactly as on the
  event; the report renders them as UTC datetimes). ``venue_trade_id`` is empty for internal
  fills (two strategies crossed inside the executor). ``reason`` is the fill's ``Fill.reason``
  (the reason of the strategy's target it executes; empty for quotes and resting orders).
- ``closed_trades``: one row per FIFO lot (or part of a lot) closed by an opposite fill, with
  the entry/exit prices, the apportioned fees and the realized PnL. Unique on
  ``(exit_fill_id, seq)``: ``seq`` numbers the lots one fill closed, in FIFO order.
  ``exit_reason`` is the closing fill's ``reason`` (take profit, stop, time stop, signal, flatten...).
- ``schema_version``: one row per applied schema version; the current version is the maximum.

Open lots are not stored: the store rebuilds them at start by replaying ``fills`` ordered by
``(ts_event, id)`` through the pure FIFO engine.

Adding a migration
------------------
1. Change the table classes below to the new shape and bump :data:`SCHEMA_VERSION` to ``N``.
2. Add ``MIGRATIONS[N] = fn`` where ``fn(conn: sqlalchemy.Connection) -> None`` brings a
   version ``N-1`` database to version ``N`` with portable DDL/DML (e.g.
   ``conn.execute(text("ALTER TABLE fills ADD COLUMN x BIGINT NOT NULL DEFAULT 0"))``).
   ``metadata.create_all`` runs first and creates tables that do not exist yet, so a migration
   only alters tables that already existed (and backfills data).
3. At start, :func:`services.ledger.store.migrate` runs every missing step in order, in one
   transaction, and records each version in ``schema_version``. A database newer than the code
   is refused.

An existing database is migrated by the ledger service when it starts, or without starting it
by ``lighter-stack ledger-migrate [--db-url URL]``. The read-only tools (``lighter-stack pnl``)
refuse an older database with a message saying so (they never alter it).

Versions
--------
1. the initial schema.
2. ``fills.reason`` and ``closed_trades.exit_reason`` (``TEXT NOT NULL DEFAULT ''``); rows written
   before the migration keep an empty reason.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import BigInteger, Connection, Double, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

SCHEMA_VERSION = 2

# An auto-incrementing 64-bit primary key; SQLite only auto-increments ``INTEGER PRIMARY KEY``.
BigId = BigInteger().with_variant(Integer, "sqlite")


class Base(DeclarativeBase):
    """Declarative base of the ledger tables."""


class FillRow(Base):
    """One attributed fill (from a ``Fill`` event). Prices/fees in USD, size in base units > 0,
    ``side`` ``buy``/``sell``, ``liquidity`` ``maker``/``taker``/``internal``, ``ts_event`` and
    ``ts_recv`` in ns since the epoch (UTC), ``reason`` the target's reason (may be empty)."""

    __tablename__ = "fills"
    __table_args__ = (
        Index("ix_fills_strategy_market_ts", "strategy", "market", "ts_event"),
        Index("ix_fills_ts_event", "ts_event"),
        Index("ix_fills_venue_trade_id", "venue_trade_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    fill_id: Mapped[str] = mapped_column(String(128), unique=True, nullable=False)
    event_id: Mapped[str] = mapped_column(String(64), nullable=False)
    ts_event: Mapped[int] = mapped_column(BigInteger, nullable=False)
    ts_recv: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    source: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    strategy: Mapped[str] = mapped_column(String(64), nullable=False)
    market: Mapped[str] = mapped_column(String(32), nullable=False)
    side: Mapped[str] = mapped_column(String(4), nullable=False)
    price: Mapped[float] = mapped_column(Double, nullable=False)
    size: Mapped[float] = mapped_column(Double, nullable=False)
    fee: Mapped[float] = mapped_column(Double, nullable=False, default=0.0)
    liquidity: Mapped[str] = mapped_column(String(8), nullable=False)
    client_order_index: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    venue_trade_id: Mapped[str] = mapped_column(String(128), nullable=False, default="")
    reason: Mapped[str] = mapped_column(Text, nullable=False, default="", server_default="")


class ClosedTradeRow(Base):
    """One closed FIFO lot (or part of one). ``side`` is the side of the closed position
    (``long``/``short``); prices, fees and ``pnl_usd`` in USD (``pnl_usd`` is net of the entry
    and exit fee shares, ``gross_pnl_usd`` before fees); ``pnl_pct`` = ``pnl_usd`` / (entry
    price x size) x 100; ``entry_ts``/``exit_ts`` in ns since the epoch (UTC); ``exit_reason`` the
    closing fill's reason (may be empty)."""

    __tablename__ = "closed_trades"
    __table_args__ = (
        UniqueConstraint("exit_fill_id", "seq", name="uq_closed_trades_exit_fill_seq"),
        Index("ix_closed_trades_strategy", "strategy"),
        Index("ix_closed_trades_market", "market"),
        Index("ix_closed_trades_exit_ts", "exit_ts"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    strategy: Mapped[str] = mapped_column(String(64), nullable=False)
    market: Mapped[str] = mapped_column(String(32), nullable=False)
    side: Mapped[str] = mapped_column(String(5), nullable=False)
    size: Mapped[float] = mapped_column(Double, nullable=False)
    entry_price: Mapped[float] = mapped_column(Double, nullable=False)
    exit_price: Mapped[float] = mapped_column(Double, nullable=False)
    entry_ts: Mapped[int] = mapped_column(BigInteger, nullable=False)
    exit_ts: Mapped[int] = mapped_column(BigInteger, nullable=False)
    entry_fill_id: Mapped[str] = mapped_column(String(128), nullable=False)
    exit_fill_id: Mapped[str] = mapped_column(String(128), nullable=False)
    seq: Mapped[int] = mapped_column(Integer, nullable=False)
    entry_fee_usd: Mapped[float] = mapped_column(Double, nullable=False)
    exit_fee_usd: Mapped[float] = mapped_column(Double, nullable=False)
    gross_pnl_usd: Mapped[float] = mapped_column(Double, nullable=False)
    pnl_usd: Mapped[float] = mapped_column(Double, nullable=False)
    pnl_pct: Mapped[float] = mapped_column(Double, nullable=False)
    exit_reason: Mapped[str] = mapped_column(Text, nullable=False, default="", server_default="")


class SchemaVersionRow(Base):
    """An applied schema version and when (``applied_at`` in ns since the epoch, wall clock)."""

    __tablename__ = "schema_version"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    applied_at: Mapped[int] = mapped_column(BigInteger, nullable=False)
    description: Mapped[str] = mapped_column(String(200), nullable=False, default="")


def _to_v2(conn: Connection) -> None:
    """Version 2: the reason of each fill and the exit reason of each closed trade (empty for
    the rows already stored). Portable DDL (SQLite and PostgreSQL)."""
    conn.execute(text("ALTER TABLE fills ADD COLUMN reason TEXT NOT NULL DEFAULT ''"))
    conn.execute(text("ALTER TABLE closed_trades ADD COLUMN exit_reason TEXT NOT NULL DEFAULT ''"))


# version N -> function migrating a version N-1 database to N (see the module docstring).
MIGRATIONS: dict[int, Callable[[Connection], None]] = {2: _to_v2}
