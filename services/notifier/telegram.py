"""Telegram I/O of the notifier, through python-telegram-bot (``telegram.Bot``): the outbox
(batching), the sender (rate limit, retries), command parsing, and the log filter that keeps the
bot token out of every log line.

Rate limit: Telegram allows about one message per second per chat and 20 per minute per group.
The sender sends at most one message every ``min_interval_s`` (3 s by default: 20/min); every
notice that arrives meanwhile waits in the :class:`Outbox` and goes out joined with the others
in the next message (split at ``max_message_chars``). A ``RetryAfter`` answer (HTTP 429) waits
the time Telegram asks; a network error keeps the message and retries with backoff.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections import deque
from collections.abc import Iterable

from pydantic import SecretStr
from telegram import Bot
from telegram.constants import ParseMode
from telegram.error import RetryAfter, TelegramError

from .engine import Notice

log = logging.getLogger(__name__)

#: Commands the notifier accepts (without the slash).
COMMANDS = ("status", "pnl", "pause", "resume", "kill", "flatten", "help")


class RedactFilter(logging.Filter):
    """Replaces every occurrence of the secret in a log record's message (and its formatted
    arguments, and the exception text) with ``***``. Installed on the root logger's handlers
    by :func:`protect_logs`."""

    def __init__(self, secret: str) -> None:
        super().__init__()
        self.secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secret:
            return True
        msg = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if self.secret in msg or (record.exc_text and self.secret in record.exc_text):
            record.msg = msg.replace(self.secret, "***")
            record.args = None
            if record.exc_text:
                record.exc_text = record.exc_text.replace(self.secret, "***")
        return True


def protect_logs(token: SecretStr | None) -> None:
    """Keep the bot token out of the logs: httpx/httpcore (which log request URLs, and the Bot
    API puts the token in the URL) are raised to WARNING, and a :class:`RedactFilter` is added to
    every handler of the root logger (and the root logger itself)."""
    for name in ("httpx", "httpcore", "telegram"):
        logging.getLogger(name).setLevel(logging.WARNING)
    if token is None:
        return
    flt = RedactFilter(token.get_secret_value())
    root = logging.getLogger()
    root.addFilter(flt)
    for h in root.handlers:
        h.addFilter(flt)


def parse_command(text: str) -> tuple[str, str] | None:
    """``("kill", "")``, ``("pause", "trend")`` from a message text (``/pause@MyBot trend``);
    None when the text is not one of :data:`COMMANDS`."""
    text = (text or "").strip()
    if not text.startswith("/"):
        return None
    head, _, rest = text[1:].partition(" ")
    cmd = head.split("@", 1)[0].lower()
    if cmd not in COMMANDS:
        return None
    return cmd, rest.strip()


class Outbox:
    """Notices waiting to be sent, oldest first, at most ``capacity`` (the oldest are dropped
    beyond, counted in ``dropped``)."""

    def __init__(self, capacity: int = 2000) -> None:
        self.items: deque[str] = deque()
        self.capacity = capacity
        self.dropped = 0
        self.event = asyncio.Event()

    def __len__(self) -> int:
        return len(self.items)

    def add(self, notices: Iterable[Notice | str]) -> None:
        """Queue the texts of ``notices``."""
        for n in notices:
            self.items.append(n.text if isinstance(n, Notice) else n)
            if len(self.items) > self.capacity:
                self.items.popleft()
                self.dropped += 1
        if self.items:
            self.event.set()

    def take(self, max_chars: int) -> str | None:
        """The next message: as many queued texts as fit in ``max_chars`` joined by newlines
        (a single longer text is cut), removed from the queue; None when empty."""
        if not self.items:
            self.event.clear()
            return None
        parts: list[str] = []
        size = 0
        while self.items:
            t = self.items[0]
            if parts and size + 1 + len(t) > max_chars:
                break
            self.items.popleft()
            parts.append(t if len(t) <= max_chars else t[: max_chars - 1] + "…")
            size += len(parts[-1]) + (1 if len(parts) > 1 else 0)
        if not self.items:
            self.event.clear()
        return "\n".join(parts)

    def put_back(self, text: str) -> None:
        """Return a message that could not be sent to the front of the queue."""
        self.items.appendleft(text)
        self.event.set()


class TelegramChat:
    """The configured chat through python-telegram-bot.

    Args:
        token: the bot token (never logged).
        chat_id: the group or chat (int id or ``@name``).
        thread_id: the forum topic (``message_thread_id``) or None.
        api_base_url: Bot API base URL (``https://api.telegram.org`` or a local fake).
    """

    def __init__(self, token: SecretStr, chat_id: int | str, thread_id: int | None = None,
                 api_base_url: str = "https://api.telegram.org") -> None:
        base = api_base_url.rstrip("/")
        self.bot = Bot(token.get_secret_value(), base_url=f"{base}/bot", base_file_url=f"{base}/file/bot")
        self.chat_id = chat_id
        self.thread_id = thread_id

    def is_our_chat(self, chat_id: int | str | None, username: str | None = None) -> bool:
        """True when a message from ``chat_id`` (or the chat ``@username``) comes from the
        configured chat."""
        want = str(self.chat_id)
        return str(chat_id) == want or (username is not None and want.lower() == f"@{username}".lower())

    async def start(self) -> None:
        """Open the HTTP client."""
        await self.bot.initialize()

    async def close(self) -> None:
        """Close the HTTP client."""
        try:
            await self.bot.shutdown()
        except TelegramError:
            log.debug("bot shutdown failed", exc_info=True)

    async def send(self, text: str, thread_id: int | None = None) -> None:
        """Send one HTML message to the chat (in the configured topic, or ``thread_id``).

        Raises:
            telegram.error.TelegramError: RetryAfter (429), NetworkError, BadRequest...
        """
        await self.bot.send_message(chat_id=self.chat_id, text=text, parse_mode=ParseMode.HTML,
                                    message_thread_id=thread_id if thread_id is not None else self.thread_id,
                                    disable_web_page_preview=True)


def _retry_after_s(exc: RetryAfter) -> float:
    """Seconds Telegram asks to wait (python-telegram-bot 22 returns an int, later a timedelta)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = exc.retry_after
    return value.total_seconds() if hasattr(value, "total_seconds") else float(value)


async def send_loop(chat: TelegramChat, outbox: Outbox, stop: asyncio.Event, min_interval_s: float,
                    batch_window_s: float, max_chars: int, on_sent=None, on_error=None) -> None:
    """Forever until ``stop``: wait for notices, wait ``batch_window_s`` for more, send one
    message, then at least ``min_interval_s`` before the next. Failed sends go back to the
    queue: after a ``RetryAfter`` it waits what Telegram asks, after other errors with a
    backoff doubling up to 60 s; a ``BadRequest`` (the message itself is refused) is dropped."""
    from telegram.error import BadRequest

    backoff = 1.0
    while not stop.is_set():
        if not outbox.items:
            waiter = asyncio.create_task(outbox.event.wait())
            stopper = asyncio.create_task(stop.wait())
            await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            stopper.cancel()
            continue
        if batch_window_s > 0:
            await asyncio.sleep(batch_window_s)
        text = outbox.take(max_chars)
        if text is None:
            continue
        try:
            await chat.send(text)
        except RetryAfter as exc:
            outbox.put_back(text)
            wait = _retry_after_s(exc)
            log.warning("telegram rate limit: retrying in %.1fs", float(wait))
            if on_error:
                on_error("retry_after")
            await asyncio.sleep(float(wait))
            continue
        except BadRequest as exc:
            log.error("telegram refused a message (%s); dropped", exc.message)
            if on_error:
                on_error("bad_request")
        except (TelegramError, OSError) as exc:
            outbox.put_back(text)
            log.warning("telegram send failed (%s: %s); retrying in %.0fs", type(exc).__name__, exc, backoff)
            if on_error:
                on_error("network")
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 60.0)
            continue
        else:
            backoff = 1.0
            if on_sent:
                on_sent(text)
        await asyncio.sleep(min_interval_s)
