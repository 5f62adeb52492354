"""The copy-trade service: per-account request queues turning API requests into intents.

Each accepted request gets a ``request_id`` and goes to its account's FIFO queue; one worker per
account (created lazily) processes them strictly in order, accounts concurrently (seed 004 §5.5).
The worker reads the venue (total asset value, mid, market lot), plans the new target with
:mod:`services.copytrade.engine` and publishes a :class:`~shared.events.TargetPosition` with
``strategy="copytrade"`` to ``{ns}:intent:{account}``; the account's executor trades the
difference and attributes the fills to ``copytrade``, like any strategy's. After opening or
adding it also publishes a :class:`~shared.events.StopLossIntent` for the whole position (the
executor replaces the live reduce-only stop-loss order), and one of size 0 (cancel) when the
position is closed or flipped.

Idempotency: a request repeated with the same ``request_id`` (body field) is answered with the
first answer and never queued again. The intent's event id is derived from the account and the
``request_id`` (the executor drops an id it has seen), and the intent is an **absolute** target,
so re-publishing it after a failure never trades twice (seed 004's retry re-sent market orders).
Each request's ``client_order_index`` (derived from its id, 1 .. 2^48-1) is reported with it.

Durability: with a :class:`~services.copytrade.journal.RequestJournal`, a request is recorded on
``{ns}:copytrade:requests`` before it is answered (a write failure answers 503: not accepted)
and again when processed; :meth:`CopyTrader.resume` re-queues at start-up, in order, those a
stopped process had accepted but not processed, and remembers the processed ones (a repeated
``request_id`` stays a duplicate across restarts).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from prometheus_client import Counter, Gauge

from services.copytrade.config import CopytradeConfig
from services.copytrade.engine import Plan, plan_adjust, plan_trade
from services.copytrade.journal import JournalEntries, JournalUnavailable, RequestJournal
from services.copytrade.venue import AccountNotFound, VenueReader, VenueUnavailable
from shared.events import Event, StopLossIntent, TargetPosition, derive_id
from shared.markets import MarketInfo
from shared.metrics import PREFIX

log = logging.getLogger(__name__)

REQUESTS = Counter(f"{PREFIX}copytrade_requests_total", "Copy-trade API requests by kind and final status.",
                   ["kind", "status"])
QUEUE_DEPTH = Gauge(f"{PREFIX}copytrade_queue_depth", "Requests waiting in an account's queue.", ["account"])

Publisher = Callable[[int, Event], Awaitable[None]]
"""Publishes one intent (TargetPosition, StopLossIntent) to the account's intent stream (the bus
in the runner, a list in tests)."""


class UnknownMarket(LookupError):
    """The request names a market the venue does not list (the API answers 404)."""


@dataclass
class RequestRecord:
    """One request and what became of it (``GET /api/trade/{request_id}``).

    ``status``: ``queued``, ``processing``, ``done`` (intent published), ``skipped`` (nothing to
    trade: below the minimum, no position) or ``failed`` (the venue could not be read after the
    retries). ``target``/``delta`` in base units, ``stop_trigger`` in USD.
    """

    request_id: str
    kind: str
    account_index: int
    market: str
    params: dict[str, Any]
    client_order_index: int
    status: str = "queued"
    detail: str = ""
    target: float | None = None
    delta: float | None = None
    price: float | None = None
    stop_trigger: float | None = None
    attempts: int = 0

    def to_json(self) -> dict[str, Any]:
        """The record as a JSON-able dict."""
        return asdict(self)


@dataclass
class Holding:
    """The copytrade strategy's position in one market: its last target (base units), the
    estimated entry (USD, mid prices of the requests) and the stop-loss it should carry."""

    target: float = 0.0
    entry: float = 0.0
    stop_trigger: float | None = None
    stop_size: float = 0.0


def client_order_index(request_id: str) -> int:
    """A client order index for a request, 1 .. 2^48 - 1 (Lighter's range), from its id."""
    return int(derive_id("copytrade-coi", request_id), 16) % (2**48 - 1) + 1


def new_request_id() -> str:
    """``<unix seconds>-<8 hex>`` as seed 004 makes them."""
    return f"{time.time():.6f}-{uuid.uuid4().hex[:8]}"


@dataclass
class CopyTrader:
    """The service's state and workers.

    Args:
        cfg: the ``copytrade`` section.
        accounts: the accounts it may trade.
        venue: the venue reader.
        publish: publishes one intent.
        source: ``source`` of the intents.
        sleep: ``asyncio.sleep`` (tests pass a no-op).
        journal: where accepted and processed requests are recorded (None: in memory only).
    """

    cfg: CopytradeConfig
    accounts: list[int]
    venue: VenueReader
    publish: Publisher
    source: str = "copytrade"
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    journal: RequestJournal | None = None
    requests: OrderedDict[str, RequestRecord] = field(default_factory=OrderedDict)
    holdings: dict[tuple[int, str], Holding] = field(default_factory=dict)
    _queues: dict[int, asyncio.Queue[RequestRecord]] = field(default_factory=dict)
    _workers: dict[int, asyncio.Task[None]] = field(default_factory=dict)
    _markets: dict[str, MarketInfo] = field(default_factory=dict)
    _markets_at: float = -1e18

    # ------------------------------------------------------------------ markets
    async def markets(self) -> dict[str, MarketInfo]:
        """The venue's markets by symbol, cached ``markets_ttl_s`` (raises VenueUnavailable)."""
        now = time.monotonic()
        if not self._markets or now - self._markets_at > self.cfg.markets_ttl_s:
            self._markets = await self.venue.markets()
            self._markets_at = now
        return self._markets

    async def resolve(self, market_id: int | None, symbol: str | None) -> MarketInfo:
        """The market named by id or symbol (symbol case-insensitive). Raises :class:`UnknownMarket`
        (also when both are given and disagree) or VenueUnavailable."""
        ms = await self.markets()
        by_sym = ms.get(symbol.upper()) if symbol else None
        by_id = next((m for m in ms.values() if m.market_id == market_id), None) if market_id is not None else None
        if symbol and by_sym is None:
            raise UnknownMarket(f"unknown symbol {symbol!r}")
        if market_id is not None and by_id is None:
            raise UnknownMarket(f"unknown market_id {market_id}")
        if by_sym and by_id and by_sym is not by_id:
            raise UnknownMarket(f"symbol {symbol!r} is not market_id {market_id}")
        m = by_sym or by_id
        assert m is not None
        return m

    # ------------------------------------------------------------------ requests
    async def submit(self, kind: str, account: int, market: MarketInfo, params: dict[str, Any],
                     request_id: str | None) -> tuple[RequestRecord, bool]:
        """Record (journal) and queue a request; returns (record, new). A known ``request_id``
        returns its record and queues nothing (``new`` False).

        Raises:
            JournalUnavailable: the request could not be recorded (it is not accepted)."""
        if request_id and request_id in self.requests:
            return self.requests[request_id], False
        rid = request_id or new_request_id()
        rec = RequestRecord(rid, kind, account, market.symbol, params, client_order_index(rid))
        self.requests[rid] = rec  # before the await: a concurrent repeat is a duplicate
        if self.journal is not None:
            try:
                await self.journal.accepted(rec.to_json())
            except JournalUnavailable:
                self.requests.pop(rid, None)
                raise
        self._trim()
        self._enqueue(rec)
        return rec, True

    def _trim(self) -> None:
        """Forget the oldest finished records beyond ``requests_kept``."""
        while len(self.requests) > self.cfg.requests_kept:
            old = next(iter(self.requests.values()))
            if old.status in ("queued", "processing"):
                break
            self.requests.popitem(last=False)

    def _enqueue(self, rec: RequestRecord) -> None:
        account = rec.account_index
        q = self._queues.setdefault(account, asyncio.Queue())
        q.put_nowait(rec)
        QUEUE_DEPTH.labels(str(account)).set(q.qsize())
        if account not in self._workers or self._workers[account].done():
            self._workers[account] = asyncio.create_task(self._worker(account), name=f"copytrade-{account}")

    async def resume(self, entries: JournalEntries, published: set[str]) -> int:
        """Start-up: take over the requests a stopped process recorded (``entries``, oldest
        first). Processed ones are remembered (answers and duplicates); an accepted one whose
        ``TargetPosition`` id (``published``: the intent ids on the intent streams) is out already
        is recorded ``done`` (``detail`` says so; not traded again); the others are queued again
        in acceptance order, each on its account's queue. Call before serving, after the
        holdings are restored. Returns how many were queued again.

        Raises:
            JournalUnavailable: a ``done`` record could not be written.
        """
        requeued = 0
        for acc in entries.accepted:
            rid = acc["request_id"]
            if rid in self.requests:
                continue
            fin = entries.processed.get(rid)
            try:
                rec = RequestRecord(**(fin or acc))
            except TypeError:
                log.warning("skipping malformed request record %s", rid)
                continue
            self.requests[rid] = rec
            if fin is not None:
                continue
            if rec.account_index not in self.accounts:
                rec.status, rec.detail = "failed", "account no longer served"
            elif derive_id(self.cfg.strategy, rec.account_index, rid) in published:
                rec.status, rec.detail = "done", "target published before a restart"
            else:
                rec.status = "queued"
                self._enqueue(rec)
                requeued += 1
                continue
            if self.journal is not None:
                await self.journal.processed(rec.to_json())
        self._trim()
        return requeued

    async def drain(self) -> None:
        """Wait until every queued request is processed (tests, shutdown)."""
        for q in list(self._queues.values()):
            await q.join()

    async def stop(self) -> None:
        """Cancel the workers (queued requests are kept only on the journal, if there is one:
        :meth:`resume` takes them over)."""
        for t in self._workers.values():
            t.cancel()
        for t in self._workers.values():
            try:
                await t
            except (asyncio.CancelledError, Exception):  # noqa: S110 - stopping
                pass

    async def _worker(self, account: int) -> None:
        q = self._queues[account]
        while True:
            rec = await q.get()
            QUEUE_DEPTH.labels(str(account)).set(q.qsize())
            try:
                await self._process(rec)
            except asyncio.CancelledError:  # stopping: not processed (resume takes it over)
                q.task_done()
                raise
            except Exception as exc:  # a bug must not kill the account's queue
                log.exception("request %s failed", rec.request_id)
                rec.status, rec.detail = "failed", f"internal error: {type(exc).__name__}"
            REQUESTS.labels(rec.kind, rec.status).inc()
            if self.journal is not None:
                try:
                    await self.journal.processed(rec.to_json())
                except JournalUnavailable as exc:  # re-queued at a restart unless its target is out
                    log.warning("request %s: processed but not recorded: %s", rec.request_id, exc)
            q.task_done()

    async def _process(self, rec: RequestRecord) -> None:
        rec.status = "processing"
        last = ""
        for attempt in range(self.cfg.max_retries + 1):
            rec.attempts = attempt + 1
            try:
                await self._execute(rec)
                return
            except AccountNotFound as exc:
                rec.status, rec.detail = "failed", str(exc)
                return
            except VenueUnavailable as exc:
                last = str(exc)
                log.warning("request %s attempt %d: %s", rec.request_id, attempt + 1, exc)
                if attempt < self.cfg.max_retries:
                    await self.sleep(self.cfg.retry_interval_s)
        rec.status, rec.detail = "failed", f"venue unavailable: {last}"

    async def _execute(self, rec: RequestRecord) -> None:
        m = (await self.markets()).get(rec.market)
        if m is None:
            rec.status, rec.detail = "failed", f"market {rec.market} no longer listed"
            return
        h = self.holdings.setdefault((rec.account_index, m.symbol), Holding())
        price = await self.venue.mid(m)
        imf = self.cfg.initial_margin_fraction
        if rec.kind == "trade":
            p = rec.params
            tav = 0.0
            if p["trade_type"] != "close":
                acct = await self.venue.account(rec.account_index)
                tav = _float(acct.get("total_asset_value"))
            plan = plan_trade(p["trade_type"], p["reference_position_ratio"], h.target, h.entry, tav, price, m,
                              self.cfg.scaling_factor, self.cfg.stop_loss_ratio, imf)
        else:
            p = rec.params
            plan = plan_adjust(p["adjustment_type"], p["percentage"], h.target, h.entry, price, m,
                               self.cfg.stop_loss_ratio, imf)
        rec.price = plan.price
        if plan.skipped:
            rec.status, rec.detail, rec.target, rec.delta = "skipped", plan.skipped, h.target, 0.0
            return
        await self.publish(rec.account_index, self._intent(rec, m, plan))
        had_stop = h.stop_trigger is not None
        self._apply(h, plan)
        if plan.stop_trigger is not None or (had_stop and h.stop_trigger is None):
            await self.publish(rec.account_index, self._stop_intent(rec, m, h))
        rec.status, rec.target, rec.delta, rec.stop_trigger = "done", plan.target, plan.delta, h.stop_trigger

    def _intent(self, rec: RequestRecord, m: MarketInfo, plan: Plan) -> TargetPosition:
        reason = rec.params.get("trade_type") or rec.params.get("adjustment_type") or rec.kind
        return TargetPosition(
            id=derive_id(self.cfg.strategy, rec.account_index, rec.request_id), ts_event=time.time_ns(),
            source=self.source, strategy=self.cfg.strategy, market=m.symbol, target=plan.target,
            max_slippage_bps=self.cfg.max_slippage_bps, reference_price=plan.price,
            reason=f"copytrade {reason} {rec.request_id}")

    def _stop_intent(self, rec: RequestRecord, m: MarketInfo, h: Holding) -> StopLossIntent:
        """The stop-loss the holding should carry now (size 0 = cancel it)."""
        placed = h.stop_trigger is not None
        return StopLossIntent(
            id=derive_id(self.cfg.strategy, rec.account_index, rec.request_id, "stop"), ts_event=time.time_ns(),
            source=self.source, strategy=self.cfg.strategy, market=m.symbol,
            side="sell" if h.target > 0 else "buy", trigger_price=h.stop_trigger if placed else 0.0,
            size=h.stop_size if placed else 0.0, max_slippage_bps=self.cfg.max_slippage_bps,
            reason=f"copytrade stop-loss {rec.request_id}")

    @staticmethod
    def _apply(h: Holding, plan: Plan) -> None:
        """Move the holding to the plan's target: entry averaged when adding, kept when reducing,
        reset on a flip or when flat; the stop replaced after opening/adding, kept (its order's
        size; reduce-only clips it to the position when it triggers) when reducing, dropped when
        flat or flipped."""
        cur, tgt = h.target, plan.target
        if tgt == 0:
            h.entry, h.stop_trigger, h.stop_size = 0.0, None, 0.0
        elif cur == 0 or (cur > 0) != (tgt > 0):
            h.entry = plan.price
        elif abs(tgt) > abs(cur):
            h.entry = (abs(cur) * h.entry + (abs(tgt) - abs(cur)) * plan.price) / abs(tgt)
        if plan.stop_trigger is not None:
            h.stop_trigger, h.stop_size = plan.stop_trigger, abs(tgt)
        if tgt != 0 and (cur > 0) != (tgt > 0) and cur != 0:
            h.stop_trigger, h.stop_size = None, 0.0  # flipped: the old stop is on the wrong side
        h.target = tgt

    # ------------------------------------------------------------------ account view
    async def account_view(self, account: int) -> dict[str, Any]:
        """``GET /api/account/{account}``: the venue's account (balances, positions) plus the
        stop-loss orders the copytrade strategy holds. Raises AccountNotFound, VenueUnavailable."""
        acct = await self.venue.account(account)
        positions = []
        for p in acct.get("positions") or []:
            size = _float(p.get("position"))
            if size == 0:
                continue
            positions.append({
                "market_id": int(p.get("market_id", -1)), "symbol": str(p.get("symbol", "")),
                "position": str(p.get("position", "0")), "position_value": str(p.get("position_value", "0")),
                "avg_entry_price": str(p.get("avg_entry_price", "0")),
                "unrealized_pnl": str(p.get("unrealized_pnl", "0")), "realized_pnl": str(p.get("realized_pnl", "0")),
                "sign": int(p.get("sign", 1) or 1)})
        ms = self._markets
        stops = []
        for (acc, sym), h in sorted(self.holdings.items()):
            if acc != account or h.stop_trigger is None or h.target == 0:
                continue
            stops.append({"market_id": ms[sym].market_id if sym in ms else -1, "symbol": sym,
                          "trigger_price": str(h.stop_trigger), "price": None, "base_amount": str(h.stop_size),
                          "side": "sell" if h.target > 0 else "buy", "order_type": "stop-loss",
                          "status": "requested", "reduce_only": True})
        return {"account_index": account, "l1_address": str(acct.get("l1_address", "")),
                "available_balance": str(acct.get("available_balance", "0")),
                "collateral": str(acct.get("collateral", "0")),
                "total_asset_value": str(acct.get("total_asset_value", "0")),
                "cross_asset_value": str(acct.get("cross_asset_value", "0")),
                "status": int(acct.get("status", 0) or 0), "positions": positions,
                "copytrade_positions": {sym: h.target for (acc, sym), h in sorted(self.holdings.items())
                                        if acc == account and h.target != 0},
                "stop_loss_orders": stops}


def _float(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return 0.0
