"""The collector's configuration section (``services: collector:`` in the YAML file).

Example (the defaults)::

    services:
      collector:
        markets: null                # null = the top-level `markets` list
        ws_url: null                 # null = the top-level venue.ws_url
        rest_url: null               # null = the top-level venue.rest_url
        http_port: 9101
        reconnect_initial_s: 1.0
        reconnect_max_s: 30.0
        healthy_after_s: 10.0
        ping_interval_s: 30.0
        rest_timeout_s: 10.0
        unhealthy_after_s: 60.0
        max_batch_frames: 200        # frames waiting are published in one transaction, at most this many

Every key can be set from the environment, e.g. ``LS_SERVICES__COLLECTOR__HTTP_PORT=9201``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.config import StackConfig


class CollectorConfig(BaseModel):
    """Settings of the collector service.

    Attributes:
        markets: symbols to collect (``BTC``, ``ETH``); ``None`` = the top-level ``markets``.
        http_port: port of ``/health`` and ``/metrics`` (0 = no server).
        reconnect_initial_s: first wait (s) before reconnecting or retrying the REST metadata
            request; doubled after each failure up to ``reconnect_max_s``.
        reconnect_max_s: longest wait (s) between attempts.
        healthy_after_s: a connection that stayed up this long (s) resets the backoff.
        ping_interval_s: period (s) of our ``{"type":"ping"}`` (and of WS-level keepalive pings).
        rest_timeout_s: timeout (s) of one REST request.
        unhealthy_after_s: ``/health`` answers 503 when not connected for longer than this (s).
        seen_trade_ids: recent trade ids remembered to drop trades resent on resubscribe.
        ws_url, rest_url: where the collector reads market data and metadata; ``None`` = the
            stack's ``venue.ws_url`` / ``venue.rest_url`` (the executor's venue). Set them to
            read another feed than the one the executor trades on: paper trading on live market
            data (``config/paper-live.yaml``, docs/modes.md) points them at Lighter while the
            executor trades on venue-sim.
        max_batch_frames: at most this many frames that are already waiting are handled together
            and their events published in one Redis transaction (a lone frame goes at once; see
            ``services/collector/client.py``); 1 = one transaction per frame.
    """

    model_config = ConfigDict(extra="forbid")
    markets: list[str] | None = None
    http_port: int = Field(default=9101, ge=0, le=65535)
    reconnect_initial_s: float = Field(default=1.0, gt=0)
    reconnect_max_s: float = Field(default=30.0, gt=0)
    healthy_after_s: float = Field(default=10.0, ge=0)
    ping_interval_s: float = Field(default=30.0, gt=0)
    rest_timeout_s: float = Field(default=10.0, gt=0)
    unhealthy_after_s: float = Field(default=60.0, gt=0)
    seen_trade_ids: int = Field(default=100_000, ge=1)
    ws_url: str | None = None
    rest_url: str | None = None
    max_batch_frames: int = Field(default=200, ge=1, le=10_000)

    @model_validator(mode="after")
    def _check(self) -> CollectorConfig:
        if self.reconnect_max_s < self.reconnect_initial_s:
            raise ValueError("reconnect_max_s must be >= reconnect_initial_s")
        if self.markets is not None and not self.markets:
            raise ValueError("markets must not be empty (omit it to use the top-level markets)")
        return self

    def resolved_ws_url(self, cfg: StackConfig) -> str:
        """The WS URL to collect from: this section's ``ws_url`` or ``cfg.venue.ws_url``."""
        return self.ws_url or cfg.venue.ws_url

    def resolved_rest_url(self, cfg: StackConfig) -> str:
        """The REST base URL of the metadata: this section's ``rest_url`` or ``cfg.venue.rest_url``."""
        return self.rest_url or cfg.venue.rest_url

    def resolved_markets(self, cfg: StackConfig) -> list[str]:
        """The symbols to collect: this section's ``markets`` or the top-level ``cfg.markets``."""
        return list(self.markets if self.markets is not None else cfg.markets)
