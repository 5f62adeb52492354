"""The venue model: a pure matching engine that trades our orders against recorded market data.

This module is shared by venue-sim (which puts Lighter's REST/WS protocol around it) and by
in-process backtests. It does no I/O and never reads a clock: every call takes the *simulation
time* in nanoseconds (``ts_ns``), which is the recording's exchange time.

Units: prices are integer **ticks** (``price * 10**price_decimals``) and sizes integer **lots**
(``size * 10**size_decimals``), exactly as on Lighter's wire; USD amounts (fees, PnL,
collateral) are floats. :class:`shared.markets.MarketInfo` converts.

Depth assumption (quoted by the docs and served at ``/sim/status``)
-------------------------------------------------------------------
The recording holds ONE price level per side (best bid and best ask with their displayed sizes)
plus the public trades. The venue models the public book as exactly that one level per side and
nothing beyond it:

* A taker order (IOC, market, or the marketable part of a limit) fills against the displayed
  touch size at the touch price, and against resting orders of other simulated accounts. Our
  consumption of the displayed size is remembered until the recorded level changes (its price
  or size), then the new recorded size is available again. Whatever the single level cannot
  fill is canceled (IOC/market) or rests (GTT limit). There is no walking down a deeper book.
* Queue position: a resting order that joins the recorded touch price joins BEHIND the
  displayed size (``queue_ahead`` = displayed size, in lots). Public trades at that price
  consume ``queue_ahead`` first, then fill us (several of our orders at one price fill in time
  priority). When the displayed size at our price shrinks without a trade (cancellations),
  ``queue_ahead = min(queue_ahead, new displayed size)``; growth never increases it (newcomers
  queue behind us). This min-rule also makes a trade followed by the quote update that reflects
  the same trade count only once.
* An order better than the touch is alone at its level (``queue_ahead`` 0). An order worse than
  the touch rests at a level the recording cannot see: its queue is unknown until the level
  becomes the touch, and then everything displayed there is assumed ahead of it
  (pessimistic); public trades at a hidden level do not fill it.
* Trading through: a public trade at a price strictly better than our resting price (a sell
  print below our bid, a buy print above our ask) fills us at OUR price for up to the trade's
  size; a recorded opposite touch that moves to or through our resting price fills the whole
  remaining order at our price (the market traded through us).
* Fills against the recorded book have the synthetic counterparty account :data:`BOOK_ACCOUNT`
  (0). Fills between two simulated accounts name both.

Optionally (``depth=``, off by default; venue-sim's paced mode turns it on) a synthetic ladder
behind the touch gives takers deeper levels: :mod:`shared.venue.depth`.

Other simplifications (all documented in venue-sim's docs):

* Speed bump (Lighter Standard tier): a taker order (IOC, market, or a GTT limit that is
  marketable on arrival) executes ``taker_delay_ms`` (300) after arrival; post-only and
  non-marketable GTT orders ``maker_delay_ms`` (200); cancels ``cancel_delay_ms`` (200). Pending
  transactions execute in (execution time, arrival order), interleaved with market data.
* Reduce-only orders that would open or grow the position are refused at submission with
  21732 (Lighter would cancel them); at execution a reduce-only order is clamped to the
  position size, and canceled (``canceled-reduce-only``) if the position is gone.
* Post-only orders that would cross end with status ``canceled-post-only`` (not an error).
* Self-trade: an incoming taker that meets a resting order of the same account cancels that
  resting order (``canceled-self-trade``, Lighter's default expire-maker) and keeps matching;
  every such cancel is recorded in :attr:`MatchingEngine.self_trade_cancels`.
* GTT order expiry is enforced only by an engine made with ``expire_orders=True`` (venue-sim
  outside lockstep; off in backtests and lockstep, whose outputs it must not change); the
  scheduled cancel-all, take-profit types and modify are in :mod:`shared.venue.timed`; the
  application of recorded books and trades and the stop triggers in :mod:`shared.venue.recorded`. The engine
  makes no margin checks (a venue makes them before it hands an order over; venue-sim's margin
  model is its own service code), and has no funding and no liquidations.
* A cancel whose order is not active at execution time is a silent no-op (it was accepted).
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Iterable
from typing import Any, Literal, TypeVar

import msgspec

from shared.events import Bbo, MarketStats, Trade
from shared.markets import MarketInfo
from shared.venue.depth import DepthLadder, DepthModel
from shared.venue.errors import (
    DUPLICATE_CLIENT_ORDER_INDEX,
    INVALID_AMOUNT,
    INVALID_CLIENT_ORDER_INDEX,
    INVALID_MARKET,
    INVALID_ORDER_INDEX,
    INVALID_PRICE,
    INVALID_TRIGGER_PRICE,
    REDUCE_ONLY_INCREASES,
    VenueError,
)
from shared.venue.model import (
    ASK_ID_BASE,
    BID_ID_BASE,
    BOOK_ACCOUNT,
    MARKET_TYPES,
    MAX_CLIENT_ORDER_INDEX,
    MAX_PRICE,
    PREMIUM,
    SIM_TRADE_ID_BASE,
    STANDARD,
    STOP_TYPES,
    TIERS,
    Accepted,
    AccountState,
    BookChanged,
    CancelAll,
    CancelOrder,
    CreateOrder,
    Fill,
    FillUpdate,
    MarketState,
    ModifyOrder,
    Order,
    OrderStatus,
    OrderType,
    OrderUpdate,
    Position,
    PositionUpdate,
    PublicTrade,
    StatsChanged,
    Tier,
    TimeInForce,
    Tx,
    Update,
)
from shared.venue.recorded import RecordedMarketData
from shared.venue.timed import TimedOrders

DEPTH_ASSUMPTION = (
    "top-of-book only: the public book is the recorded best bid and best ask (one level per side, "
    "displayed size) plus resting orders of simulated accounts; takers fill at most the displayed "
    "touch size (consumption remembered until the recorded level changes), remainder canceled "
    "(IOC/market) or rests (GTT); resting orders join behind the displayed size at their price "
    "(queue_ahead), public trades at that price consume queue_ahead first, displayed-size shrink "
    "sets queue_ahead=min(queue_ahead,new size); orders better than the touch have queue 0 and fill on "
    "the next trade/quote through them, at their own price"
)

#: the model's names are re-exported: ``from shared.venue.matching import Fill`` keeps working
__all__ = [
    "ASK_ID_BASE",
    "Accepted",
    "AccountState",
    "BID_ID_BASE",
    "BOOK_ACCOUNT",
    "BookChanged",
    "CancelAll",
    "CancelOrder",
    "CreateOrder",
    "Fill",
    "FillUpdate",
    "MAX_CLIENT_ORDER_INDEX",
    "MAX_PRICE",
    "MarketState",
    "ModifyOrder",
    "Order",
    "OrderStatus",
    "OrderType",
    "OrderUpdate",
    "PREMIUM",
    "Position",
    "PositionUpdate",
    "PublicTrade",
    "SIM_TRADE_ID_BASE",
    "STANDARD",
    "STOP_TYPES",
    "StatsChanged",
    "TIERS",
    "Tier",
    "TimeInForce",
    "Tx",
    "Update",
    "DEPTH_ASSUMPTION",
    "MatchingEngine",
]


class MatchingEngine(TimedOrders, RecordedMarketData):
    """Matches simulated accounts' orders against a replayed top-of-book recording.

    Args:
        markets: the tradable markets (from the recording header).
        tier: speed bump and fees (default Lighter Standard: 300/200/200 ms, no fees).
        maker_fee, taker_fee: override the tier's fees (fractions of notional, 0.0002 = 2 bps).
        initial_collateral: USD collateral of an account created on first use.
        inactive_history: finished orders kept per account (for ``accountInactiveOrders``).
        public_updates: emit the public-data updates of market data (:class:`PublicTrade` per
            recorded trade, :class:`BookChanged` caused by recorded market data, and
            :class:`StatsChanged`); venue-sim needs them for its public channels, an in-process
            backtest does not (False skips building them; fills, positions and order updates,
            and every state change, are the same either way).
        expire_orders: cancel a live order when the venue time reaches its OrderExpiry
            (``canceled-expired``); off by default (backtests, lockstep), on in venue-sim's
            wall-clock mode.
        depth: a synthetic depth ladder behind the recorded touch (:mod:`shared.venue.depth`);
            None (the default: backtests, lockstep) keeps the one-level book described above.

    Usage: :meth:`submit` validates a tx and schedules it (raises :class:`VenueError`);
    :meth:`on_market_data` applies a recorded ``Bbo``/``Trade``/``MarketStats`` after executing
    every pending tx due at or before its time; :meth:`advance` executes pending txs due up to a
    time. All three return the resulting :data:`Update` objects in causal order (for a fill:
    the :class:`FillUpdate`, then the :class:`PositionUpdate`\\ s, then the
    :class:`OrderUpdate`\\ s).
    """

    def __init__(self, markets: Iterable[MarketInfo], tier: Tier = STANDARD, *,
                 maker_fee: float | None = None, taker_fee: float | None = None,
                 initial_collateral: float = 100_000.0, inactive_history: int = 1000,
                 public_updates: bool = True, expire_orders: bool = False,
                 depth: DepthModel | None = None) -> None:
        self.markets: dict[int, MarketInfo] = {m.market_id: m for m in markets}
        self.by_symbol: dict[str, MarketInfo] = {m.symbol: m for m in self.markets.values()}
        self.tier = tier
        self.maker_fee = tier.maker_fee if maker_fee is None else maker_fee
        self.taker_fee = tier.taker_fee if taker_fee is None else taker_fee
        self.initial_collateral = initial_collateral
        self.state: dict[int, MarketState] = {mid: MarketState() for mid in self.markets}
        self.accounts: dict[int, AccountState] = {}
        self.resting: dict[int, dict[int, Order]] = {mid: {} for mid in self.markets}
        self.stops: dict[int, dict[int, Order]] = {mid: {} for mid in self.markets}  # untriggered stop orders
        self.orders: dict[int, Order] = {}
        self.inactive: dict[int, deque[Order]] = {}
        self.fills: list[Fill] = []
        self.self_trade_cancels: list[Order] = []
        self.now_ns = 0
        self._pending: list[tuple[int, int, Tx]] = []
        self._pending_coi: dict[int, dict[int, int]] = {}
        self._seq = 0
        self._order_counter = 0
        self._trade_counter = 0
        self._inactive_history = inactive_history
        self.public_updates = public_updates
        self._init_timed(expire_orders)
        self.depth = depth
        self.ladders: dict[int, DepthLadder] = {} if depth is None else {
            mid: DepthLadder(depth, m.size_to_int(m.min_base_amount, "up")) for mid, m in self.markets.items()}
        # symbol -> (market, its state, its resting orders): one lookup per market-data event
        # (these objects are created here and never replaced)
        self._by_symbol_state = {m.symbol: (m, self.state[m.market_id], self.resting[m.market_id])
                                 for m in self.markets.values()}
        # per market: last [bid_px float, ticks, bid_sz float, lots, ask_px, ticks, ask_sz, lots],
        # then the price and size scales (10**decimals)
        self._touch_ints: dict[int, list[Any]] = {
            mid: [math.nan] * 8 + [10 ** m.price_decimals, 10 ** m.size_decimals] for mid, m in self.markets.items()}

    # ------------------------------------------------------------------ accounts and queries

    def account(self, account: int) -> AccountState:
        """The account's state, created with the initial collateral on first use."""
        acct = self.accounts.get(account)
        if acct is None:
            acct = self.accounts[account] = AccountState(account=account, collateral=self.initial_collateral)
        return acct

    def position(self, account: int, market_id: int) -> Position:
        """The account's position in ``market_id`` (created flat on first use)."""
        acct = self.account(account)
        pos = acct.positions.get(market_id)
        if pos is None:
            pos = acct.positions[market_id] = Position(account=account, market_id=market_id)
        return pos

    def active_orders(self, account: int, market_id: int | None = None) -> list[Order]:
        """Resting orders of ``account`` (in ``market_id`` if given), oldest first."""
        out = [o for books in (self.resting, self.stops) for mid, book in books.items()
               if market_id is None or mid == market_id for o in book.values() if o.account == account]
        return sorted(out, key=lambda o: o.seq)

    def inactive_orders(self, account: int, market_id: int | None = None) -> list[Order]:
        """Finished orders of ``account``, newest first (bounded history)."""
        return [o for o in reversed(self.inactive.get(account, ()))
                if market_id is None or o.market_id == market_id]

    def pending_count(self) -> int:
        """Transactions accepted but not executed yet."""
        return len(self._pending)

    def pending_creates(self, account: int) -> list[CreateOrder]:
        """Create txs of ``account`` accepted but not executed yet (speed bump), any order."""
        return [tx for _, _, tx in self._pending if isinstance(tx, CreateOrder) and tx.account == account]

    def next_pending_ns(self) -> int | None:
        """Execution time (sim ns) of the earliest pending tx, or None."""
        return self._pending[0][0] if self._pending else None

    def public_book(self, market_id: int) -> tuple[dict[int, int], dict[int, int]]:
        """The public book Lighter would show: ``(bids, asks)`` as ``{price_ticks: size_lots}``:
        the recorded level (minus our consumption) plus resting orders aggregated by price."""
        st = self.state[market_id]
        bids: dict[int, int] = {}
        asks: dict[int, int] = {}
        if st.bid_px is not None and st.bid_sz - st.consumed_bid > 0:
            bids[st.bid_px] = st.bid_sz - st.consumed_bid
        if st.ask_px is not None and st.ask_sz - st.consumed_ask > 0:
            asks[st.ask_px] = st.ask_sz - st.consumed_ask
        for o in self.resting[market_id].values():
            side = asks if o.is_ask else bids
            side[o.price] = side.get(o.price, 0) + o.remaining
        if self.ladders:  # the synthetic levels behind the touch (shared.venue.depth)
            for is_ask, side in ((False, bids), (True, asks)):
                for px, lots, _ in self._ladder_levels(market_id, is_ask):
                    side[px] = side.get(px, 0) + lots
        return bids, asks

    @property
    def depth_assumption(self) -> str:
        """The depth model in one line (``/sim/status``)."""
        return DEPTH_ASSUMPTION if self.depth is None else self.depth.describe()

    def _ladder_levels(self, market_id: int, is_ask: bool, limit: int | None = None,
                       max_levels: int | None = None) -> Iterable[tuple[int, int, int]]:
        """Synthetic levels of a side now: ``(price ticks, lots left, full lots)``."""
        st = self.state[market_id]
        return self.ladders[market_id].levels(is_ask, st.bid_px, st.bid_sz, st.ask_px, st.ask_sz, self.now_ns,
                                              limit=limit, max_levels=max_levels)

    def market_of(self, market_id: int) -> MarketInfo:
        """Market metadata. Raises VenueError(21602) for an unknown market index."""
        m = self.markets.get(market_id)
        if m is None:
            raise VenueError(INVALID_MARKET, f"market {market_id} is not traded here (have {sorted(self.markets)})")
        return m

    # ------------------------------------------------------------------ submission

    def submit(self, tx: Tx, arrival_ns: int) -> Accepted:
        """Validate ``tx`` arriving at sim time ``arrival_ns`` and schedule its execution after
        the tier's speed bump.

        Raises:
            VenueError: 21602 unknown market, 21706 bad amount, 21702 bad price, 21727/21728
                bad or duplicate client order index, 21732 reduce-only growing the position,
                21700 bad cancel index.
        """
        if isinstance(tx, CreateOrder):
            role = self._validate_create(tx)
            delay = self.tier.taker_delay_ms if role == "taker" else self.tier.maker_delay_ms
            if tx.client_order_index:
                self._pending_coi.setdefault(tx.account, {}).setdefault(tx.client_order_index, 0)
                self._pending_coi[tx.account][tx.client_order_index] += 1
        elif isinstance(tx, CancelOrder):
            self.market_of(tx.market_id)
            if tx.index <= 0:
                raise VenueError(INVALID_ORDER_INDEX, f"index {tx.index}")
            role, delay = "cancel", self.tier.cancel_delay_ms
        elif isinstance(tx, ModifyOrder):
            self._validate_modify(tx)
            role, delay = "cancel", self.tier.cancel_delay_ms
        else:
            if tx.market_id is not None:
                self.market_of(tx.market_id)
            role, delay = "cancel", self.tier.cancel_delay_ms
        self.account(tx.account)
        exec_ns = arrival_ns + delay * 1_000_000
        self._seq += 1
        heapq.heappush(self._pending, (exec_ns, self._seq, tx))
        return Accepted(exec_ns=exec_ns, role=role)

    def _validate_create(self, tx: CreateOrder) -> Literal["taker", "maker"]:
        m = self.market_of(tx.market_id)
        if not 0 <= tx.client_order_index <= MAX_CLIENT_ORDER_INDEX:  # 0 = none
            raise VenueError(INVALID_CLIENT_ORDER_INDEX, f"client order index {tx.client_order_index}")
        if not 1 <= tx.price <= MAX_PRICE:
            raise VenueError(INVALID_PRICE, f"price {tx.price}")
        if tx.base_amount <= 0:
            raise VenueError(INVALID_AMOUNT, "base amount is zero")
        if tx.order_type in STOP_TYPES and not 1 <= tx.trigger_price <= MAX_PRICE:
            raise VenueError(INVALID_TRIGGER_PRICE, f"trigger price {tx.trigger_price}")
        size = m.int_to_size(tx.base_amount)
        price = m.int_to_price(tx.price)
        why = m.check_amount(size, price)
        if why:
            raise VenueError(INVALID_AMOUNT, why)
        if tx.client_order_index and self._coi_in_use(tx.account, tx.client_order_index):
            raise VenueError(DUPLICATE_CLIENT_ORDER_INDEX,
                             f"client order index {tx.client_order_index} is active for account {tx.account}")
        if tx.reduce_only:
            pos = self.position(tx.account, tx.market_id).size
            if pos == 0 or (pos > 0) == (not tx.is_ask):
                raise VenueError(REDUCE_ONLY_INCREASES,
                                 f"position {m.int_to_size(pos):g} {m.symbol}, order {'sell' if tx.is_ask else 'buy'}")
        if tx.order_type in STOP_TYPES:
            return "maker"  # waits for its trigger
        if tx.order_type == "market" or tx.time_in_force == "ioc":
            return "taker"
        if tx.time_in_force == "post_only":
            return "maker"
        return "taker" if self._best_opposite(tx.market_id, tx.is_ask, tx.price) is not None else "maker"

    def _coi_in_use(self, account: int, coi: int) -> bool:
        if self._pending_coi.get(account, {}).get(coi):
            return True
        return any(o.account == account and o.client_order_index == coi
                   for books in (self.resting, self.stops) for book in books.values() for o in book.values())

    # ------------------------------------------------------------------ time

    def advance(self, ts_ns: int) -> list[Update]:
        """Execute every pending tx due at or before ``ts_ns`` (in execution-time order) and move
        the clock to ``ts_ns`` (it never goes back)."""
        out: list[Update] = []
        pending, timers = self._pending, self._timers
        while True:
            if timers and timers[0][0] <= ts_ns and (not pending or timers[0][0] <= pending[0][0]):
                self.now_ns = max(self.now_ns, timers[0][0])
                out.extend(self._fire_timer())  # a timer goes before a tx due at the same time
                continue
            if not pending or pending[0][0] > ts_ns:
                break
            exec_ns, _, tx = heapq.heappop(pending)
            self.now_ns = max(self.now_ns, exec_ns)
            out.extend(self._execute(tx, self.now_ns))
        self.now_ns = max(self.now_ns, ts_ns)
        return out

    def on_market_data(self, ev: Bbo | Trade | MarketStats) -> list[Update]:
        """Apply one recorded event (after executing the txs due by its ``ts_event``).
        Events of unknown markets or types are ignored (returns the pending-tx updates only)."""
        ts = ev.ts_event
        pending = self._pending
        out: list[Update] | None = None
        if (pending and pending[0][0] <= ts) or (self._timers and self._timers[0][0] <= ts):
            out = self.advance(ts)
        elif ts > self.now_ns:  # nothing due: advance() would only move the clock
            self.now_ns = ts
        ms = self._by_symbol_state.get(getattr(ev, "market", ""))
        if ms is None:
            return [] if out is None else out
        m, st, book = ms
        ts = self.now_ns
        st.last_ts_ns = ts
        t = type(ev)
        if t is Trade:  # exact types first (the common case), then subclasses
            if not book and not self.public_updates:  # = _apply_trade: nothing to fill, nobody to tell
                st.last_trade_price = ev.price  # type: ignore[attr-defined]
                ups = []
            else:
                ups = self._apply_trade(m, st, ev, ts)  # type: ignore[arg-type]
        elif t is Bbo or isinstance(ev, Bbo):
            ups = self._apply_bbo(m, st, ev, ts)
        elif isinstance(ev, Trade):
            ups = self._apply_trade(m, st, ev, ts)
        elif isinstance(ev, MarketStats):
            st.mark_price, st.index_price = ev.mark_price, ev.index_price
            st.funding_rate, st.open_interest = ev.funding_rate, ev.open_interest
            if ev.last_trade_price:
                st.last_trade_price = ev.last_trade_price
            ups = [StatsChanged(market_id=m.market_id, ts_ns=ts)] if self.public_updates else []
        else:
            ups = []
        if self.stops[m.market_id] and t is not Bbo:
            ups = ups + self._check_stops(m, st, ts)
        if out is None:
            return ups
        out.extend(ups)
        return out

    # ------------------------------------------------------------------ execution

    def _execute(self, tx: Tx, ts: int) -> list[Update]:
        if isinstance(tx, CreateOrder):
            counts = self._pending_coi.get(tx.account, {})
            if counts.get(tx.client_order_index):
                counts[tx.client_order_index] -= 1
                if not counts[tx.client_order_index]:
                    del counts[tx.client_order_index]
            return self._exec_create(tx, ts)
        if isinstance(tx, CancelOrder):
            target = self._live_order(tx.account, tx.market_id, tx.index)
            return [] if target is None else self._cancel(target, "canceled", ts)
        if isinstance(tx, ModifyOrder):
            return self._exec_modify(tx, ts)
        if tx.scheduled:
            return self._exec_scheduled_cancel_all(tx, ts)
        return self._cancel_account(tx.account, tx.market_id, ts)

    def _cancel(self, o: Order, status: OrderStatus, ts: int) -> list[Update]:
        if self.stops[o.market_id].pop(o.order_index, None) is not None:
            o.status, o.updated_ns = status, ts
            self._finish(o)
            return [OrderUpdate(order=_snap(o), ts_ns=ts)]  # never on the book
        self.resting[o.market_id].pop(o.order_index, None)
        o.status = status
        o.updated_ns = ts
        self._finish(o)
        return [OrderUpdate(order=_snap(o), ts_ns=ts), BookChanged(market_id=o.market_id, ts_ns=ts)]

    def _finish(self, o: Order) -> None:
        hist = self.inactive.setdefault(o.account, deque(maxlen=self._inactive_history))
        hist.append(o)
        self.orders.pop(o.order_index, None)

    def _new_order_index(self, is_ask: bool) -> int:
        self._order_counter += 1
        return (ASK_ID_BASE if is_ask else BID_ID_BASE) + self._order_counter

    def _exec_create(self, tx: CreateOrder, ts: int) -> list[Update]:
        self._seq += 1
        o = Order(order_index=self._new_order_index(tx.is_ask), client_order_index=tx.client_order_index,
                  account=tx.account, market_id=tx.market_id, is_ask=tx.is_ask, price=tx.price,
                  initial_amount=tx.base_amount, remaining=tx.base_amount, order_type=tx.order_type,
                  time_in_force=tx.time_in_force, reduce_only=tx.reduce_only, order_expiry_ms=tx.order_expiry_ms,
                  nonce=tx.nonce, created_ns=ts, updated_ns=ts, seq=self._seq, tx_hash=tx.tx_hash,
                  trigger_price=tx.trigger_price)
        if tx.order_type in STOP_TYPES:  # off the book until triggered (reduce-only is checked then)
            self.stops[o.market_id][o.order_index] = o
            self.orders[o.order_index] = o
            self._arm_expiry(o)
            return [OrderUpdate(order=_snap(o), ts_ns=ts)]
        return self._place(o, ts)

    def _place(self, o: Order, ts: int) -> list[Update]:
        """Execute order ``o`` (new, or a stop just triggered): reduce-only clip, post-only
        check, take liquidity, then rest or finish it."""
        if o.reduce_only:
            pos = self.position(o.account, o.market_id).size
            if pos == 0 or (pos > 0) == (not o.is_ask):
                o.status = "canceled-reduce-only"
                self._finish(o)
                return [OrderUpdate(order=_snap(o), ts_ns=ts)]
            o.remaining = min(o.remaining, abs(pos))
        if o.time_in_force == "post_only" and self._best_opposite(o.market_id, o.is_ask, o.price) is not None:
            o.status = "canceled-post-only"
            self._finish(o)
            return [OrderUpdate(order=_snap(o), ts_ns=ts)]
        fills: list[Update] = []
        positions: list[Update] = []
        orders: list[Update] = []
        self._take(o, ts, fills, positions, orders)
        book_changed = bool(fills) or any(isinstance(u, OrderUpdate) for u in orders)
        if o.remaining == 0:
            o.status = "filled"
            self._finish(o)
        elif o.order_type in MARKET_TYPES or o.time_in_force == "ioc":
            o.status = "canceled"
            self._finish(o)
        else:
            o.queue_ahead = self._join_queue(o)
            self.resting[o.market_id][o.order_index] = o
            self.orders[o.order_index] = o
            self._arm_expiry(o)
            book_changed = True
        orders.append(OrderUpdate(order=_snap(o), ts_ns=ts))
        out = fills + positions + orders
        if book_changed:
            out.append(BookChanged(market_id=o.market_id, ts_ns=ts))
        return out

    def _join_queue(self, o: Order) -> int | None:
        st = self.state[o.market_id]
        touch = st.ask_px if o.is_ask else st.bid_px
        if touch is None:
            return 0
        if o.price == touch:
            return (st.ask_sz - st.consumed_ask) if o.is_ask else (st.bid_sz - st.consumed_bid)
        better = o.price < touch if o.is_ask else o.price > touch
        return 0 if better else None

    def _best_opposite(self, market_id: int, is_ask: bool, limit: int) -> int | None:
        """Best price on the side an order would hit that is within ``limit``, or None."""
        st = self.state[market_id]
        prices = []
        if is_ask:  # a sell hits bids >= limit
            if st.bid_px is not None and st.bid_sz - st.consumed_bid > 0 and st.bid_px >= limit:
                prices.append(st.bid_px)
            prices += [o.price for o in self.resting[market_id].values() if not o.is_ask and o.price >= limit]
            prices += [px for px, _, _ in self._ladder_levels(market_id, False, limit, 1)] if self.ladders else []
            return max(prices) if prices else None
        if st.ask_px is not None and st.ask_sz - st.consumed_ask > 0 and st.ask_px <= limit:
            prices.append(st.ask_px)
        prices += [o.price for o in self.resting[market_id].values() if o.is_ask and o.price <= limit]
        prices += [px for px, _, _ in self._ladder_levels(market_id, True, limit, 1)] if self.ladders else []
        return min(prices) if prices else None

    def _take(self, o: Order, ts: int, fills: list[Update], positions: list[Update], orders: list[Update]) -> None:
        """Match taker ``o`` against the recorded touch, the synthetic ladder (when ``depth`` is
        set) and resting orders, best price first; at one price the recorded or synthetic size
        comes before resting orders (they queue behind)."""
        st = self.state[o.market_id]
        book = self.resting[o.market_id]
        cands: list[tuple[int, int, Order | None]] = []  # (price key, priority, maker)
        sign = 1 if not o.is_ask else -1  # buy: ascending ask prices; sell: descending bid prices
        if o.is_ask:
            if st.bid_px is not None and st.bid_sz - st.consumed_bid > 0 and st.bid_px >= o.price:
                cands.append((-st.bid_px, 0, None))
        elif st.ask_px is not None and st.ask_sz - st.consumed_ask > 0 and st.ask_px <= o.price:
            cands.append((st.ask_px, 0, None))
        for r in book.values():
            if r.is_ask != o.is_ask and (r.price <= o.price if not o.is_ask else r.price >= o.price):
                cands.append((sign * r.price, r.seq, r))
        ladder: dict[int, int] = {}  # synthetic levels: price ticks -> full lots
        if self.depth is not None:
            enough = 0
            for px, lots, full in self._ladder_levels(o.market_id, not o.is_ask, o.price, self.depth.max_sweep_levels):
                if enough >= o.remaining:
                    break
                cands.append((sign * px, 0, None))
                ladder[px] = full
                enough += lots
        cands.sort(key=lambda c: (c[0], c[1]))
        for key, _, maker in cands:
            if o.remaining <= 0:
                break
            if maker is None and sign * key in ladder:  # a synthetic level (shared.venue.depth)
                q = self.ladders[o.market_id].take(not o.is_ask, sign * key, o.remaining, ts, ladder[sign * key])
                if q > 0:
                    self._fill(o, None, sign * key, q, ts, fills, positions)
            elif maker is None:
                px = st.bid_px if o.is_ask else st.ask_px
                assert px is not None
                avail = (st.bid_sz - st.consumed_bid) if o.is_ask else (st.ask_sz - st.consumed_ask)
                q = min(o.remaining, avail)
                if q <= 0:
                    continue
                if o.is_ask:
                    st.consumed_bid += q
                else:
                    st.consumed_ask += q
                for r in book.values():  # displayed size ahead of resting orders at that price was taken
                    if r.is_ask != o.is_ask and r.price == px and r.queue_ahead:
                        r.queue_ahead = max(0, r.queue_ahead - q)
                self._fill(o, None, px, q, ts, fills, positions)
            elif maker.account == o.account:
                self.self_trade_cancels.append(_snap(maker))
                orders.extend(u for u in self._cancel(maker, "canceled-self-trade", ts) if isinstance(u, OrderUpdate))
            else:
                q = min(o.remaining, maker.remaining)
                self._fill(o, maker, maker.price, q, ts, fills, positions)
                orders.append(self._after_maker_fill(maker, ts))

    def _after_maker_fill(self, maker: Order, ts: int) -> OrderUpdate:
        maker.updated_ns = ts
        if maker.remaining == 0:
            maker.status = "filled"
            self.resting[maker.market_id].pop(maker.order_index, None)
            self._finish(maker)
        return OrderUpdate(order=_snap(maker), ts_ns=ts)

    def _fill(self, taker: Order | None, maker: Order | None, px: int, q: int, ts: int,
              fills: list[Update], positions: list[Update]) -> Fill:
        """Record a fill of ``q`` lots at ``px`` ticks. ``taker``/``maker`` None = the recorded book."""
        ref = taker or maker
        assert ref is not None
        m = self.markets[ref.market_id]
        price, size = m.int_to_price(px), m.int_to_size(q)
        notional = price * size
        taker_is_ask = taker.is_ask if taker is not None else not maker.is_ask  # type: ignore[union-attr]
        taker_fee = notional * self.taker_fee
        maker_fee = notional * self.maker_fee
        self._trade_counter += 1
        f = Fill(trade_id=SIM_TRADE_ID_BASE + self._trade_counter, market=m.symbol, market_id=m.market_id,
                 price=price, size=size, price_ticks=px, size_lots=q,
                 taker_account=taker.account if taker else BOOK_ACCOUNT,
                 maker_account=maker.account if maker else BOOK_ACCOUNT,
                 taker_order_index=taker.order_index if taker else 0,
                 maker_order_index=maker.order_index if maker else 0,
                 taker_client_order_index=taker.client_order_index if taker else 0,
                 maker_client_order_index=maker.client_order_index if maker else 0,
                 taker_side="sell" if taker_is_ask else "buy", maker_side="buy" if taker_is_ask else "sell",
                 taker_fee=taker_fee, maker_fee=maker_fee, ts_ns=ts,
                 tx_hash=(taker or maker).tx_hash)  # type: ignore[union-attr]
        self.fills.append(f)
        fills.append(FillUpdate(fill=f))
        for o, fee in ((taker, taker_fee), (maker, maker_fee)):
            if o is None:
                continue
            o.remaining -= q
            o.filled += q
            o.filled_quote += notional
            o.updated_ns = ts
            pos = self._apply_position(o.account, m, -q if o.is_ask else q, price, fee)
            positions.append(PositionUpdate(position=_snap(pos), ts_ns=ts))
        st = self.state[m.market_id]
        st.last_trade_price = price
        return f

    def _apply_position(self, account: int, m: MarketInfo, delta: int, price: float, fee: float) -> Position:
        pos = self.position(account, m.market_id)
        acct = self.account(account)
        old = pos.size
        new = old + delta
        if old == 0 or (old > 0) == (delta > 0):  # open or add
            pos.avg_entry_price = (abs(old) * pos.avg_entry_price + abs(delta) * price) / abs(new)
        else:  # reduce, close or flip
            closed = min(abs(old), abs(delta))
            pnl = m.int_to_size(closed) * (price - pos.avg_entry_price) * (1 if old > 0 else -1)
            pos.realized_pnl += pnl
            acct.collateral += pnl
            if new == 0:
                pos.avg_entry_price = 0.0
            elif (new > 0) != (old > 0):
                pos.avg_entry_price = price
        pos.size = new
        pos.fees_paid += fee
        acct.collateral -= fee
        return pos

S = TypeVar("S", bound=msgspec.Struct)


def _snap(x: S) -> S:
    """A copy of a state struct, so an update keeps the state it was emitted with."""
    return msgspec.structs.replace(x)
