"""The executor service: bus + venue I/O around the pure :class:`~services.executor.engine.Engine`.

Start-up (fail closed):

1. Config section ``services.executor`` (:class:`~services.executor.config.ExecutorConfig`), the
   API key (live: ``cfg.require_live_allowed()`` and ``LIGHTER_API_PRIVATE_KEY`` only; paper:
   the env key if set, else a throwaway key), Redis, ``/health`` + ``/metrics``.
2. Market metadata from ``orderBookDetails`` (retried until the venue answers).
3. The exec stream ``{ns}:exec:{account}`` is folded (``Bus.read_all``) to rebuild per-strategy
   virtual positions, seen venue trade ids and the client order index counter. The first client
   order index is ``max(last index in the exec stream + 1, unix time in ms)``: unique across
   restarts even when the stream was trimmed, as long as fewer than one order per ms is sent on
   average.
4. The engine starts HALTED (``RiskState halted "starting: not reconciled yet"``). The account
   feed (WS) is started; reconciliation then syncs the nonce, reads positions
   (``GET account``) and our resting orders (``accountActiveOrders`` per market, auth header),
   cancels them (cancel-all tx 16) and waits for the account feed to be subscribed. It then
   reads the intent stream backwards (XREVRANGE: a read, not a consume -- the entries may be
   acked already) for the strategies' latest ``TargetPosition`` and resting wish per (strategy,
   market), back to ``max_intent_age_ms`` before the newest intent, and hands them to
   ``Engine.restore_intents``: the first market data of each market re-pursues them (stale ones
   are dropped there). With them it reads the whole control stream (XRANGE, also a read: the
   entries may be acked already), merged with the intents by Redis entry id, so the operator's
   ``kill``/``pause``/``flatten``/``resume`` survive a restart: after a kill the executor stays
   HALTED until ``resume *`` (a kill in force also cancels the account's resting orders when
   ``cancel_on_start`` is off); a flatten is resumed. The ids of the folded ``Control`` events
   are marked seen, so the consumer group does not apply one again when it delivers an entry
   that arrived while the executor was down. Success -> RUNNING (HALTED after a kill, REDUCING
   while flattening); failure -> stays HALTED with the reason, retried every
   ``reconcile_retry_s``.

Running: one consumer (group ``executor``) over ``{ns}:intent:{account}``, ``{ns}:control`` and
``{ns}:md:book:{SYM}``. Each batch goes to ``Engine.on_events``; its events are published with
``Consumer.commit`` (atomic with the acks, undecodable entries go to the DLQ) and only then are
its order commands signed and sent (at-most-once sending: a crash between commit and send loses
the order, never duplicates it). Send results and account-feed reports go through the engine
and are published with ``Bus.publish``. One lock serialises sends and feed processing, so an
``OrderAccepted`` is published before the fills of that order.

Lockstep barrier (``lockstep_barrier``, off by default; ``lighter-stack demo --lockstep`` turns
it on): when a read returns intents, the runner first waits until every *other* consumer group
on the namespace's ``md:*``, ``params:*`` and exec streams is idle (:class:`shared.quiet.StreamWatch`:
pending 0, lag 0 -- the strategies have consumed everything and, since they acknowledge together
with publishing, published every intent it caused), reads again without blocking and repeats
until nothing new arrives. The whole set is one engine batch, as in the backtest, so opposite
targets of strategies reacting to the same event cross internally whatever order their intents
arrive in. The intents of that batch come after the other inputs (market data, controls) and
are sorted as the backtest feeds them (:meth:`ExecutorService._backtest_order`), because the
engine's netting allocates FIFO by intent order.

Sending: the commands of one engine step (one consumer batch, or one account-feed message) are
signed with consecutive nonces and sent together, in chunks of ``batch_max_txs`` (15): a single
command as ``sendTx``, more as one ``sendTxBatch`` request -- so a requote (cancel + create)
costs one request, as the engine's request budget assumes. When a batch fails, ``nextNonce``
tells how many of its txs the venue took (they count as sent); the refused one gets the error
and the ones after it are sent again (up to three rounds). Error 23000 (too many requests) is
reported to the engine, which backs off by event time and keeps the wanted state (see the
engine's ``on_send_result``); it never stops the service.

Stale orders: every ``order_check_s`` (wall time) the runner takes ``Engine.stale_orders()``
(IOCs in flight and unconfirmed cancels older than ``order_stale_s`` of event time), asks the
venue about them per market (``accountActiveOrders``, then ``accountInactiveOrders`` for the ones
not active; auth) and reports back: a listed order through ``Engine.on_venue_order`` (the WS
path), an active order with a lost cancel through ``Engine.on_order_still_open`` (cancel sent
again), an order the venue does not know through ``Engine.on_order_unknown`` (finished unfilled).
Counted in ``..._stale_orders_resolved_total{how}``.

Shutdown (SIGTERM/SIGINT): stop consuming, cancel our resting orders (cancel-all), keep
positions, close connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from pydantic import SecretStr

from shared.bus import EVENT_FIELD, Bus, Consumer, Delivery
from shared.config import PRIVATE_KEY_ENV, ConfigError, StackConfig
from shared.events import (
    CancelIntent,
    Control,
    DecodeError,
    Event,
    Fill,
    GuardState,
    OrderRejected,
    PositionSnapshot,
    QuoteIntent,
    RestingOrders,
    RiskState,
    TargetPosition,
    decode,
)
from shared.markets import MarketInfo
from shared.metrics import (
    DEAD_LETTERS,
    DUPLICATES,
    EVENTS_IN,
    EVENTS_OUT,
    PREFIX,
    PROCESSING_SECONDS,
    start_http,
)
from shared.quiet import StreamWatch
from shared.redis_util import async_client, resolve_redis_url
from shared.service import SeenIds, consumer_name, install_stop_handlers, report_lag, setup_logging
from shared.venue.reports import VenueOrder, VenueTrade

from .config import ExecutorConfig
from .engine import MAX_CLIENT_ORDER_INDEX, RATE_LIMITED, Engine, OrderCommand, StaleOrder
from .nonces import NonceError, NonceManager
from .signer import Signer, SignError, generate_key
from .venue import (
    AccountFeed,
    LighterRest,
    RestError,
    SendResult,
    VenueError,
    feed_reports,
    parse_order,
    parse_position,
)

log = logging.getLogger("executor")

SERVICE = "executor"
_P = f"{PREFIX}executor_"
ORDERS_SENT = Counter(f"{_P}orders_sent_total", "Order transactions sent to the venue.", ["market", "side"])
REJECTS = Counter(f"{_P}rejects_total", "Orders rejected (code 0 = refused locally).", ["code"])
FILLS = Counter(f"{_P}fills_total", "Attributed fills published.", ["market", "liquidity"])
INTERNAL_CROSSES = Counter(f"{_P}internal_crosses_total", "Internal crosses between strategies.", ["market"])
NONCE_RESYNCS = Counter(f"{_P}nonce_resyncs_total", "Nonce resyncs from nextNonce after an error.")
RISK_STATE = Gauge(f"{_P}risk_state", "Risk state: 0 running, 1 reducing, 2 halted.")
ACCOUNT_POSITION = Gauge(f"{_P}account_position", "Account position (base units).", ["market"])
STRATEGY_POSITION = Gauge(f"{_P}strategy_position", "Virtual position per strategy (base units).",
                          ["strategy", "market"])
SEND_SECONDS = Histogram(f"{_P}send_seconds", "Wall time of one sendTx/sendTxBatch round trip.",
                         buckets=(1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0, 10.0))
GUARD_ENGAGED = Gauge(f"{_P}guard_engaged", "1 while a guard blocks a side (max_position, max_notional, self_trade).",
                      ["guard", "market", "side"])
GUARD_ENGAGEMENTS = Counter(f"{_P}guard_engagements_total", "Times a guard engaged.", ["guard", "market", "side"])
SELF_TRADE_REFUSALS = Counter(f"{_P}self_trade_refusals_total",
                              "Resting orders refused because they would cross our own resting order.", ["market"])
REQUESTS = Counter(f"{_P}requests_total", "sendTx/sendTxBatch requests made.", ["endpoint"])
REQUESTS_PER_MINUTE = Gauge(f"{_P}requests_per_minute",
                            "sendTx/sendTxBatch requests in the rolling minute (engine, event time).")
BUDGET_USED = Gauge(f"{_P}budget_used", "Request weight used in the rolling minute (engine, event time).")
BUDGET_REMAINING = Gauge(f"{_P}budget_remaining", "Request weight left in the rolling minute (engine, event time).")
DEFERRED_UPDATES = Counter(f"{_P}deferred_updates_total",
                           "Quote/resting updates deferred for lack of request budget or during a 23000 back-off.")
RATE_LIMITED_TOTAL = Counter(f"{_P}rate_limited_total", "Requests refused by the venue with 23000 (too many requests).")
STALE_RESOLVED = Counter(f"{_P}stale_orders_resolved_total",
                         "Stale orders (no final update within order_stale_s) resolved by a REST check: "
                         "filled, canceled (canceled/expired), unknown (finished unfilled), cancel_resent.",
                         ["how"])
RESTORED_INTENTS = Counter(f"{_P}restored_intents_total",
                           "Standing targets/resting wishes restored from the intent stream at start-up.")
RESTORED_CONTROLS = Counter(f"{_P}restored_controls_total",
                            "Operator Control events (kill/pause/resume/flatten) folded from the control stream "
                            "at start-up.")
VOLUME_QUOTA = Gauge(f"{_P}volume_quota_remaining", "volume_quota_remaining from the last sendTx/sendTxBatch response.")
_STATE_VALUE = {"running": 0, "reducing": 1, "halted": 2}


def resolve_key(cfg: StackConfig, ecfg: ExecutorConfig) -> SecretStr:
    """The API private key: from ``LIGHTER_API_PRIVATE_KEY`` (live mode: only there, after
    ``cfg.require_live_allowed()``); in paper mode with ``paper_key: generate`` a throwaway key
    when the variable is unset.

    Raises:
        ConfigError: live mode not allowed, or no key where one is required.
    """
    if cfg.mode == "live":
        cfg.require_live_allowed()
        key = cfg.private_key()
        if key is None:
            raise ConfigError(f"mode: live needs {PRIVATE_KEY_ENV} in the environment")
        return key
    key = cfg.private_key()
    if key is not None:
        return key
    if ecfg.paper_key == "env":
        raise ConfigError(f"services.executor.paper_key: env needs {PRIVATE_KEY_ENV} in the environment")
    return generate_key()


class ExecutorService:
    """One executor for ``cfg.account_index``.

    Args:
        cfg: the stack config.
        ecfg: the executor section.
        key: the API private key (kept only until the signer is built).
        redis: an asyncio Redis client (bytes responses).
    """

    def __init__(self, cfg: StackConfig, ecfg: ExecutorConfig, key: SecretStr, redis: Any) -> None:
        self.cfg = cfg
        self.ecfg = ecfg
        self._key: SecretStr | None = key
        self.redis = redis
        self.bus = Bus(redis, cfg.ns, maxlen=cfg.stream_maxlen)
        self.exec_stream = self.bus.streams.exec(cfg.account_index)
        # market data first: when a book update and the intents it caused land in one read, the
        # engine must see the touch before the intents (the backtest's order; lockstep parity)
        self.inputs = [*[self.bus.streams.book(m) for m in cfg.markets], self.bus.streams.control,
                       self.bus.streams.intent(cfg.account_index)]
        self.rest = LighterRest(cfg.venue.rest_url, ecfg.reconcile_timeout_s)
        self.nonces = NonceManager(lambda: self.rest.next_nonce(cfg.account_index, cfg.api_key_index))
        self.signer: Signer | None = None
        self.engine: Engine | None = None
        self.feed: AccountFeed | None = None
        self.seen = SeenIds()
        self.io_lock = asyncio.Lock()
        self._stop = asyncio.Event()
        self._feed_sessions = 0
        self._token: tuple[str, float] | None = None
        self.started_at = time.time()
        self.processed = 0
        self._deferred_seen = 0
        # lockstep barrier: every other consumer group on market data, params and our exec stream
        self.intent_stream = self.bus.streams.intent(cfg.account_index)
        self.quiet = StreamWatch(redis, cfg.ns, ("md:*", "params:*", f"exec:{cfg.account_index}"),
                                 exclude_groups=(SERVICE,))
        self._published_rank: OrderedDict[str, int] = OrderedDict()  # exec event id -> publication number
        self._published_n = 0
        self.barrier_waits = 0
        self.barrier_timeouts = 0

    # ------------------------------------------------------------------ lifecycle

    def stop(self) -> None:
        """Ask :meth:`run` to shut down."""
        self._stop.set()

    def health(self) -> dict[str, Any]:
        """Body of ``GET /health``."""
        e = self.engine
        return {"status": "ok", "service": SERVICE, "account_index": self.cfg.account_index,
                "risk_state": e.state if e else "halted", "risk_reason": e.state_reason if e else "starting",
                "feed_connected": bool(self.feed and self.feed.connected.is_set()),
                "processed": self.processed, "uptime_s": round(time.time() - self.started_at, 1)}

    async def run(self) -> int:
        """Run until :meth:`stop`; returns the exit code (0)."""
        http = await start_http(self.ecfg.http_port, self.health)
        RISK_STATE.set(_STATE_VALUE["halted"])
        tasks: list[asyncio.Task] = []
        try:
            assert self._key is not None
            self.signer = await Signer.create(self.cfg.venue.rest_url, self.cfg.account_index,
                                              self.cfg.api_key_index, self.cfg.venue.chain_id, self._key)
            self._key = None
            markets = await self._load_markets()
            if markets is None:
                return 0
            await self._build_engine(markets)
            self.feed = AccountFeed(self.cfg.venue.ws_url, self.cfg.account_index, self._auth_token,
                                    self._on_feed, on_connected=self._on_feed_connected,
                                    ping_interval_s=self.ecfg.ws_ping_interval_s,
                                    backoff_max_s=self.ecfg.ws_backoff_max_s)
            tasks.append(asyncio.create_task(self.feed.run(), name="account-feed"))
            tasks.append(asyncio.create_task(self._consume(), name="consume"))
            if self.ecfg.order_check_s > 0:
                tasks.append(asyncio.create_task(self._check_orders_loop(), name="order-check"))
            reconcile = asyncio.create_task(self._reconcile_loop(), name="reconcile")
            stop_wait = asyncio.create_task(self._stop.wait())
            # the feed and the consumer run until stopped; if one ends on its own, shut down
            done, _ = await asyncio.wait([stop_wait, *tasks], return_when=asyncio.FIRST_COMPLETED)
            tasks.append(reconcile)
            for t in done:
                if t is not stop_wait and t.exception() is not None:
                    log.error("task %s failed: %r", t.get_name(), t.exception())
            stop_wait.cancel()
            await self._shutdown()
            return 0
        finally:
            if self.feed is not None:
                self.feed.stop()
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
            await self.rest.close()
            if self.signer is not None:
                with contextlib.suppress(Exception):
                    await self.signer.close()
            await http.cleanup()

    async def _sleep(self, seconds: float) -> bool:
        """Sleep unless stopped; True if stop was requested."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)
        return self._stop.is_set()

    async def _load_markets(self) -> dict[str, MarketInfo] | None:
        while True:
            try:
                allm = await self.rest.markets()
                markets = {s: allm[s] for s in self.cfg.markets if s in allm}
                missing = [s for s in self.cfg.markets if s not in allm]
                if missing:
                    log.warning("venue has no market(s) %s; not trading them", missing)
                if markets:
                    return markets
                raise RestError("no configured market on the venue")
            except VenueError as exc:
                log.warning("market metadata: %s; retrying", exc)
                await self._publish([RiskState(id=f"mdfail{time.time_ns():x}"[:16], ts_event=time.time_ns(),
                                               source=SERVICE, state="halted",
                                               reason=f"venue unreachable: {exc}")])
            if await self._sleep(self.ecfg.reconcile_retry_s):
                return None

    async def _build_engine(self, markets: dict[str, MarketInfo]) -> None:
        history = [d.event for d in await self.bus.read_all(self.exec_stream) if d.event is not None]
        start = max(1, min(int(time.time() * 1000), MAX_CLIENT_ORDER_INDEX))
        engine = Engine(self.ecfg, markets, self.cfg.account_index, next_client_order_index=start,
                        reconciled=False)
        engine.restore(history)
        self.engine = engine
        log.info("executor for account %d: markets %s, %d exec events folded, next client order index %d",
                 self.cfg.account_index, sorted(markets), len(history), engine.next_coi)
        await self._publish([engine.state_event(time.time_ns())])

    def _auth_token(self) -> str:
        now = time.time()
        if self._token is None or self._token[1] - now < 300:
            assert self.signer is not None
            self._token = (self.signer.auth_token(self.ecfg.auth_token_ttl_s), now + self.ecfg.auth_token_ttl_s)
        return self._token[0]

    # ------------------------------------------------------------------ reconciliation

    async def _reconcile_loop(self) -> None:
        while not self._stop.is_set():
            try:
                await self._reconcile()
                return
            except (VenueError, NonceError, SignError, TimeoutError, ConnectionError) as exc:
                reason = f"reconciliation failed: {exc}"
            except Exception as exc:  # fail closed on anything
                log.exception("reconciliation error")
                reason = f"reconciliation failed: {type(exc).__name__}: {exc}"
            log.warning("%s; staying halted, retrying in %.1fs", reason, self.ecfg.reconcile_retry_s)
            async with self.io_lock:
                assert self.engine is not None
                await self._publish(self.engine.set_reconciled(False, reason, time.time_ns()))
            if await self._sleep(self.ecfg.reconcile_retry_s):
                return

    async def _reconcile(self) -> None:
        engine = self.engine
        assert engine is not None and self.feed is not None
        await self.nonces.sync()
        positions = await self.rest.positions(self.cfg.account_index)
        token = self._auth_token()
        resting = 0
        for m in engine.markets.values():
            orders = await self.rest.active_orders(self.cfg.account_index, m.market_id, token)
            resting += len(orders)
        canceled = False
        if resting and self.ecfg.cancel_on_start:
            log.info("reconcile: canceling %d resting order(s) of the account", resting)
            await self._cancel_all_resting()
            canceled = True
        try:
            await asyncio.wait_for(self.feed.connected.wait(), self.ecfg.reconcile_timeout_s)
        except TimeoutError:
            raise ConnectionError("account feed not connected") from None
        async with self.io_lock:
            outs: list[Event] = []
            for p in positions:
                mid = p.get("market_id")
                pos = parse_position(mid, p) if mid is not None else None
                if pos is None:
                    log.warning("reconcile: skipping malformed position %s", str(p)[:200])
                else:
                    outs += engine.on_venue_position(pos)
            # read under the lock: no intent or control is consumed between the read and the restore
            await self._restore_from_streams()
            outs += engine.set_reconciled(True, ts_ns=time.time_ns())
            await self._publish(outs)
        if engine.killed and resting and not canceled:
            log.info("reconcile: kill switch in force: canceling %d resting order(s) of the account", resting)
            await self._cancel_all_resting()
        log.info("reconciled: account positions %s; state %s", engine.account_pos, engine.state)

    async def _restore_from_streams(self) -> tuple[int, int]:
        """Fold the intent stream's standing wishes and the whole control stream, merged by
        Redis entry id (a control after an intent of the same ms), into the engine
        (``Engine.restore_intents``); mark the folded controls' ids seen. Call with the I/O lock
        held. Returns ``(wishes restored, control events folded)``."""
        engine = self.engine
        assert engine is not None
        controls = await self._control_entries()
        merged = sorted([(k, 0, ev) for k, ev in await self._latest_intent_entries()]
                        + [(k, 1, ev) for k, ev in controls], key=lambda x: (x[0], x[1]))
        restored = engine.restore_intents([ev for _, _, ev in merged])
        for _, ev in controls:
            self.seen.add(ev.id)  # applied by the fold: not again when the group delivers it
        if restored:
            RESTORED_INTENTS.inc(restored)
            log.info("reconcile: %d standing target(s)/resting wish(es) restored from the intent stream; "
                     "applied at each market's first market data", restored)
        if controls:
            RESTORED_CONTROLS.inc(len(controls))
            log.warning("reconcile: control state restored from %d control event(s): %s", len(controls),
                        engine.control_summary())
        return restored, len(controls)

    async def _cancel_all_resting(self) -> None:
        """Cancel every resting order of the account (cancel-all, tx 16).

        Raises:
            VenueError: the venue refused it.
        """
        assert self.engine is not None
        res = await self._execute([self.engine.cancel_all_command(time.time_ns())])
        if not res[0].ok:
            raise RestError(f"cancel-all failed: {res[0].code} {res[0].message}")

    async def _control_entries(self) -> list[tuple[tuple[int, int], Control]]:
        """The whole control stream, oldest first, as ``((ms, seq) of the entry id, Control)``:
        a read (XRANGE), not a consume. Undecodable entries and other event types are skipped
        (the consumer dead-letters them)."""
        out: list[tuple[tuple[int, int], Control]] = []
        for d in await self.bus.read_all(self.bus.streams.control):
            if isinstance(d.event, Control):
                ms, seq = (int(x) for x in d.entry_id.split("-"))
                out.append(((ms, seq), d.event))
        return out

    async def _latest_intents(self, chunk: int = 1000, max_entries: int = 200_000) -> list[Event]:
        """The events of :meth:`_latest_intent_entries` (oldest first)."""
        return [ev for _, ev in await self._latest_intent_entries(chunk, max_entries)]

    async def _latest_intent_entries(self, chunk: int = 1000,
                                     max_entries: int = 200_000) -> list[tuple[tuple[int, int], Event]]:
        """The intent stream's wishes that may still stand, oldest first, as ``((ms, seq) of the
        entry id, event)``: read backwards
        (XREVRANGE, ``chunk`` entries per call) back to ``max_intent_age_ms`` before the newest
        intent's ``ts_event`` (the whole stream when the age check is off), at most
        ``max_entries`` entries. Only ``TargetPosition``, ``QuoteIntent``, ``RestingOrders`` and
        ``CancelIntent``; undecodable entries are skipped (the consumer dead-letters them)."""
        stream = self.bus.streams.intent(self.cfg.account_index)
        age_ns = self.ecfg.max_intent_age_ms * 1_000_000
        newest: int | None = None
        out: list[tuple[tuple[int, int], Event]] = []
        top, read = "+", 0
        while read < max_entries:
            batch = await self.redis.xrevrange(stream, max=top, min="-", count=chunk)
            if not batch:
                break
            read += len(batch)
            done = False
            for eid, fields in batch:
                raw = fields.get(EVENT_FIELD)
                try:
                    ev = decode(raw) if raw is not None else None
                except DecodeError:
                    ev = None
                if not isinstance(ev, TargetPosition | QuoteIntent | RestingOrders | CancelIntent):
                    continue
                if newest is None:
                    newest = ev.ts_event
                if age_ns and ev.ts_event < newest - age_ns:
                    done = True
                    break
                key = eid.decode() if isinstance(eid, bytes) else str(eid)
                ms, seq = (int(x) for x in key.split("-"))
                out.append(((ms, seq), ev))
            if done or len(batch) < chunk:
                break
            last = batch[-1][0].decode() if isinstance(batch[-1][0], bytes) else batch[-1][0]
            ms, seq = (int(x) for x in last.split("-"))
            if ms == 0 and seq == 0:
                break
            top = f"{ms}-{seq - 1}" if seq > 0 else f"{ms - 1}-18446744073709551615"
        out.reverse()
        return out

    # ------------------------------------------------------------------ stale orders

    async def _check_orders_loop(self) -> None:
        """Every ``order_check_s``: :meth:`_check_stale_orders` (errors are logged, never fatal)."""
        while not await self._sleep(self.ecfg.order_check_s):
            engine = self.engine
            if engine is None or not engine.reconciled:
                continue
            try:
                await self._check_stale_orders()
            except (VenueError, NonceError, SignError, TimeoutError, ConnectionError) as exc:
                log.warning("stale-order check failed: %s", exc)
            except Exception:  # never let the check kill the service
                log.exception("stale-order check error")

    async def _check_stale_orders(self) -> dict[int, str]:
        """Ask the venue about the engine's stale orders and report the answers back (see the
        module docstring); returns ``{client_order_index: how}`` for the resolved ones."""
        engine = self.engine
        assert engine is not None
        async with self.io_lock:
            stale = engine.stale_orders()
        if not stale:
            return {}
        token = self._auth_token()
        acct = self.cfg.account_index
        by_market: dict[int, list[StaleOrder]] = {}
        for s in stale:
            by_market.setdefault(s.market_id, []).append(s)
        found: dict[int, tuple[int, dict[str, Any]]] = {}

        def index(mid: int, orders: list[dict[str, Any]], wanted: list[StaleOrder]) -> None:
            by_oi = {s.order_index: s.client_order_index for s in wanted if s.order_index}
            for o in orders:
                try:
                    coi = int(o.get("client_order_index") or 0) or by_oi.get(int(o.get("order_index") or 0), 0)
                except (TypeError, ValueError):
                    continue
                if coi and coi not in found:
                    found[coi] = (mid, o)

        for mid, items in by_market.items():
            index(mid, await self.rest.active_orders(acct, mid, token), items)
            if any(s.client_order_index not in found for s in items):
                index(mid, await self.rest.inactive_orders(acct, mid, token), items)
        resolved: dict[int, str] = {}
        async with self.io_lock:
            outs: list[Event] = []
            for s in stale:
                coi = s.client_order_index
                hit = found.get(coi)
                if hit is None:
                    got = engine.on_order_unknown(coi, f"not among the account's active or last 100 inactive "
                                                       f"orders in {s.market}")
                    how = "unknown" if got else ""
                else:
                    mid, o = hit
                    rep = parse_order(mid, {**o, "client_order_index": coi})
                    status = rep.status if rep is not None else ""
                    if rep is not None and (status == "filled" or status.startswith(("canceled", "expired"))):
                        live = coi in engine.orders
                        got = engine.on_venue_order(rep)
                        how = ("filled" if status == "filled" else "canceled") if live else ""
                    else:
                        got = []
                        how = "cancel_resent" if engine.on_order_still_open(coi) else ""
                outs += got
                if how:
                    resolved[coi] = how
                    STALE_RESOLVED.labels(how).inc()
                    log.warning("stale %s order %d in %s (%.1fs without a final update): %s", s.why, coi, s.market,
                                s.age_ns / 1e9, how)
            await self._publish(outs)
            cmds = engine.take_commands()
        if cmds:
            await self._execute(cmds)
        return resolved

    # ------------------------------------------------------------------ bus inputs

    async def _consume(self) -> None:
        consumer = Consumer(self.bus, self.inputs, SERVICE, consumer_name(SERVICE))
        await consumer.start()
        assert self.engine is not None
        lag_task = asyncio.create_task(report_lag(consumer, SERVICE))
        try:
            await self._consume_loop(consumer)
        finally:
            lag_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await lag_task

    async def _consume_loop(self, consumer: Consumer) -> None:
        assert self.engine is not None
        while not self._stop.is_set():
            batch = await consumer.fetch()
            if not batch:
                continue
            if self.ecfg.lockstep_barrier and any(d.stream == self.intent_stream for d in batch):
                batch = await self._barrier(consumer, batch)
            events: list[Event] = []
            delivered = []
            for d in batch:
                if d.event is None:
                    DEAD_LETTERS.labels(SERVICE, d.stream).inc()
                    log.warning("dead letter from %s %s: %s", d.stream, d.entry_id, d.error)
                    continue
                EVENTS_IN.labels(SERVICE, d.stream).inc()
                if not self.seen.add(d.event.id):
                    DUPLICATES.labels(SERVICE, d.stream).inc()
                    continue
                events.append(d.event)
                delivered.append(d)
            async with self.io_lock:
                t0 = time.perf_counter()
                try:
                    outs = self.engine.on_events(events)
                    for _ in events:  # the batch is processed jointly (netting): each event's share
                        PROCESSING_SECONDS.labels(SERVICE).observe((time.perf_counter() - t0) / len(events))
                except Exception:  # an engine bug must not kill the service or lose the inputs
                    log.exception("engine failed on a batch of %d events; retrying one by one", len(events))
                    self.engine.take_commands()
                    outs = self._one_by_one(delivered)
                cmds = self.engine.take_commands()
                await consumer.commit(batch, [(self.exec_stream, e) for e in outs], SERVICE)
                self._observe(outs)
            self.processed += len(events)
            if cmds:
                await self._execute(cmds)
            else:
                self._observe_budget()

    async def _barrier(self, consumer: Consumer, batch: list[Delivery]) -> list[Delivery]:
        """Lockstep barrier (see module): wait for the other consumer groups to be idle, add what
        a non-blocking read returns, repeat until it returns nothing; then order the batch as the
        backtest would (other inputs in arrival order, then the intents in
        :meth:`_backtest_order`)."""
        self.barrier_waits += 1
        while not self._stop.is_set():
            if not await self._wait_quiet():
                break
            more = await consumer.fetch_new()
            if not more:
                break
            batch = batch + more
        rest = [d for d in batch if d.stream != self.intent_stream]
        intents = [d for d in batch if d.stream == self.intent_stream]
        return rest + self._backtest_order(intents)

    async def _wait_quiet(self) -> bool:
        """Poll until :attr:`quiet` reports every other group idle (True), or give up after
        ``lockstep_timeout_s`` wall seconds (False, logged)."""
        deadline = time.monotonic() + self.ecfg.lockstep_timeout_s
        while True:
            idle, _ = await self.quiet.poll()
            if idle:
                return True
            if time.monotonic() > deadline or self._stop.is_set():
                self.barrier_timeouts += 1
                log.warning("lockstep barrier: the other consumers did not go idle within %.1fs; processing %s",
                            self.ecfg.lockstep_timeout_s, "what was read")
                return False
            await asyncio.sleep(0.002)

    def _backtest_order(self, intents: list[Delivery]) -> list[Delivery]:
        """The intents of one barrier batch in the backtest's order (``lighter_stack/backtest/engine.py``:
        strategies answering the executor's outputs are fed output by output, each output to the
        strategies in registration order, before the strategies see the market-data event; the
        answers to a market-data event come in registration order). Sort key: publication number
        of the exec event that caused the intent (``causation_id``; other causes -- market data,
        params -- after all exec events), then the strategy's position in ``lockstep_order``
        (unlisted: after, by name), then arrival. Undecodable entries keep their place at the end."""
        order = {name: i for i, name in enumerate(self.ecfg.lockstep_order)}
        late = len(order)
        never = self._published_n + 1

        def key(item: tuple[int, Delivery]) -> tuple[int, int, str, int]:
            k, d = item
            ev = d.event
            if ev is None:
                return (never + 1, late, "", k)
            cause = ev.causation_id
            rank = self._published_rank.get(cause, never) if cause else never
            name = str(getattr(ev, "strategy", ""))
            return (rank, order.get(name, late), name, k)

        return [d for _, d in sorted(enumerate(intents), key=key)]

    def _one_by_one(self, delivered: Sequence[Delivery]) -> list[Event]:
        """Feed events singly after a batch failed; an event that still fails is marked so that
        ``Consumer.commit`` writes it to the dead-letter stream with the reason."""
        assert self.engine is not None
        outs: list[Event] = []
        for d in delivered:
            try:
                outs.extend(self.engine.on_event(d.event))
            except Exception as exc:
                log.exception("engine failed on %s", d.event.id)
                d.error = f"engine error: {type(exc).__name__}: {exc}"
                DEAD_LETTERS.labels(SERVICE, d.stream).inc()
        return outs

    # ------------------------------------------------------------------ venue I/O

    async def _execute(self, cmds: Sequence[OrderCommand]) -> list[SendResult]:
        """Sign and send one engine step's commands, ``batch_max_txs`` per request, in order;
        publish the engine's reaction to each result."""
        results: list[SendResult] = []
        assert self.engine is not None
        size = self.ecfg.batch_max_txs
        for i in range(0, len(cmds), size):
            chunk = list(cmds[i:i + size])
            async with self.io_lock:
                chunk_results = await self._send_chunk(chunk)
                outs: list[Event] = []
                for cmd, res in zip(chunk, chunk_results, strict=True):
                    if cmd.kind == "create" and res.ok:
                        ORDERS_SENT.labels(cmd.market, cmd.side).inc()
                    if not res.ok:
                        log.warning("%s %s coi=%d failed: %s %s", cmd.kind, cmd.market, cmd.client_order_index,
                                    res.code, res.message)
                    outs += self.engine.on_send_result(cmd, res.ok, res.code if res.code is not None else -1,
                                                       res.message, res.tx_hash)
                await self._publish(outs)
            results.extend(chunk_results)
        self._observe_budget()
        return results

    def _sent(self, endpoint: str, res: SendResult) -> None:
        REQUESTS.labels(endpoint).inc()
        if res.volume_quota_remaining is not None:
            VOLUME_QUOTA.set(res.volume_quota_remaining)
        if res.code == RATE_LIMITED:
            RATE_LIMITED_TOTAL.inc()
            log.warning("%s: 23000 too many requests (%s); the engine backs off", endpoint, res.message)

    async def _send_chunk(self, chunk: list[OrderCommand]) -> list[SendResult]:
        """Send up to ``batch_max_txs`` commands in one request (``sendTx`` for one); returns
        one result per command. After a failed batch ``nextNonce`` says how many txs were
        taken; the refused one keeps the error, later ones are sent again (up to three rounds;
        not after 23000 or an unknown outcome)."""
        if len(chunk) == 1:
            return [await self._send(chunk[0])]
        assert self.signer is not None
        results: list[SendResult | None] = [None] * len(chunk)
        todo = list(range(len(chunk)))
        async with self.nonces.lock:
            for _round in range(3):
                if not todo:
                    break
                try:
                    await self.nonces.ensure_synced()
                except NonceError as exc:
                    for i in todo:
                        results[i] = SendResult(False, -1, str(exc))
                    todo = []
                    break
                signed = []
                for i in todo:
                    nonce = self.nonces.allocate()
                    try:
                        signed.append((i, self.signer.sign(chunk[i], nonce)))
                    except SignError as exc:
                        self.nonces.release(nonce)
                        results[i] = SendResult(False, -1, f"signing failed: {exc}")
                todo = []
                if not signed:
                    break
                t0 = time.perf_counter()
                res = await self.rest.send_tx_batch([tx.tx_type for _, tx in signed], [tx.tx_info for _, tx in signed])
                SEND_SECONDS.observe(time.perf_counter() - t0)
                self._sent("sendTxBatch", res)
                if res.ok:
                    for k, (i, _tx) in enumerate(signed):
                        h = res.tx_hashes[k] if k < len(res.tx_hashes) else ""
                        results[i] = SendResult(True, 200, res.message, h, (h,), res.volume_quota_remaining)
                    continue
                try:
                    taken = max(0, min(len(signed), await self.nonces.sync() - signed[0][1].nonce))
                    NONCE_RESYNCS.inc()
                except NonceError as exc:
                    log.warning("batch failed (%s %s) and nextNonce too: %s", res.code, res.message, exc)
                    for i, _tx in signed:
                        results[i] = SendResult(False, None, f"{res.message}; outcome unknown: {exc}")
                    break
                for k, (i, _tx) in enumerate(signed):
                    if k < taken:
                        results[i] = SendResult(True, 200, "taken (batch)", "")
                    elif res.code in (RATE_LIMITED, None) or (k == taken and res.code != 21104):
                        results[i] = res
                    else:
                        todo.append(i)
            for i in todo:
                results[i] = SendResult(False, -1, "not sent: the batch kept failing")
        return [r if r is not None else SendResult(False, -1, "not sent") for r in results]

    def _observe_budget(self) -> None:
        e = self.engine
        if e is None:
            return
        used = e.budget_used()
        BUDGET_USED.set(used)
        REQUESTS_PER_MINUTE.set(used // max(1, self.ecfg.send_weight()))
        BUDGET_REMAINING.set(e.budget_remaining())
        if e.deferred_updates > self._deferred_seen:
            DEFERRED_UPDATES.inc(e.deferred_updates - self._deferred_seen)
            self._deferred_seen = e.deferred_updates

    async def _send(self, cmd: OrderCommand) -> SendResult:
        assert self.signer is not None
        async with self.nonces.lock:
            for attempt in range(2):
                try:
                    await self.nonces.ensure_synced()
                except NonceError as exc:
                    return SendResult(False, -1, str(exc))
                nonce = self.nonces.allocate()
                try:
                    tx = self.signer.sign(cmd, nonce)
                except SignError as exc:
                    self.nonces.release(nonce)
                    return SendResult(False, -1, f"signing failed: {exc}")
                t0 = time.perf_counter()
                res = await self.rest.send_tx(tx.tx_type, tx.tx_info)
                SEND_SECONDS.observe(time.perf_counter() - t0)
                self._sent("sendTx", res)
                if res.ok:
                    return res
                self.nonces.report_error(res.code, nonce)
                if self.nonces.needs_sync:
                    NONCE_RESYNCS.inc()
                if res.code == 21104 and attempt == 0:
                    continue
                return res
        return SendResult(False, -1, "unreachable")  # pragma: no cover

    async def _on_feed_connected(self) -> None:
        self._feed_sessions += 1

    async def _on_feed(self, kind: str, msg: dict[str, Any]) -> None:
        engine = self.engine
        if engine is None:
            return
        snapshot = str(msg.get("type", "")).startswith("subscribed/")
        async with self.io_lock:
            outs: list[Event] = []
            for rep in feed_reports(kind, msg):  # Lighter's JSON parsed here, malformed entries skipped
                if isinstance(rep, VenueTrade):
                    if snapshot and self._feed_sessions <= 1:
                        engine.mark_trade_seen(rep)  # history from before this run: positions come from REST
                    else:
                        outs += engine.on_venue_trade(rep)
                elif isinstance(rep, VenueOrder):
                    outs += engine.on_venue_order(rep)
                else:
                    outs += engine.on_venue_position(rep)
            await self._publish(outs)
            cmds = engine.take_commands()
        if cmds:
            await self._execute(cmds)

    # ------------------------------------------------------------------ output

    async def _publish(self, events: Sequence[Event]) -> None:
        if not events:
            return
        await self.bus.publish(self.exec_stream, events)
        EVENTS_OUT.labels(SERVICE, self.exec_stream).inc(len(events))
        self._observe(events)

    def _observe(self, events: Sequence[Event]) -> None:
        crosses: set[tuple[str | None, str]] = set()
        if self.ecfg.lockstep_barrier:  # publication order of our outputs, for _backtest_order
            ranks = self._published_rank
            for ev in events:
                self._published_n += 1
                ranks[ev.id] = self._published_n
            while len(ranks) > 100_000:
                ranks.popitem(last=False)
        for ev in events:
            if isinstance(ev, Fill):
                FILLS.labels(ev.market, ev.liquidity).inc()
                if ev.liquidity == "internal":
                    crosses.add((ev.causation_id, ev.market))
            elif isinstance(ev, OrderRejected):
                REJECTS.labels(str(ev.code)).inc()
                if ev.code == 0 and ev.reason.startswith("self-trade guard"):
                    SELF_TRADE_REFUSALS.labels(ev.market).inc()
            elif isinstance(ev, PositionSnapshot):
                STRATEGY_POSITION.labels(ev.strategy, ev.market).set(ev.position)
                ACCOUNT_POSITION.labels(ev.market).set(ev.account_position)
            elif isinstance(ev, RiskState):
                RISK_STATE.set(_STATE_VALUE.get(ev.state, 2))
                log.info("risk state %s: %s", ev.state, ev.reason)
            elif isinstance(ev, GuardState):
                GUARD_ENGAGED.labels(ev.guard, ev.market, ev.side).set(1 if ev.engaged else 0)
                if ev.engaged:
                    GUARD_ENGAGEMENTS.labels(ev.guard, ev.market, ev.side).inc()
                log.info("guard %s %s %s %s: %s", ev.guard, ev.market, ev.side,
                         "engaged" if ev.engaged else "released", ev.reason)
        for _, market in crosses:
            INTERNAL_CROSSES.labels(market).inc()

    async def _shutdown(self) -> None:
        engine = self.engine
        if engine is None or not self.ecfg.cancel_on_shutdown or self.nonces.next_nonce is None:
            return
        log.info("shutdown: canceling resting orders (positions are kept)")
        try:
            res = await asyncio.wait_for(self._execute([engine.cancel_all_command(time.time_ns())]),
                                         self.ecfg.reconcile_timeout_s)
            if not res[0].ok:
                log.warning("shutdown cancel-all failed: %s %s", res[0].code, res[0].message)
        except Exception as exc:
            log.warning("shutdown cancel-all failed: %s", exc)


async def _amain(cfg: StackConfig) -> int:
    ecfg = cfg.section("executor", ExecutorConfig)
    key = resolve_key(cfg, ecfg)
    url = resolve_redis_url(cfg.redis_url)
    redis = async_client(url)
    try:
        svc = ExecutorService(cfg, ecfg, key, redis)
        install_stop_handlers(svc.stop)
        return await svc.run()
    finally:
        await redis.aclose()


def main(cfg: StackConfig) -> int:
    """Run the executor until SIGTERM/SIGINT; returns the exit code.

    Raises:
        ConfigError: invalid ``services.executor`` section, live mode not allowed, missing key
            or Redis URL.
    """
    setup_logging()
    return asyncio.run(_amain(cfg))
