"""The ledger's configuration section (``services: ledger:`` in the YAML file).

Example::

    services:
      ledger:
        db_url: sqlite:///var/ledger.db   # or postgresql+psycopg://user:pw@host/db
        http_port: 9104
        group: ledger

Every key can be set from the environment, e.g. ``LS_SERVICES__LEDGER__DB_URL=...``; the plain
variable ``LEDGER_DB_URL`` overrides the database URL of the service and of the ``pnl`` tool.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.engine import make_url

DB_URL_ENV = "LEDGER_DB_URL"
DEFAULT_DB_URL = "sqlite:///var/ledger.db"


class LedgerConfig(BaseModel):
    """Settings of the ledger service.

    Attributes:
        db_url: SQLAlchemy URL of the ledger database. Default ``sqlite:///var/ledger.db``
            (relative to the working directory; its folder is created). SQLite runs in WAL mode;
            any other SQLAlchemy URL (PostgreSQL) works when its driver is installed.
        http_port: port of ``/health`` and ``/metrics`` (0 = no server).
        group: consumer group on the exec stream (one per ledger database).
        claim_idle_ms: entries left pending by a dead consumer longer than this are reclaimed.
        batch: maximum stream entries per read (and per DB transaction).
        block_ms: how long a read waits for new entries.
        seen_capacity: how many recent fill ids are kept in memory to drop redeliveries without
            a DB round trip (the DB unique constraint is the real guard).
    """

    model_config = ConfigDict(extra="forbid")
    db_url: str = DEFAULT_DB_URL
    http_port: int = Field(default=9104, ge=0, le=65535)
    group: str = Field(default="ledger", min_length=1)
    claim_idle_ms: int = Field(default=30_000, ge=1)
    batch: int = Field(default=200, ge=1, le=10_000)
    block_ms: int = Field(default=500, ge=1)
    seen_capacity: int = Field(default=200_000, ge=1)

    def resolved_db_url(self) -> str:
        """The database URL to use: ``LEDGER_DB_URL`` from the environment, else ``db_url``."""
        return os.environ.get(DB_URL_ENV) or self.db_url


def ensure_sqlite_dir(db_url: str) -> None:
    """Create the parent folder of a file-backed SQLite database (no-op for other URLs,
    ``:memory:`` and ``file:`` URIs)."""
    url = make_url(db_url)
    if not url.drivername.startswith("sqlite"):
        return
    db = url.database
    if not db or db == ":memory:" or db.startswith("file:"):
        return
    Path(db).expanduser().parent.mkdir(parents=True, exist_ok=True)
