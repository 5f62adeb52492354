"""The notifier's configuration section (``services: notifier:`` in the YAML file).

Example::

    services:
      notifier:
        chat_id: -1001234567890     # the group (or private chat) messages go to and commands come from
        thread_id: 42               # topic of a forum group (message_thread_id); omit for none
        http_port: 9110             # /health, /metrics and POST /alertmanager

The bot token is a secret: it is read only from the environment variable named by
``token_env`` (default ``TELEGRAM_BOT_TOKEN``), never from the file, and never logged. Every
key can be set from the environment too, e.g. ``LS_SERVICES__NOTIFIER__CHAT_ID=-100123``.
"""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

DEFAULT_TOKEN_ENV = "TELEGRAM_BOT_TOKEN"


class NotifierConfig(BaseModel):
    """Settings of the notifier service (meanings in each field's description)."""

    model_config = ConfigDict(extra="forbid")
    chat_id: int | str | None = Field(
        default=None, description="Telegram chat (group id like -100..., or @channel) messages go to and "
                                  "the only chat whose commands are obeyed; unset = messages only logged")
    thread_id: int | None = Field(
        default=None, description="topic thread of a forum group (message_thread_id), as in seed 004; unset = none")
    token_env: str = Field(
        default=DEFAULT_TOKEN_ENV, min_length=1,
        description="name of the environment variable holding the bot token (never put the token in the file)")
    api_base_url: str = Field(
        default="https://api.telegram.org", min_length=1,
        description="Telegram Bot API base URL (tests point it at a local fake)")
    http_port: int = Field(default=9110, ge=0, le=65535,
                           description="port of /health, /metrics and POST /alertmanager (0 = no server)")
    host: str = Field(default="0.0.0.0", description="bind address of the HTTP server")
    group: str = Field(default="notifier", min_length=1, description="consumer group on the exec and control streams")
    claim_idle_ms: int = Field(default=30_000, ge=1, description="claim entries a dead notifier left pending this long")
    batch: int = Field(default=200, ge=1, le=10_000, description="entries per read")
    block_ms: int = Field(default=500, ge=1, description="read wait")
    min_interval_s: float = Field(
        default=3.0, ge=0.0,
        description="least wall time between two messages to the chat (Telegram: about 1/s per chat, 20/min "
                    "per group); notices waiting meanwhile are batched into the next message")
    batch_window_s: float = Field(
        default=1.0, ge=0.0, description="wait this long after a first notice for more to batch with it")
    max_message_chars: int = Field(default=4000, ge=200, le=4096,
                                   description="longest message; a longer batch is split")
    queue_max: int = Field(default=2000, ge=10, description="notices kept while Telegram is unreachable "
                                                           "(oldest dropped beyond, counted)")
    commands: bool = Field(default=True, description="poll getUpdates for /status, /pnl, /pause, /resume, "
                                                     "/kill, /flatten")
    poll_timeout_s: int = Field(default=20, ge=0, le=50, description="long-poll timeout of getUpdates")
    notify_local_rejects: bool = Field(
        default=False, description="also notify the executor's local refusals (codes 0 and 1: clips, guards, "
                                   "minimums); venue (>= 21000) and send (-1) rejects are always notified")
    notify_guard_release: bool = Field(default=True, description="notify a guard's release, not only its engagement")
    summary_utc_hour: int = Field(default=0, ge=0, le=23,
                                  description="the daily PnL summary's day starts at this UTC hour (event time)")
    fold_history: bool = Field(
        default=True, description="at start, fold the exec stream's history silently (positions, FIFO lots, "
                                  "today's PnL); a first start notifies only what comes after it")

    @field_validator("chat_id", "thread_id", mode="before")
    @classmethod
    def _empty_is_unset(cls, v: object) -> object:
        """An empty value (compose passes ``TELEGRAM_CHAT_ID`` through as ``""`` when unset) means unset."""
        return None if isinstance(v, str) and not v.strip() else v

    def token(self) -> SecretStr | None:
        """The bot token from the environment (``token_env``), or None when unset or empty."""
        value = os.environ.get(self.token_env, "").strip()
        return SecretStr(value) if value else None
