"""Executor engine: the fast path of ``on_market_data`` (guard bands, flush wait time) changes
no output. A seeded random session of quotes, intents and venue reports is driven through an
engine with the fast path and one without (``_fast = False``: every quote re-checks the guards
and the deferred work); every call must return the same events and queue the same commands."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from services.executor.config import ExecutorConfig
from services.executor.engine import RATE_LIMITED, Engine, OrderCommand
from services.executor.venue import parse_order, parse_position, parse_trade
from shared.events import (
    Bbo,
    BookSnapshot,
    CancelIntent,
    Control,
    Event,
    GuardState,
    MarketStats,
    QuoteIntent,
    RestingOrders,
    TargetPosition,
    Trade,
)
from shared.markets import MarketInfo

ACCT = 1001
BTC = MarketInfo(symbol="BTC", market_id=1, size_decimals=5, price_decimals=1, min_base_amount=0.0002,
                 min_quote_amount=10.0)
ETH = MarketInfo(symbol="ETH", market_id=2, size_decimals=4, price_decimals=2, min_base_amount=0.005,
                 min_quote_amount=10.0)
MARKETS = {"BTC": BTC, "ETH": ETH}
T0 = 1_757_973_376_000_000_000
MS = 1_000_000
# tight limits (the guards switch often) and a small request budget (updates get deferred)
CFG = ExecutorConfig(max_position={"BTC": 0.0012, "ETH": 0.03}, max_notional_usd={"BTC": 110.0, "ETH": 100.0},
                     requests_per_minute=8, budget_reserve=0.25, rate_limit_backoff_s=3.0)


class Session:
    """Drives two engines in lockstep with one seeded random generator; the venue is played by
    the driver (acceptances, refusals incl. 23000, fills, cancels, positions)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.fast = Engine(CFG, MARKETS, ACCT, next_client_order_index=100)
        self.slow = Engine(CFG, MARKETS, ACCT, next_client_order_index=100)
        self.slow._fast = False
        self.t = T0
        self.n = 0
        self.mid = {"BTC": 100_000.0, "ETH": 4_000.0}
        self.live: dict[int, OrderCommand] = {}  # creates the venue accepted, by client order index
        self.left: dict[int, float] = {}  # their unfilled base units
        self.pos = {"BTC": 0.0, "ETH": 0.0}  # the account position the venue holds
        self.trade_id = 0
        self.outs: list[Event] = []

    def same(self, name: str, *args: Any) -> list:
        """Call ``name`` on both engines; their results must be equal."""
        a = getattr(self.fast, name)(*args)
        b = getattr(self.slow, name)(*args)
        assert a == b, f"step {self.n}: {name} differs"
        if name != "take_commands":
            self.outs += a
        return a

    def eid(self, kind: str) -> str:
        self.n += 1
        return f"{kind}-{self.n}"

    # ------------------------------------------------------------------ inputs

    def market_data(self) -> Event:
        rng = self.rng
        market = rng.choice(("BTC", "ETH"))
        m = MARKETS[market]
        r = rng.random()
        # mostly small moves, sometimes a jump across the notional switch points
        self.mid[market] *= math.exp(rng.gauss(0.0, 0.0005) if r < 0.9 else rng.gauss(0.0, 0.08))
        tick = 10.0 ** -m.price_decimals
        bid = round(self.mid[market] - tick * rng.randint(1, 5), m.price_decimals)
        ask = round(self.mid[market] + tick * rng.randint(1, 5), m.price_decimals)
        kind = rng.random()
        if kind < 0.8:
            return Bbo(id=self.eid("bbo"), ts_event=self.t, market=market, bid_px=bid, bid_sz=1.0, ask_px=ask,
                       ask_sz=1.0)
        if kind < 0.88:
            return BookSnapshot(id=self.eid("book"), ts_event=self.t, market=market, bids=[(bid, 1.0)],
                                asks=[(ask, 1.0)], nonce=self.n)
        if kind < 0.95:
            return Trade(id=self.eid("trade"), ts_event=self.t, market=market, trade_id=str(self.n), price=bid,
                         size=0.01, taker_side="sell")
        return MarketStats(id=self.eid("stats"), ts_event=self.t, market=market, mark_price=bid, index_price=bid)

    def intent(self) -> Event:
        rng = self.rng
        market = rng.choice(("BTC", "ETH"))
        m = MARKETS[market]
        mid = self.mid[market]
        unit = m.min_base_amount
        r = rng.random()
        if r < 0.45:
            off = mid * rng.uniform(0.0001, 0.002)
            return QuoteIntent(id=self.eid("q"), ts_event=self.t, strategy="mm", market=market,
                               bid_px=mid - off if rng.random() < 0.9 else None, bid_sz=unit * rng.randint(1, 4),
                               ask_px=mid + off if rng.random() < 0.9 else None, ask_sz=unit * rng.randint(1, 4),
                               post_only=rng.random() < 0.85)
        if r < 0.6:
            levels = [(rng.choice(("buy", "sell")), mid * (1 + rng.uniform(-0.01, 0.01)), unit * rng.randint(1, 3))
                      for _ in range(rng.randint(0, 4))]
            return RestingOrders(id=self.eid("grid"), ts_event=self.t, strategy="grid", market=market,
                                 orders=[(s, p * (0.995 if s == "buy" else 1.005), z) for s, p, z in levels])
        if r < 0.9:
            return TargetPosition(id=self.eid("tp"), ts_event=self.t, strategy=rng.choice(("tr1", "tr2")),
                                  market=market, target=unit * rng.randint(-8, 8), max_slippage_bps=20.0)
        if r < 0.96:
            return CancelIntent(id=self.eid("cx"), ts_event=self.t, strategy=rng.choice(("mm", "grid")),
                                market=rng.choice((market, None)))
        return Control(id=self.eid("ctl"), ts_event=self.t, command=rng.choice(("pause", "resume", "resume")),
                       target=rng.choice(("mm", "grid", "tr1")))

    # ------------------------------------------------------------------ the venue

    def send(self) -> None:
        """Take the commands of the step and report each one's send result."""
        for cmd in self.same("take_commands"):
            r = self.rng.random()
            if r < 0.07:
                self.same("on_send_result", cmd, False, RATE_LIMITED, "too many requests")
            elif r < 0.1:
                self.same("on_send_result", cmd, False, 21700, "refused")
            else:
                self.same("on_send_result", cmd, True, 200, "", f"0x{self.n:x}")
                m = MARKETS[cmd.market] if cmd.market else None
                if cmd.kind == "create" and m is not None:
                    self.live[cmd.client_order_index] = cmd
                    self.left[cmd.client_order_index] = m.int_to_size(cmd.size)
                elif cmd.kind == "cancel" and cmd.client_order_index in self.live:
                    self.finish(cmd.client_order_index, "canceled")
                elif cmd.kind == "cancel_all":
                    for coi in list(self.live):
                        self.finish(coi, "canceled")

    def finish(self, coi: int, status: str) -> None:
        cmd = self.live.pop(coi)
        left = self.left.pop(coi)
        self.same("on_venue_order", parse_order(cmd.market_id, {
            "client_order_index": coi, "order_index": coi + 10**9, "status": status,
            "remaining_base_amount": f"{left:.8f}", "timestamp": self.t // MS}))

    def venue_report(self) -> None:
        rng = self.rng
        r = rng.random()
        if r < 0.15:
            market = rng.choice(("BTC", "ETH"))
            p = self.pos[market]
            self.same("on_venue_position", parse_position(MARKETS[market].market_id,
                                                          {"position": f"{abs(p):.8f}", "sign": -1 if p < 0 else 1}))
            return
        if not self.live:
            return
        coi = rng.choice(sorted(self.live))
        cmd = self.live[coi]
        m = MARKETS[cmd.market]
        if r < 0.25 and cmd.tif != "ioc":
            self.same("on_venue_order", parse_order(cmd.market_id, {
                "client_order_index": coi, "order_index": coi + 10**9, "status": "open",
                "remaining_base_amount": "1"}))
            return
        if r < 0.4:
            self.finish(coi, "canceled-expired" if cmd.tif == "ioc" else "canceled")
            return
        lots = m.size_to_int(self.left[coi])
        take = lots if rng.random() < 0.6 else rng.randint(1, max(1, lots))
        size = m.int_to_size(take)
        price = m.int_to_price(cmd.price)
        self.trade_id += 1
        buy = cmd.side == "buy"
        maker = cmd.tif != "ioc"
        self.same("on_venue_trade", parse_trade(cmd.market_id, {
            "trade_id": self.trade_id, "size": f"{size:.8f}", "price": f"{price:.8f}",
            "usd_amount": f"{size * price:.6f}", "ask_account_id": 9 if buy else ACCT,
            "bid_account_id": ACCT if buy else 9, "ask_client_id": 0 if buy else coi,
            "bid_client_id": coi if buy else 0, "is_maker_ask": (not buy) if maker else buy,
            "taker_fee": 200, "maker_fee": 0, "timestamp": self.t // MS}))
        self.pos[cmd.market] = round(self.pos[cmd.market] + (size if buy else -size), 10)
        self.left[coi] = round(self.left[coi] - size, 10)
        if take >= lots:
            self.finish(coi, "filled")

    # ------------------------------------------------------------------ the session

    def run(self, steps: int) -> None:
        rng = self.rng
        for _ in range(steps):
            self.t += rng.choice((1, 20, 300, 1500, 4000)) * MS
            r = rng.random()
            if r < 0.6:
                ev = self.market_data()
                if rng.random() < 0.5:
                    self.same("on_market_data", ev)
                else:
                    self.same("on_events", [ev])
            elif r < 0.85:
                evs = [self.intent() for _ in range(rng.choice((1, 1, 2)))]
                if rng.random() < 0.1:
                    evs.append(self.market_data())
                self.same("on_events", evs)
            else:
                self.venue_report()
            self.send()


def _counting(f: Any, calls: dict, key: tuple[str, str]) -> Any:
    """``f`` counting its calls into ``calls[key]``."""
    def counted(*a: Any, **k: Any) -> Any:
        calls[key] += 1
        return f(*a, **k)
    return counted


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fast_path_gives_the_same_outputs_and_commands(seed: int) -> None:
    s = Session(seed)
    calls = {("fast", "_eval_guards"): 0, ("slow", "_eval_guards"): 0, ("fast", "_flush"): 0, ("slow", "_flush"): 0}
    for name, method in list(calls):
        eng = s.fast if name == "fast" else s.slow
        setattr(eng, method, _counting(getattr(eng, method), calls, (name, method)))
    s.run(4000)
    # the session exercised what the fast path skips: guard switches both ways, deferred updates,
    # 23000 back-offs; and the fast engine did skip re-checks
    got = {(g.guard, g.engaged) for g in s.outs if isinstance(g, GuardState)}
    assert {("max_position", True), ("max_position", False), ("max_notional", True), ("max_notional", False),
            ("self_trade", True), ("self_trade", False)} <= got
    assert s.fast.deferred_updates > 0 and s.fast.rate_limited > 0
    assert s.fast._flushes == s.slow._flushes > 0
    assert calls["fast", "_eval_guards"] < calls["slow", "_eval_guards"] - 300
    assert calls["fast", "_flush"] < calls["slow", "_flush"] - 300


def test_band_stops_short_of_the_switch_points() -> None:
    # 0.0009 BTC held, max_position 0.0012, max_notional 110 USD, minimums 0.0002 BTC / 10 USD:
    # buys are blocked by max_notional once 110 / mid - 0.0009 < 0.0002, i.e. above mid 100,000;
    # by max_position below mid 33,333 (10 / mid > 0.0003)
    band = Engine._guard_band
    lo, hi = band(90_000.0, 0.0009, 0.0012, 110.0, 0.0002, 10.0)  # type: ignore[misc]
    assert 33_334.0 < lo < 85_000.0 and 95_000.0 < hi < 100_000.0
    lo, hi = band(105_000.0, 0.0009, 0.0012, 110.0, 0.0002, 10.0)  # type: ignore[misc]
    assert 100_000.0 < lo < 105_000.0 < hi <= 210_000.0
    assert band(100_000.0, 0.0009, 0.0012, 110.0, 0.0002, 10.0) is None  # type: ignore[misc]
    assert band(100_000.0 * (1 + 1e-13), 0.0009, 0.0012, 110.0, 0.0002, 10.0) is None  # type: ignore[misc]
