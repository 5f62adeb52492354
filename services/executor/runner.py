"""The executor service: bus + venue I/O around the pure :class:`~services.executor.engine.Engine`.

Start-up (fail closed):

1. Config section ``services.executor`` (:class:`~services.executor.config.ExecutorConfig`), the
   API key (live: ``cfg.require_live_allowed()`` and ``LIGHTER_API_PRIVATE_KEY`` only; paper:
   the env key if set, else a throwaway key), Redis, ``/health`` + ``/metrics``, then the account
   lock (another executor holds it: wait ``lock_wait_s``, then exit 3; :mod:`.account_lock`).
2. Market metadata from ``orderBookDetails`` (retried until the venue answers), in paper mode
   the API key's registration (below; retried), then the
   configured leverage per market (``leverage``; one ``updateLeverage`` tx each,
   :mod:`services.executor.leverage`): a refusal stops start-up (exit code 2).
3. The exec stream ``{ns}:exec:{account}`` is folded (``Bus.read_all``) to rebuild per-strategy
   virtual positions, seen venue trade ids and the client order index counter. The first client
   order index is ``max(last index in the exec stream + 1, unix time in ms)``: unique across
   restarts even when the stream was trimmed, as long as fewer than one order per ms is sent on
   average.
4. The engine starts HALTED (``RiskState halted "starting: not reconciled yet"``); what the
   executor will use (mode, account and API key index, markets, limits, request budget,
   protective stops, dead-man switch) is logged at INFO (``executor start-up: {...}``) and served
   on ``/health`` (``startup``). The account
   feed (WS) is started; reconciliation then (paper mode only) registers the API key on the
   venue unless ``apikeys`` reports it already (``ChangePubKey`` signed by
   ``LIGHTER_L1_PRIVATE_KEY`` or the paper L1 key; :mod:`~services.executor.keys`), syncs the nonce, reads the account strictly
   (``GET account``: positions and collateral; an answer without a positions list, a malformed
   position, no collateral, a timeout or an HTTP error fails the attempt -- never read as "no
   positions") and the account's resting orders (``accountActiveOrders`` per market, auth
   header; a malformed list fails too), adopts the protective stops a previous run left
   (``protective_stop``), cancels the orders of ``cancel_scope`` (default ``own``: the ones whose client order index
   is ours, one cancel tx each; ``all``: one cancel-all tx 16; ``none``: none;
   :meth:`ExecutorService._cancel_all_resting`) and waits for the account feed to be subscribed.
   Holding the I/O lock (no feed report applied meanwhile) it reads the account again (its
   positions are the ones applied) and the account's REST trade history back to the newest fill
   on the exec stream, and turns every trade side not seen yet into exactly one ``Fill`` (fills
   missed while down; :mod:`services.executor.recovery`; the trade feed's snapshots go the same
   way). It then
   reads the intent stream backwards (XREVRANGE: a read, not a consume -- the entries may be
   acked already) for the strategies' latest ``TargetPosition`` and resting wish per (strategy,
   market), back to ``max_intent_age_ms`` before the newest intent, and hands them to
   ``Engine.restore_intents``: the first market data of each market re-pursues them (stale ones
   are dropped there). With them it reads the whole control stream (XRANGE, also a read: the
   entries may be acked already), merged with the intents by Redis entry id, so the operator's
   ``kill``/``pause``/``flatten``/``resume`` survive a restart: after a kill the executor stays
   HALTED until ``resume *`` (a kill in force also cancels the account's resting orders,
   account-wide as the live kill, when ``cancel_on_start`` is off); a flatten is resumed. The ids of the folded ``Control`` events
   are marked seen, so the consumer group does not apply one again when it delivers an entry
   that arrived while the executor was down. Success -> RUNNING (HALTED after a kill, REDUCING
   while flattening); failure -> stays HALTED with the reason, retried every
   ``reconcile_retry_s``.

Running: one consumer (group ``executor``) over ``{ns}:intent:{account}``, ``{ns}:control`` and
``{ns}:md:book:{SYM}``, through the shared :class:`~shared.service.ConsumerLoop` (this service is
its handler). Every input is screened first (:class:`~shared.screening.Screener`, also for the
start-up reads of the intent and control streams): an event type that does not belong on its
stream, a market that does not match it, a crossed or out-of-band book, an intent of a strategy
not in the config (``StackConfig.strategy_names``) or for a market the venue does not list,
negative or huge sizes go to ``{ns}:dlq`` with the reason. Each batch goes to ``Engine.on_events`` (after an engine error: one event at a
time, a failing one dead-lettered); its events are published with ``Consumer.commit`` (atomic
with the acks, undecodable entries go to the DLQ) and only then are its order commands signed
and sent (at-most-once sending: a crash between commit and send loses
the order, never duplicates it). Send results and account-feed reports go through the engine
and are published with ``Bus.publish``. One lock serialises sends and feed processing, so an
``OrderAccepted`` is published before the fills of that order.

Redis outages (:mod:`shared.outage`): the consume loop waits them out (``ConsumerLoop``). The
events of venue reports and send results that cannot be published are kept in order in an
outbox (none is lost) and published as soon as Redis answers, before the next consumed batch's
outputs (a publish whose answer was lost is checked against the stream's tail first: never
twice). While Redis is unreachable or the outbox is not empty, **no new order is sent**: a
create command is refused locally (``OrderRejected`` code -1, ``not sent: ...``; the strategy
retries later); cancels still go out (they only reduce risk). ``/health`` says ``degraded``
meanwhile. When Redis came back without its data, the executor publishes every (strategy,
market) ``PositionSnapshot`` and its ``RiskState`` again, so strategies whose fills were lost
learn their positions.

Lockstep barrier (``lockstep_barrier``, off by default; ``lighter-stack demo --lockstep`` turns
it on): a read that returns intents is completed and ordered as the backtest would feed it
before it becomes one engine batch; see :mod:`services.executor.lockstep`.

Sending: the commands of one engine step (one consumer batch, or one account-feed message) are
signed with consecutive nonces and sent together, in chunks of ``batch_max_txs`` (15): a single
command as ``sendTx``, more as one ``sendTxBatch`` request -- so a requote (cancel + create)
costs one request, as the engine's request budget assumes. When a batch fails, ``nextNonce``
tells how many of its txs the venue took (they count as sent); the refused one gets the error
and the ones after it are sent again (up to three rounds). Error 23000 (too many requests) is
reported to the engine, which backs off by event time and keeps the wanted state (see the
engine's ``on_send_result``); it never stops the service.

Stale orders and the cancels of our resting orders at start and shutdown:
:mod:`services.executor.venue_orders`.

Dead-man switch (``dead_man_switch_s``, off by default): once reconciled, a scheduled cancel-all is
kept ahead of the wall clock (:mod:`services.executor.deadman`).

Shutdown (SIGTERM/SIGINT): stop consuming, abort the dead-man switch, cancel the resting orders of
``cancel_scope`` (by default only ours; protective stops stay with the positions), keep
positions, close connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Sequence
from typing import Any

from pydantic import SecretStr
from redis.exceptions import ConnectionError as RedisConnectionError

from shared.bus import Bus, Consumer, Delivery
from shared.config import StackConfig
from shared.events import (
    CancelIntent,
    Control,
    Event,
    Fill,
    GuardState,
    OrderAccepted,
    OrderRejected,
    PositionMismatch,
    PositionSnapshot,
    QuoteIntent,
    RestingOrders,
    RiskState,
    TargetPosition,
    derive_id,
)
from shared.lighter_rest import RestError
from shared.markets import MarketInfo
from shared.metrics import (
    start_http,
)
from shared.outage import BUS_DOWN_ERRORS, BusLink
from shared.quiet import StreamWatch
from shared.redis_util import async_client, resolve_redis_url
from shared.screening import Screener
from shared.service import (
    BatchHandler,
    ConsumerLoop,
    SeenIds,
    consumer_name,
    feed_engine,
    install_stop_handlers,
    setup_logging,
)
from shared.venue.errors import VenueError
from shared.venue.reports import VenueOrder, VenueTrade

from .account_lock import EXIT_LOCKED, AccountLock
from .config import ExecutorConfig
from .deadman import DeadManSwitch
from .engine import MAX_CLIENT_ORDER_INDEX, Engine, OrderCommand
from .keys import ensure_registered, paper_l1_key, resolve_key
from .leverage import LeverageError, apply_leverage, leverage_plan
from .lockstep import LockstepBarrier
from .metrics import (
    ACCOUNT_POSITION,
    BUDGET_REMAINING,
    BUDGET_USED,
    ENGINE_COUNTERS,
    FILLS,
    GUARD_ENGAGED,
    GUARD_ENGAGEMENTS,
    INTENTS,
    INTERNAL_CROSSES,
    ORDERS_SENT,
    POSITION_MISMATCH,
    PROTECTIVE_STOPS,
    REJECTS,
    REQUESTS_PER_MINUTE,
    RESTORED_CONTROLS,
    RESTORED_INTENTS,
    RISK_STATE,
    SELF_TRADE_REFUSALS,
    STATE_VALUE,
    STRATEGY_POSITION,
)
from .nonces import NonceError, NonceManager
from .outbox import Outbox
from .recovery import observe_mismatch, read_trade_history, recover_trades
from .sending import send_chunk, send_one
from .signer import Signer, SignError
from .startup import adopt_protective_stops, check_active_orders, latest_intent_entries, startup_summary
from .venue import AccountFeed, LighterRest, SendResult, feed_reports, parse_position
from .venue_orders import VenueOrderChecks

log = logging.getLogger("executor")

SERVICE = "executor"


class ExecutorService(VenueOrderChecks, BatchHandler):
    """One executor for ``cfg.account_index``; the :class:`~shared.service.BatchHandler` of its
    bus inputs (:meth:`gather`, :meth:`on_batch`, :meth:`after_commit`).

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
        self.account_lock = AccountLock(redis, cfg, ecfg)  # one executor per account (account_lock.py)
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
        self._counted: dict[str, int] = {}  # engine counters carried over to metrics (ENGINE_COUNTERS)
        # lockstep barrier: every other consumer group on market data, params and our exec stream
        self.intent_stream = self.bus.streams.intent(cfg.account_index)
        self.lockstep = LockstepBarrier(
            StreamWatch(redis, cfg.ns, ("md:*", "params:*", f"exec:{cfg.account_index}"), exclude_groups=(SERVICE,)),
            self.intent_stream, ecfg.lockstep_order, ecfg.lockstep_timeout_s, self._stop)
        self._cmds: list[OrderCommand] = []
        self.own_cois: set[int] = set()  # client order indices of OrderAccepted on the exec stream at start
        self.account_info: dict[str, Any] = {}  # what reconciliation read (collateral, positions, orders)
        self.dead_man = DeadManSwitch(ecfg.dead_man_switch_s, self._send_direct,
                                      lambda: self.engine is not None and self.engine.reconciled,
                                      ecfg.reconcile_retry_s)
        # semantic checks of every input (shared.screening); the venue's markets are added at start
        self.screener = Screener(cfg.ns, cfg.screening, strategies=cfg.strategy_names(), known_markets_only=True)
        self.link = BusLink(SERVICE)
        self.outbox = Outbox(self.bus, self.exec_stream, self.link, self.io_lock, SERVICE)  # Redis unreachable
        self.loop = ConsumerLoop(SERVICE, Consumer(self.bus, self.inputs, SERVICE, consumer_name(SERVICE)), self,
                                 self.seen, lock=self.io_lock, link=self.link)

    # ------------------------------------------------------------------ lifecycle

    def stop(self) -> None:
        """Ask :meth:`run` to shut down."""
        self._stop.set()

    def health(self) -> dict[str, Any]:
        """Body of ``GET /health``: ``degraded`` while Redis is unreachable or exec events wait in
        the outbox (no new orders then)."""
        e = self.engine
        held = f"{len(self.outbox)} exec event(s) not yet published" if len(self.outbox) else ""
        body = {"status": "ok", "service": SERVICE, "account_index": self.cfg.account_index,
                "api_key_index": self.cfg.api_key_index,
                "risk_state": e.state if e else "halted", "risk_reason": e.state_reason if e else "starting",
                "reconciled": bool(e and e.reconciled),
                "feed_connected": bool(self.feed and self.feed.connected.is_set()),
                "processed": self.processed, "uptime_s": round(time.time() - self.started_at, 1),
                "startup": self.startup_summary(), "account": self.account_info,
                "protective_stops": e.protective_status() if e else {"enabled": self.ecfg.protective_stop.enabled},
                "dead_man_switch": self.dead_man.status(), "unpublished": len(self.outbox),
                "account_lock": self.account_lock.status(),
                "new_orders": "allowed" if self._bus_ok() else "held: the bus is unreachable"}
        return self.link.health(body, held)

    def startup_summary(self) -> dict[str, Any]:
        """What this executor will trade with (:func:`~services.executor.startup.startup_summary`):
        logged at INFO at start, served on ``/health`` under ``startup``."""
        return startup_summary(self.cfg, self.ecfg, self.engine)

    async def run(self) -> int:
        """Run until :meth:`stop`; returns the exit code (0; 2 when the leverage cannot be set; 3 when
        another executor holds the account lock or took it)."""
        http = await start_http(self.ecfg.http_port, self.health)
        RISK_STATE.set(STATE_VALUE["halted"])
        tasks: list[asyncio.Task] = []
        try:
            if not await self.account_lock.acquire(self._stop):
                return EXIT_LOCKED
            assert self._key is not None
            self.signer = await Signer.create(self.cfg.venue.rest_url, self.cfg.account_index,
                                              self.cfg.api_key_index, self.cfg.venue.chain_id, self._key)
            self._key = None
            markets = await self._load_markets()
            if markets is None:
                return 0
            try:  # services.executor.leverage: fail closed before anything else is sent
                plan = leverage_plan(self.ecfg.leverage, markets)
                if not await self._register_paper_key():
                    return 0
                await apply_leverage(self.rest, self.nonces, self.signer, plan)
            except LeverageError as exc:
                log.error("start-up failed: %s", exc)
                return 2
            await self._build_engine(markets)
            if self.engine is None:
                return 0
            self.feed = AccountFeed(self.cfg.venue.ws_url, self.cfg.account_index, self._auth_token,
                                    self._on_feed, on_connected=self._on_feed_connected,
                                    ping_interval_s=self.ecfg.ws_ping_interval_s,
                                    backoff_max_s=self.ecfg.ws_backoff_max_s)
            tasks.append(asyncio.create_task(self.feed.run(), name="account-feed"))
            tasks.append(asyncio.create_task(self.outbox.run(self._stop), name="outbox"))
            tasks.append(asyncio.create_task(self.loop.run(self._stop), name="consume"))
            tasks.append(asyncio.create_task(self.account_lock.keep(self._stop), name="account-lock"))
            if self.ecfg.order_check_s > 0:
                tasks.append(asyncio.create_task(self._check_orders_loop(), name="order-check"))
            if self.ecfg.dead_man_switch_s > 0:
                tasks.append(asyncio.create_task(self.dead_man.run(self._stop), name="dead-man-switch"))
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
            await self.outbox.drain()
            return EXIT_LOCKED if self.account_lock.lost else 0
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
            await self.account_lock.release()

    async def _sleep(self, seconds: float) -> bool:
        """Sleep unless stopped; True if stop was requested."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)
        return self._stop.is_set()

    async def _load_markets(self) -> dict[str, MarketInfo] | None:
        while True:
            try:
                allm = await self.rest.markets()
                self.screener.markets.update(allm)  # an intent for a market the venue lacks: unknown-market
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

    async def _register_paper_key(self) -> bool:
        """Paper mode: register the API key on the venue (:func:`~services.executor.keys.ensure_registered`)
        before anything is signed with it -- the leverage txs, the account feed's auth token --
        retried every ``reconcile_retry_s`` (publishing ``RiskState halted``) until it is. Live
        mode: nothing (the operator registers live keys with ``setup-api-key``). Returns False
        when stopped while retrying."""
        if self.cfg.mode != "paper":
            return True
        assert self.signer is not None
        while True:
            try:
                await ensure_registered(self.signer, self.rest, paper_l1_key())
                return True
            except (VenueError, SignError, TimeoutError, ConnectionError) as exc:
                log.warning("API key registration failed: %s; retrying", exc)
                await self._publish([RiskState(id=f"keyfail{time.time_ns():x}"[:16], ts_event=time.time_ns(),
                                               source=SERVICE, state="halted",
                                               reason=f"API key registration failed: {exc}")])
            if await self._sleep(self.ecfg.reconcile_retry_s):
                return False

    async def _build_engine(self, markets: dict[str, MarketInfo]) -> None:
        try:
            stream = await self.link.retry(lambda: self.bus.read_all(self.exec_stream), "read the exec stream",
                                           self._stop)
        except BUS_DOWN_ERRORS:
            return  # stopped while Redis was unreachable: no engine
        history = [d.event for d in stream if d.event is not None]
        start = max(1, min(int(time.time() * 1000), MAX_CLIENT_ORDER_INDEX))
        engine = Engine(self.ecfg, markets, self.cfg.account_index, next_client_order_index=start,
                        reconciled=False)
        engine.restore(history)
        self.own_cois = {ev.client_order_index for ev in history if isinstance(ev, OrderAccepted)}
        self.engine = engine
        for symbol in markets:
            POSITION_MISMATCH.labels(symbol).set(0)
        log.info("executor for account %d: markets %s, %d exec events folded, next client order index %d",
                 self.cfg.account_index, sorted(markets), len(history), engine.next_coi)
        log.info("executor start-up: %s", json.dumps(self.startup_summary(), sort_keys=True))
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
        """One reconciliation attempt (see the module docstring). Every query must succeed and
        be well-formed -- ``nextNonce``, ``account`` (positions and collateral:
        :meth:`LighterRest.account_state`), ``accountActiveOrders`` of every market -- before
        anything is canceled or the engine leaves HALTED: a failed, timed-out or malformed answer
        raises (the caller stays halted and retries), it is never read as "no positions" or "no
        orders". Protective stops of a previous run that the venue still lists are adopted
        (:func:`~services.executor.startup.adopt_protective_stops`) instead of canceled.

        Raises:
            VenueError, NonceError, SignError, TimeoutError, ConnectionError: the attempt failed.
        """
        engine = self.engine
        assert engine is not None and self.feed is not None
        if self.cfg.mode == "paper":  # never live: the operator registers live keys (setup-api-key)
            assert self.signer is not None
            await ensure_registered(self.signer, self.rest, paper_l1_key())
        acct = self.cfg.account_index
        await self.nonces.sync()
        account = await self.rest.account_state(acct)  # strict: nothing is canceled unless it reads
        token = self._auth_token()
        listed = {m.market_id: await self.rest.active_orders(acct, m.market_id, token)
                  for m in engine.markets.values()}
        check_active_orders(listed)
        resting = sum(map(len, listed.values()))
        async with self.io_lock:
            adopted = adopt_protective_stops(engine, self.ecfg, listed)
        canceled = False
        if resting > len(adopted) and self.ecfg.cancel_on_start:
            log.info("reconcile: canceling the resting order(s) of the account (%d listed, %d protective stop(s) "
                     "kept)", resting, len(adopted))
            await self._cancel_all_resting(listed=listed)
            canceled = True
        try:
            await asyncio.wait_for(self.feed.connected.wait(), self.ecfg.reconcile_timeout_s)
        except TimeoutError:
            raise ConnectionError("account feed not connected") from None
        async with self.io_lock:
            # read again under the lock: no feed report is applied between these reads and their use,
            # so a newer position report is never overwritten; then the fills missed while down
            # (services.executor.recovery): a trade after the account read comes with its position report
            account = await self.rest.account_state(acct)
            positions = [parse_position(p["market_id"], p) for p in account.positions]
            since = engine.recovery_since_ns()
            history = await read_trade_history(self.rest, acct, token, since) if since is not None else []
            outs: list[Event] = []
            for pos in positions:
                if pos is not None:
                    outs += engine.on_venue_position(pos)
            outs += recover_trades(engine, history, "trade history")
            # read under the lock: no intent or control is consumed between the read and the restore
            await self._restore_from_streams()
            outs += engine.set_reconciled(True, ts_ns=time.time_ns())
            await self._publish(outs)
            self.account_info = {
                "collateral": account.collateral, "positions": dict(engine.account_pos),
                "active_orders": resting, "protective_stops_adopted": sorted(adopted),
                "reconciled_at": round(time.time(), 3)}
            cmds = engine.take_commands()  # protective stops due at once (market data already seen)
        if cmds:
            await self._execute(cmds)
        if engine.killed and resting and not canceled:
            log.info("reconcile: kill switch in force: canceling %d resting order(s) of the account", resting)
            await self._cancel_all_resting("all")  # as the live kill did: account-wide
        log.info("reconciled: account %d collateral %s, positions %s, %d active order(s), %d protective stop(s) "
                 "adopted; state %s", acct, account.collateral, engine.account_pos, resting, len(adopted),
                 engine.state)

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
            log.info("reconcile: %d standing target(s)/resting wish(es)/stop-loss(es) restored from the intent stream; "
                     "applied at each market's first market data", restored)
        if controls:
            RESTORED_CONTROLS.inc(len(controls))
            log.warning("reconcile: control state restored from %d control event(s): %s", len(controls),
                        engine.control_summary())
        return restored, len(controls)

    async def _control_entries(self) -> list[tuple[tuple[int, int], Control]]:
        """The whole control stream, oldest first, as ``((ms, seq) of the entry id, Control)``:
        a read (XRANGE), not a consume. Undecodable entries and other event types are skipped
        (the consumer dead-letters them)."""
        out: list[tuple[tuple[int, int], Control]] = []
        stream = self.bus.streams.control
        for d in await self.bus.read_all(stream):
            if isinstance(d.event, Control) and self.screener.passes(d.event, stream):
                ms, seq = (int(x) for x in d.entry_id.split("-"))
                out.append(((ms, seq), d.event))
        return out

    async def _latest_intents(self, chunk: int = 1000, max_entries: int = 200_000) -> list[Event]:
        """The events of :meth:`_latest_intent_entries` (oldest first)."""
        return [ev for _, ev in await self._latest_intent_entries(chunk, max_entries)]

    async def _latest_intent_entries(self, chunk: int = 1000,
                                     max_entries: int = 200_000) -> list[tuple[tuple[int, int], Event]]:
        """The intent stream's wishes that may still stand, oldest first, as ``((ms, seq) of the
        entry id, event)`` (:func:`~services.executor.startup.latest_intent_entries`)."""
        stream = self.bus.streams.intent(self.cfg.account_index)
        return await latest_intent_entries(self.redis, stream, self.ecfg.max_intent_age_ms, chunk, max_entries,
                                           accept=lambda ev: self.screener.passes(ev, stream))

    # ------------------------------------------------------------------ dead-man switch

    async def _send_direct(self, cmd: OrderCommand) -> SendResult:
        """Sign and send one account command that is not the engine's (the dead-man switch),
        charged to the engine's request budget; never raises."""
        assert self.signer is not None and self.engine is not None
        async with self.io_lock:
            self.engine.charge_requests(1)
        try:
            return await send_one(self.rest, self.nonces, self.signer, cmd)
        except Exception as exc:  # never let the switch kill the service
            return SendResult(False, -1, f"{type(exc).__name__}: {exc}")

    # ------------------------------------------------------------------ bus inputs (BatchHandler)

    def reject_reason(self, event: Event, stream: str) -> str | None:
        """The input screening's reason to dead-letter ``event`` (:class:`~shared.screening.Screener`):
        an event type that does not belong on its stream, a market that does not match its
        stream, a crossed/out-of-band book, an intent of a strategy not in the config or for a
        market the venue does not list, negative or huge sizes..."""
        return self.screener.reason(event, stream)

    async def gather(self, consumer: Consumer, batch: list[Delivery]) -> list[Delivery]:
        """With ``lockstep_barrier`` on and an intent in ``batch``: the lockstep batch
        (:meth:`LockstepBarrier.gather`); else ``batch``."""
        if self.ecfg.lockstep_barrier and self.lockstep.wants(batch):
            return await self.lockstep.gather(consumer, batch)
        return batch

    async def on_batch(self, deliveries: list[Delivery]) -> list[tuple[str, Event]]:
        """One engine step over the batch (``Engine.on_events``, jointly for netting; after an
        engine error the events again one at a time, a failing one dead-lettered); runs under
        the I/O lock. Its order commands are kept for :meth:`after_commit`."""
        engine = self.engine
        assert engine is not None
        if not await self.outbox.flush():  # what waits goes out first, in order
            raise RedisConnectionError(f"{len(self.outbox)} exec event(s) not yet published")  # batch redelivered
        outs = feed_engine(SERVICE, deliveries, engine.on_event, on_events=engine.on_events,
                           on_batch_error=engine.take_commands)
        self._cmds = engine.take_commands()
        self.processed += len(deliveries)
        return [(self.exec_stream, e) for e in outs]

    async def on_bus_reset(self) -> None:
        """Redis came back without its data: publish a ``PositionSnapshot`` of every (strategy,
        market) the engine holds and the ``RiskState`` again, so strategies that lost fills with
        it take their positions from them (:class:`shared.strategy_runner.SnapshotRecovery`)."""
        engine = self.engine
        if engine is None:
            return
        async with self.io_lock:
            ts = time.time_ns()
            snaps: list[Event] = [
                PositionSnapshot(id=derive_id("bus-reset", strategy, market, ts), ts_event=ts, source=SERVICE,
                                 strategy=strategy, market=market, position=st.position,
                                 avg_entry_price=st.avg_entry, account_position=engine.account_pos.get(market, 0.0))
                for (strategy, market), st in sorted(engine.strats.items())]
            await self._publish([*snaps, engine.state_event(ts)])
        log.warning("Redis lost its data: %d position snapshot(s) and the risk state published again", len(snaps))

    async def after_commit(self, deliveries: list[Delivery], outputs: list[tuple[str, Event]]) -> None:
        """The outputs are published: observe them, then sign and send the step's commands
        (at-most-once sending)."""
        self._observe([e for _, e in outputs])
        self._observe_intents(deliveries)
        cmds, self._cmds = self._cmds, []
        if cmds:
            await self._execute(cmds)
        else:
            self._observe_budget()

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
                chunk_results = await self._send_or_hold(chunk)
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

    def _bus_ok(self) -> bool:
        """Redis answered last and every exec event is published: new orders may go out."""
        return self.link.up and not len(self.outbox)

    async def _send_or_hold(self, chunk: list[OrderCommand]) -> list[SendResult]:
        """:meth:`_send_chunk`, except that while the bus is not ok (:meth:`_bus_ok`) create
        commands are not sent: they get a local failure (-1, ``not sent: ...``), so the engine
        refuses them (``OrderRejected``) and the strategies retry later; cancels go out."""
        if self._bus_ok():
            return await self._send_chunk(chunk)
        send = [c for c in chunk if c.kind != "create"]
        sent = iter(await self._send_chunk(send) if send else [])
        held = SendResult(False, -1, "not sent: the bus (Redis) is unreachable, no new orders until it is back")
        n = len(chunk) - len(send)
        if n:
            log.warning("%d new order(s) not sent: Redis unreachable or exec events unpublished", n)
        return [held if c.kind == "create" else next(sent) for c in chunk]

    async def _send_chunk(self, chunk: list[OrderCommand]) -> list[SendResult]:
        """One request for up to ``batch_max_txs`` commands (:func:`~services.executor.sending.send_chunk`)."""
        assert self.signer is not None
        return await send_chunk(self.rest, self.nonces, self.signer, chunk)

    def _observe_budget(self) -> None:
        e = self.engine
        if e is None:
            return
        used = e.budget_used()
        BUDGET_USED.set(used)
        REQUESTS_PER_MINUTE.set(used // max(1, self.ecfg.send_weight()))
        BUDGET_REMAINING.set(e.budget_remaining())
        PROTECTIVE_STOPS.set(sum(1 for r in e.orders.values() if r.live and r.protective))
        for attr, counter in ENGINE_COUNTERS.items():
            if (n := getattr(e, attr)) > self._counted.get(attr, 0):
                counter.inc(n - self._counted.get(attr, 0))
                self._counted[attr] = n

    async def _on_feed_connected(self) -> None:
        self._feed_sessions += 1

    async def _on_feed(self, kind: str, msg: dict[str, Any]) -> None:
        engine = self.engine
        if engine is None:
            return
        snapshot = str(msg.get("type", "")).startswith("subscribed/")
        async with self.io_lock:
            outs: list[Event] = []
            reports = feed_reports(kind, msg)  # Lighter's JSON parsed here, malformed entries skipped
            if snapshot:  # trades from before this session (down, disconnected): each side once, positions from the venue
                outs += recover_trades(engine, sorted((r for r in reports if isinstance(r, VenueTrade)),
                                                      key=lambda t: t.ts_ns), "feed snapshot")
            for rep in reports:
                if isinstance(rep, VenueTrade):
                    if not snapshot:
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
        """Publish ``events`` to the exec stream through the outbox (:mod:`~services.executor.outbox`:
        kept in order while Redis is unreachable). Never raises for Redis."""
        if not events:
            return
        self._observe(events)
        await self.outbox.publish(events)

    @staticmethod
    def _observe_intents(deliveries: Sequence[Delivery]) -> None:
        """Count the batch's processed intents in ``lighter_stack_executor_intents_total``."""
        for d in deliveries:
            ev = d.event
            if d.error is None and isinstance(ev, (TargetPosition, QuoteIntent, RestingOrders, CancelIntent)):
                INTENTS.labels(ev.strategy, type(ev).__struct_config__.tag).inc()

    def _observe(self, events: Sequence[Event]) -> None:
        crosses: set[tuple[str | None, str]] = set()
        if self.ecfg.lockstep_barrier:  # publication order of our outputs, for the lockstep order
            self.lockstep.record(events)
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
            elif isinstance(ev, PositionMismatch):
                observe_mismatch(ev)
            elif isinstance(ev, RiskState):
                RISK_STATE.set(STATE_VALUE.get(ev.state, 2))
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
        """On SIGTERM: abort the dead-man switch's scheduled cancel-all (:meth:`_abort_dead_man`);
        with ``cancel_on_shutdown`` cancel the resting orders of ``cancel_scope``
        (:meth:`_cancel_all_resting`; protective stops stay: positions are kept). Failures are
        logged, never raised."""
        engine = None if self.account_lock.lost else self.engine  # lost: the orders are another executor's now
        if engine is not None and self.dead_man.armed_until_ms and self.nonces.next_nonce is not None:
            await self.dead_man.abort()
        if engine is None or not self.ecfg.cancel_on_shutdown or self.nonces.next_nonce is None:
            return
        log.info("shutdown: canceling resting orders (%s; positions are kept)", self.ecfg.cancel_scope)
        try:
            await asyncio.wait_for(self._cancel_all_resting(), self.ecfg.reconcile_timeout_s)
        except Exception as exc:
            log.warning("shutdown cancel failed: %s", exc)


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
