"""The recorder's configuration section (``services: recorder:`` in the YAML file).

Example (the defaults)::

    services:
      recorder:
        out: null              # archive folder; null = <LIGHTER_STACK_DATA or ./var>/archive
        http_port: 9111
        read_batch: 1000
        block_ms: 1000
        discover_s: 10.0
        flush_s: 300.0
        behind_warn_s: 300.0

Every key can be set from the environment, e.g. ``LS_SERVICES__RECORDER__OUT=/archive``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from shared.redis_util import data_dir


class RecorderConfig(BaseModel):
    """Settings of the recorder service.

    Attributes:
        out: archive folder (:mod:`shared.archive`); ``None`` = ``archive`` under
            :func:`shared.redis_util.data_dir`.
        http_port: port of ``/health`` and ``/metrics`` (0 = no server).
        read_batch: entries read per stream per ``XREAD``.
        block_ms: how long one ``XREAD`` waits for new entries (ms).
        discover_s: how often (s) the namespace is scanned for new streams.
        flush_s: the rows of hours still open are written at least this often (s); rows of a
            closed hour are written as soon as the hour closes.
        behind_warn_s: ``/health`` says ``behind`` (503) when a stream's newest entry is this
            much (s) newer than the newest one read from it.
    """

    model_config = ConfigDict(extra="forbid")
    out: str | None = None
    http_port: int = Field(default=9111, ge=0, le=65535)
    read_batch: int = Field(default=1000, ge=1)
    block_ms: int = Field(default=1000, ge=1)
    discover_s: float = Field(default=10.0, gt=0)
    flush_s: float = Field(default=300.0, gt=0)
    behind_warn_s: float = Field(default=300.0, gt=0)

    def out_dir(self) -> Path:
        """The archive folder (``out`` or ``<data_dir>/archive``)."""
        return Path(self.out) if self.out else data_dir() / "archive"
