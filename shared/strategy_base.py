"""Building blocks shared by the strategies (strategy-trend and strategy-renko use all of it).

A target-position strategy folds its own ``Fill`` events into a position, decides a signed
target and sends it as a :class:`~shared.events.TargetPosition`, without spamming it. These
pieces are plain, deterministic Python (no clock, no I/O):

- :class:`FillDedup`: a bounded set of seen ``fill_id`` values (delivery is at-least-once).
- :class:`StrategyEngineBase`, :class:`TopOfBook`, :func:`addressed_to`, :func:`own_state`,
  :func:`died_at_venue`:
  what every engine (target, grid, maker, hedger) keeps and how it reads its exec events.
- :class:`Position`: the fold of one market's fills: signed size, size-weighted average entry
  price, the time of the fill that opened it.
- :class:`Pending`: the no-spam rule for targets: a target sent is *pending* until the position
  reaches it; the same target goes out again only after its order died at the venue (venue
  reject/cancel) or ``retry_after_s`` without reaching it, and then at most once per bucket (not
  in the bucket it was last sent in). A local refusal by the executor waits for the timer; an
  *unreachable* one (code 1: the remainder is below the market minimum) is not retried at all
  until the target changes. A different target is sent at once.
- :class:`MarketSizing`, :data:`DEFAULT_SIZES`, :class:`TargetStrategyConfig`: per-market order
  size bounds and the common part of the trend/renko configs.
- :func:`clamp_size`: clamp a raw size to a market's ``MarketSizing`` and round it down to the lot.
- :func:`price_exit`: the stop-loss / take-profit test against the average entry.
- :func:`merge_sizes`: merge a config's per-market sizes field by field over defaults.
- :func:`notional_size`, :func:`notional_sizing`: sizes of a market the config does not list,
  from a notional in USD and the market's lot and minimums (every strategy uses them).
- :func:`signal_labels`: ``(side, reason)`` of an emitted target, for metrics.
- :class:`TargetEngine`: the common part of a target-position engine: per-market state, the
  exec-event handling (fill fold, pending target) and the emission of ``TargetPosition``.
"""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Generic, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, field_validator, model_validator

from shared.candles import CandleBuilder
from shared.config import ConfigError
from shared.events import (
    Bbo,
    Event,
    Fill,
    MarketStats,
    OrderAccepted,
    OrderCanceled,
    OrderRejected,
    PositionSnapshot,
    TargetPosition,
    Trade,
    child,
)
from shared.indicators import Bands
from shared.markets import MarketInfo, market_info

POS_EPS = 1e-9  # base units: a position or target difference below this is zero

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Default order notional of every strategy in a market its config does not list (USD): the
#: shipped BTC/ETH sizes are about this much (0.0002 BTC, 0.005 ETH in 2025), 2.5x Lighter's
#: 10 USD minimum.
DEFAULT_NOTIONAL_USD = 25.0
#: ``max_size / min_size`` of a derived sizing (the shipped BTC/ETH sizes: 0.0002-0.0004, 0.005-0.01).
MAX_SIZE_RATIO = 2.0
#: A derived size is at least ``min_quote_amount`` times this (a mid move must not put it below).
MIN_QUOTE_MARGIN = 1.05


_MARKET_DATA = frozenset({Trade, MarketStats})  # ignored by target engines
_EXEC_INPUTS = (Fill, OrderRejected, OrderCanceled, PositionSnapshot)


def addressed_to(event: Event, strategy: str) -> bool:
    """Whether an exec-stream event concerns ``strategy``. Fills and position snapshots name one
    strategy; the order events of an order the executor placed for several strategies at once
    carry their names comma-joined (``"trend,renko"``, see docs/internals.md)."""
    name = getattr(event, "strategy", None)
    if name is None:
        return False
    if isinstance(event, OrderAccepted | OrderRejected | OrderCanceled):
        return strategy in name.split(",")
    return name == strategy


def died_at_venue(event: OrderRejected | OrderCanceled) -> bool:
    """Whether a reject or cancel of a quoting strategy's order means the venue ended an order
    the strategy still wants (so sending it again may succeed): a reject with a venue code (the
    executor's own refusals, codes ``0 <= code < 21000``, are deterministic: the same order
    would be refused again), or a cancel the strategy did not ask for (``reason`` other than
    ``"canceled"``, e.g. ``canceled-post-only``)."""
    if isinstance(event, OrderRejected):
        return not 0 <= event.code < 21000
    return event.reason != "canceled"


def own_state(event: Event, strategy: str, states: Mapping[str, T]) -> T | None:
    """The per-market state (of ``states``, by market) an exec event of ``strategy`` is for:
    ``None`` when the event is not addressed to ``strategy`` (:func:`addressed_to`) or its market
    is not traded."""
    if not addressed_to(event, strategy):
        return None
    return states.get(getattr(event, "market", ""))


class TopOfBook:
    """Mixin of a per-market state dataclass that keeps the best bid and ask (its own fields
    ``bid``, ``ask``: USD, ``None`` until seen): gives their ``mid``."""

    __slots__ = ()
    bid: float | None
    ask: float | None

    @property
    def mid(self) -> float | None:
        """``(bid + ask) / 2`` in USD, ``None`` until both sides were seen."""
        if self.bid is None or self.ask is None:
            return None
        return (self.bid + self.ask) / 2.0


class StrategyEngineBase(ABC):
    """What every strategy engine keeps: its config ``cfg``, its name (``cfg.strategy``), the
    ``source`` of its output events, the ``markets`` it trades, the metadata of markets
    (``market_info``: lot, tick, minimums, for markets its config does not list) and the fill
    deduplication (delivery is at-least-once; :class:`FillDedup` of ``seen_fills`` ids)."""

    def __init__(self, cfg: Any, markets: list[str], source: str, seen_fills: int = 100_000,
                 market_info: Mapping[str, MarketInfo] | None = None) -> None:
        self.cfg = cfg
        self.name: str = cfg.strategy
        self.source = source
        self.markets = list(markets)
        self.market_info = dict(market_info or {})
        self._fills = FillDedup(seen_fills)
        self.awaiting_snapshot: set[str] = set()  # markets whose position the next snapshot sets

    @property
    def duplicate_fills(self) -> int:
        """Fills seen again (same ``fill_id``) and ignored."""
        return self._fills.duplicates

    @abstractmethod
    def position(self, market: str) -> float:
        """The strategy's position in ``market`` (signed base units); every engine defines it."""

    @abstractmethod
    def adopt_position(self, market: str, position: float, avg_entry_price: float, ts_event: int) -> None:
        """Set the position in ``market`` to ``position`` (signed base units) entered at
        ``avg_entry_price`` (USD, 0 when unknown) at ``ts_event`` (ns): the executor's
        :class:`~shared.events.PositionSnapshot` when the strategy's fill history is gone
        (:meth:`take_snapshot`). Each engine defines it for its own position state."""

    def await_snapshot(self, markets: list[str] | None = None) -> None:
        """Take the position of each of ``markets`` (default: all traded) from the next
        ``PositionSnapshot`` of this strategy there (:meth:`take_snapshot`): the runner calls
        it when the fill history cannot be trusted (none at start, or Redis lost its data).
        Nothing in dry run (the position is simulated, the executor has none)."""
        if not self.cfg.dry_run:
            self.awaiting_snapshot.update(self.markets if markets is None else markets)

    def take_snapshot(self, snap: PositionSnapshot) -> float | None:
        """When ``snap`` is this strategy's snapshot of a market awaiting one
        (:meth:`await_snapshot`): stop awaiting it there and, if it differs from the position by
        more than ``POS_EPS``, :meth:`adopt_position` it; returns the position it replaced
        (``None``: nothing changed). Deterministic: no clock, the snapshot's own values."""
        if snap.strategy != self.name or snap.market not in self.awaiting_snapshot:
            return None
        self.awaiting_snapshot.discard(snap.market)
        old = self.position(snap.market)
        if abs(old - snap.position) <= POS_EPS:
            return None
        self.adopt_position(snap.market, snap.position, snap.avg_entry_price, snap.ts_event)
        return old


class Sizing(Protocol):
    """What :func:`clamp_size` needs (:class:`MarketSizing` fits)."""

    min_size: float
    max_size: float
    size_step: float | None


class MarketSizing(BaseModel):
    """Order size bounds of one market, in base units.

    ``size = clamp(ATR · atr_size_multiplier / price, min_size, max_size)``, rounded down to a
    multiple of ``size_step`` (the market's lot; ``None`` = no rounding) and never below
    ``min_size``. Keep ``min_size`` at or above Lighter's minimum base amount and 10 USD
    notional (BTC 0.0002, ETH 0.005 on Lighter in 2025).
    """

    model_config = ConfigDict(extra="forbid")
    min_size: float = Field(gt=0)
    max_size: float = Field(gt=0)
    size_step: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> MarketSizing:
        if self.max_size < self.min_size:
            raise ValueError(f"max_size {self.max_size} is below min_size {self.min_size}")
        return self


DEFAULT_SIZES: dict[str, dict[str, float]] = {
    "BTC": {"min_size": 0.0002, "max_size": 0.0004, "size_step": 0.00001},
    "ETH": {"min_size": 0.005, "max_size": 0.01, "size_step": 0.0001},
}


class FillDedup:
    """Remembers the last ``capacity`` fill ids; :meth:`first` is True once per id."""

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()
        self.duplicates = 0

    def first(self, fill_id: str) -> bool:
        """Record ``fill_id``; False (and count a duplicate) if it was seen before."""
        if fill_id in self._ids:
            self.duplicates += 1
            return False
        self._ids[fill_id] = None
        if len(self._ids) > self.capacity:
            self._ids.popitem(last=False)
        return True


@dataclass(slots=True)
class Position:
    """One market's position from fills: ``size`` signed base units, ``avg_entry`` USD (0 when
    flat), ``entry_ts`` ns of the fill that opened it (``None`` when flat)."""

    size: float = 0.0
    avg_entry: float = 0.0
    entry_ts: int | None = None
    fills: int = 0

    def apply(self, f: Fill) -> None:
        """Fold one (already deduplicated) fill. Adding averages the entry; reducing keeps it;
        closing resets it; flipping restarts it at the fill price and time."""
        if f.size <= 0:
            return
        self.trade(f.size, f.side == "buy", f.price, f.ts_event)

    def trade(self, size: float, buy: bool, price: float, ts: int) -> None:
        """Fold a trade of ``size`` > 0 base units (``buy`` or sell) at ``price`` USD at ``ts``
        ns: a fill (:meth:`apply`) or, in dry run, the simulated execution of a target."""
        self.fills += 1
        signed = size if buy else -size
        old = self.size
        new = old + signed
        if abs(new) < POS_EPS:
            new = 0.0
        if old == 0.0 or (old > 0) == (signed > 0):  # opening or adding
            self.avg_entry = (abs(old) * self.avg_entry + size * price) / (abs(old) + size)
            if old == 0.0:
                self.entry_ts = ts
        elif new == 0.0:  # closed
            self.avg_entry = 0.0
            self.entry_ts = None
        elif (new > 0) != (old > 0):  # flipped: the remainder was opened at this fill
            self.avg_entry = price
            self.entry_ts = ts
        self.size = new


@dataclass(slots=True)
class Pending:
    """The last target sent and whether it may be sent again.

    A target sent is pending until the position reaches it. The same target is sent again only
    when its order died or ``retry_after_s`` passed since it was sent, and then at most once per
    bucket (not in the bucket it was last sent in):

    - venue reject (``OrderRejected`` with ``code != 0``) or ``OrderCanceled``: the order died,
      the retry may go out in the next bucket;
    - local refusal (``OrderRejected`` with ``code == 0``: the executor refused the order itself,
      e.g. a clip by a limit, the reducing state, no market data): refusing again is likely, so
      the retry waits for ``retry_after_s`` (it does not count as died, and a later death of an
      older order does not hasten it until the target is sent again);
    - unreachable (``OrderRejected`` with ``code == 1``: the strategy's remainder to the target,
      e.g. of a partly filled entry, is below the market's minimum order and nothing of it is in
      flight): sending the same target again can never trade, so it is **not retried** (no timer,
      no death of an older order revives it) until the target value changes (:meth:`check` with
      a different target) or the position reaches it (the executor keeps the target and may
      still fill it by netting it against another strategy's order). It does not block a new
      entry (:meth:`may_enter`): only a different target can go out.

    A different target is sent at once.
    """

    target: float | None = None
    ts: int = 0
    bucket: int = 0
    dead: bool = False
    refused: bool = False
    unreachable: bool = False

    def reached(self, position: float) -> None:
        """Clear the pending target once ``position`` equals it."""
        if self.target is not None and abs(position - self.target) < POS_EPS:
            self.target = None
            self.dead = False
            self.refused = False
            self.unreachable = False

    def order_died(self, local: bool = False, unreachable: bool = False) -> None:
        """An order for the pending target was rejected or canceled: a retry is allowed, at
        once for a venue reject or cancel, after ``retry_after_s`` for a ``local`` refusal,
        never (until the target changes) when ``unreachable``."""
        if self.target is None:
            return
        if unreachable:
            self.unreachable = True
            self.dead = False
        elif local:
            self.refused = True
            self.dead = False
        elif not self.refused:
            self.dead = True

    def retry_allowed(self, ts: int, bucket: int, retry_after_s: float) -> bool:
        """May the pending target be sent again at ``ts`` in ``bucket``? Never while it is
        unreachable."""
        if self.unreachable:
            return False
        dead = self.dead or ts - self.ts >= retry_after_s * 1e9
        return dead and bucket > self.bucket

    def may_enter(self, ts: int, bucket: int, retry_after_s: float) -> bool:
        """No target pending, the pending one is unreachable (given up: only a different target
        can go out), or it may be retried."""
        return self.target is None or self.unreachable or self.retry_allowed(ts, bucket, retry_after_s)

    def check(self, target: float, ts: int, bucket: int, retry_after_s: float) -> str | None:
        """Decide whether ``target`` goes out now: ``None`` = suppress, ``""`` = send,
        ``" retry"`` = send as a retry of the same pending target. Records it when sent."""
        suffix = ""
        if self.target is not None and abs(self.target - target) < POS_EPS:
            if not self.retry_allowed(ts, bucket, retry_after_s):
                return None
            suffix = " retry"
        self.target = target
        self.ts = ts
        self.bucket = bucket
        self.dead = False
        self.refused = False
        self.unreachable = False
        return suffix


def clamp_size(raw: float, sizing: Sizing) -> float:
    """``clamp(raw, min_size, max_size)`` rounded down to ``size_step``, never below ``min_size``."""
    size = min(max(raw, sizing.min_size), sizing.max_size)
    if sizing.size_step:
        size = math.floor(size / sizing.size_step + 1e-9) * sizing.size_step
        size = max(size, sizing.min_size)
    return round(size, 12)


def price_exit(position: float, avg_entry: float, mid: float, take_profit_bps: float,
               stop_loss_bps: float) -> str | None:
    """``stop_loss`` or ``take_profit`` if ``mid`` crossed the level from ``avg_entry``
    (stop checked first), else ``None``. ``position`` gives the side (0 -> ``None``)."""
    if position > 0:
        if mid <= avg_entry * (1.0 - stop_loss_bps / 1e4):
            return "stop_loss"
        if mid >= avg_entry * (1.0 + take_profit_bps / 1e4):
            return "take_profit"
    elif position < 0:
        if mid >= avg_entry * (1.0 + stop_loss_bps / 1e4):
            return "stop_loss"
        if mid <= avg_entry * (1.0 - take_profit_bps / 1e4):
            return "take_profit"
    return None


def merge_sizes(given: Any, defaults: dict[str, dict[str, float]]) -> Any:
    """Per-market sizes merged field by field over ``defaults``; market keys upper-cased (env
    overrides arrive lower-cased). Non-dict input is returned for the validator to reject."""
    if given is None:
        return {k: dict(d) for k, d in defaults.items()}
    if not isinstance(given, dict):
        return given
    merged: dict[str, Any] = {k: dict(d) for k, d in defaults.items()}
    for market, value in given.items():
        key = str(market).upper()
        if hasattr(value, "model_dump"):
            value = value.model_dump()
        if isinstance(value, dict) and key in merged:
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def notional_size(notional_usd: float, mid: float, info: MarketInfo) -> float:
    """Base units of an order of ``notional_usd`` USD at ``mid`` USD in market ``info``: rounded
    **up** to the lot, and at least the market's minimums (``min_base_amount``, and
    ``min_quote_amount · MIN_QUOTE_MARGIN`` USD of notional).

    Raises:
        ValueError: ``mid`` or ``notional_usd`` is not > 0.
    """
    if not (mid > 0 and notional_usd > 0):
        raise ValueError(f"notional_size: mid {mid!r} and notional_usd {notional_usd!r} must be > 0")
    units = max(notional_usd, info.min_quote_amount * MIN_QUOTE_MARGIN) / mid
    lot = info.lot
    size = max(math.ceil(units / lot - 1e-9) * lot, info.min_base_amount)
    return round(size, 12)


def notional_sizing(notional_usd: float, mid: float, info: MarketInfo,
                    max_ratio: float = MAX_SIZE_RATIO) -> MarketSizing:
    """The :class:`MarketSizing` of a market the config does not list: ``min_size`` =
    :func:`notional_size`, ``max_size`` = ``max_ratio`` x that, ``size_step`` = the lot.

    Raises:
        ValueError: ``mid`` or ``notional_usd`` is not > 0.
    """
    size = notional_size(notional_usd, mid, info)
    return MarketSizing(min_size=size, max_size=round(size * max_ratio, 12), size_step=info.lot)


def unlisted_info(market: str, mid: float, given: Mapping[str, MarketInfo] | None) -> MarketInfo:
    """The metadata the sizes of a market missing from the config are derived from
    (:func:`shared.markets.market_info`: ``given``, then Lighter's known markets, then a guess
    from ``mid``); logs the choice (once per market and engine: callers keep the result)."""
    info = market_info(market, mid, given)
    log.info("%s: not in the config: sizes from the notional in USD, lot %g, min %g units / %g USD (mid %g)",
             market, info.lot, info.min_base_amount, info.min_quote_amount, mid)
    return info


def default_sizes() -> dict[str, MarketSizing]:
    """:data:`DEFAULT_SIZES` as models (the default of a config's ``sizes``)."""
    return {k: MarketSizing(**v) for k, v in DEFAULT_SIZES.items()}


#: A strategy name (``strategy`` of fills, intents and the consumer group): not empty.
StrategyName = Annotated[str, Field(min_length=1)]
#: A TCP port (``http_port`` of /health and /metrics); 0 = any free port.
HttpPort = Annotated[int, Field(ge=0, le=65535)]


class TargetStrategyConfig(BaseModel):
    """Base of the target-position strategy configs (trend, renko): the fields every one of
    them has and :class:`TargetEngine` reads, in this order at the head of each config; a
    subclass sets ``SECTION``, gives ``strategy``, ``http_port``, ``take_profit_bps``,
    ``stop_loss_bps`` and ``max_hold_s`` their defaults (same types), has a
    ``candle_interval_ns`` (the length of its mid candles, ns) and adds its own fields.

    ``markets``: ``None`` = the top-level ``markets`` of the stack config. ``sizes`` given in
    the file are merged field by field over :data:`DEFAULT_SIZES` (:func:`merge_sizes`: setting
    only ``sizes.BTC.max_size`` keeps the other defaults); market keys are upper-cased. A market
    without ``sizes`` is sized at its first mid from ``notional_usd`` [25 USD]: ``min_size`` =
    that notional rounded up to the lot and at least the market minimums, ``max_size`` twice it
    (:func:`notional_sizing`). ``dry_run``: signals are decided, counted and logged and the
    position is simulated, but no intent is sent. Units: ``_bps`` basis points of price, ``_s``
    seconds of event time."""

    model_config = ConfigDict(extra="forbid")
    SECTION: ClassVar[str] = ""

    strategy: StrategyName
    markets: list[str] | None = None
    http_port: HttpPort
    dry_run: bool = False  # decide, count and log signals, simulate the position, send no intent

    # candles of the mid (interval: the subclass's ``candle_interval_ns``)
    candle_fill_gaps: bool = True
    candle_max_fill: int = Field(default=20, ge=0)

    # exit rules (TargetEngine._exit_reason)
    take_profit_bps: PositiveFloat
    stop_loss_bps: PositiveFloat
    max_hold_s: PositiveFloat

    # sizing and orders
    sizes: dict[str, MarketSizing] = Field(default_factory=default_sizes)
    notional_usd: float = Field(default=DEFAULT_NOTIONAL_USD, gt=0)  # markets without sizes: min_size notional
    max_slippage_bps: float = Field(default=10.0, ge=0)
    retry_after_s: float = Field(default=30.0, gt=0)

    @field_validator("sizes", mode="before")
    @classmethod
    def _merge_sizes(cls, v: Any) -> Any:
        return merge_sizes(v, DEFAULT_SIZES)

    def resolve_markets(self, stack_markets: list[str]) -> list[str]:
        """The markets traded: ``markets`` or the stack's. A market without a ``sizes`` entry
        is sized from ``notional_usd`` at its first mid (:func:`notional_sizing`).

        Raises:
            ConfigError: the list is empty.
        """
        markets = list(self.markets) if self.markets is not None else list(stack_markets)
        if not markets:
            raise ConfigError(f"config error: services.{self.SECTION}.markets: no market to trade")
        return markets


def signal_labels(tp: TargetPosition) -> tuple[str, str]:
    """``(side, reason)`` of an intent a target engine emitted: side ``long``/``short`` (the side
    entered or exited), reason ``entry`` or the exit rule (``stop_loss``, ``take_profit``,
    ``time_stop``, ``trend_reversal``, ``ao_reversal``): the words of ``entry <side> ...`` /
    ``exit <side> <rule> ...``."""
    parts = tp.reason.split(" ")
    if len(parts) < 3:
        return "unknown", "unknown"
    return parts[1], ("entry" if parts[0] == "entry" else parts[2])


def band_state(bands: Bands | None, position: float | None) -> dict[str, float | None]:
    """The Bollinger part of a target engine's ``state(market)`` snapshot: ``bb_upper``,
    ``bb_middle``, ``bb_lower`` (prices, ``None`` before the bands are ready) and
    ``bb_position`` (the mid's place in the band, 0 lower .. 1 upper)."""
    return {
        "bb_upper": bands.upper if bands else None,
        "bb_middle": bands.middle if bands else None,
        "bb_lower": bands.lower if bands else None,
        "bb_position": position,
    }


@dataclass(slots=True, kw_only=True)
class TargetState:
    """What :class:`TargetEngine` keeps for one market; an engine's market state extends it
    (``@dataclass(slots=True, kw_only=True)``)."""

    market: str
    sizing: MarketSizing | None  # None: not in the config, derived at the first mid
    candles: CandleBuilder  # mid candles: their bucket is the once-per-bucket unit of Pending
    mid: float | None = None
    pos: Position = field(default_factory=Position)  # position from fills
    executor_position: float | None = None  # the executor's last PositionSnapshot (informational)
    pending: Pending = field(default_factory=Pending)  # the last target sent
    signals: dict[str, int] = field(default_factory=dict)  # "side:reason" -> intents emitted


S = TypeVar("S", bound=TargetState)


class TargetEngine(StrategyEngineBase, ABC, Generic[S]):
    """Base of a target-position engine: subclasses give ``_new_state(market)``,
    ``_on_mid(bbo, mid, state) -> [events]`` (called on each usable mid, ``state.mid`` set) and
    ``_reversal(state)`` (their own exit rule), call :meth:`_exit` first and :meth:`_emit` to
    send an entry.

    Args:
        cfg: the strategy's configuration (``strategy``, ``max_slippage_bps``,
            ``retry_after_s``, ``take_profit_bps``, ``stop_loss_bps``, ``max_hold_s``,
            ``sizes``, ``notional_usd``, ``dry_run``).
        markets: markets to trade.
        source: ``source`` of the output events (default: the engine's ``SOURCE``).
        seen_fills: how many fill ids to remember for deduplication.
        market_info: metadata of the markets (lot, minimums) for sizing markets missing from
            ``cfg.sizes``; a market not in it is looked up in ``KNOWN_MARKETS``, else guessed
            from its mid (:func:`shared.markets.market_info`).

    Sizing: ``cfg.sizes[market]`` when the config has it; else, at the market's first usable
    mid, :func:`notional_sizing` of ``cfg.notional_usd`` (``min_size`` that notional on the lot
    and above the minimums, ``max_size`` twice it).

    Dry run (``cfg.dry_run``): every decision is made and counted as when trading (``signals``
    in the engine's state, a log line per intent), but no intent is returned; the position is
    simulated instead, as if each target filled at once at the mid it was decided on (seed
    000's dry run: no orders, simulated position), so exits follow entries as they would.

    Exec events (``Fill``, ``OrderRejected``, ``OrderCanceled``, ``PositionSnapshot``) of this
    strategy and its markets are handled here: fills are deduplicated and folded into
    ``state.pos`` (clearing a reached pending target); a reject or cancel lets the pending
    target be retried, an unreachable refusal (code 1) stops its retries (see :class:`Pending`); a snapshot is kept as ``executor_position``.
    """

    SOURCE: ClassVar[str] = ""

    def __init__(self, cfg: Any, markets: list[str], source: str | None = None,
                 seen_fills: int = 100_000, market_info: Mapping[str, MarketInfo] | None = None) -> None:
        super().__init__(cfg, markets, self.SOURCE if source is None else source, seen_fills, market_info)
        self._m: dict[str, S] = {m: self._new_state(m) for m in self.markets}

    @abstractmethod
    def _new_state(self, market: str) -> S:
        """The strategy's per-market state for ``market`` (a :class:`TargetState` subclass,
        built with the fields of :meth:`_target_state`)."""

    def _target_state(self, market: str) -> dict[str, Any]:
        """The :class:`TargetState` fields of a new market state: ``market``, ``sizing``
        (``cfg.sizes[market]``, or ``None``: derived from ``notional_usd`` at the first mid) and
        the mid ``candles`` (``cfg.candle_interval_ns``, ``candle_fill_gaps``, ``candle_max_fill``)."""
        c = self.cfg
        return {
            "market": market,
            "sizing": c.sizes.get(market),
            "candles": CandleBuilder(c.candle_interval_ns, fill_gaps=c.candle_fill_gaps, max_fill=c.candle_max_fill),
        }

    @abstractmethod
    def _on_mid(self, ev: Bbo, mid: float, st: S) -> list[Event]:
        """The strategy's own work on a usable mid (indicators, entries); returns intents."""

    @abstractmethod
    def _reversal(self, st: S) -> str | None:
        """The strategy's signal exit reason for the open position, or ``None``."""

    def _exit_reason(self, ts: int, mid: float, st: S) -> str | None:
        """The first exit rule that fires: stop loss, take profit (:func:`price_exit`), time stop
        (``max_hold_s`` after the opening fill, at ≥), then the engine's :meth:`_reversal`."""
        c = self.cfg
        why = price_exit(st.pos.size, st.pos.avg_entry, mid, c.take_profit_bps, c.stop_loss_bps)
        if why is not None:
            return why
        if st.pos.entry_ts is not None and ts - st.pos.entry_ts >= c.max_hold_s * 1e9:
            return "time_stop"
        return self._reversal(st)

    def _exit(self, out: list[Event], ev: Bbo, st: S, bucket: int, mid: float) -> bool:
        """When not flat: emit a target of 0 if an exit rule fires. True when not flat (then
        there is no entry to consider). Callers may skip the call when ``st.pos.size == 0.0``
        (it returns False then, without effects)."""
        if st.pos.size == 0.0:
            return False
        why = self._exit_reason(ev.ts_event, mid, st)
        if why is not None:
            side = "long" if st.pos.size > 0 else "short"
            reason = f"exit {side} {why} mid={mid:.6g} entry={st.pos.avg_entry:.6g} pos={st.pos.size:.8g}"
            self._emit(out, ev, st, bucket, 0.0, reason, mid)
        return True

    def on_event(self, event: Event) -> list[Event]:
        """Consume one event; return the ``TargetPosition`` intents it causes (often none)."""
        t = type(event)
        if t is Bbo or isinstance(event, Bbo):
            st = self._m.get(event.market)  # type: ignore[attr-defined]
            if st is None:
                return []
            bid, ask = event.bid_px, event.ask_px  # type: ignore[attr-defined]
            if not (bid > 0 and ask > 0 and bid <= ask):
                return []  # one-sided or crossed book: no usable mid
            mid = (bid + ask) / 2.0  # = event.mid
            st.mid = mid
            if st.sizing is None:  # a market the config does not list: size it on its first mid
                c = self.cfg
                st.sizing = notional_sizing(c.notional_usd, mid, unlisted_info(st.market, mid, self.market_info))
            return self._on_mid(event, mid, st)  # type: ignore[arg-type]
        if t in _MARKET_DATA:
            return []
        if isinstance(event, _EXEC_INPUTS):
            st = own_state(event, self.name, self._m)
            if st is None:
                return []
            if isinstance(event, Fill):
                if self._fills.first(event.fill_id) and event.size > 0:
                    st.pos.apply(event)
                    st.pending.reached(st.pos.size)
            elif isinstance(event, PositionSnapshot):
                st.executor_position = event.position  # informational; the position is the fill fold
            else:
                code = event.code if isinstance(event, OrderRejected) else None
                st.pending.order_died(local=code == 0, unreachable=code == 1)
        return []

    def position(self, market: str) -> float:
        """The strategy's position in ``market`` (signed base units), from its fills (in dry
        run: simulated)."""
        return self._m[market].pos.size

    def adopt_position(self, market: str, position: float, avg_entry_price: float, ts_event: int) -> None:
        """Replace the fill fold of ``market`` by ``position`` at ``avg_entry_price`` opened at
        ``ts_event`` (the executor's snapshot; :meth:`StrategyEngineBase.take_snapshot`); a
        pending target the position now equals is cleared."""
        st = self._m[market]
        flat = abs(position) < POS_EPS
        st.pos.size = 0.0 if flat else position
        st.pos.avg_entry = 0.0 if flat else avg_entry_price
        st.pos.entry_ts = None if flat else ts_event
        st.pending.reached(st.pos.size)

    @staticmethod
    def _position_state(st: S) -> dict[str, Any]:
        """The position part of ``state(market)``: ``position`` (signed base units),
        ``avg_entry_price``, ``entry_ts`` (ns of the opening fill), ``executor_position`` (the
        last snapshot), ``pending_target`` and ``signals`` (``"side:reason"`` -> intents)."""
        return {
            "position": st.pos.size,
            "avg_entry_price": st.pos.avg_entry,
            "entry_ts": st.pos.entry_ts,
            "executor_position": st.executor_position,
            "pending_target": st.pending.target,
            "signals": dict(st.signals),
        }

    def _exit_or_enter(self, ev: Bbo, mid: float, st: S, may_signal: bool,
                       entry: Callable[[], tuple[float, str] | None]) -> list[Event]:
        """The decision on a mid, once the engine updated its indicators. Not flat: the exit
        rules (:meth:`_exit`), and no entry. Flat: when ``may_signal`` (the engine's entry
        trigger: a closed candle, a fresh divergence) and :meth:`Pending.may_enter` allow it,
        ``entry()`` -> ``(signed target in base units, reason)`` or ``None`` is emitted. The
        bucket of the no-spam rule is ``st.candles``' bucket of ``ev.ts_event``. Returns the
        intents (often none)."""
        flat = st.pos.size == 0.0
        if flat and not may_signal:
            return []  # no exit to check, no entry without the engine's trigger
        bucket = st.candles.bucket(ev.ts_event)
        out: list[Event] = []
        if (flat or not self._exit(out, ev, st, bucket, mid)) and may_signal \
                and st.pending.may_enter(ev.ts_event, bucket, self.cfg.retry_after_s):
            decided = entry()
            if decided is not None:
                target, reason = decided
                self._emit(out, ev, st, bucket, target, reason, mid)
        return out

    def _emit(self, out: list[Event], cause: Bbo, st: S, bucket: int, target: float,
              reason: str, mid: float) -> None:
        """Append a ``TargetPosition`` for ``target`` to ``out`` unless :class:`Pending`
        suppresses it (a re-sent target gets `` retry`` appended to its reason)."""
        suffix = st.pending.check(target, cause.ts_event, bucket, self.cfg.retry_after_s)
        if suffix is None:
            return
        tp = TargetPosition(
            **child(cause, self.source, len(out)),
            strategy=self.name,
            market=cause.market,
            target=target,
            max_slippage_bps=self.cfg.max_slippage_bps,
            reference_price=mid,
            reason=reason + suffix,
        )
        key = "{}:{}".format(*signal_labels(tp))
        st.signals[key] = st.signals.get(key, 0) + 1
        if self.cfg.dry_run:
            self._dry_run(st, tp)
            return
        out.append(tp)

    def _dry_run(self, st: S, tp: TargetPosition) -> None:
        """Dry run: log the (counted) intent ``tp`` instead of sending it and simulate its
        execution at its ``reference_price`` (the position moves to the target, which is reached)."""
        log.info("%s dry run %s: target %g (%s)", self.name, st.market, tp.target, tp.reason)
        delta = tp.target - st.pos.size
        if abs(delta) >= POS_EPS:
            st.pos.trade(abs(delta), delta > 0, tp.reference_price, tp.ts_event)
        st.pending.reached(st.pos.size)
