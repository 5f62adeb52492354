"""The copy-trade API's configuration section (``services: copytrade:`` in the YAML file).

Example::

    services:
      copytrade:
        http_port: 9109
        accounts: [1001]            # accounts the API may trade (default: the stack's account_index)
        scaling_factor: 0.8
        stop_loss_ratio: 0.05

Every key can be set from the environment, e.g. ``LS_SERVICES__COPYTRADE__SCALING_FACTOR=0.5``.
The API key is never part of the config: it is read from the environment variable named by
``api_key_env`` (default ``COPYTRADE_API_KEY``); when that variable is empty every request is allowed.
Defaults are seed 004's documented ones (README: ``SCALING_FACTOR`` 0.8, ``STOP_LOSS_RATIO`` 0.05,
``MAX_SLIPPAGE`` 0.01 = 100 bps, ``MAX_RETRIES`` 3, ``RETRY_INTERVAL`` 5 s).
"""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_API_KEY_ENV = "COPYTRADE_API_KEY"


class CopytradeConfig(BaseModel):
    """Settings of the copy-trade API.

    Attributes:
        http_port: port of the API, ``/health`` and ``/metrics``.
        host: interface the API listens on.
        strategy: strategy name of its intents (fills are attributed to it in the executor and ledger).
        accounts: account indexes the API accepts; empty = the stack's ``account_index``. Each
            account needs its own executor (intents go to ``{ns}:intent:{account}``).
        scaling_factor: size = total asset value (USD) x ``reference_position_ratio`` x this.
        stop_loss_ratio: the stop-loss sits at a loss of this fraction of the position's margin
            (seed 004: trigger = entry x (1 -/+ IMF x ratio)).
        initial_margin_fraction: IMF used for the stop when the venue gives none (seed fallback 0.3333).
        max_slippage_bps: the executor's limit on the marketable order, from the touch (bps).
        max_retries: attempts after the first when the venue cannot be read (no market order is
            ever sent twice: intents are absolute targets, see docs/copytrade.md).
        retry_interval_s: seconds between attempts.
        markets_ttl_s: seconds the venue's market list (lots, minimums) is cached.
        rest_timeout_s: per-request timeout of the venue's REST API.
        api_key_env: environment variable holding the API key (``X-API-Key``).
        requests_kept: how many finished requests are remembered for idempotency and status.
    """

    model_config = ConfigDict(extra="forbid")
    http_port: int = Field(default=9109, ge=0, le=65535)
    host: str = "0.0.0.0"
    strategy: str = Field(default="copytrade", min_length=1)
    accounts: list[int] = Field(default_factory=list)
    scaling_factor: float = Field(default=0.8, gt=0, le=10)
    stop_loss_ratio: float = Field(default=0.05, gt=0, lt=1)
    initial_margin_fraction: float = Field(default=0.3333, gt=0, le=1)
    max_slippage_bps: float = Field(default=100.0, gt=0, le=10_000)
    max_retries: int = Field(default=3, ge=0, le=100)
    retry_interval_s: float = Field(default=5.0, ge=0)
    markets_ttl_s: float = Field(default=300.0, ge=0)
    rest_timeout_s: float = Field(default=10.0, gt=0)
    api_key_env: str = Field(default=DEFAULT_API_KEY_ENV, min_length=1)
    requests_kept: int = Field(default=10_000, ge=10)

    def api_key(self) -> str | None:
        """The API key from the environment (``api_key_env``), or None when unset or empty."""
        return os.environ.get(self.api_key_env) or None
