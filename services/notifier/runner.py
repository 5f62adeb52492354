"""The notifier service: the bus and Alertmanager in, Telegram out, Telegram commands in.

- **Bus** (the shared :class:`~shared.service.ConsumerLoop`, this service as its handler, group
  ``notifier``): ``{ns}:exec:{account}`` and ``{ns}:control`` -> :class:`NotifierEngine` ->
  notices -> the :class:`Outbox`; inputs the screening refuses (:mod:`shared.screening`) go to
  ``{ns}:dlq``. Nothing is published by the loop; entries are acknowledged after
  their notices are queued. At start the exec and control history is folded silently
  (``fold_history``; events the screening refuses skipped) up to what the group has already
  been delivered (a first start: all of it, and the group starts at the end), so ``/status`` and ``/pnl`` know the positions and the
  FIFO lots, and a restart does not repeat old messages.
- **Alertmanager** posts its webhook to ``POST /alertmanager`` on ``http_port`` (next to
  ``/health`` and ``/metrics``): each alert becomes a notice.
- **Sender**: :func:`~services.notifier.telegram.send_loop` (batched, rate limited).
- **Commands**: long-polls ``getUpdates``; only messages from the configured chat are obeyed.
  ``/pause``, ``/resume``, ``/kill``, ``/flatten`` publish a ``Control`` event
  (:func:`shared.control.control_event`) on ``{ns}:control``; ``/status`` and ``/pnl`` answer
  from the engine's fold.

Without a token or a chat id, notices are only logged (the service still runs, serves
``/health`` and takes alerts), so the stack starts without Telegram configured.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from aiohttp import web
from prometheus_client import Counter, Gauge
from redis.exceptions import ResponseError
from telegram.error import TelegramError

from shared.bus import Bus, Consumer, Delivery, split_id
from shared.config import ScreeningConfig, StackConfig
from shared.control import ControlError, control_event, publish_control
from shared.events import Event
from shared.metrics import PREFIX, start_http
from shared.outage import BUS_DOWN_ERRORS
from shared.redis_util import async_client, resolve_redis_url
from shared.screening import Screener
from shared.service import (
    BatchHandler,
    ConsumerLoop,
    consumer_name,
    feed_engine,
    install_stop_handlers,
    setup_logging,
)

from .config import NotifierConfig
from .engine import BadAlertPayload, Notice, NotifierEngine, alert_notices
from .telegram import Outbox, TelegramChat, parse_command, protect_logs, send_loop

log = logging.getLogger(__name__)

SERVICE = "notifier"

NOTICES = Counter(f"{PREFIX}notifier_notices_total", "Notices queued for Telegram, per kind.", ["kind"])
MESSAGES_SENT = Counter(f"{PREFIX}notifier_messages_sent_total", "Telegram messages delivered.")
SEND_ERRORS = Counter(f"{PREFIX}notifier_send_errors_total", "Failed Telegram sends (retried unless bad_request).",
                      ["reason"])
DROPPED = Gauge(f"{PREFIX}notifier_notices_dropped", "Notices dropped because the outbox was full (since start).")
QUEUED = Gauge(f"{PREFIX}notifier_outbox_notices", "Notices waiting to be sent.")
COMMANDS_IN = Counter(f"{PREFIX}notifier_commands_total", "Telegram commands received.", ["command", "accepted"])
ALERTS_IN = Counter(f"{PREFIX}notifier_alerts_total", "Alerts received from Alertmanager.", ["status"])

HELP = ("/status: executor state, positions, guards\n/pnl: realized FIFO PnL today and since start\n"
        "/pause STRATEGY|all, /resume STRATEGY|all\n/flatten [STRATEGY|all]: close positions\n"
        "/kill: halt the executor, cancel all orders (until /resume all)")


class NotifierService(BatchHandler):
    """The notifier's runner (see the module docstring).

    Args:
        bus: the bus of the run's namespace.
        account: account index whose exec stream is read.
        cfg: the notifier section.
        chat: the Telegram chat, or None to only log notices.
        consumer: consumer name inside the group (default ``notifier@host:pid``).
        screening: the input screening's thresholds (``StackConfig.screening``; default ones).
    """

    def __init__(self, bus: Bus, account: int | str, cfg: NotifierConfig, chat: TelegramChat | None,
                 consumer: str | None = None, screening: ScreeningConfig | None = None) -> None:
        self.cfg = cfg
        self.bus = bus
        self.chat = chat
        self.streams = [bus.streams.exec(account), bus.streams.control]
        self.consumer = Consumer(bus, self.streams, cfg.group, consumer or consumer_name(SERVICE),
                                 claim_idle_ms=cfg.claim_idle_ms, batch=cfg.batch, block_ms=cfg.block_ms)
        self.screener = Screener(bus.streams.ns, screening)
        self.loop = ConsumerLoop(SERVICE, self.consumer, self)
        self.engine = NotifierEngine(cfg.notify_local_rejects, cfg.notify_guard_release, cfg.summary_utc_hour)
        self.outbox = Outbox(cfg.queue_max)
        self.sent: list[str] = []  # texts delivered (newest last, the last 100)
        self.folded = 0
        self.commands_seen = 0
        self.started_at = time.time()
        self._stop = asyncio.Event()

    def health(self) -> dict[str, Any]:
        """Body of ``GET /health``."""
        return self.loop.link.health({
            "status": "ok", "service": SERVICE, "telegram": self.chat is not None,
            "events": self.engine.events, "folded_at_start": self.folded, "queued": len(self.outbox),
            "dropped": self.outbox.dropped, "risk_state": self.engine.risk_state,
            "uptime_s": round(time.time() - self.started_at, 1)})

    def stop(self) -> None:
        """Finish after the current batch."""
        self._stop.set()

    def queue(self, notices: list[Notice]) -> None:
        """Queue notices for Telegram (or log them when there is no chat)."""
        for n in notices:
            NOTICES.labels(n.kind).inc()
            log.info("notice %s: %s", n.kind, n.text.replace("\n", " | "))
        if self.chat is not None:
            self.outbox.add(notices)
        DROPPED.set(self.outbox.dropped)
        QUEUED.set(len(self.outbox))

    # -- start-up: fold history ---------------------------------------------------------------

    async def _delivered_up_to(self, stream: str) -> str | None:
        """The group's last-delivered id on ``stream``, None when the group does not exist."""
        try:
            groups = await self.bus.redis.xinfo_groups(stream)
        except ResponseError:
            return None
        for g in groups:
            name = g.get("name")
            if (name.decode() if isinstance(name, bytes) else name) == self.cfg.group:
                last = g.get("last-delivered-id")
                return last.decode() if isinstance(last, bytes) else str(last)
        return None

    async def fold_history(self) -> None:
        """Fold the exec and control history silently, up to what the group was delivered (all of
        it on a first start, and the group is created at the end of each stream then)."""
        history: list[tuple[tuple[int, int], Event]] = []
        for stream in self.streams:
            upto = await self._delivered_up_to(stream)
            entries = await self.bus.read_all(stream)
            if upto is None and entries:
                upto = entries[-1].entry_id
                await self.bus.redis.xgroup_create(stream, self.cfg.group, id=upto, mkstream=True)
            limit = split_id(upto) if upto else (0, 0)
            history += [(split_id(d.entry_id), d.event) for d in entries
                        if d.event is not None and split_id(d.entry_id) <= limit
                        and self.screener.passes(d.event, stream)]
        history.sort(key=lambda x: x[0])
        for _, ev in history:
            with contextlib.suppress(Exception):
                self.engine.on_event(ev)
        self.folded = len(history)
        log.info("folded %d past events (positions, FIFO lots, control state)", self.folded)

    # -- the bus ------------------------------------------------------------------------------

    def reject_reason(self, event: Event, stream: str) -> str | None:
        """The screening's reason to dead-letter ``event`` (:class:`~shared.screening.Screener`:
        an event type that does not belong on the exec or control stream, nonsense numbers)."""
        return self.screener.reason(event, stream)

    async def on_batch(self, deliveries: list[Delivery]) -> list[tuple[str, Event]]:
        """Fold each event into the engine and queue its notices; nothing is published."""
        notices: list[Notice] = []

        def one(ev: Event) -> list[Event]:
            notices.extend(self.engine.on_event(ev))
            return []

        feed_engine(SERVICE, deliveries, one)
        self.queue(notices)
        return []

    # -- Alertmanager ---------------------------------------------------------------------------

    async def alertmanager(self, req: web.Request) -> web.Response:
        """``POST /alertmanager``: Alertmanager's webhook (version 4 JSON) -> alert notices.
        400 for a body that is not that shape."""
        try:
            payload = await req.json()
            notices = alert_notices(payload)
        except (ValueError, BadAlertPayload) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        for a in payload["alerts"]:
            ALERTS_IN.labels(str(a.get("status", "firing"))).inc()
        self.queue(notices)
        return web.json_response({"status": "ok", "notices": len(notices)})

    # -- commands -----------------------------------------------------------------------------

    async def handle_command(self, text: str, chat_id: int | str | None, username: str | None,
                             update_id: int, sender: str = "") -> str | None:
        """Obey one command message; returns the reply text (None: not a command, or not from
        the configured chat, then ignored)."""
        parsed = parse_command(text)
        if parsed is None:
            return None
        cmd, arg = parsed
        if self.chat is None or not self.chat.is_our_chat(chat_id, username):
            COMMANDS_IN.labels(cmd, "no").inc()
            log.warning("command /%s from chat %s ignored: not the configured chat", cmd, chat_id)
            return None
        COMMANDS_IN.labels(cmd, "yes").inc()
        self.commands_seen += 1
        if cmd == "status":
            return self.engine.status_text()
        if cmd == "pnl":
            return self.engine.pnl_text()
        if cmd == "help":
            return HELP
        target = arg.split()[0] if arg else "*"
        target = "*" if target.lower() in ("all", "*", "--all") else target
        if cmd in ("pause", "resume") and not arg:
            return f"usage: /{cmd} STRATEGY|all"
        who = f"telegram /{cmd}" + (f" by {sender}" if sender else "")
        try:
            ev = control_event(cmd, target, who, source=SERVICE, key=("telegram", update_id))
        except ControlError as exc:  # e.g. "/kill grid": a kill takes no strategy
            return f"/{cmd}: {exc}"
        try:
            await publish_control(self.bus, ev)
        except BUS_DOWN_ERRORS as exc:  # say so in the chat; the operator repeats it
            self.loop.link.failed(exc, "publish a control")
            log.error("command /%s %s not published: Redis unreachable: %s", cmd, ev.target, exc)
            return f"/{cmd} {ev.target}: NOT sent, the bus (Redis) is unreachable; try again"
        log.info("command /%s %s from the configured chat: Control %s published", cmd, ev.target, ev.id)
        return f"{cmd} {ev.target}: sent to the executor"

    async def poll_commands(self) -> None:
        """Long-poll ``getUpdates`` until stopped; answers each command in the chat."""
        assert self.chat is not None
        offset: int | None = None
        backoff = 1.0
        while not self._stop.is_set():
            try:
                updates = await self.chat.bot.get_updates(offset=offset, timeout=self.cfg.poll_timeout_s,
                                                          allowed_updates=["message"],
                                                          read_timeout=self.cfg.poll_timeout_s + 10)
                backoff = 1.0
            except (TelegramError, OSError) as exc:
                log.warning("getUpdates failed (%s: %s); retrying in %.0fs", type(exc).__name__, exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 60.0)
                continue
            for u in updates:
                offset = u.update_id + 1
                msg = u.message
                if msg is None or not msg.text:
                    continue
                sender = msg.from_user.username or str(msg.from_user.id) if msg.from_user else ""
                reply = await self.handle_command(msg.text, msg.chat.id, msg.chat.username, u.update_id, sender)
                if reply is not None:
                    try:
                        await self.chat.send(reply, thread_id=msg.message_thread_id or self.chat.thread_id)
                    except (TelegramError, OSError) as exc:
                        log.warning("reply to /command failed: %s", exc)

    # -- run ------------------------------------------------------------------------------------

    def _sent(self, text: str) -> None:
        MESSAGES_SENT.inc()
        self.sent = [*self.sent[-99:], text]
        QUEUED.set(len(self.outbox))

    async def run(self, http_port: int | None = None) -> None:
        """Serve HTTP, fold the history, then consume, send and poll until :meth:`stop`."""
        port = self.cfg.http_port if http_port is None else http_port
        http = await start_http(port, self.health, self.cfg.host,
                                routes=[web.post("/alertmanager", self.alertmanager)])
        tasks: list[asyncio.Task] = []
        try:
            if self.cfg.fold_history:
                try:  # reads first, folds after: safe to repeat
                    await self.loop.link.retry(self.fold_history, "fold the history", self._stop)
                except BUS_DOWN_ERRORS:
                    return  # stopped before Redis answered
            if self.chat is not None:
                await self.chat.start()
                tasks.append(asyncio.create_task(send_loop(
                    self.chat, self.outbox, self._stop, self.cfg.min_interval_s, self.cfg.batch_window_s,
                    self.cfg.max_message_chars, on_sent=self._sent,
                    on_error=lambda r: SEND_ERRORS.labels(r).inc())))
                if self.cfg.commands:
                    tasks.append(asyncio.create_task(self.poll_commands()))
            log.info("notifier reading %s; telegram %s", ", ".join(self.streams),
                     "on" if self.chat is not None else "off (no token or chat_id: notices are only logged)")
            await self.loop.run(self._stop)
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
            if self.chat is not None:
                await self.chat.close()
            await http.cleanup()


def make_chat(ncfg: NotifierConfig) -> TelegramChat | None:
    """The Telegram chat of the config and the token in the environment, or None (logged) when
    either is missing."""
    token = ncfg.token()
    protect_logs(token)
    if token is None or ncfg.chat_id is None:
        log.warning("telegram off: %s", "no bot token in $" + ncfg.token_env if token is None
                    else "services.notifier.chat_id is not set")
        return None
    return TelegramChat(token, ncfg.chat_id, ncfg.thread_id, ncfg.api_base_url)


async def run_notifier(cfg: StackConfig, ncfg: NotifierConfig, redis_url: str) -> int:
    """Run the notifier until SIGTERM/SIGINT. Returns the exit code."""
    redis = async_client(redis_url)
    svc = NotifierService(Bus(redis, cfg.ns, maxlen=cfg.stream_maxlen), cfg.account_index, ncfg, make_chat(ncfg),
                          screening=cfg.screening)
    install_stop_handlers(svc.stop)
    try:
        await svc.run()
    finally:
        await redis.aclose()
    return 0


def main(cfg: StackConfig) -> int:
    """Entry point of ``lighter-stack run notifier``: runs until SIGTERM/SIGINT.

    Raises:
        shared.config.ConfigError: an invalid ``services.notifier`` section.
    """
    setup_logging()
    ncfg = cfg.section(SERVICE, NotifierConfig)
    return asyncio.run(run_notifier(cfg, ncfg, resolve_redis_url(cfg.redis_url)))
